import Klife

/// `klife group list|describe|offsets|reset-offsets|delete`: consumer-group administration.
enum GroupCommand: Subcommand {
    static let name = "group"
    static let summary = "List, describe, show lag of, reset or delete consumer groups"

    static let help = """
        Usage: klife group <list|describe|offsets|reset-offsets|delete> [options]

        Consumer-group administration.

        Commands:
          list            List every group:          klife group list -b HOST:PORT
          describe        State, protocol, members:  klife group describe -b HOST:PORT GROUP
          offsets         Committed, end and lag:    klife group offsets -b HOST:PORT GROUP [-t TOPIC ...]
          reset-offsets   Move committed offsets:    klife group reset-offsets -b HOST:PORT GROUP -t TOPIC --to earliest|latest|OFFSET|@MS
          delete          Delete a group:            klife group delete -b HOST:PORT GROUP

        reset-offsets and delete refuse while the group has active members.
        Run 'klife group <command> --help' for its options.
        """

    static let listSpec = CommandSpec(
        path: "group list",
        synopsis: "-b HOST:PORT",
        summary: """
            Asks every broker for the groups it coordinates and prints one line per group, sorted:
            group id, state, type, protocol type ('-' where the broker does not say).
            """,
        options: ClientOptions.specs,
        details: ClientOptions.propertiesHelp)

    static let describeSpec = CommandSpec(
        path: "group describe",
        synopsis: "-b HOST:PORT GROUP",
        summary: """
            Prints the group's state, type, protocol type, assignor and coordinator, then one line per
            member: member id, instance id, client id, host and assigned partitions (and, for KIP-848
            groups, the epoch and target assignment). A group that does not exist is shown as Dead.
            """,
        options: ClientOptions.specs,
        positionals: 1...1, positionalNames: ["GROUP"],
        details: ClientOptions.propertiesHelp)

    static let offsetsSpec = CommandSpec(
        path: "group offsets",
        synopsis: "-b HOST:PORT GROUP [-t TOPIC ...]",
        summary: """
            Prints one line per partition with a committed offset: topic, partition, committed offset,
            end offset (high watermark) and lag; '-' for a partition that no longer exists.
            """,
        options: ClientOptions.specs + [
            OptionSpec(["-t", "--topic"], value: "TOPIC", help: "Only this topic's partitions (repeatable)", repeatable: true),
        ],
        positionals: 1...1, positionalNames: ["GROUP"],
        details: ClientOptions.propertiesHelp)

    static let resetSpec = CommandSpec(
        path: "group reset-offsets",
        synopsis: "-b HOST:PORT GROUP -t TOPIC --to earliest|latest|OFFSET|@MS",
        summary: """
            Commits new offsets for the group in every partition of TOPIC and prints them. Refused
            (exit 1) while the group has active members: stop its consumers first.
            """,
        options: ClientOptions.specs + [
            OptionSpec(["-t", "--topic"], value: "TOPIC", help: "Reset every partition of this topic (required)"),
            OptionSpec(["--to"], value: "TARGET", help: """
                earliest, latest, OFFSET (kept within each partition's log) or @MS (first record at or \
                after that time, ms since the epoch; the end where there is none)
                """),
        ],
        positionals: 1...1, positionalNames: ["GROUP"],
        details: ClientOptions.propertiesHelp)

    static let deleteSpec = CommandSpec(
        path: "group delete",
        synopsis: "-b HOST:PORT GROUP",
        summary: "Deletes the group and its committed offsets. Refused (exit 1) while the group has members.",
        options: ClientOptions.specs,
        positionals: 1...1, positionalNames: ["GROUP"],
        details: ClientOptions.propertiesHelp)

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

    /// The configuration for an admin command: no producer id is needed, so none is asked for.
    private static func configuration(_ parsed: ParsedArguments) throws(UsageError) -> KlifeConfiguration {
        try ClientOptions.configuration(from: parsed) { _, adjustments in adjustments.idempotence = false }
    }

    /// The GROUP positional, refused when empty.
    private static func groupID(_ parsed: ParsedArguments) throws(UsageError) -> String {
        let id = parsed.positionals[0]
        guard !id.isEmpty else { throw parsed.usageError("GROUP must not be empty") }
        return id
    }

    private static func list(_ parsed: ParsedArguments) async throws -> Int32 {
        let config = try configuration(parsed)
        let groups = try await ClientOptions.withClient(config) { client in try await client.listGroups() }
        var out = OutputBuffer()
        try out.write(GroupFormatter.listing(groups))
        try out.flush()
        return ExitStatus.success
    }

    private static func describe(_ parsed: ParsedArguments) async throws -> Int32 {
        let config = try configuration(parsed)
        let id = try groupID(parsed)
        let description = try await ClientOptions.withClient(config) { client in try await client.describeGroup(id) }
        var out = OutputBuffer()
        try out.write(GroupFormatter.description(description))
        try out.flush()
        return ExitStatus.success
    }

    private static func offsets(_ parsed: ParsedArguments) async throws -> Int32 {
        let config = try configuration(parsed)
        let id = try groupID(parsed)
        let topics = parsed.all("--topic")
        let offsets = try await ClientOptions.withClient(config) { client in
            try await client.groupOffsets(id, topics: topics.isEmpty ? nil : topics)
        }
        var out = OutputBuffer()
        try out.write(GroupFormatter.offsets(offsets))
        try out.flush()
        if offsets.isEmpty { printError("group '\(id)' has no committed offsets") }
        return ExitStatus.success
    }

