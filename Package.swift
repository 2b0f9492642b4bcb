// swift-tools-version:6.0
import PackageDescription

// The target split follows docs/ARCHITECTURE.md: each library owns one layer and
// must not reach into the layers it is not listed as depending on.
let package = Package(
    name: "registryd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "registryd", targets: ["registryd"]),
        .executable(name: "registryctl", targets: ["registryctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        // Only its bcrypt target (plain C plus a Swift wrapper) is built.
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        // HTTP(S) client with connection pooling for the S3 storage driver.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        // PostgreSQL for the metadata of several instances (docs/SCALE-OUT.md), and the TLS
        // configuration its `sslmode` needs.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // System libraries: SHA-256/512 from libcrypto, metadata in libsqlite3.
        // libssl-dev's headers; its static libcrypto is linked by OCI (see there), so no
        // pkg-config, whose flags would link the shared library as well.
        .systemLibrary(name: "CLibcrypto"),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // Linux calls the Glibc module leaves out (sync_file_range); part of libc, nothing to link.
        .systemLibrary(name: "CLinux"),
        // Socket activation and sd_notify.
        .target(name: "Systemd", dependencies: ["CSystemd"]),

        // The OCI vocabulary: names, tags, digests, media types, manifests. No I/O.
        .target(
            name: "OCI",
            dependencies: ["CLibcrypto", .product(name: "NIOCore", package: "swift-nio")],
            // libcrypto from libssl-dev's archive (CLibcrypto's module map names no library):
            // only its SHA code and constant-time compare are linked in, where loading
            // libcrypto.so kept 1.4 MiB of its symbol tables and relocated data resident
            // (docs/PERFORMANCE.md, "Memory").
            linkerSettings: [.unsafeFlags(["-Xlinker", "-l:libcrypto.a"])]
        ),
        // Bytes: storage drivers and the content-addressed blob store.
        .target(
            name: "Storage",
            dependencies: [
                "OCI", "CLibcrypto", "CLinux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // Facts: the store protocols and their two backends, SQLite (one instance) and
        // PostgreSQL (several), each with its schema, migrations and queries.
        .target(
            name: "Metadata",
            dependencies: [
                "OCI", "CSQLite", "CLinux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Who may do what: users, passwords, tokens, the push rules. No HTTP framing.
        .target(
            name: "Auth",
            dependencies: [
                "OCI", "Metadata", "CLibcrypto",
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            ]
        ),
        // HTTP/1.1 serving: the server, requests, responses, bodies, the access log and
        // the immediate path. Knows nothing of OCI, storage or metadata.
        .target(
            name: "HTTPTransport",
            dependencies: [
                "CLinux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The /v2 registry API on top of it: routes, handlers, access, OCI errors.
        .target(
            name: "RegistryAPI",
            dependencies: [
                "HTTPTransport", "OCI", "Storage", "Metadata", "Auth",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Garbage collection, storage verification, upload purge: driven by the metadata.
        .target(name: "Maintenance", dependencies: ["Metadata", "Storage", "OCI"]),
        // JSON-RPC 2.0 messages shared by the control socket and registryctl.
        .target(name: "ControlProtocol"),
        .target(
            name: "Control",
            dependencies: [
                "ControlProtocol", "Metadata", "OCI", "Auth", "Maintenance",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "registryd",
            dependencies: [
                "HTTPTransport", "RegistryAPI", "Storage", "Metadata", "Control", "Auth", "Systemd", "Maintenance", "DaemonSettings",
                "CLinux",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            linkerSettings: [
                // lld from the Swift toolchain: packed relative relocations and no exported
                // symbol table keep the loader's start-up work (and resident pages) small.
                .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker", "--no-export-dynamic"]),
                // The functions a running registry executes, placed together (profile in
                // scripts/link-order/; effective with scripts/build-release.sh's function sections).
                .unsafeFlags(
                    [
                        "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/scripts/link-order/registryd.order",
                        "-Xlinker", "--no-warn-symbol-ordering",
                    ],
                    .when(configuration: .release)),
            ]
        ),
        // The daemon's settings: defaults, the config file and the checks of every value.
        .target(name: "DaemonSettings", dependencies: ["Storage", "Metadata", .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "registryctl",
            dependencies: ["ControlProtocol", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // libFuzzer targets for every parser of untrusted bytes: scripts/fuzz.sh builds
        // them with -sanitize=fuzzer,address; an ordinary build replays stored inputs.
        .executableTarget(
            name: "registryd-fuzz",
            dependencies: [
                "OCI", "Auth", "HTTPTransport", "RegistryAPI", "Storage", "Metadata", "Control", "ControlProtocol", "DaemonSettings",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Fuzz",
            exclude: ["Corpus", "Regressions"]
        ),

        .target(
            name: "RegistryTesting",
            dependencies: [
                "HTTPTransport", "RegistryAPI", "Storage", "Metadata", "OCI", "Auth",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/RegistryTesting"
        ),
        .testTarget(name: "OCITests", dependencies: ["OCI"]),
        .testTarget(name: "SettingsTests", dependencies: ["DaemonSettings"]),
        // The examples of the doc comments in Sources/, compiled and mostly run.
        .testTarget(
            name: "DocumentationExamples",
            dependencies: [
                "Auth", "Control", "HTTPTransport", "Maintenance", "Metadata", "OCI", "RegistryAPI", "Storage", "Systemd",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .testTarget(name: "AuthTests", dependencies: ["Auth", "Metadata", "OCI", "RegistryTesting"]),
        .testTarget(
            name: "StorageTests",
            dependencies: [
                "Storage", "OCI", "RegistryTesting", "RegistryAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "MaintenanceTests",
            dependencies: ["Maintenance", "RegistryTesting", "Metadata", "Storage", "OCI", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(
            name: "MetadataTests",
            dependencies: ["Metadata", "OCI", "RegistryTesting", .product(name: "Logging", package: "swift-log")],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "HTTPTransportTests",
            dependencies: [
                "HTTPTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "RegistryAPITests",
            dependencies: [
                "RegistryTesting", "HTTPTransport", "RegistryAPI", "OCI", "Metadata", "Auth", "Maintenance", "Storage", "CLinux",
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .testTarget(
            name: "ControlTests",
            dependencies: [
                "Control", "ControlProtocol", "Metadata", "OCI", "Auth", "Maintenance", "Storage", "RegistryTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "RegistryTesting", "OCI", "Maintenance", "Storage", "Metadata", "ControlProtocol",
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            // Run by the tests with the clients' own interpreters, not built.
            exclude: ["Clients"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
