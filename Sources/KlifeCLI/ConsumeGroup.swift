import Klife

/// `klife consume -G GROUP`: a balanced member of a consumer group. It prints the records of
/// the partitions the group gives it, marks each batch processed once printed and flushed,
/// and on SIGINT or SIGTERM stops fetching, commits what it printed, leaves the group and
/// exits 0.
enum ConsumeGroup {
    /// What the group member was asked to do.
    struct Options {
        var group: String
        var topics: [String]
        var groupProtocol: GroupProtocol = .classic
        var strategies: [AssignmentStrategy] = [.cooperativeSticky]
        var instanceID: String?
        var sessionTimeout: Duration?
        var reset: OffsetResetPolicy = .latest
        var isolation: IsolationLevel = .readUncommitted
        var limit: Int?
        var verbose = false
    }

    /// Reads the group options of `parsed` (`-G` given).
    static func options(_ parsed: ParsedArguments, group: String) throws(UsageError) -> Options {
        let topics = parsed.all("--topic")
        if topics.isEmpty { throw parsed.usageError("missing -t TOPIC (at least one with -G)") }
        for flag in ["--partition", "--exit"] where parsed.has(flag) {
            throw parsed.usageError("\(flag) cannot be combined with -G: the group decides the partitions")
        }
        var options = Options(group: group, topics: topics)
        switch parsed.value("--group-protocol") {
        case nil, "classic": options.groupProtocol = .classic
        case "consumer": options.groupProtocol = .consumer
        case let other?: throw parsed.usageError("invalid --group-protocol '\(other)': expected classic or consumer")
        }
        let assignors = parsed.all("--assignor").flatMap { $0.split(separator: ",").map(String.init) }
        if !assignors.isEmpty {
            if options.groupProtocol == .consumer {
                throw parsed.usageError("--assignor applies to --group-protocol classic (the broker assigns with consumer)")
            }
            options.strategies = []
            for name in assignors {
                guard let strategy = AssignmentStrategy(rawValue: name) else {
                    throw parsed.usageError("unknown --assignor '\(name)': expected range, roundrobin or cooperative-sticky")
                }
                options.strategies.append(strategy)
            }
        }
        options.instanceID = parsed.value("--instance-id")
        if let ms = try parsed.integer("--session-timeout", as: Int64.self, in: 1...3_600_000) {
            options.sessionTimeout = .milliseconds(ms)
        }
        switch parsed.value("--offset") {
        case nil, "end": options.reset = .latest
        case "beginning": options.reset = .earliest
        case let other?:
            throw parsed.usageError("invalid -o '\(other)' with -G: expected beginning or end (where the group has no committed offset)")
        }
        return options
    }

    /// Runs the member until a signal or the record limit; returns the records printed.
    static func run(_ options: Options, config: KlifeConfiguration, formatter: RecordFormatter,
                    signals: SignalWatcher) async throws -> Int {
        try await ClientOptions.withClient(config) { client in
            var settings = ConsumerConfiguration()
            settings.groupID = options.group
            settings.topics = options.topics
            settings.groupProtocol = options.groupProtocol
            settings.assignmentStrategies = options.strategies
            settings.groupInstanceID = options.instanceID
            if let timeout = options.sessionTimeout {
                settings.sessionTimeout = timeout
                settings.heartbeatInterval = min(settings.heartbeatInterval, timeout / 3)
            }
            settings.offsetReset = options.reset
            settings.isolation = options.isolation
            // A batch is processed once its records are printed and flushed.
            settings.acknowledgement = .explicit
            let consumer = try CommandFailure.reporting { try client.consumer(settings) }
            let (printed, signal) = await ConsumeUntilSignal.run(signals: signals, close: { await consumer.close() }) {
                var out = OutputBuffer()
                var printed = 0
                for try await batch in consumer.batches {
                    var done = batch
                    for (i, record) in batch.records.enumerated() {
                        try formatter.write(record, to: &out)
                        printed += 1
                        if let limit = options.limit, printed >= limit {
                            done.records = batch.records.prefix(i + 1)
                            done.nextOffset = record.offset + 1
                            break
                        }
                    }
                    try out.flush()
                    consumer.markProcessed(done)
                    if let limit = options.limit, printed >= limit { break }
                }
                return printed
            }
            if options.verbose {
                let stats = consumer.statistics()
                let why = signal.map { "\(SignalWatcher.name($0)) received" } ?? "stopped"
                printError("klife: printed \(Format.grouped((try? printed.get()) ?? 0)) records as a member of group '\(options.group)' "
                    + "(\(stats.group.rebalances) rebalances; \(why)); processed positions committed")
            }
            return try printed.get()
        }
    }
}
