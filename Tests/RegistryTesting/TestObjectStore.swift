import Foundation
import Storage

/// The S3 server the tests use: the throw-away radosgw that `scripts/test.sh` starts
/// (`scripts/radosgw.sh`), described by the file `REGISTRYD_TEST_S3_ENV` names.
///
/// ```swift
/// let configuration = try TestObjectStore.configuration()   // a fresh bucket each call
/// ```
public enum TestObjectStore {
    /// Whether the tests may skip S3 when no server is configured: only when asked, and
    /// never in CI (`CI=true`), where a skipped S3 test would hide a broken one.
    public static var mayBeSkipped: Bool {
        let environment = ProcessInfo.processInfo.environment
        return environment["REGISTRYD_SKIP_S3_TESTS"] != nil && environment["CI"] != "true"
    }

    /// A configuration for a bucket no other test uses; the driver creates it on `prepare()`.
    public static func configuration(partSize: Int = S3Configuration.minimumPartSize, redirect: Bool = false, prefix: String = "") throws
        -> S3Configuration
    {
        let values = try settings()
        guard let endpoint = values["S3_ENDPOINT"], let access = values["AWS_ACCESS_KEY_ID"], let secret = values["AWS_SECRET_ACCESS_KEY"]
        else {
            throw TestObjectStoreError.notConfigured
        }
        return try S3Configuration(
            endpoint: endpoint, bucket: "registryd-test-\(UUID().uuidString.prefix(8).lowercased())",
            region: values["S3_REGION"] ?? "us-east-1",
            prefix: prefix, credentials: S3Credentials(accessKeyID: access, secretAccessKey: secret), partSize: partSize, redirect: redirect
        )
    }
}

extension TestObjectStore {
    /// The lines of `s3.env`: `S3_ENDPOINT`, `S3_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`.
    public static func settings() throws -> [String: String] {
        guard let file = ProcessInfo.processInfo.environment["REGISTRYD_TEST_S3_ENV"] else { throw TestObjectStoreError.notConfigured }
        var values: [String: String] = [:]
        for line in try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return values
    }

    /// The directory `scripts/radosgw.sh` runs the store in (it holds `s3.env`), for
    /// tests that kill and restart the gateway (`radosgw.sh gateway-kill|gateway-start`).
    public static var directory: String? {
        ProcessInfo.processInfo.environment["REGISTRYD_TEST_S3_ENV"].map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }
    }
}

public enum TestObjectStoreError: Error, CustomStringConvertible {
    case notConfigured

    public var description: String {
        "no S3 server for the tests: run them with scripts/test.sh (it starts radosgw), or set REGISTRYD_SKIP_S3_TESTS=1 to skip them"
    }
}
