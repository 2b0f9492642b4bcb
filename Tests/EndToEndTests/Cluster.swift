import Foundation
import Metadata
import RegistryTesting
import Storage
import XCTest

/// Several real `registryd` processes sharing one PostgreSQL database (a fresh one on the
/// test server) and one S3 bucket (a fresh one on the test radosgw), with Debian's nginx
/// in front as a round-robin load balancer: the deployment of docs/SCALE-OUT.md on
/// loopback. Every instance has its own data directory, port, control socket and id.
final class Cluster {
    struct Instance {
        let id: String
        let port: Int
        let dataDirectory: String
        let configFile: String
        var process: SpawnedProcess?

        var controlSocket: String { dataDirectory + "/control.sock" }
        var log: String { dataDirectory + "/../registryd.log" }
    }

    let directory: String
    let postgres: PostgresLocation
    let s3: S3Configuration
    private(set) var instances: [Instance] = []
    private(set) var balancerPort = 0
    private var nginx: SpawnedProcess?

    /// The staff account every cluster has, made through the first instance's control socket.
    static let admin = (user: "admin", password: "cluster-secret-1")

    private init(directory: String, postgres: PostgresLocation, s3: S3Configuration) {
        self.directory = directory
        self.postgres = postgres
        self.s3 = s3
    }

