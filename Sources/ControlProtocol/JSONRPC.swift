/// JSON-RPC 2.0 messages (https://www.jsonrpc.org/specification) as the control socket
/// and `registryctl` exchange them: one JSON object (or batch array) per line.
public enum JSONRPC {
    public static let version = "2.0"
}

public struct RPCRequest: Codable, Sendable, Equatable {
    public var jsonrpc: String
    public var method: String
    public var params: JSONValue?
    /// `nil` for a notification, which gets no response.
    public var id: JSONValue?

    public init(method: String, params: JSONValue? = nil, id: JSONValue?) {
        self.jsonrpc = JSONRPC.version
        self.method = method
        self.params = params
        self.id = id
    }
}

public struct RPCResponse: Codable, Sendable, Equatable {
    public var jsonrpc: String
    public var result: JSONValue?
    public var error: RPCError?
    public var id: JSONValue

    public static func success(_ result: JSONValue, id: JSONValue) -> RPCResponse {
        RPCResponse(jsonrpc: JSONRPC.version, result: result, error: nil, id: id)
    }

    public static func failure(_ error: RPCError, id: JSONValue) -> RPCResponse {
        RPCResponse(jsonrpc: JSONRPC.version, result: nil, error: error, id: id)
    }
}

/// A JSON-RPC error object. Standard codes are below; application errors use
/// codes from -32000 down, each with a stable meaning listed in docs.
public struct RPCError: Codable, Sendable, Equatable, Error {
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public static func parseError(_ detail: String) -> RPCError {
        RPCError(code: -32700, message: "Parse error", data: ["detail": .string(detail)])
    }
    public static func invalidRequest(_ detail: String) -> RPCError {
        RPCError(code: -32600, message: "Invalid Request", data: ["detail": .string(detail)])
    }
    public static func methodNotFound(_ method: String) -> RPCError {
        RPCError(code: -32601, message: "Method not found", data: ["method": .string(method)])
    }
    public static func invalidParams(_ detail: String) -> RPCError {
        RPCError(code: -32602, message: "Invalid params", data: ["detail": .string(detail)])
    }
    public static func internalError(_ detail: String) -> RPCError {
        RPCError(code: -32603, message: "Internal error", data: ["detail": .string(detail)])
    }
}
