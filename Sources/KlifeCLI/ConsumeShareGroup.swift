import Klife

/// `klife consume --share-group GROUP`: a member of a share group (KIP-932). It prints the
/// records the group hands it and accepts each once printed and flushed; on SIGINT or SIGTERM
/// it sends its acknowledgements, closes its share sessions (records it was given and had not
/// printed go back to the group), leaves the group and exits 0.
enum ConsumeShareGroup {
    /// What the share group member was asked to do.
    struct Options {
        var group: String
        var topics: [String]
        var limit: Int?
        var verbose = false
    }

    /// Reads the share group options of `parsed` (`--share-group` given).
    static func options(_ parsed: ParsedArguments, group: String) throws(UsageError) -> Options {
        let topics = parsed.all("--topic")
        if topics.isEmpty { throw parsed.usageError("missing -t TOPIC (at least one with --share-group)") }
        for flag in ["--group", "--partition", "--exit", "--offset", "--group-protocol", "--assignor", "--instance-id",
                     "--session-timeout", "--isolation"] where parsed.has(flag) {
            throw parsed.usageError("\(flag) cannot be combined with --share-group: the share group decides what to deliver")
        }
        return Options(group: group, topics: topics)
    }

    /// Runs the member until a signal or the record limit; returns the records printed.
    static func run(_ options: Options, config: KlifeConfiguration, formatter: RecordFormatter,
                    signals: SignalWatcher) async throws -> Int {
        try await ClientOptions.withClient(config) { client in
            var settings = ShareConsumerConfiguration(groupID: options.group, topics: options.topics)
            // A record is accepted once it is printed and flushed.
            settings.acknowledgement = .explicit
            if let limit = options.limit { settings.maxRecords = max(1, min(limit, settings.maxRecords)) }
            let consumer = try CommandFailure.reporting { try client.shareConsumer(settings) }
            let (printed, signal) = await ConsumeUntilSignal.run(signals: signals, close: { await consumer.close() }) {
                var out = OutputBuffer()
                var printed = 0
                for try await batch in consumer.batches {
                    var done: [ShareRecord] = []
                    for record in batch {
                        try formatter.write(record.record, to: &out)
                        done.append(record)
                        printed += 1
                        if let limit = options.limit, printed >= limit { break }
                    }
                    try out.flush()
                    for record in done { try consumer.acknowledge(record, .accept) }
                    // Records of the batch not printed (the limit) go back to the group.
                    for record in batch.dropFirst(done.count) { try consumer.acknowledge(record, .release) }
                    if let limit = options.limit, printed >= limit { break }
                }
                return printed
            }
            if options.verbose {
                let stats = consumer.statistics
                let why = signal.map { "\(SignalWatcher.name($0)) received" } ?? "stopped"
                printError("klife: printed \(Format.grouped((try? printed.get()) ?? 0)) records as a member of share group "
                    + "'\(options.group)' (\(stats.accepted) accepted, \(stats.released) released; \(why)); share sessions closed")
            }
            return try printed.get()
        }
    }
}
