import KlifeIO
import Klife
import KlifeProtocol

/// `klife produce`: one record per stdin line, sent with the callback `produce` so many
/// records are in flight at once; failures are reported with their line numbers.
enum ProduceCommand: Subcommand {
    static let name = "produce"
    static let summary = "Produce stdin lines as records (one record per line)"

    static let spec = CommandSpec(
        path: "produce",
        synopsis: "-b HOST:PORT -t TOPIC [-p PARTITION] [-K DELIM] [-H NAME=VALUE ...] [-z CODEC] [--acks all|1|0] "
            + "[--linger-ms N] [--no-idempotence] [--partitioner NAME] [--transactional-id ID [--abort]] [-v]",
        summary: """
            Reads stdin and produces one record per line (the trailing newline is removed;
            an empty line is an empty value). Waits until every record is acknowledged, reports
            each failed record on stderr with its line number, and exits 1 if any failed.
            """,
        options: ClientOptions.specs + [
            OptionSpec(["-t", "--topic"], value: "TOPIC", help: "Topic to produce to (required)"),
            OptionSpec(["-p", "--partition"], value: "N", help: "Partition (default: chosen by --partitioner)"),
            OptionSpec(["-K", "--key-delimiter"], value: "DELIM",
                       help: "Split each line at the first DELIM into key and value (\\t allowed)"),
            OptionSpec(["-H", "--header"], value: "NAME=VALUE", help: "Header added to every record, repeatable",
                       repeatable: true),
            OptionSpec(["-z", "--compression"], value: "CODEC", help: "Batch compression: \(CompressionCodec.cliNames) (default none)"),
            OptionSpec(["--acks"], value: "all|1|0", help: "Acknowledgement level (default all); 1 and 0 imply --no-idempotence"),
            OptionSpec(["--linger-ms"], value: "N", help: "Wait up to N ms for more records per partition (default 0)"),
            OptionSpec(["--no-idempotence"], help: "Turn idempotent production off (retries may then duplicate)"),
            OptionSpec(["--partitioner"], value: "NAME",
                       help: "For records without -p: \(PartitionerName.cliNames) (default: default)"),
            OptionSpec(["--transactional-id"], value: "ID",
                       help: "Send all lines in one transaction (transactional id ID-0) and commit it"),
            OptionSpec(["--abort"], help: "With --transactional-id: abort the transaction instead of committing"),
            OptionSpec(["--transaction-timeout-ms"], value: "N", help: "Transaction timeout (default 60000)"),
            OptionSpec(["-v", "--verbose"], help: "Print a summary (count, rate, partitions) on stderr"),
        ],
        details: ClientOptions.propertiesHelp + """


            With -K, a line without the delimiter becomes a record with a null key.
            Ctrl-C stops reading; records already read are still delivered.

            Partitioners (--partitioner), for records without -p:
              default      keyed: murmur2 (same partition as the Java client and librdkafka's
                           murmur2_random); unkeyed: sticky (16 KiB per partition, then another)
              murmur2      keyed: murmur2; unkeyed: a random partition per record (librdkafka's
                           murmur2_random)
              sticky       the same as default
              round-robin  every record, keyed or not, to the next partition in turn

            Idempotence is on by default and needs acks=all. --acks 1 or --acks 0 turn it off
            (as if --no-idempotence were given), like the Java client; asking for both
            (-X enable.idempotence=true with acks 0 or 1) is a usage error. With acks=0 the
            broker does not answer, so delivered records have no offsets. --acks, --linger-ms
            and -z override -X acks, linger.ms and compression.type.

            Examples:
              seq 1 1000 | klife produce -b 127.0.0.1:9092 -t events
              printf 'user-1:paid\\nuser-2:refunded\\n' | klife produce -b 127.0.0.1:9092 -t events -K : -H source=cli
              seq 1 100000 | klife produce -b 127.0.0.1:9092 -t events -z lz4 --linger-ms 5 -v
              seq 1 1000 | klife produce -b 127.0.0.1:9092 -t events --acks 1 --partitioner round-robin
              seq 1 10 | klife produce -b 127.0.0.1:9092 -t events --transactional-id loader

            Transactions: with --transactional-id every line joins one transaction, committed
            after all were acknowledged (read_committed consumers see all of them or none);
            --abort aborts it instead (the records are written, then hidden). The producer's
            transactional id is ID-0 (member 0 of the client's transactional pool): a later
            run with the same ID fences this one. A failed record aborts the whole transaction
            and the command exits 1.
            """)

