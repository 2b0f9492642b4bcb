import HTTPTransport
import NIOHTTP1

extension HTTPResponse {
    /// The OCI error body for `error`: `{"errors":[{"code":…,"message":…,"detail":…}]}`.
    static func error(_ error: RegistryError) -> HTTPResponse {
        var entry: [String: String] = ["code": error.code.rawValue, "message": error.message]
        if let detail = error.detail { entry["detail"] = detail }
        let body = JSONText.encode(["errors": [entry]])
        var headers = HTTPHeaders()
        for (name, value) in error.headers { headers.add(name: name, value: value) }
        return .json(error.status, body, headers: headers)
    }
}
