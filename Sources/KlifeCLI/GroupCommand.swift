import Klife

/// `klife group list|describe|offsets|reset-offsets|delete`: consumer-group administration.
enum GroupCommand: Subcommand {
    static let name = "group"
    static let summary = "List, describe, reset or delete consumer groups"

    static let help = """
        Usage: klife group <list|describe|offsets|reset-offsets|delete> [options]

        Consumer-group administration.

        Commands:
          list            Every group of the cluster:  klife group list -b HOST:PORT
          describe        State, protocol, members:    klife group describe -b HOST:PORT GROUP
          offsets         Committed, end, lag:         klife group offsets -b HOST:PORT GROUP
          reset-offsets   Move committed offsets:      klife group reset-offsets -b HOST:PORT GROUP -t TOPIC --to earliest|latest|OFFSET|@MS
          delete          Delete an inactive group:    klife group delete -b HOST:PORT GROUP

        Run 'klife group <command> --help' for its options.
        """

    static let listSpec = CommandSpec(
        path: "group list", synopsis: "-b HOST:PORT",
        summary: "Prints one line per group: id, state, protocol type (asks every broker).",
        options: ClientOptions.specs, details: ClientOptions.propertiesHelp)

    static let describeSpec = CommandSpec(
        path: "group describe", synopsis: "-b HOST:PORT GROUP",
        summary: "Prints the group's state, type and protocol, then one line per member with its partitions.",
        options: ClientOptions.specs, positionals: 1...1, positionalNames: ["GROUP"], details: ClientOptions.propertiesHelp)

    static let offsetsSpec = CommandSpec(
        path: "group offsets", synopsis: "-b HOST:PORT GROUP",
        summary: "Prints topic, partition, committed offset, end offset and lag, one partition per line.",
        options: ClientOptions.specs, positionals: 1...1, positionalNames: ["GROUP"], details: ClientOptions.propertiesHelp)

    static let resetSpec = CommandSpec(
        path: "group reset-offsets", synopsis: "-b HOST:PORT GROUP -t TOPIC --to earliest|latest|OFFSET|@MS",
        summary: """
            Commits new offsets for every partition of TOPIC in GROUP. The group must have no
            active members (stop its consumers first).
            """,
        options: ClientOptions.specs + [
            OptionSpec(["-t", "--topic"], value: "TOPIC", help: "Topic whose partitions are reset (required)"),
            OptionSpec(["--to"], value: "TARGET",
                       help: "earliest, latest, an offset, or @MS: the first offset at or after a timestamp (required)"),
        ],
        positionals: 1...1, positionalNames: ["GROUP"], details: ClientOptions.propertiesHelp)

    static let deleteSpec = CommandSpec(
        path: "group delete", synopsis: "-b HOST:PORT GROUP",
        summary: "Deletes a group without active members, with its committed offsets.",
        options: ClientOptions.specs, positionals: 1...1, positionalNames: ["GROUP"], details: ClientOptions.propertiesHelp)

    static func main(_ arguments: [String]) async throws -> Int32 {
        guard let action = arguments.first else {
            throw UsageError("missing command (list, describe, offsets, reset-offsets or delete)", command: "group")
        }
        let rest = Array(arguments.dropFirst())
        switch action {
        case "list": return try await list(listSpec.parse(rest))
        case "describe": return try await describe(describeSpec.parse(rest))
        case "offsets": return try await offsets(offsetsSpec.parse(rest))
        case "reset-offsets": return try await reset(resetSpec.parse(rest))
        case "delete": return try await delete(deleteSpec.parse(rest))
        case "-h", "--help": throw HelpRequest(text: help)
        default:
            throw UsageError("unknown group command '\(action)' (expected list, describe, offsets, reset-offsets or delete)",
                             command: "group")
        }
    }

    private static func list(_ parsed: ParsedArguments) async throws -> Int32 {
        let groups = try await ClientOptions.withClient(try ClientOptions.configuration(from: parsed)) { client in
            try await client.listGroups()
        }
        var out = OutputBuffer()
        for group in groups {
            try out.line("\(group.groupID)\t\(group.state?.description ?? "-")\t\(group.protocolType.isEmpty ? "-" : group.protocolType)")
        }
        try out.flush()
        return ExitStatus.success
    }

    private static func describe(_ parsed: ParsedArguments) async throws -> Int32 {
        let id = parsed.positionals[0]
        let group = try await ClientOptions.withClient(try ClientOptions.configuration(from: parsed)) { client in
            try await client.describeGroup(id)
        }
        var out = OutputBuffer()
        try out.line("group \(group.groupID): state \(group.state), type \(group.type), protocol \(group.protocolType.isEmpty ? "-" : group.protocolType)"
            + "/\(group.protocolName.isEmpty ? "-" : group.protocolName), coordinator \(group.coordinator), \(group.members.count) members")
        for member in group.members.sorted(by: { $0.memberID < $1.memberID }) {
            let partitions = member.assignment.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
                .map { "\($0.topic)/\($0.partition)" }.joined(separator: ",")
            try out.line("  \(member.memberID)\t\(member.instanceID ?? "-")\t\(member.clientID)\t\(member.host)\t\(partitions.isEmpty ? "-" : partitions)")
        }
        try out.flush()
        return ExitStatus.success
    }

    private static func offsets(_ parsed: ParsedArguments) async throws -> Int32 {
        let id = parsed.positionals[0]
        let offsets = try await ClientOptions.withClient(try ClientOptions.configuration(from: parsed)) { client in
            try await client.groupOffsets(id)
        }
        var out = OutputBuffer()
        try out.line("TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG")
        for (tp, entry) in offsets.sorted(by: { ($0.key.topic, $0.key.partition) < ($1.key.topic, $1.key.partition) }) {
            try out.line("\(tp.topic)\t\(tp.partition)\t\(entry.committed)\t\(entry.endOffset.map(String.init) ?? "-")\t\(entry.lag.map(String.init) ?? "-")")
        }
        try out.flush()
        return ExitStatus.success
    }

    private static func reset(_ parsed: ParsedArguments) async throws -> Int32 {
        let id = parsed.positionals[0]
        let topic = try parsed.required("--topic")
        let text = try parsed.required("--to")
        let target: OffsetResetTarget
        switch text {
        case "earliest": target = .earliest
        case "latest": target = .latest
        default:
            if text.hasPrefix("@"), let ms = Int64(text.dropFirst()), ms >= 0 {
                target = .timestamp(ms)
            } else if let offset = Int64(text), offset >= 0 {
                target = .offset(offset)
            } else {
                throw parsed.usageError("invalid --to '\(text)': expected earliest, latest, an offset or @TIMESTAMP_MS")
            }
        }
        let committed = try await ClientOptions.withClient(try ClientOptions.configuration(from: parsed)) { client in
            try await client.resetGroupOffsets(id, topic: topic, to: target)
        }
        var out = OutputBuffer()
        for (tp, offset) in committed.sorted(by: { $0.key.partition < $1.key.partition }) {
            try out.line("\(tp.topic)\t\(tp.partition)\t\(offset)")
        }
        try out.flush()
        return ExitStatus.success
    }

    private static func delete(_ parsed: ParsedArguments) async throws -> Int32 {
        let id = parsed.positionals[0]
        try await ClientOptions.withClient(try ClientOptions.configuration(from: parsed)) { client in
            try await client.deleteGroup(id)
        }
        var out = OutputBuffer()
        try out.line("deleted group \"\(id)\"")
        try out.flush()
        return ExitStatus.success
    }
}
