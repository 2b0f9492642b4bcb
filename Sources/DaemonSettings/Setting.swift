/// One setting of the daemon, declared once (in `Settings.all`): its name, which is both
/// the config file's key and the `--flag`, how its value is read and shown, and what it
/// means. The config file reader, the flags, `registryd --help` and the settings table of
/// docs/CONFIGURATION.md are all made from these declarations; the default is the
/// initial value of the `Settings` property, shown through `show`.
public struct Setting: Sendable {
    public enum Form: Sendable {
        /// `--key VALUE` / `key = VALUE`; the text names the value (`SECONDS`).
        case value(String)
        /// `--key` alone turns it on; `key = true|false` in the file.
        case onOff
        /// Only in the config file, never a flag (a flag would show in `ps`).
        case fileOnly(String)
    }

    public let key: String
    public let form: Form
    /// May be given more than once in one source; a source that gives it replaces the
    /// values of the source before (the file replaces the default, flags the file).
    public let repeatable: Bool
    /// What an unset value (`show` gives `nil`) means, for the default column.
    public let unset: String
    public let meaning: String
    /// Reads `text` into the settings, or says why it is not a valid value for `key`.
    let read: @Sendable (_ settings: inout Settings, _ text: String, _ key: String) throws(SettingsError) -> Void
    /// The value as it would be written in the config file; `nil` when unset.
    let show: @Sendable (Settings) -> String?
    /// Clears the value before the first of a source's repeated values.
    let reset: (@Sendable (inout Settings) -> Void)?

    init(
        _ key: String, _ form: Form, repeatable: Bool = false, unset: String = "none", _ meaning: String,
        read: @escaping @Sendable (_ settings: inout Settings, _ text: String, _ key: String) throws(SettingsError) -> Void,
        show: @escaping @Sendable (Settings) -> String?,
        reset: (@Sendable (inout Settings) -> Void)? = nil
    ) {
        self.key = key
        self.form = form
        self.repeatable = repeatable
        self.unset = unset
        self.meaning = meaning
        self.read = read
        self.show = show
        self.reset = reset
    }

    /// The value `settings` hold, as a config file would give it (`…` for a secret);
    /// `nil` when unset.
    public func shownValue(of settings: Settings) -> String? { show(settings) }

    /// The default as the documentation shows it.
    public var defaultText: String {
        guard let value = show(Settings()) else { return unset }
        if case .onOff = form { return value == "true" ? "on" : "off" }
        return "`\(value)`"
    }

    /// `--key VALUE`, `--key[=false]`, or `nil` for a setting of the config file only.
    public var flagSyntax: String? {
        switch form {
        case .value(let name): "--\(key) \(name)"
        case .onOff: "--\(key)[=false]"
        case .fileOnly: nil
        }
    }

    /// `key = VALUE`.
    public var fileSyntax: String {
        switch form {
        case .value(let name), .fileOnly(let name): "\(key) = \(name)"
        case .onOff: "\(key) = true"
        }
    }

    /// The setting's row in the table of docs/CONFIGURATION.md.
    public var documentationRow: String {
        let flag = flagSyntax.map { "`\($0)`" + (repeatable ? " (repeatable)" : "") } ?? "(config file only)"
        let file = "`\(fileSyntax)`" + (repeatable ? " (may repeat)" : "")
        return "| \(flag) | \(file) | \(defaultText) | \(meaning) |"
    }

    /// The whole settings table of docs/CONFIGURATION.md.
    public static var documentationTable: String {
        (["| flag | config key | default | meaning |", "|---|---|---|---|"] + Settings.all.map(\.documentationRow)
            + ["| `--config FILE` | | none | Read settings from FILE (flags override it). |"])
            .joined(separator: "\n")
    }

    /// The flags for `registryd --help`, one short paragraph each: syntax, default, and
    /// the first sentence of the meaning.
    public static var flagHelp: String {
        Settings.all.compactMap { setting in
            guard let flag = setting.flagSyntax else { return nil }
            let sentence = setting.meaning.split(separator: ". ", maxSplits: 1).first.map(String.init) ?? setting.meaning
            let plain = sentence.replacingBackticks
            return "\(flag) (default: \(setting.defaultText.replacingBackticks)): \(plain.hasSuffix(".") ? plain : plain + ".")"
        }.joined(separator: "\n")
    }
}

/// The kinds of setting `Settings.all` declares, each a property of `Settings` at a key
/// path with its way of reading and showing a value.
extension Setting {
    typealias Path<Value> = WritableKeyPath<Settings, Value> & Sendable

    /// A value at `path`, read by `parse` (which names `key` in its error) and shown by
    /// `format` (`nil`: unset).
    static func stored<Value>(
        _ key: String, _ form: Form, at path: Path<Value>, unset: String = "none", _ meaning: String,
        parse: @escaping @Sendable (_ text: String, _ key: String) throws(SettingsError) -> Value,
        format: @escaping @Sendable (Value) -> String?
    ) -> Setting {
        Setting(
            key, form, unset: unset, meaning,
            read: { settings, text, key throws(SettingsError) in settings[keyPath: path] = try parse(text, key) },
            show: { format($0[keyPath: path]) })
    }

    static func text(_ key: String, _ name: String, at path: Path<String>, _ meaning: String) -> Setting {
        stored(key, .value(name), at: path, meaning, parse: { text, _ in text }, format: { $0 })
    }

    static func optionalText(_ key: String, _ name: String, at path: Path<String?>, unset: String = "none", _ meaning: String) -> Setting {
        stored(key, .value(name), at: path, unset: unset, meaning, parse: { text, _ in text }, format: { $0 })
    }

    /// Read from the config file only, and never shown.
    static func secret(_ key: String, _ name: String, at path: Path<String?>, unset: String, _ meaning: String) -> Setting {
        stored(key, .fileOnly(name), at: path, unset: unset, meaning, parse: { text, _ in text }, format: { $0.map { _ in "…" } })
    }

    static func onOff(_ key: String, at path: Path<Bool>, _ meaning: String) -> Setting {
        stored(
            key, .onOff, at: path, meaning, parse: { text, key throws(SettingsError) in try Settings.boolean(key, text) },
            format: { String($0) })
    }

    static func choice<Choice: RawRepresentable>(_ key: String, _ name: String, at path: Path<Choice>, _ meaning: String) -> Setting
    where Choice.RawValue == String {
        stored(
            key, .value(name), at: path, meaning,
            parse: { text, key throws(SettingsError) in try Settings.choice(Choice.self, key, text) }, format: { $0.rawValue })
    }

    static func seconds(_ key: String, at path: Path<Int>, _ meaning: String) -> Setting {
        stored(
            key, .value("SECONDS"), at: path, meaning,
            parse: { text, key throws(SettingsError) in try Settings.seconds(key, text) }, format: { String($0) })
    }

    static func optionalSeconds(_ key: String, at path: Path<Int?>, unset: String, _ meaning: String) -> Setting {
        stored(
            key, .value("SECONDS"), at: path, unset: unset, meaning,
            parse: { text, key throws(SettingsError) in try Settings.seconds(key, text) }, format: { $0.map(String.init) })
    }

    static func retention(_ key: String, at path: Path<Int64?>, _ meaning: String) -> Setting {
        stored(
            key, .value("PERIOD"), at: path, meaning,
            parse: { text, key throws(SettingsError) in try Settings.retention(key, text) }, format: { Settings.period($0) })
    }
}

private extension String {
    var replacingBackticks: String { String(filter { $0 != "`" }) }
}