    static func main(_ arguments: [String]) async throws -> Int32 {
        let parsed = try spec.parse(arguments)
        let config = try ClientOptions.configuration(from: parsed, adjust: applyProducerOptions(parsed))
        let topic = try parsed.required("--topic")
        let partition = try parsed.integer("--partition", as: Int32.self, in: 0...Int32.max)
        let delimiter = parsed.unescaped("--key-delimiter").map { Array($0.utf8) }
        if delimiter?.isEmpty == true { throw parsed.usageError("-K needs a non-empty delimiter") }
        let headers = try parsed.pairs("--header").map { RecordHeader(key: $0.0, value: Array($0.1.utf8)) }
        let verbose = parsed.has("--verbose")
        let transactional = parsed.value("--transactional-id") != nil
        if parsed.has("--abort") && !transactional { throw parsed.usageError("--abort needs --transactional-id") }
        if parsed.value("--transaction-timeout-ms") != nil && !transactional {
            throw parsed.usageError("--transaction-timeout-ms needs --transactional-id")
        }
        let signals = SignalWatcher.install()

        let outcome = try await ClientOptions.withClient(config) { client in
            let metadata = try await ClientOptions.topicMetadata(client, topic)
            if let partition, Int(partition) >= metadata.partitions.count {
                throw CommandFailure("partition \(partition) does not exist: '\(topic)' has \(metadata.partitions.count) partitions")
            }
            if transactional {
                return try await produceInTransaction(client, topic: topic, partition: partition, delimiter: delimiter,
                                                      headers: headers, abort: parsed.has("--abort"), signals: signals)
            }
            let tracker = DeliveryTracker()
            var reader = LineReader()
            var submitted = 0
            let started = ContinuousClock.now
            while let line = try reader.next(shouldStop: { signals.received != nil }) {
                submitted += 1
                let lineNumber = submitted
                let (key, value) = split(line, at: delimiter)
                let record = ProducerRecord(topic: topic, partition: partition, key: key, value: value, headers: headers)
                client.produce(record) { tracker.complete(line: lineNumber, $0) }
            }
            if let signal = signals.received {
                printError("klife: \(SignalWatcher.name(signal)) received: stopped reading after \(submitted) lines, delivering them")
            }
            await client.flush()
            await tracker.waitForCompletions(submitted)
            return (tracker.snapshot, ContinuousClock.now - started, submitted)
        }
        let (state, elapsed, submitted) = outcome

        for failure in state.failures.sorted(by: { $0.line < $1.line }) {
            printError("klife: line \(failure.line): \(failure.error)")
        }
        if verbose {
            let partitions = state.perPartition.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            printError("klife: produced \(Format.grouped(state.delivered)) of \(Format.grouped(submitted)) records to \(topic) in "
                + "\(Format.elapsed(elapsed)) (\(Format.rate(state.delivered, elapsed)) records/s); "
                + "partitions: \(partitions.isEmpty ? "-" : partitions.joined(separator: " ")); \(state.failures.count) failed")
        }
        if !state.failures.isEmpty {
            reportError("\(state.failures.count) of \(submitted) records failed")
            return ExitStatus.failure
        }
        return ExitStatus.success
    }

    /// Thrown out of the transaction block to abort it on `--abort`.
    private struct AbortRequested: Error {}

    /// Reads every line into one transaction, then commits it (or aborts it with `--abort`).
    private static func produceInTransaction(_ client: KlifeClient, topic: String, partition: Int32?, delimiter: [UInt8]?,
                                             headers: [RecordHeader], abort: Bool, signals: SignalWatcher)
        async throws -> (DeliveryTracker.State, Duration, Int) {
        let tracker = DeliveryTracker()
        var reader = LineReader()
        var submitted = 0
        let started = ContinuousClock.now
        var transactionalID = ""
        do {
            try await client.transaction { txn in
                transactionalID = txn.transactionalID
                while let line = try reader.next(shouldStop: { signals.received != nil }) {
                    submitted += 1
                    let lineNumber = submitted
                    let (key, value) = split(line, at: delimiter)
                    let record = ProducerRecord(topic: topic, partition: partition, key: key, value: value, headers: headers)
                    try await txn.enqueue(record) { tracker.complete(line: lineNumber, $0) }
                }
                if let signal = signals.received {
                    printError("klife: \(SignalWatcher.name(signal)) received: aborting the transaction")
                    throw AbortRequested()
                }
                if abort { throw AbortRequested() }
            }
        } catch is AbortRequested {
            await tracker.waitForCompletions(submitted)
            printError("klife: aborted the transaction of '\(transactionalID)' (\(submitted) records, none visible to read_committed)")
            return (DeliveryTracker.State(), ContinuousClock.now - started, submitted)
        }
        await tracker.waitForCompletions(submitted)
        return (tracker.snapshot, ContinuousClock.now - started, submitted)
    }