    private static func reset(_ parsed: ParsedArguments) async throws -> Int32 {
        let config = try configuration(parsed)
        let id = try groupID(parsed)
        let topic = try parsed.required("--topic")
        let target = try resetTarget(parsed.required("--to"), parsed)
        let offsets = try await ClientOptions.withClient(config) { client in
            try await client.resetGroupOffsets(id, topic: topic, to: target)
        }
        var out = OutputBuffer()
        try out.write(GroupFormatter.resetOffsets(offsets))
        try out.flush()
        return ExitStatus.success
    }

    private static func delete(_ parsed: ParsedArguments) async throws -> Int32 {
        let config = try configuration(parsed)
        let id = try groupID(parsed)
        try await ClientOptions.withClient(config) { client in try await client.deleteGroup(id) }
        var out = OutputBuffer()
        try out.line("deleted group \"\(id)\"")
        try out.flush()
        return ExitStatus.success
    }

    /// Parses `--to`: `earliest`, `latest`, a non-negative offset, or `@MS`.
    static func resetTarget(_ text: String, _ parsed: ParsedArguments) throws(UsageError) -> OffsetResetTarget {
        switch text {
        case "earliest", "beginning": return .earliest
        case "latest", "end": return .latest
        default:
            if text.hasPrefix("@"), let ms = Int64(text.dropFirst()), ms >= 0 { return .timestamp(ms) }
            if let offset = Int64(text), offset >= 0 { return .offset(offset) }
            throw parsed.usageError("invalid value '\(text)' for --to: expected earliest, latest, OFFSET (>= 0) or @MS")
        }
    }
}

/// Renders the answers of the `klife group` commands as aligned text tables: a header row, then
/// one row per item, columns separated by at least two spaces; `-` marks a value the broker did
/// not give. Rows are sorted (groups by id, partitions by topic then index, members by id).
enum GroupFormatter {
    /// `klife group list`: group, state, type, protocol type, coordinator.
    static func listing(_ groups: [GroupListing]) -> String {
        table(["GROUP", "STATE", "TYPE", "PROTOCOL-TYPE", "COORDINATOR"], groups.map { g in
            [g.groupID, g.state?.rawValue ?? "-", g.type?.rawValue ?? "-", dash(g.protocolType), String(g.coordinator)]
        })
    }

    /// `klife group describe`: the group's fields, one per line, then the members' table.
    static func description(_ d: GroupDescription) -> String {
        var text = """
            group: \(d.groupID)
            state: \(d.state)
            type: \(d.type)
            protocol type: \(dash(d.protocolType))
            protocol: \(dash(d.protocolName))
            coordinator: \(d.coordinator >= 0 ? String(d.coordinator) : "-")

            """
        if let epoch = d.groupEpoch { text += "group epoch: \(epoch)\n" }
        if let epoch = d.assignmentEpoch { text += "assignment epoch: \(epoch)\n" }
        text += "members: \(d.members.count)\n"
        guard !d.members.isEmpty else { return text }
        let kip848 = d.members.contains { $0.memberEpoch != nil }
        var header = ["MEMBER-ID", "INSTANCE-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"]
        if kip848 { header += ["EPOCH", "TARGET"] }
        let rows = d.members.map { m in
            var row = [m.memberID, m.instanceID ?? "-", dash(m.clientID), dash(m.host), partitions(m.assignment)]
            if kip848 { row += [m.memberEpoch.map(String.init) ?? "-", m.targetAssignment.map(partitions) ?? "-"] }
            return row
        }
        return text + "\n" + table(header, rows)
    }

    /// `klife group offsets`: topic, partition, committed, end, lag.
    static func offsets(_ offsets: [TopicPartition: GroupPartitionOffsets]) -> String {
        table(["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"], sorted(offsets.keys).map { tp in
            let o = offsets[tp]!
            return [tp.topic, String(tp.partition), String(o.committed), o.endOffset.map(String.init) ?? "-",
                    o.lag.map(String.init) ?? "-"]
        })
    }

    /// `klife group reset-offsets`: topic, partition, the offset now committed.
    static func resetOffsets(_ offsets: [TopicPartition: Int64]) -> String {
        table(["TOPIC", "PARTITION", "NEW-OFFSET"], sorted(offsets.keys).map { tp in
            [tp.topic, String(tp.partition), String(offsets[tp]!)]
        })
    }

    /// `topic:0,1 other:3`, or `-` for none.
    static func partitions(_ list: [TopicPartition]) -> String {
        guard !list.isEmpty else { return "-" }
        var byTopic: [String: [Int32]] = [:]
        for tp in list { byTopic[tp.topic, default: []].append(tp.partition) }
        return byTopic.keys.sorted().map { topic in
            topic + ":" + byTopic[topic]!.sorted().map(String.init).joined(separator: ",")
        }.joined(separator: " ")
    }

    private static func sorted<S: Sequence<TopicPartition>>(_ keys: S) -> [TopicPartition] {
        keys.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    }

    private static func dash(_ text: String) -> String { text.isEmpty ? "-" : text }

    /// Left-aligned columns, two spaces apart; the last column is not padded.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        var widths = [Int](repeating: 0, count: header.count)
        for row in all { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var text = ""
        for row in all {
            for (i, cell) in row.enumerated() {
                text += cell
                if i < row.count - 1 { text += String(repeating: " ", count: widths[i] - cell.count + 2) }
            }
            text += "\n"
        }
        return text
    }
}