    /// Starts `count` instances (one after another, or all at once) and the balancer,
    /// and creates the staff account. With `tokenAuth` every instance is given the same
    /// token key file, as docs/SCALE-OUT.md tells operators to do.
    static func start(count: Int = 3, tokenAuth: Bool = false, extraSettings: String = "", simultaneously: Bool = false) async throws
        -> Cluster
    {
        try DaemonTests.requireBuiltBinaries()
        try ContainerTools.require(["/usr/sbin/nginx"])
        let directory = "/tmp/registryd-cluster-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let cluster = Cluster(
            directory: directory, postgres: try await TestPostgres.makeDatabase(), s3: try TestObjectStore.configuration())
        // Clients reach the registry through the balancer: that is its public URL (and the token realm's).
        cluster.balancerPort = try DaemonTests.freePort()
        var settings = extraSettings
        if tokenAuth {
            let key = directory + "/token.key"
            let hex = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
            try (hex + "\n").write(toFile: key, atomically: true, encoding: .utf8)
            settings += "\ntoken-auth = true\ntoken-key-file = \(key)"
        }
        for index in 0..<count {
            try cluster.configure(index: index, extraSettings: settings)
        }
        if simultaneously {
            for index in 0..<count { try cluster.launch(index) }
            for index in 0..<count { try await cluster.waitUntilServing(index) }
        } else {
            for index in 0..<count {
                try cluster.launch(index)
                try await cluster.waitUntilServing(index)
            }
        }
        try await cluster.startBalancer()
        let (status, output) = try await cluster.registryctl(
            0, ["user", "add", admin.user, "--staff", "--password-stdin"], input: admin.password + "\n")
        guard status == 0 else { throw ClusterError.failed("registryctl user add: \(output)") }
        return cluster
    }

    /// The HTTP client of instance `index`, or of the balancer (`nil`), logged in as admin.
    func client(_ index: Int? = nil) -> TestHTTPClient {
        TestHTTPClient(port: index.map { instances[$0].port } ?? balancerPort)
            .withBasicAuth(user: Self.admin.user, password: Self.admin.password)
    }

    var balancerAddress: String { "127.0.0.1:\(balancerPort)" }

    private func configure(index: Int, extraSettings: String) throws {
        let node = "\(directory)/node\(index)"
        try FileManager.default.createDirectory(atPath: node + "/data", withIntermediateDirectories: true)
        let port = try DaemonTests.freePort()
        let config = node + "/registryd.conf"
        let endpoint = "\(s3.scheme)://\(s3.host):\(s3.port)"
        let url = "postgres://\(postgres.user)@\(postgres.host):\(postgres.port)/\(postgres.database)?sslmode=disable"
        try """
        listen = 127.0.0.1:\(port)
        data-dir = \(node)/data
        instance-id = node-\(index)
        metadata = \(url)
        metadata-password = \(postgres.password ?? "")
        metadata-pool-size = 8
        storage = s3
        s3-endpoint = \(endpoint)
        s3-bucket = \(s3.bucket)
        s3-region = \(s3.region)
        s3-access-key = \(s3.credentials.accessKeyID)
        s3-secret-key = \(s3.credentials.secretAccessKey)
        public-url = http://127.0.0.1:\(balancerPort)
        \(extraSettings)
        """.write(toFile: config, atomically: true, encoding: .utf8)
        instances.append(Instance(id: "node-\(index)", port: port, dataDirectory: node + "/data", configFile: config))
    }

    /// Starts (or restarts) instance `index`'s process; its log goes to `node<index>/registryd.log`.
    func launch(_ index: Int) throws {
        let instance = instances[index]
        instances[index].process = try SpawnedProcess(
            [DaemonTests.buildDirectory + "/registryd", "--config", instance.configFile], environment: [:],
            stderrPath: instance.log)
    }

    func waitUntilServing(_ index: Int) async throws {
        for _ in 0..<200 {
            if let response = try? await TestHTTPClient(port: instances[index].port).send(.GET, "/v2/"), response.status == .unauthorized {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ClusterError.failed("instance \(index) did not start serving:\n" + logTail(index))
    }

    /// kill -9: the instance stops without a word, as in a crash.
    func kill(_ index: Int) async {
        guard let process = instances[index].process else { return }
        process.signal(SIGKILL)
        _ = await process.waitForExit(seconds: 10)
        instances[index].process = nil
    }

    func logTail(_ index: Int, lines: Int = 40) -> String {
        let text = (try? String(contentsOfFile: instances[index].log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// Runs registryctl against instance `index`. - Returns: its exit status and output.
    func registryctl(_ index: Int, _ arguments: [String], input: String? = nil) async throws -> (Int32, String) {
        try await Self.registryctl(socket: instances[index].controlSocket, arguments, input: input)
    }

    /// Runs registryctl against the control socket at `socket` (for tasks that hold no `Cluster`).
    static func registryctl(socket: String, _ arguments: [String], input: String? = nil) async throws -> (Int32, String) {
        let tools = try ContainerTools(registry: "127.0.0.1")
        defer { tools.cleanUp() }
        return try await tools.runStatus([DaemonTests.buildDirectory + "/registryctl", "--socket", socket] + arguments, input: input)
    }

    /// nginx as an operator would put it in front: round robin over every instance, a new
    /// upstream connection per request (so consecutive requests of one client land on
    /// different instances), bodies streamed through, no size limit.
    private func startBalancer() async throws {
        let servers = instances.map { "        server 127.0.0.1:\($0.port);" }.joined(separator: "\n")
        let temporary = directory + "/nginx"
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        let config = directory + "/nginx.conf"
        try """
        daemon off;
        master_process off;
        worker_processes 1;
        pid \(temporary)/nginx.pid;
        error_log \(temporary)/error.log warn;
        events { worker_connections 1024; }
        http {
            access_log off;
            client_body_temp_path \(temporary)/body;
            proxy_temp_path \(temporary)/proxy;
            fastcgi_temp_path \(temporary)/fastcgi;
            uwsgi_temp_path \(temporary)/uwsgi;
            scgi_temp_path \(temporary)/scgi;
            upstream registry {
        \(servers)
            }
            server {
                listen 127.0.0.1:\(balancerPort);
                client_max_body_size 0;
                location / {
                    proxy_pass http://registry;
                    proxy_http_version 1.1;
                    proxy_request_buffering off;
                    proxy_buffering off;
                    proxy_set_header Host $http_host;
                    proxy_set_header Connection "";
                    proxy_read_timeout 300s;
                    proxy_next_upstream error timeout;
                }
            }
        }
        """.write(toFile: config, atomically: true, encoding: .utf8)
        nginx = try SpawnedProcess(
            ["/usr/sbin/nginx", "-p", temporary, "-e", temporary + "/error.log", "-c", config], environment: [:],
            stderrPath: temporary + "/stderr.log")
        for _ in 0..<100 {
            if let response = try? await TestHTTPClient(port: balancerPort).send(.GET, "/v2/"), response.status == .unauthorized { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        let log = (try? String(contentsOfFile: temporary + "/error.log", encoding: .utf8)) ?? ""
        throw ClusterError.failed("nginx did not start:\n\(log)")
    }

    /// Stops everything and removes the database, the bucket's objects stay with radosgw's
    /// memory store (gone when the test run's radosgw stops).
    func stop(showingLogs: Bool) async {
        if showingLogs {
            for index in instances.indices { print("registryd node-\(index) (last lines):\n" + logTail(index)) }
        }
        nginx?.signal(SIGTERM)
        _ = await nginx?.waitForExit(seconds: 5)
        for index in instances.indices { await kill(index) }
        try? await TestPostgres.dropDatabase(postgres)
        try? FileManager.default.removeItem(atPath: directory)
    }
}

enum ClusterError: Error, CustomStringConvertible {
    case failed(String)

    var description: String {
        switch self {
        case .failed(let what): what
        }
    }
}
