/// A command-line mistake: reported on stderr with a pointer to `--help`, exit status 64.
struct UsageError: Error, CustomStringConvertible {
    /// What is wrong, in words.
    let message: String
    /// The command whose `--help` explains the fix (`"topic create"`), or `nil` for `klife` itself.
    var command: String?

    init(_ message: String, command: String? = nil) {
        self.message = message
        self.command = command
    }

    var description: String { message }
}

/// Thrown when `-h`/`--help` is given: the dispatcher prints ``text`` on stdout and exits 0.
struct HelpRequest: Error {
    let text: String
}

/// One option a command accepts.
struct OptionSpec: Sendable {
    /// Spellings, short first (`["-b", "--brokers"]`). The last one is the option's key.
    let names: [String]
    /// Placeholder for the value in help (`"TOPIC"`); `nil` makes the option a flag.
    let valueName: String?
    /// One line of help.
    let help: String
    /// Whether the option may be given more than once.
    let repeatable: Bool

    init(_ names: [String], value valueName: String? = nil, help: String, repeatable: Bool = false) {
        self.names = names
        self.valueName = valueName
        self.help = help
        self.repeatable = repeatable
    }

    /// The canonical name results are stored under.
    var key: String { names[names.count - 1] }

    var takesValue: Bool { valueName != nil }

    /// `-b, --brokers HOST:PORT`, as shown in help.
    var label: String {
        names.joined(separator: ", ") + (valueName.map { " \($0)" } ?? "")
    }
}

/// A command's grammar and help: its options, how many positional arguments it takes,
/// and the text `--help` prints.
struct CommandSpec: Sendable {
    /// The words after `klife` (`"topic create"`).
    let path: String
    /// Argument summary after the path in the usage line (`"-b BROKERS [options] NAME"`).
    let synopsis: String
    /// One or two sentences saying what the command does.
    let summary: String
    /// Options, in the order help lists them.
    let options: [OptionSpec]
    /// How many positional arguments are accepted.
    var positionals: ClosedRange<Int> = 0...0
    /// Names of the positional arguments, for error messages.
    var positionalNames: [String] = []
    /// Extra help text: formats, examples.
    var details: String? = nil

    /// The full `--help` text.
    var help: String {
        var text = "Usage: klife \(path) \(synopsis)\n\n\(summary)\n"
        if !options.isEmpty {
            text += "\nOptions:\n"
            let width = min(34, options.map(\.label.count).max() ?? 0)
            for option in options {
                let label = option.label
                let pad = label.count <= width ? String(repeating: " ", count: width - label.count) : "\n  " + String(repeating: " ", count: width)
                text += "  \(label)\(pad)  \(option.help)\n"
            }
            text += "  -h, --help" + String(repeating: " ", count: max(0, width - 10)) + "  Show this help\n"
        }
        if let details { text += "\n\(details)\n" }
        return text
    }

