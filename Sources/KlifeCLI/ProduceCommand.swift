import Klife
import KlifeProtocol
import Synchronization

/// `klife produce`: one record per stdin line, sent with the callback `produce` so many
/// records are in flight at once; failures are reported with their line numbers.
enum ProduceCommand: Subcommand {
    static let name = "produce"
    static let summary = "Produce stdin lines as records (one record per line)"

    static let spec = CommandSpec(
        path: "produce",
        synopsis: "-b HOST:PORT -t TOPIC [-p PARTITION] [-K DELIM] [-H NAME=VALUE ...] [-v]",
        summary: """
            Reads stdin and produces one record per line (the trailing newline is removed;
            an empty line is an empty value). Waits until every record is acknowledged, reports
            each failed record on stderr with its line number, and exits 1 if any failed.
            """,
        options: ClientOptions.specs + [
            OptionSpec(["-t", "--topic"], value: "TOPIC", help: "Topic to produce to (required)"),
            OptionSpec(["-p", "--partition"], value: "N", help: "Partition (default: by key hash, else round robin)"),
            OptionSpec(["-K", "--key-delimiter"], value: "DELIM",
                       help: "Split each line at the first DELIM into key and value (\\t allowed)"),
            OptionSpec(["-H", "--header"], value: "NAME=VALUE", help: "Header added to every record, repeatable",
                       repeatable: true),
            OptionSpec(["-v", "--verbose"], help: "Print a summary (count, rate, partitions) on stderr"),
        ],
        details: ClientOptions.propertiesHelp + """


            With -K, a line without the delimiter becomes a record with a null key.
            Ctrl-C stops reading; records already read are still delivered.

            Examples:
              seq 1 1000 | klife produce -b 127.0.0.1:9092 -t events
              printf 'user-1:paid\\nuser-2:refunded\\n' | klife produce -b 127.0.0.1:9092 -t events -K : -H source=cli
            """)

    static func main(_ arguments: [String]) async throws -> Int32 {
        let parsed = try spec.parse(arguments)
        let config = try ClientOptions.configuration(from: parsed)
        let topic = try parsed.required("--topic")
        let partition = try parsed.integer("--partition", as: Int32.self, in: 0...Int32.max)
        let delimiter = parsed.unescaped("--key-delimiter").map { Array($0.utf8) }
        if delimiter?.isEmpty == true { throw parsed.usageError("-K needs a non-empty delimiter") }
        let headers = try parsed.pairs("--header").map { RecordHeader(key: $0.0, value: Array($0.1.utf8)) }
        let verbose = parsed.has("--verbose")
        let signals = SignalWatcher.install()

        let outcome = try await ClientOptions.withClient(config) { client in
            let metadata = try await ClientOptions.topicMetadata(client, topic)
            if let partition, Int(partition) >= metadata.partitions.count {
                throw CommandFailure("partition \(partition) does not exist: '\(topic)' has \(metadata.partitions.count) partitions")
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

    private let state = Mutex(State())

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
