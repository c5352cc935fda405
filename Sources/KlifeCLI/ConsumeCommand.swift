import Klife

/// `klife consume`: prints the records of a topic (one partition or all of them) from a
/// chosen offset, until the end (`-e`), a count (`-c`), or Ctrl-C.
enum ConsumeCommand: Subcommand {
    static let name = "consume"
    static let summary = "Print records of a topic (one value per line by default)"

    static let spec = CommandSpec(
        path: "consume",
        synopsis: """
            -b HOST:PORT -t TOPIC [-p PARTITION] [-o OFFSET] [-c COUNT] [-e] [-f FORMAT | --tsv] [options]
              or: -b HOST:PORT -G GROUP -t TOPIC [-t TOPIC ...] [--group-protocol classic|consumer]
                  [--assignor NAME] [--instance-id ID] [-o beginning|end] [-c COUNT] [options]
              or: -b HOST:PORT --share-group GROUP -t TOPIC [-t TOPIC ...] [-c COUNT] [options]
            """,
        summary: """
            Reads a topic with fetch requests and prints one record value per line. Without -p
            every partition is read, round robin. Without -e or -c it keeps waiting for new
            records until Ctrl-C.

            With -G it is a balanced member of the consumer group GROUP: the group gives it
            partitions of the topics, which it reads from the group's committed offsets (-o:
            where a partition without one starts). Each batch counts as processed once printed
            and flushed; on Ctrl-C (SIGINT) or SIGTERM it stops fetching, commits the offsets of
            what it printed, leaves the group (a static member with --instance-id stays) and
            exits 0.

            With --share-group it is a member of the share group GROUP (KIP-932): the group
            hands it records of the topics, possibly of partitions other members read too, and
            it accepts each record once printed and flushed. On Ctrl-C (SIGINT) or SIGTERM it
            sends its acknowledgements, closes its share sessions (records handed to it and not
            printed go back to the group), leaves the group and exits 0.
            """,
        options: ClientOptions.specs + [
            OptionSpec(["-t", "--topic"], value: "TOPIC", help: "Topic to read (required; with -G, repeat for more)"),
            OptionSpec(["-G", "--group"], value: "GROUP", help: "Consume as a member of this consumer group"),
            OptionSpec(["--share-group"], value: "GROUP",
                       help: "Consume as a member of this share group (KIP-932), accepting each record printed"),
            OptionSpec(["--group-protocol"], value: "PROTOCOL",
                       help: "With -G: classic (default) or consumer (KIP-848, the broker assigns)"),
            OptionSpec(["--assignor"], value: "NAME",
                       help: "With -G, classic: range, roundrobin or cooperative-sticky (default); repeat or comma-separate for several"),
            OptionSpec(["--instance-id"], value: "ID", help: "With -G: static membership under this instance id"),
            OptionSpec(["--session-timeout"], value: "MS",
                       help: "With -G, classic: the member's session timeout in ms (default 45000)"),
            OptionSpec(["-p", "--partition"], value: "N", help: "Only this partition (default: all)"),
            OptionSpec(["-o", "--offset"], value: "OFFSET",
                       help: "Start: beginning, end (default), N, -N (N before end), @MS (timestamp)"),
            OptionSpec(["-c", "--count"], value: "N", help: "Exit after printing N records"),
            OptionSpec(["-e", "--exit"], help: "Exit when every partition reached its high watermark"),
            OptionSpec(["-f", "--format"], value: "FORMAT", help: "Output format, kcat style (see below)"),
            OptionSpec(["--tsv"], help: "Print partition<TAB>offset<TAB>key<TAB>value (same as -f '%p\\t%o\\t%k\\t%s')"),
            OptionSpec(["--print-key"], help: "Print the key before the value, separated by -K (default tab)"),
            OptionSpec(["--print-headers"], help: "Print headers (name=value,...) before key and value"),
            OptionSpec(["--print-meta"], help: "Print topic/partition@offset and timestamp first"),
            OptionSpec(["-K", "--key-delimiter"], value: "DELIM", help: "Key/value separator for --print-key"),
            OptionSpec(["-Z", "--print-null"], help: "Print NULL for null keys, values and header values"),
            OptionSpec(["--isolation"], value: "LEVEL",
                       help: "read_uncommitted (default) or read_committed: hide aborted transactions"),
            OptionSpec(["-v", "--verbose"], help: "Print a summary on stderr when done"),
        ],
        details: RecordFormatter.tokenHelp + "\n\n" + ClientOptions.propertiesHelp + """


            Examples:
              klife consume -b 127.0.0.1:9092 -t events -o beginning -e
              klife consume -b 127.0.0.1:9092 -t events -p 0 -o -10 -e --print-meta
              klife consume -b 127.0.0.1:9092 -t events -f '%t/%p@%o key=%k %s'
              klife consume -b 127.0.0.1:9092 -t events -o beginning -e --tsv | cut -f1 | sort | uniq -c

            --tsv prints keys and values as they are: a tab or newline inside one shifts the
            columns. A null key or value prints as an empty field (NULL with -Z).
            """)

