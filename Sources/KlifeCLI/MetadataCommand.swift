import Klife

/// `klife metadata`: shows the cluster's brokers, controller, topics, partitions,
/// leaders and replicas, as text or JSON.
enum MetadataCommand: Subcommand {
    static let name = "metadata"
    static let summary = "Show brokers, controller, topics, partitions and leaders"

    static let spec = CommandSpec(
        path: "metadata",
        synopsis: "-b HOST:PORT [-t TOPIC ...] [--json]",
        summary: "Asks the cluster for fresh metadata and prints it (all topics unless -t is given).",
        options: ClientOptions.specs + [
            OptionSpec(["-t", "--topic"], value: "TOPIC", help: "Only this topic (repeatable)", repeatable: true),
            OptionSpec(["--json"], help: "Print JSON instead of text"),
        ],
        details: ClientOptions.propertiesHelp + """


            Examples:
              klife metadata -b 127.0.0.1:9092
              klife metadata -b 127.0.0.1:9092 -t events --json
            """)

    static func main(_ arguments: [String]) async throws -> Int32 {
        let parsed = try spec.parse(arguments)
        let config = try ClientOptions.configuration(from: parsed)
        let topics = parsed.all("--topic")
        let json = parsed.has("--json")

        var metadata = try await ClientOptions.withClient(config) { client in
            try await client.metadata(topics: topics.isEmpty ? nil : topics)
        }
        if !topics.isEmpty {
            // The client merges answers into what it knew; show only what was asked for.
            metadata.topics = metadata.topics.filter { topics.contains($0.key) }
        }
        let missing = topics.filter { metadata.topics[$0] == nil }

        var out = OutputBuffer()
        try out.line(json ? MetadataFormatter.json(metadata).rendered() : MetadataFormatter.text(metadata))
        try out.flush()
        for topic in missing { reportError("topic '\(topic)' does not exist") }
        return missing.isEmpty ? ExitStatus.success : ExitStatus.failure
    }
}