    /// Applies `-z/--compression`, `--acks` and `--linger-ms` (shared with `bench produce`).
    static func applyCodecAcksLinger(_ parsed: ParsedArguments, to config: inout KlifeConfiguration) throws(UsageError) {
        if let text = parsed.value("--compression") {
            guard let codec = CompressionCodec(cliName: text) else {
                throw parsed.usageError("invalid value '\(text)' for --compression: expected \(CompressionCodec.cliNames)")
            }
            config.producer.compression = codec
        }
        if let text = parsed.value("--acks") {
            guard let acks = Acks(cliName: text) else {
                throw parsed.usageError("invalid value '\(text)' for --acks: expected all, 1 or 0")
            }
            config.producer.acks = acks
        }
        if let linger = try parsed.integer("--linger-ms", as: Int.self, in: 0...600_000) {
            config.producer.linger = .milliseconds(linger)
        }
    }

    /// Applies -z, --acks, --linger-ms, --no-idempotence and --partitioner (after -X, so they win).
    static func applyProducerOptions(_ parsed: ParsedArguments)
        -> (inout KlifeConfiguration, inout ClientOptions.Adjustments) throws(UsageError) -> Void {
        { (config: inout KlifeConfiguration, adjustments: inout ClientOptions.Adjustments) throws(UsageError) in
            try ProduceCommand.applyCodecAcksLinger(parsed, to: &config)
            if parsed.has("--no-idempotence") {
                if adjustments.idempotence == true {
                    throw parsed.usageError("--no-idempotence contradicts -X enable.idempotence=true")
                }
                adjustments.idempotence = false
            }
            if let id = parsed.value("--transactional-id") {
                if id.isEmpty { throw parsed.usageError("--transactional-id needs a non-empty id") }
                var transactions = TransactionConfiguration(baseTransactionalID: id)
                if let ms = try parsed.integer("--transaction-timeout-ms", as: Int.self, in: 1...900_000) {
                    transactions.timeout = .milliseconds(ms)
                }
                config.transactions = transactions
            }
            if let text = parsed.value("--partitioner") {
                guard let name = PartitionerName(rawValue: text) else {
                    throw parsed.usageError("invalid value '\(text)' for --partitioner: expected \(PartitionerName.cliNames)")
                }
                config.producer.partitioner = name.partitioner
            }
        }
    }

    /// Splits `line` at the first occurrence of `delimiter` into key and value;
    /// without a delimiter (or when it is absent from the line) the key is `nil`.
    static func split(_ line: [UInt8], at delimiter: [UInt8]?) -> (key: [UInt8]?, value: [UInt8]) {
        guard let delimiter, line.count >= delimiter.count else { return (nil, line) }
        let first = delimiter[0]
        var i = 0
        while i + delimiter.count <= line.count {
            if line[i] == first && line[i..<(i + delimiter.count)].elementsEqual(delimiter) {
                return (Array(line[..<i]), Array(line[(i + delimiter.count)...]))
            }
            i += 1
        }
        return (nil, line)
    }
}

/// The partitioners `--partitioner` offers.
enum PartitionerName: String, CaseIterable {
    case `default` = "default"
    case murmur2 = "murmur2"
    case sticky = "sticky"
    case roundRobin = "round-robin"

    /// `default|murmur2|sticky|round-robin`.
    static var cliNames: String { allCases.map(\.rawValue).joined(separator: "|") }

    /// A fresh partitioner of this kind.
    var partitioner: any Partitioner {
        switch self {
        case .default: DefaultPartitioner()
        case .murmur2: Murmur2Partitioner()
        case .sticky: StickyPartitioner()
        case .roundRobin: RoundRobinPartitioner()
        }
    }
}

/// Collects delivery outcomes from the client's callbacks (which run on reactor threads).
final class DeliveryTracker: Sendable {
    /// One record that was not delivered.
    struct Failure: Sendable {
        let line: Int
        let error: KlifeError
    }

    /// What has completed so far.
    struct State: Sendable {
        var delivered = 0
        var failures: [Failure] = []
        var perPartition: [Int32: Int] = [:]
        var completed: Int { delivered + failures.count }
    }

    private let state = Locked(State())

    /// Records the outcome of the record read from `line`.
    func complete(line: Int, _ result: Result<RecordMetadata, KlifeError>) {
        state.withLock { s in
            switch result {
            case .success(let metadata):
                s.delivered += 1
                s.perPartition[metadata.partition, default: 0] += 1
            case .failure(let error):
                s.failures.append(Failure(line: line, error: error))
            }
        }
    }

    var snapshot: State { state.withLock { $0 } }

    /// Waits (briefly) until `count` outcomes are in: `flush()` can return just before the
    /// last callbacks have run.
    func waitForCompletions(_ count: Int, limit: Duration = .seconds(5)) async {
        let deadline = ContinuousClock.now + limit
        while snapshot.completed < count && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(1))
        }
    }
}