    static func main(_ arguments: [String]) async throws -> Int32 {
        let parsed = try spec.parse(arguments)
        let config = try ClientOptions.configuration(from: parsed)
        if let group = parsed.value("--share-group") {
            var options = try ConsumeShareGroup.options(parsed, group: group)
            options.limit = try parsed.integer("--count", as: Int.self, in: 1...Int.max)
            options.verbose = parsed.has("--verbose")
            let formatter = try makeFormatter(parsed)
            _ = try await ConsumeShareGroup.run(options, config: config, formatter: formatter, signals: SignalWatcher.install())
            return ExitStatus.success
        }
        if let group = parsed.value("--group") {
            var options = try ConsumeGroup.options(parsed, group: group)
            options.limit = try parsed.integer("--count", as: Int.self, in: 0...Int.max)
            options.verbose = parsed.has("--verbose")
            options.isolation = try isolationLevel(parsed)
            let formatter = try makeFormatter(parsed)
            _ = try await ConsumeGroup.run(options, config: config, formatter: formatter, signals: SignalWatcher.install())
            return ExitStatus.success
        }
        for flag in ["--group-protocol", "--assignor", "--instance-id", "--session-timeout"] where parsed.has(flag) {
            throw parsed.usageError("\(flag) needs -G GROUP")
        }
        if parsed.all("--topic").count > 1 { throw parsed.usageError("several -t need -G GROUP") }
        let topic = try parsed.required("--topic")
        let partition = try parsed.integer("--partition", as: Int32.self, in: 0...Int32.max)
        let start = try parsed.value("--offset").map { text throws(UsageError) in
            guard let position = StartPosition(parsing: text) else {
                throw parsed.usageError("invalid offset '\(text)': expected beginning, end, N, -N or @TIMESTAMP_MS")
            }
            return position
        } ?? .end
        let count = try parsed.integer("--count", as: Int.self, in: 0...Int.max)
        let formatter = try makeFormatter(parsed)
        let exitAtEnd = parsed.has("--exit")
        let verbose = parsed.has("--verbose")
        let isolation = try isolationLevel(parsed)
        let signals = SignalWatcher.install()

        var out = OutputBuffer()
        let started = ContinuousClock.now
        let (stop, consumed, partitions) = try await ClientOptions.withClient(config) { client in
            let metadata = try await ClientOptions.topicMetadata(client, topic)
            let indices: [Int32]
            if let partition {
                guard Int(partition) < metadata.partitions.count else {
                    throw CommandFailure("partition \(partition) does not exist: '\(topic)' has \(metadata.partitions.count) partitions")
                }
                indices = [partition]
            } else {
                indices = metadata.partitions.map(\.partition)
            }
            var cursors: [PartitionCursor] = []
            for index in indices {
                cursors.append(try await PartitionCursor.resolve(start, topic: topic, partition: index, client: client))
            }
            var loop = ConsumeLoop(client: client, topic: topic, formatter: formatter, exitAtEnd: exitAtEnd,
                                   limit: count, signals: signals)
            loop.isolation = isolation
            let (stop, consumed) = try await loop.run(&cursors, out: &out)
            return (stop, consumed, cursors.count)
        }
        try out.flush()

        if verbose {
            let reason = switch stop {
            case .reachedEnd: "reached the end"
            case .countReached: "count reached"
            case .signal(let signal): "\(SignalWatcher.name(signal)) received"
            }
            printError("klife: consumed \(Format.grouped(consumed)) records from \(partitions) partition\(partitions == 1 ? "" : "s") "
                + "of \(topic) in \(Format.elapsed(ContinuousClock.now - started)) (\(reason))")
        }
        return ExitStatus.success
    }

    private static func isolationLevel(_ parsed: ParsedArguments) throws(UsageError) -> IsolationLevel {
        switch parsed.value("--isolation") {
        case nil, "read_uncommitted": return .readUncommitted
        case "read_committed": return .readCommitted
        case let other?:
            throw parsed.usageError("invalid value '\(other)' for --isolation: expected read_committed or read_uncommitted")
        }
    }

    /// Builds the record formatter from `-f`, or from the `--print-*` flags when `-f` is absent.
    private static func makeFormatter(_ parsed: ParsedArguments) throws(UsageError) -> RecordFormatter {
        let nullText = parsed.has("--print-null") ? "NULL" : ""
        if parsed.has("--tsv") {
            for flag in ["--format", "--print-key", "--print-headers", "--print-meta", "--key-delimiter"] where parsed.has(flag) {
                throw parsed.usageError("\(flag) cannot be combined with --tsv")
            }
            return try RecordFormatter(format: RecordFormatter.tsvFormat, nullText: nullText, command: parsed.command)
        }
        if let format = parsed.value("--format") {
            for flag in ["--print-key", "--print-headers", "--print-meta"] where parsed.has(flag) {
                throw parsed.usageError("\(flag) cannot be combined with -f (use %k, %h, %p, %o in the format)")
            }
            return try RecordFormatter(format: format, nullText: nullText, command: parsed.command)
        }
        let format = RecordFormatter.defaultFormat(
            meta: parsed.has("--print-meta"), headers: parsed.has("--print-headers"),
            key: parsed.has("--print-key"), keyDelimiter: parsed.unescaped("--key-delimiter") ?? "\t")
        return try RecordFormatter(format: format, nullText: nullText, command: parsed.command)
    }
}
