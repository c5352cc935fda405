import Klife
import KlifeProtocol

/// `klife topic create|delete|list`: topic administration.
enum TopicCommand: Subcommand {
    static let name = "topic"
    static let summary = "Create, delete or list topics"

    static let help = """
        Usage: klife topic <create|delete|list> [options]

        Topic administration.

        Commands:
          create   Create a topic:  klife topic create -b HOST:PORT NAME [--partitions N] [--config K=V ...]
          delete   Delete a topic:  klife topic delete -b HOST:PORT NAME
          list     List topics:     klife topic list -b HOST:PORT

        Run 'klife topic <command> --help' for its options.
        """

    static let createSpec = CommandSpec(
        path: "topic create",
        synopsis: "-b HOST:PORT NAME [--partitions N] [--replication-factor R] [--config KEY=VALUE ...]",
        summary: "Creates a topic and waits until the cluster reports it.",
        options: ClientOptions.specs + [
            OptionSpec(["-P", "--partitions"], value: "N", help: "Number of partitions (default 1)"),
            OptionSpec(["-r", "--replication-factor"], value: "R", help: "Replicas per partition (default: broker default)"),
            OptionSpec(["-c", "--config"], value: "KEY=VALUE", help: "Topic config entry, repeatable (e.g. retention.ms=60000)",
                       repeatable: true),
            OptionSpec(["--if-not-exists"], help: "Succeed when the topic already exists"),
        ],
        positionals: 1...1, positionalNames: ["topic NAME"],
        details: ClientOptions.propertiesHelp)

    static let deleteSpec = CommandSpec(
        path: "topic delete",
        synopsis: "-b HOST:PORT NAME",
        summary: "Deletes a topic.",
        options: ClientOptions.specs + [
            OptionSpec(["--if-exists"], help: "Succeed when the topic does not exist"),
        ],
        positionals: 1...1, positionalNames: ["topic NAME"],
        details: ClientOptions.propertiesHelp)

    static let listSpec = CommandSpec(
        path: "topic list",
        synopsis: "-b HOST:PORT [--internal]",
        summary: "Prints one line per topic: name and partition count, sorted by name.",
        options: ClientOptions.specs + [
            OptionSpec(["--internal"], help: "Include internal topics"),
        ],
        details: ClientOptions.propertiesHelp)

    static func main(_ arguments: [String]) async throws -> Int32 {
        guard let action = arguments.first else {
            throw UsageError("missing command (create, delete or list)", command: "topic")
        }
        let rest = Array(arguments.dropFirst())
        switch action {
        case "create": return try await create(createSpec.parse(rest))
        case "delete": return try await delete(deleteSpec.parse(rest))
        case "list": return try await list(listSpec.parse(rest))
        case "-h", "--help": throw HelpRequest(text: help)
        default: throw UsageError("unknown topic command '\(action)' (expected create, delete or list)", command: "topic")
        }
    }

    private static func create(_ parsed: ParsedArguments) async throws -> Int32 {
        let config = try ClientOptions.configuration(from: parsed)
        let name = parsed.positionals[0]
        let partitions = try parsed.integer("--partitions", as: Int32.self, in: 1...100_000) ?? 1
        let replication = try parsed.integer("--replication-factor", as: Int16.self, in: -1...Int16.max) ?? -1
        guard replication != 0 else { throw parsed.usageError("--replication-factor must be -1 or at least 1") }
        var configs: [String: String] = [:]
        for (key, value) in try parsed.pairs("--config") { configs[key] = value }
        let ifNotExists = parsed.has("--if-not-exists")

        let created = try await ClientOptions.withClient(config) { client -> Bool in
            do {
                try await client.createTopic(name, partitions: partitions, replicationFactor: replication, configs: configs)
                return true
            } catch let error as KlifeError where ifNotExists && error.kafkaErrorCode == .topicAlreadyExists {
                return false
            }
        }
        var out = OutputBuffer()
        if created {
            try out.line("created topic \"\(name)\" with \(partitions) partition\(partitions == 1 ? "" : "s")")
        } else {
            try out.line("topic \"\(name)\" already exists")
        }
        try out.flush()
        return ExitStatus.success
    }

    private static func delete(_ parsed: ParsedArguments) async throws -> Int32 {
        let config = try ClientOptions.configuration(from: parsed)
        let name = parsed.positionals[0]
        let ifExists = parsed.has("--if-exists")

        let deleted = try await ClientOptions.withClient(config) { client -> Bool in
            do {
                try await client.deleteTopic(name)
                return true
            } catch let error as KlifeError where ifExists && error.code == .unknownTopicOrPartition {
                return false
            }
        }
        var out = OutputBuffer()
        try out.line(deleted ? "deleted topic \"\(name)\"" : "topic \"\(name)\" does not exist")
        try out.flush()
        return ExitStatus.success
    }

    private static func list(_ parsed: ParsedArguments) async throws -> Int32 {
        let config = try ClientOptions.configuration(from: parsed)
        let includeInternal = parsed.has("--internal")
        let metadata = try await ClientOptions.withClient(config) { client in
            try await client.metadata(topics: nil)
        }
        var out = OutputBuffer()
        for topic in metadata.topics.values.sorted(by: { $0.name < $1.name }) where includeInternal || !topic.isInternal {
            try out.line("\(topic.name)\t\(topic.partitions.count)")
        }
        try out.flush()
        return ExitStatus.success
    }
}
