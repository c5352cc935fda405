import Klife
import KlifeProtocol
import Synchronization

/// `klife bench consume`: reads N records from the beginning of every partition of a topic
/// with `fetch` (one cursor per partition, the partitions read concurrently, the next fetch
/// of a partition already in flight while the current answer is consumed), touching every
/// record's value, and reports throughput and CPU per record as one JSON line. `--group` and
/// `--assign` read through the consumer instead (``BenchConsumer``).
enum BenchConsume {
    static let spec = CommandSpec(
        path: "bench consume",
        synopsis: "-b HOST:PORT -t TOPIC [-n N] [--fetch-max-bytes N] [--max-wait-ms N] [--group GROUP [--session-timeout-ms N] | --assign] [--max-records N]",
        summary: """
            Reads N records from the beginning of every partition of TOPIC (which must hold at
            least N, e.g. written by 'klife bench produce') and prints one JSON line.
            """,
        options: BenchSupport.commonSpecs + [
            OptionSpec(["--fetch-max-bytes"], value: "N", help: "maxBytes of each fetch (default 8388608)"),
            OptionSpec(["--max-wait-ms"], value: "N", help: "Broker wait when a partition has no data (default 100)"),
            OptionSpec(["--group"], value: "GROUP",
                       help: "Read through the consumer as a member of GROUP (a fresh group starts at the beginning)"),
            OptionSpec(["--session-timeout-ms"], value: "N", help: "With --group: the member's session timeout (default 6000)"),
            OptionSpec(["--assign"], help: "Read through the consumer, every partition assigned by hand (no group)"),
            OptionSpec(["--max-records"], value: "N",
                       help: "With --group or --assign: the consumer's maxRecords, records per batch (default 500)"),
        ],
        details: """
            Without --group or --assign the bench reads with 'fetch' (one cursor per partition,
            the next fetch of a partition in flight while the current answer is consumed). The
            measured section starts after the start offsets and high watermarks are known
            (ListOffsets) and ends when N records were decoded.

            --group and --assign read through KlifeConsumer ('for try await batch in
            consumer.batches'), with its prefetch across partitions; --fetch-max-bytes sets
            both fetchMaxBytes and partitionMaxBytes, --max-wait-ms fetchMaxWait, auto-commit
            is off. With --group the member subscribes to TOPIC (offsetReset earliest) and the
            measured section starts when its partitions are assigned: the time from subscribing
            to the assignment is reported as "join_seconds" and left out of the rates (Tansu
            holds a JoinGroup for about half the session timeout, hence the short default).
            With --assign the start offsets are looked up before the clock starts.

            --record-size and --partitions are accepted for symmetry with produce and otherwise
            ignored: the JSON reports the topic's partition count and the mean value size read.

            Examples:
              klife bench consume -b 127.0.0.1:9092 -t bench-1 -n 1000000
              klife bench consume -b 127.0.0.1:9092 -t bench-1 -n 1000000 --group bench-g1
              klife bench consume -b 127.0.0.1:9092 -t bench-1 -n 1000000 --assign
            """)

