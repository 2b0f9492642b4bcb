import Logging
import Metadata
import Storage

extension Settings {
    /// Every setting, in the order `registryd --help` and docs/CONFIGURATION.md list them.
    public static let all: [Setting] = [
        Setting(
            "listen", .value("HOST:PORT"), repeatable: true,
            "TCP address to serve the registry API on. `[::1]:5000` for IPv6, `:5000` for every IPv4 interface. Port 0 picks a free port (logged at start).",
            read: { settings, text, _ throws(SettingsError) in settings.listen.append(try ListenAddress(parsing: text)) },
            show: { settings in settings.listen.map(\.text).joined(separator: ", ") }, reset: { $0.listen = [] }),
        .text(
            "data-dir", "DIR", at: \.dataDir,
            "Holds `registry.db` (SQLite metadata) and `storage/` (blob bytes for the filesystem driver). Created with mode 0750 when missing."
        ),
        .optionalText(
            "control-socket", "PATH", at: \.controlSocket, unset: "`DATA_DIR/control.sock`",
            "Unix socket for `registryctl` (JSON-RPC 2.0, one JSON object per line), when not socket-activated. Mode 0660 with `--admin-group`, else 0600; a stale socket file is replaced."
        ),
        .stored(
            "metadata", .value("URL"), at: \.metadata, unset: "SQLite in `DATA_DIR/registry.db`",
            "`postgres://USER@HOST:PORT/DATABASE[?sslmode=MODE][&sslrootcert=PATH]`, MODE one of `disable`, `prefer` (the default), `require`, `verify-full` (checked against the PEM file `sslrootcert` names, else the system's trust store): keep the metadata in PostgreSQL, shared by several instances (docs/SCALE-OUT.md). The URL carries no password: `metadata-password`, `PGPASSWORD` or a passfile (`PGPASSFILE`, `~/.pgpass`) gives it.",
            parse: { text, key throws(SettingsError) in try postgresLocation(key, text) }, format: { $0?.description }),
        .secret(
            "metadata-password", "PASSWORD", at: \.metadataPassword, unset: "`PGPASSWORD`, then the passfile",
            "Password of the PostgreSQL role; never logged. No flag: a flag would show in `ps`."),
        .stored(
            "metadata-pool-size", .value("N"), at: \.metadataPoolSize,
            "Most PostgreSQL connections this instance opens (2–1000: a collection holds one for its lock), plus one that listens for other instances' changes. The server's `max_connections` must cover every instance.",
            parse: { text, key throws(SettingsError) in try count(key, text, in: 2...1000) }, format: { String($0) }),
        .choice(
            "storage", "KIND", at: \.storage,
            "`filesystem` keeps blobs under `DATA_DIR/storage`; `s3` keeps them in an S3 bucket (docs/S3.md); `memory` keeps them in RAM (lost on exit; for tests and throw-away use)."
        ),
        .optionalText(
            "s3-endpoint", "URL", at: \.s3.endpoint, unset: "none (required with `s3`)",
            "`http(s)://HOST[:PORT]` of the S3 server, without a path."),
        .optionalText(
            "s3-bucket", "NAME", at: \.s3.bucket, unset: "none (required with `s3`)",
            "Bucket for blobs and uploads; created at start when missing."),
        .text(
            "s3-region", "REGION", at: \.s3.region,
            "Region used in signatures (and in the bucket's location when registryd creates it)."),
        .stored(
            "s3-prefix", .value("PREFIX"), at: \.s3.prefix,
            "Key prefix, to share a bucket: keys become `PREFIX/blobs/…`.",
            parse: { text, _ in text }, format: { $0.isEmpty ? nil : $0 }),
        .choice(
            "s3-addressing", "MODE", at: \.s3.addressing,
            "`path` (`host/bucket/key`, radosgw and MinIO) or `virtual-host` (`bucket.host/key`)."),
        .stored(
            "s3-part-size", .value("MIB"), at: \.s3.partSizeMiB,
            "Multipart part size, 5–5120 MiB; an upload request holds about three parts in memory.",
            parse: { text, key throws(SettingsError) in try partSize(key, text) }, format: { String($0) }),
        .onOff(
            "s3-redirect", at: \.s3.redirect,
            "Blob GETs answer `307` to a presigned URL (valid 20 min) so clients download from the store directly."),
        .secret(
            "s3-access-key", "KEY", at: \.s3.accessKey, unset: "`AWS_ACCESS_KEY_ID` from the environment",
            "S3 access key. No flag: a flag would show in `ps`."),
        .secret(
            "s3-secret-key", "SECRET", at: \.s3.secretKey, unset: "`AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) from the environment",
            "S3 secret key; never logged. No flag, like the access key."),
        .onOff(
            "allow-sparse-indexes", at: \.allowSparseIndexes,
            "Accept an OCI index / manifest list whose child manifests are not in the repository, for partial mirrors. Off: such a push gets 400 `MANIFEST_BLOB_UNKNOWN`. Pushes accepted this way carry a `Warning: 299` header."
        ),
        .choice(
            "log-level", "LEVEL", at: \.logLevel,
            "`trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`. At `info` every request writes one access-log line to standard error: remote address, method, path, status, body bytes sent, body bytes received, duration (`127.0.0.1 PATCH /v2/a/blobs/uploads/… 202 0 1048576 4.210ms`); a response cut short by the client counts only the bytes written before. Headers are never logged (they may hold credentials)."
        ),
        .onOff(
            "token-auth", at: \.tokenAuth,
            "Docker token auth: `/token` issues JWTs, access follows namespaces and roles. Off: basic auth, only staff push. See docs/AUTH.md."
        ),
        .text(
            "token-service", "NAME", at: \.tokenService,
            "The `service` in token challenges; tokens for another service are refused."),
        .optionalText(
            "token-key-file", "PATH", at: \.tokenKeyFile, unset: "`DATA_DIR/token-signing.key`, made on first start",
            "The key tokens are signed with (hex of at least 32 bytes, `openssl rand -hex 32`). Instances behind one balancer are given the same file, so a token from one is accepted by all (docs/SCALE-OUT.md)."
        ),
        Setting(
            "token-accept-key-file", .value("PATH"), repeatable: true,
            "A key whose tokens are accepted besides the signing key's: the old or the coming key while keys are rotated (docs/SCALE-OUT.md). Repeat for several.",
            read: { settings, text, _ in settings.tokenAcceptKeyFiles.append(text) },
            show: { settings in settings.tokenAcceptKeyFiles.isEmpty ? nil : settings.tokenAcceptKeyFiles.joined(separator: ", ") },
            reset: { $0.tokenAcceptKeyFiles = [] }),
        .stored(
            "public-url", .value("URL"), at: \.publicURL, unset: "`http://<first listen address>`",
            "How clients reach the registry (`https://registry.example.com` behind a TLS proxy). The token realm is `URL/token`. Set it whenever you listen on `0.0.0.0`/`::` or sit behind a proxy.",
            parse: { text, key throws(SettingsError) in try url(key, text) }, format: { $0 }),
        .optionalText(
            "admin-group", "NAME", at: \.adminGroup,
            "Members of this group may use the control socket (besides root and the daemon's user); the socket is created 0660 with this group."
        ),
        .seconds(
            "shutdown-timeout", at: \.shutdownTimeout,
            "After SIGTERM, how long requests in flight may take before their connections are closed."),
        .optionalSeconds(
            "exit-idle-after", at: \.exitIdleAfter, unset: "off",
            "Under socket activation only: exit after this many seconds without connections or requests."),
        .stored(
            "body-minimum-rate", .value("BYTES"), at: \.bodyMinimumRate,
            "The slowest a client may send a request body, in bytes per second averaged over `body-rate-window` (the time the server waits for the client's bytes only; its own pauses do not count). Slower bodies are cut off with 408 and the connection closed; an upload keeps the size it last acknowledged. `0` turns the rule off.",
            parse: { text, key throws(SettingsError) in try count(key, text, in: 0...1 << 30) }, format: { String($0) }),
        .stored(
            "body-rate-window", .value("SECONDS"), at: \.bodyRateWindow,
            "The time over which `body-minimum-rate` is averaged (1–3600).",
            parse: { text, key throws(SettingsError) in try count(key, text, in: 1...3600) }, format: { String($0) }),
        .seconds(
            "upload-ttl", at: \.uploadTTL,
            "Upload sessions idle this long are removed (with their data) by the purge (at start, then hourly) and by `registryctl upload purge`."
        ),
        .optionalSeconds(
            "gc-interval", at: \.gcInterval, unset: "off",
            "Run a garbage collection this often (see docs/GC.md)."),
        .seconds(
            "gc-grace", at: \.gcGrace,
            "Grace period of scheduled collections."),
        .retention(
            "tag-history-retention", at: \.tagHistoryRetention,
            "How long each tag move (`registryctl tag history`) is kept. PERIOD is `forever` or at least a minute: seconds, or a number with `s`, `m`, `h` or `d`. Older moves are removed at start and then hourly (at half the retention when that is shorter), in batches of 5,000 rows per write."
        ),
        .retention(
            "audit-retention", at: \.auditRetention,
            "How long audit records of control-socket changes (`registryctl audit`) are kept; same form and pruning as above."),
        .stored(
            "instance-id", .value("ID"), at: \.instanceID, unset: "the id in `DATA_DIR/instance-id`, made on first start",
            "This process's identity as the holder of blob pins (letters, digits, `.`, `_`, `-`; at most 64). A restarted registryd with the same id releases the pins its killed predecessor left; several instances sharing one database need distinct ids (docs/GC.md).",
            parse: { text, key throws(SettingsError) in try instanceID(text, key: key) }, format: { $0 }),
        .onOff(
            "immediate-answers", at: \.immediateAnswers,
            "Answer plain reads (manifest GET/HEAD, tag lists, blob HEAD) whose answer is in memory on the event loop that read them, before NIO's HTTP parser (about three times cheaper per request; docs/ARCHITECTURE.md). `false` sends every request through NIO's parser and the full path, which gives the same answers: for comparing the two, or ruling the fast path out."
        ),
    ]

    /// The setting named `key` (a config key, or a flag without its dashes).
    public static func named(_ key: String) -> Setting? {
        all.first { $0.key == key }
    }
}
