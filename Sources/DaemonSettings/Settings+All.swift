import Logging
import Storage

extension Settings {
    /// Every setting, in the order `registryd --help` and docs/CONFIGURATION.md list them.
    public static let all: [Setting] = [
        Setting(
            "listen", .value("HOST:PORT"), repeatable: true,
            "TCP address to serve the registry API on. `[::1]:5000` for IPv6, `:5000` for every IPv4 interface. Port 0 picks a free port (logged at start).",
            read: { settings, text, key throws(SettingsError) in settings.listen.append(try ListenAddress(parsing: text)) },
            show: { settings in settings.listen.map(\.text).joined(separator: ", ") }, reset: { $0.listen = [] }),
        Setting(
            "data-dir", .value("DIR"),
            "Holds `registry.db` (SQLite metadata) and `storage/` (blob bytes for the filesystem driver). Created with mode 0750 when missing.",
            read: { settings, text, key throws(SettingsError) in settings.dataDir = text },
            show: { settings in settings.dataDir }),
        Setting(
            "control-socket", .value("PATH"), unset: "`DATA_DIR/control.sock`",
            "Unix socket for `registryctl` (JSON-RPC 2.0, one JSON object per line), when not socket-activated. Mode 0660 with `--admin-group`, else 0600; a stale socket file is replaced.",
            read: { settings, text, key throws(SettingsError) in settings.controlSocket = text },
            show: { settings in settings.controlSocket }),
        Setting(
            "storage", .value("KIND"),
            "`filesystem` keeps blobs under `DATA_DIR/storage`; `s3` keeps them in an S3 bucket (docs/S3.md); `memory` keeps them in RAM (lost on exit; for tests and throw-away use).",
            read: { settings, text, key throws(SettingsError) in settings.storage = try choice(StorageKind.self, key, text) },
            show: { settings in settings.storage.rawValue }),
        Setting(
            "s3-endpoint", .value("URL"), unset: "none (required with `s3`)",
            "`http(s)://HOST[:PORT]` of the S3 server, without a path.",
            read: { settings, text, key throws(SettingsError) in settings.s3.endpoint = text },
            show: { settings in settings.s3.endpoint }),
        Setting(
            "s3-bucket", .value("NAME"), unset: "none (required with `s3`)",
            "Bucket for blobs and uploads; created at start when missing.",
            read: { settings, text, key throws(SettingsError) in settings.s3.bucket = text },
            show: { settings in settings.s3.bucket }),
        Setting(
            "s3-region", .value("REGION"),
            "Region used in signatures (and in the bucket's location when registryd creates it).",
            read: { settings, text, key throws(SettingsError) in settings.s3.region = text },
            show: { settings in settings.s3.region }),
        Setting(
            "s3-prefix", .value("PREFIX"),
            "Key prefix, to share a bucket: keys become `PREFIX/blobs/…`.",
            read: { settings, text, key throws(SettingsError) in settings.s3.prefix = text },
            show: { settings in settings.s3.prefix.isEmpty ? nil : settings.s3.prefix }),
        Setting(
            "s3-addressing", .value("MODE"),
            "`path` (`host/bucket/key`, radosgw and MinIO) or `virtual-host` (`bucket.host/key`).",
            read: { settings, text, key throws(SettingsError) in
                settings.s3.addressing = try choice(S3Configuration.Addressing.self, key, text)
            },
            show: { settings in settings.s3.addressing.rawValue }),
        Setting(
            "s3-part-size", .value("MIB"),
            "Multipart part size, 5–5120 MiB; an upload request holds about three parts in memory.",
            read: { settings, text, key throws(SettingsError) in settings.s3.partSizeMiB = try partSize(key, text) },
            show: { settings in String(settings.s3.partSizeMiB) }),
        Setting(
            "s3-redirect", .onOff,
            "Blob GETs answer `307` to a presigned URL (valid 20 min) so clients download from the store directly.",
            read: { settings, text, key throws(SettingsError) in settings.s3.redirect = try boolean(key, text) },
            show: { settings in String(settings.s3.redirect) }),
        Setting(
            "s3-access-key", .fileOnly("KEY"), unset: "`AWS_ACCESS_KEY_ID` from the environment",
            "S3 access key. No flag: a flag would show in `ps`.",
            read: { settings, text, key throws(SettingsError) in settings.s3.accessKey = text },
            show: { settings in settings.s3.accessKey.map { _ in "…" } }),
        Setting(
            "s3-secret-key", .fileOnly("SECRET"), unset: "`AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) from the environment",
            "S3 secret key; never logged. No flag, like the access key.",
            read: { settings, text, key throws(SettingsError) in settings.s3.secretKey = text },
            show: { settings in settings.s3.secretKey.map { _ in "…" } }),
        Setting(
            "allow-sparse-indexes", .onOff,
            "Accept an OCI index / manifest list whose child manifests are not in the repository, for partial mirrors. Off: such a push gets 400 `MANIFEST_BLOB_UNKNOWN`. Pushes accepted this way carry a `Warning: 299` header.",
            read: { settings, text, key throws(SettingsError) in settings.allowSparseIndexes = try boolean(key, text) },
            show: { settings in String(settings.allowSparseIndexes) }),
        Setting(
            "log-level", .value("LEVEL"),
            "`trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`. At `info` every request writes one access-log line to standard error: remote address, method, path, status, body bytes sent, body bytes received, duration (`127.0.0.1 PATCH /v2/a/blobs/uploads/… 202 0 1048576 4.210ms`); a response cut short by the client counts only the bytes written before. Headers are never logged (they may hold credentials).",
            read: { settings, text, key throws(SettingsError) in settings.logLevel = try choice(Logger.Level.self, key, text) },
            show: { settings in settings.logLevel.rawValue }),
        Setting(
            "token-auth", .onOff,
            "Docker token auth: `/token` issues JWTs, access follows namespaces and roles. Off: basic auth, only staff push. See docs/AUTH.md.",
            read: { settings, text, key throws(SettingsError) in settings.tokenAuth = try boolean(key, text) },
            show: { settings in String(settings.tokenAuth) }),
        Setting(
            "token-service", .value("NAME"),
            "The `service` in token challenges; tokens for another service are refused.",
            read: { settings, text, key throws(SettingsError) in settings.tokenService = text },
            show: { settings in settings.tokenService }),
        Setting(
            "public-url", .value("URL"), unset: "`http://<first listen address>`",
            "How clients reach the registry (`https://registry.example.com` behind a TLS proxy). The token realm is `URL/token`. Set it whenever you listen on `0.0.0.0`/`::` or sit behind a proxy.",
            read: { settings, text, key throws(SettingsError) in settings.publicURL = try url(key, text) },
            show: { settings in settings.publicURL }),
        Setting(
            "admin-group", .value("NAME"),
            "Members of this group may use the control socket (besides root and the daemon's user); the socket is created 0660 with this group.",
            read: { settings, text, key throws(SettingsError) in settings.adminGroup = text },
            show: { settings in settings.adminGroup }),
        Setting(
            "shutdown-timeout", .value("SECONDS"),
            "After SIGTERM, how long requests in flight may take before their connections are closed.",
            read: { settings, text, key throws(SettingsError) in settings.shutdownTimeout = try seconds(key, text) },
            show: { settings in String(settings.shutdownTimeout) }),
        Setting(
            "exit-idle-after", .value("SECONDS"), unset: "off",
            "Under socket activation only: exit after this many seconds without connections or requests.",
            read: { settings, text, key throws(SettingsError) in settings.exitIdleAfter = try seconds(key, text) },
            show: { settings in settings.exitIdleAfter.map(String.init) }),
        Setting(
            "upload-ttl", .value("SECONDS"),
            "Upload sessions idle this long are removed (with their data) by the purge (at start, then hourly) and by `registryctl upload purge`.",
            read: { settings, text, key throws(SettingsError) in settings.uploadTTL = try seconds(key, text) },
            show: { settings in String(settings.uploadTTL) }),
        Setting(
            "gc-interval", .value("SECONDS"), unset: "off",
            "Run a garbage collection this often (see docs/GC.md).",
            read: { settings, text, key throws(SettingsError) in settings.gcInterval = try seconds(key, text) },
            show: { settings in settings.gcInterval.map(String.init) }),
        Setting(
            "gc-grace", .value("SECONDS"),
            "Grace period of scheduled collections.",
            read: { settings, text, key throws(SettingsError) in settings.gcGrace = try seconds(key, text) },
            show: { settings in String(settings.gcGrace) }),
        Setting(
            "tag-history-retention", .value("PERIOD"),
            "How long each tag move (`registryctl tag history`) is kept. PERIOD is `forever` or at least a minute: seconds, or a number with `s`, `m`, `h` or `d`. Older moves are removed at start and then hourly (at half the retention when that is shorter), in batches of 5,000 rows per write.",
            read: { settings, text, key throws(SettingsError) in settings.tagHistoryRetention = try retention(key, text) },
            show: { settings in period(settings.tagHistoryRetention) }),
        Setting(
            "audit-retention", .value("PERIOD"),
            "How long audit records of control-socket changes (`registryctl audit`) are kept; same form and pruning as above.",
            read: { settings, text, key throws(SettingsError) in settings.auditRetention = try retention(key, text) },
            show: { settings in period(settings.auditRetention) }),
        Setting(
            "instance-id", .value("ID"), unset: "the id in `DATA_DIR/instance-id`, made on first start",
            "This process's identity as the holder of blob pins (letters, digits, `.`, `_`, `-`; at most 64). A restarted registryd with the same id releases the pins its killed predecessor left; several instances sharing one database need distinct ids (docs/GC.md).",
            read: { settings, text, key throws(SettingsError) in settings.instanceID = try instanceID(text, key: key) },
            show: { settings in settings.instanceID }),
        Setting(
            "immediate-answers", .onOff,
            "Answer plain reads (manifest GET/HEAD, tag lists, blob HEAD) whose answer is in memory on the event loop that read them, before NIO's HTTP parser (about three times cheaper per request; docs/ARCHITECTURE.md). `false` sends every request through NIO's parser and the full path, which gives the same answers: for comparing the two, or ruling the fast path out.",
            read: { settings, text, key throws(SettingsError) in settings.immediateAnswers = try boolean(key, text) },
            show: { settings in String(settings.immediateAnswers) }),
    ]

    /// The setting named `key` (a config key, or a flag without its dashes).
    public static func named(_ key: String) -> Setting? {
        all.first { $0.key == key }
    }
}