    static func main(_ arguments: [String]) async throws -> Int32 {
        let parsed = try spec.parse(arguments)
        let config = try ClientOptions.configuration(from: parsed)
        let topic = try parsed.required("--topic")
        let threads = parsed.has("--threads")
        let count = try parsed.integer("--records", as: Int.self, in: 1...1_000_000_000) ?? 1_000_000
        let maxBytes = try parsed.integer("--fetch-max-bytes", as: Int32.self, in: 1024...(256 << 20)) ?? (8 << 20)
        let maxWait = try parsed.integer("--max-wait-ms", as: Int.self, in: 1...60_000) ?? 100

        let group = parsed.value("--group")
        if group != nil || parsed.has("--assign") {
            if group != nil && parsed.has("--assign") { throw parsed.usageError("--group and --assign exclude each other") }
            if group == nil && parsed.has("--session-timeout-ms") { throw parsed.usageError("--session-timeout-ms needs --group") }
            let session = try parsed.integer("--session-timeout-ms", as: Int64.self, in: 2...3_600_000) ?? 6000
            let maxRecords = try parsed.integer("--max-records", as: Int.self, in: 1...1_000_000) ?? ConsumerConfiguration().maxRecords
            let result = try await ClientOptions.withClient(config) { client -> BenchResult in
                let metadata = try await ClientOptions.topicMetadata(client, topic)
                let work = BenchConsumer.Workload(topic: topic, count: count, partitions: metadata.partitions.map(\.partition),
                                                  maxBytes: maxBytes, maxWait: .milliseconds(maxWait),
                                                  maxRecords: maxRecords, threads: threads)
                if let group {
                    return try await BenchConsumer.group(group, sessionTimeout: .milliseconds(session), work, client: client)
                }
                return try await BenchConsumer.assign(work, client: client)
            }
            try result.emit()
            return ExitStatus.success
        }
        if parsed.has("--session-timeout-ms") { throw parsed.usageError("--session-timeout-ms needs --group") }
        if parsed.has("--max-records") { throw parsed.usageError("--max-records needs --group or --assign") }
        let result = try await ClientOptions.withClient(config) { client -> BenchResult in
            let metadata = try await ClientOptions.topicMetadata(client, topic)
            var starts: [(partition: Int32, offset: Int64, end: Int64)] = []
            for p in metadata.partitions {
                let earliest = try await client.listOffset(topic: topic, partition: p.partition, .earliest)
                let end = try await PartitionCursor.highWatermark(topic: topic, partition: p.partition,
                                                                 earliest: earliest, client: client)
                starts.append((p.partition, earliest, end))
            }
            let available = starts.reduce(0) { $0 + Int($1.end - $1.offset) }
            if available < count {
                throw CommandFailure("topic '\(topic)' holds \(available) records, fewer than the \(count) asked for")
            }
            let progress = ConsumeProgress(target: count)
            let reader = PartitionReader(client: client, topic: topic, maxBytes: maxBytes, maxWait: .milliseconds(maxWait),
                                         progress: progress)

            let threadsBefore = BenchSupport.threadCPU()
            let started = BenchSupport.monotonicNanoseconds()
            let cpuStarted = BenchSupport.processCPUNanoseconds()
            let touched = try await withThrowingTaskGroup(of: UInt64.self) { group in
                for start in starts where start.end > start.offset {
                    group.addTask { try await reader.read(partition: start.partition, from: start.offset, to: start.end) }
                }
                var sum: UInt64 = 0
                for try await partial in group { sum &+= partial }
                return sum
            }
            let cpu = BenchSupport.processCPUNanoseconds() - cpuStarted
            let elapsed = BenchSupport.monotonicNanoseconds() - started
            if threads { BenchSupport.printThreadCPU(BenchSupport.threadCPUDelta(threadsBefore, BenchSupport.threadCPU()), records: count) }

            let records = progress.records.load(ordering: .acquiring)
            let bytes = progress.bytes.load(ordering: .acquiring)
            if records < count { throw CommandFailure("read \(records) of \(count) records") }
            printError("klife bench: read \(records) records, \(bytes) value bytes, checksum \(touched)")
            printError(BenchSupport.fetchMemoryLine())
            return BenchResult(mode: "consume", records: records, recordSize: records > 0 ? bytes / records : 0,
                               partitions: metadata.partitions.count, nanoseconds: elapsed, cpuNanoseconds: cpu, bytes: bytes)
        }
        try result.emit()
        return ExitStatus.success
    }
}

/// How many records all partition readers together have consumed.
final class ConsumeProgress: Sendable {
    let target: Int
    let records = Atomic<Int>(0)
    let bytes = Atomic<Int>(0)

    init(target: Int) { self.target = target }

    /// Counts up to `n` records (never beyond the target); returns how many were counted.
    func take(_ n: Int) -> Int {
        var current = records.load(ordering: .relaxed)
        while true {
            let granted = min(n, target - current)
            if granted <= 0 { return 0 }
            let (exchanged, original) = records.compareExchange(expected: current, desired: current + granted,
                                                                 ordering: .acquiringAndReleasing)
            if exchanged { return granted }
            current = original
        }
    }

    var done: Bool { records.load(ordering: .relaxed) >= target }
}

/// Reads one partition from an offset to an end offset, keeping one fetch ahead.
struct PartitionReader: Sendable {
    let client: KlifeClient
    let topic: String
    let maxBytes: Int32
    let maxWait: Duration
    let progress: ConsumeProgress

    /// Reads `partition` from `start` until `end` (exclusive) or until the shared target is
    /// reached. Returns a checksum of the values (lengths, first and last bytes).
    func read(partition: Int32, from start: Int64, to end: Int64) async throws -> UInt64 {
        var sum: UInt64 = 0
        var current = try await fetch(partition, start)
        while true {
            let next = current.nextOffset
            if next >= end || progress.done {
                sum &+= consume(current, end: end)
                return sum
            }
            // The next page is requested before this one is consumed.
            async let ahead = fetch(partition, next)
            sum &+= consume(current, end: end)
            current = try await ahead
        }
    }

    private func fetch(_ partition: Int32, _ offset: Int64) async throws -> FetchResult {
        var attempt = 0
        while true {
            do {
                return try await client.fetch(topic: topic, partition: partition, offset: offset,
                                              maxBytes: maxBytes, maxWait: maxWait)
            } catch {
                attempt += 1
                guard error.isRetriable, attempt <= 5 else { throw error }
                try await Task.sleep(for: .milliseconds(50 * attempt))
            }
        }
    }

    /// Touches every record's value below `end` and counts them against the target.
    private func consume(_ page: FetchResult, end: Int64) -> UInt64 {
        var sum: UInt64 = 0
        var n = 0
        var bytes = 0
        page.records.forEachView { record in
            guard record.offset < end else { return }
            if let value = record.value, let first = value.first, let last = value.last {
                sum &+= UInt64(value.count) &+ UInt64(first) &+ UInt64(last)
                bytes += value.count
            }
            n += 1
        }
        let counted = progress.take(n)
        progress.bytes.wrappingAdd(counted == n ? bytes : (n > 0 ? bytes / n * counted : 0), ordering: .relaxed)
        return sum
    }
}