    /// Parses `arguments` (the words after the command path).
    /// - Throws: ``HelpRequest`` for `-h`/`--help`, ``UsageError`` for anything malformed.
    func parse(_ arguments: [String]) throws -> ParsedArguments {
        var parsed = ParsedArguments()
        var index = 0
        var onlyPositionals = false
        func fail(_ message: String) -> UsageError { UsageError(message, command: path) }

        while index < arguments.count {
            let word = arguments[index]
            index += 1
            if onlyPositionals || word == "-" || !word.hasPrefix("-") {
                parsed.positionals.append(word)
                continue
            }
            if word == "--" { onlyPositionals = true; continue }
            if word == "-h" || word == "--help" { throw HelpRequest(text: help) }

            // Split `--name=value` and `-bVALUE` into name and inline value.
            var name = word
            var inline: String? = nil
            if word.hasPrefix("--"), let equals = word.firstIndex(of: "=") {
                name = String(word[..<equals])
                inline = String(word[word.index(after: equals)...])
            }
            var spec = options.first { $0.names.contains(name) }
            if spec == nil, !word.hasPrefix("--"), word.count > 2 {
                let short = String(word.prefix(2))
                if let attached = options.first(where: { $0.takesValue && $0.names.contains(short) }) {
                    spec = attached
                    name = short
                    inline = String(word.dropFirst(2))
                }
            }
            guard let spec else { throw fail("unknown option '\(word)'") }

            if !spec.repeatable, parsed.given.contains(spec.key) {
                throw fail("option \(name) given more than once")
            }
            parsed.given.insert(spec.key)
            if let valueName = spec.valueName {
                let value: String
                if let inline {
                    value = inline
                } else if index < arguments.count {
                    value = arguments[index]
                    index += 1
                } else {
                    throw fail("option \(name) needs a value (\(valueName))")
                }
                parsed.values[spec.key, default: []].append(value)
            } else if inline != nil {
                throw fail("option \(name) takes no value")
            }
        }

        if !positionals.contains(parsed.positionals.count) {
            if parsed.positionals.count > positionals.upperBound {
                let extra = parsed.positionals[positionals.upperBound]
                throw fail("unexpected argument '\(extra)'")
            }
            let missing = positionalNames.dropFirst(parsed.positionals.count).first ?? "argument"
            throw fail("missing \(missing)")
        }
        parsed.command = path
        return parsed
    }
}

/// The result of parsing one command's arguments, with typed accessors that turn bad
/// values into ``UsageError``s naming the option.
struct ParsedArguments: Sendable {
    fileprivate(set) var command = ""
    fileprivate(set) var values: [String: [String]] = [:]
    fileprivate(set) var given: Set<String> = []
    /// Positional arguments in order.
    fileprivate(set) var positionals: [String] = []

    /// Whether the flag or option (by its long name) was given.
    func has(_ key: String) -> Bool { given.contains(key) }

    /// The value of a single-valued option.
    func value(_ key: String) -> String? { values[key]?.last }

    /// All values of a repeatable option, in order.
    func all(_ key: String) -> [String] { values[key] ?? [] }

    /// The value of a required option.
    func required(_ key: String) throws(UsageError) -> String {
        guard let value = value(key) else { throw UsageError("missing required option \(key)", command: command) }
        return value
    }

    /// An integer option checked against `range`, or `nil` when absent.
    func integer<T: FixedWidthInteger>(_ key: String, as type: T.Type = T.self,
                                       in range: ClosedRange<T> = T.min...T.max) throws(UsageError) -> T? {
        guard let text = value(key) else { return nil }
        guard let number = T(text), range.contains(number) else {
            throw UsageError("invalid value '\(text)' for \(key): expected an integer in \(range.lowerBound)...\(range.upperBound)",
                             command: command)
        }
        return number
    }

    /// Splits every value of a repeatable `KEY=VALUE` option.
    func pairs(_ key: String) throws(UsageError) -> [(String, String)] {
        var result: [(String, String)] = []
        for item in all(key) {
            guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
                throw UsageError("invalid value '\(item)' for \(key): expected NAME=VALUE", command: command)
            }
            result.append((String(item[..<equals]), String(item[item.index(after: equals)...])))
        }
        return result
    }

    /// The value of an option with `\t`, `\n`, `\r` and `\\` turned into the characters they name,
    /// so a tab delimiter can be written `-K '\t'`.
    func unescaped(_ key: String) -> String? {
        value(key).map(ParsedArguments.unescape)
    }

    /// Replaces the backslash escapes `\t`, `\n`, `\r` and `\\`; other backslashes stay.
    static func unescape(_ text: String) -> String {
        var out = ""
        var escaping = false
        for ch in text {
            if escaping {
                switch ch {
                case "t": out.append("\t")
                case "n": out.append("\n")
                case "r": out.append("\r")
                case "\\": out.append("\\")
                default: out.append("\\"); out.append(ch)
                }
                escaping = false
            } else if ch == "\\" {
                escaping = true
            } else {
                out.append(ch)
            }
        }
        if escaping { out.append("\\") }
        return out
    }

    /// A usage error attributed to this command.
    func usageError(_ message: String) -> UsageError { UsageError(message, command: command) }
}
