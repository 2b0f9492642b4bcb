import ControlProtocol

/// Reads named params, refusing unknown names and wrong types with -32602.
struct ParamsReader {
    private let object: [String: JSONValue]
    private var invalid: RPCError?

    init(_ params: JSONValue?, allowed: Set<String>) {
        switch params {
        case nil, .null?:
            object = [:]
        case .object(let values)?:
            object = values
        default:
            object = [:]
            invalid = .invalidParams("params must be an object")
        }
        if let unknown = Set(object.keys).subtracting(allowed).sorted().first, invalid == nil {
            invalid = .invalidParams("unknown parameter \(unknown.prefix(64))")
        }
    }

    func string(_ name: String) throws(RPCError) -> String? {
        guard let value = object[name] else { return nil }
        guard let text = value.stringValue else { throw .invalidParams("\(name) must be a string") }
        return text
    }

    /// A required string param.
    func requiredString(_ name: String) throws(RPCError) -> String {
        guard let value = try string(name) else { throw .invalidParams("\(name) is required") }
        return value
    }

    func bool(_ name: String) throws(RPCError) -> Bool? {
        guard let value = object[name] else { return nil }
        guard case .bool(let flag) = value else { throw .invalidParams("\(name) must be true or false") }
        return flag
    }

    func integer(_ name: String, in range: ClosedRange<Int>) throws(RPCError) -> Int? {
        guard let value = object[name] else { return nil }
        guard let number = value.numberValue, number.rounded() == number, let integer = Int(exactly: number), range.contains(integer) else {
            throw .invalidParams("\(name) must be an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return integer
    }

    func finish() throws(RPCError) {
        if let invalid { throw invalid }
    }
}
