import ControlProtocol
import FoundationEssentials

/// Turns one line received on the control socket into the line to answer:
/// JSON-RPC 2.0 parsing, batches, notifications, and the method table.
///
/// ```swift
/// let methods = ControlMethods(metadata: metadata, blobs: blobs, version: "1.0")
/// let dispatcher = ControlDispatcher(methods: methods.table, changing: ControlMethods.changingMethods)
/// let reply = await dispatcher.handle(line: #"{"jsonrpc":"2.0","method":"system.status","id":1}"#)
/// ```
public struct ControlDispatcher: Sendable {
    public typealias Method = @Sendable (_ params: JSONValue?) async throws(RPCError) -> JSONValue

    /// Records a successful change: who (the peer), which method, with which params.
    public typealias AuditRecorder = @Sendable (_ caller: String, _ method: String, _ params: JSONValue?) async -> Void

    private let methods: [String: Method]
    /// Methods that change something; each successful call is audited.
    private let changing: Set<String>
    private let audit: AuditRecorder
    /// Most requests in one batch: a batch must not become a way to do unbounded work.
    public static let maximumBatch = 100

    public init(methods: [String: Method], changing: Set<String> = [], audit: @escaping AuditRecorder = { _, _, _ in }) {
        self.methods = methods
        self.changing = changing
        self.audit = audit
    }

    /// - Returns: the response line, or `nil` when every request was a notification.
    public func handle(line: some StringProtocol, caller: String = "test") async -> String? {
        let data = Data(line.utf8)
        let decoded: JSONValue
        do {
            decoded = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            return encode(RPCResponse.failure(.parseError("the line is not valid JSON"), id: .null))
        }
        if case .array(let batch) = decoded {
            guard !batch.isEmpty else { return encode(RPCResponse.failure(.invalidRequest("empty batch"), id: .null)) }
            guard batch.count <= Self.maximumBatch else {
                return encode(RPCResponse.failure(.invalidRequest("a batch holds at most \(Self.maximumBatch) requests"), id: .null))
            }
            var responses: [RPCResponse] = []
            for element in batch {
                if let response = await handle(element, caller: caller) { responses.append(response) }
            }
            return responses.isEmpty ? nil : encode(responses)
        }
        return await handle(decoded, caller: caller).map(encode)
    }

    private func handle(_ value: JSONValue, caller: String) async -> RPCResponse? {
        guard case .object(let object) = value,
            object["jsonrpc"] == .string(JSONRPC.version),
            let method = object["method"]?.stringValue
        else {
            return .failure(.invalidRequest("expected {\"jsonrpc\":\"2.0\",\"method\":…}"), id: Self.validID(value["id"]) ?? .null)
        }
        let params = object["params"]
        if let params, !Self.isStructured(params) {
            return .failure(.invalidParams("params must be an object or an array"), id: Self.validID(object["id"]) ?? .null)
        }
        // A request without "id" is a notification: run it, answer nothing.
        guard let rawID = object["id"] else {
            _ = await run(method, params, caller: caller)
            return nil
        }
        guard let id = Self.validID(rawID) else {
            return .failure(.invalidRequest("id must be a string, a number or null"), id: .null)
        }
        switch await run(method, params, caller: caller) {
        case .success(let result): return .success(result, id: id)
        case .failure(let error): return .failure(error, id: id)
        }
    }

    private func run(_ method: String, _ params: JSONValue?, caller: String) async -> Result<JSONValue, RPCError> {
        guard let implementation = methods[method] else { return .failure(.methodNotFound(method)) }
        do {
            let result = try await implementation(params)
            if changing.contains(method) { await audit(caller, method, Self.redacted(params)) }
            return .success(result)
        } catch {
            return .failure(error)
        }
    }

    /// Params as the audit table keeps them: secrets replaced.
    static func redacted(_ params: JSONValue?) -> JSONValue? {
        guard case .object(var object)? = params else { return params }
        for key in ["password", "htpasswd"] where object[key] != nil { object[key] = "(redacted)" }
        return .object(object)
    }

    private static func validID(_ id: JSONValue?) -> JSONValue? {
        switch id {
        case .string, .number, .null: id
        default: nil
        }
    }

    private static func isStructured(_ value: JSONValue) -> Bool {
        switch value {
        case .object, .array: true
        default: false
        }
    }

    private func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self))
            ?? #"{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":null}"#
    }
}
