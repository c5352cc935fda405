import Klife
import Synchronization

/// `klife bench consume --group GROUP` and `klife bench consume --assign`: N records read
/// through a ``KlifeConsumer`` (`for try await batch in consumer.batches`), every value touched
/// as the fetch-loop bench touches it (length, first and last byte).
///
/// - `--group`: joins GROUP subscribed to the topic; a fresh group has no commits, so with
///   `offsetReset = .earliest` every partition starts at its beginning. The measured section
///   starts when the partitions are assigned (``ConsumerConfiguration/onAssigned``), so it
///   includes the group's offset lookups and the first fetches; subscribe → assignment is
///   reported apart as `join_seconds`.
/// - `--assign`: no group; every partition assigned by hand at its first offset, looked up
///   before the clock starts (as the fetch-loop bench and the librdkafka peer do).
///
/// Auto-commit is off in both: the bench measures reading, and `close` commits once.
enum BenchConsumer {
    /// Options shared by both modes.
    struct Workload {
        var topic: String
        var count: Int
        /// The topic's partitions.
        var partitions: [Int32]
        var maxBytes: Int32
        var maxWait: Duration
        var maxRecords: Int
        var threads: Bool
    }

    /// Reads as a member of `group`.
    static func group(_ group: String, sessionTimeout: Duration, _ work: Workload, client: KlifeClient) async throws -> BenchResult {
        let start = StartMark()
        var settings = consumerSettings(work)
        settings.groupID = group
        settings.topics = [work.topic]
        settings.offsetReset = .earliest
        settings.sessionTimeout = sessionTimeout
        settings.heartbeatInterval = min(settings.heartbeatInterval, sessionTimeout / 3)
        settings.onAssigned = { partitions in
            if !partitions.isEmpty { start.set(threads: work.threads) }
        }
        let subscribed = BenchSupport.monotonicNanoseconds()
        let consumer = try client.consumer(settings)
        let read = try await readAll(consumer, work, start: start)
        guard let mark = start.mark else { throw CommandFailure("no partitions were assigned to this member of '\(group)'") }
        let join = Double(mark.wall &- subscribed) / 1e9
        printError("klife bench: joined group '\(group)' after \(Format.fixed(join, digits: 2)) s")
        var result = read.result(work, since: mark)
        result.extra = [("join_seconds", Format.fixed(join, digits: 3)), ("consumer", "\"group\"")]
        return result
    }

    /// Reads every partition of the topic, assigned by hand.
    static func assign(_ work: Workload, client: KlifeClient) async throws -> BenchResult {
        var starts: [TopicPartition: ConsumerStart] = [:]
        for p in work.partitions {
            let earliest = try await client.listOffset(topic: work.topic, partition: p, .earliest)
            starts[TopicPartition(topic: work.topic, partition: p)] = .offset(earliest)
        }
        let consumer = try client.consumer(consumerSettings(work))
        let start = StartMark()
        start.set(threads: work.threads)
        try await consumer.assign(starts)
        let read = try await readAll(consumer, work, start: start)
        var result = read.result(work, since: start.mark!)
        result.extra = [("consumer", "\"assign\"")]
        return result
    }

    private static func consumerSettings(_ work: Workload) -> ConsumerConfiguration {
        var settings = ConsumerConfiguration()
        // The same limits the fetch-loop bench and the librdkafka peer use (--fetch-max-bytes
        // for a whole answer and per partition, --max-wait-ms).
        settings.partitionMaxBytes = work.maxBytes
        settings.fetchMaxBytes = work.maxBytes
        settings.fetchMaxWait = work.maxWait
        settings.maxRecords = work.maxRecords
        settings.autoCommitInterval = nil
        return settings
    }

    /// What a read loop saw, and when it ended.
    private struct Read {
        var records = 0
        var bytes = 0
        var sum: UInt64 = 0
        var ended: UInt64 = 0
        var cpuEnded: UInt64 = 0

        func result(_ work: Workload, since mark: StartMark.Mark) -> BenchResult {
            BenchResult(mode: "consume", records: records, recordSize: records > 0 ? bytes / records : 0,
                        partitions: work.partitions.count, nanoseconds: ended &- mark.wall, cpuNanoseconds: cpuEnded &- mark.cpu,
                        bytes: bytes)
        }
    }

    /// Reads `work.count` records from `consumer`, then closes it. A watchdog closes the
    /// consumer when nothing arrives for a while (a topic holding too few records, a join
    /// that never completes), which ends the batches early and fails the run.
    private static func readAll(_ consumer: KlifeConsumer, _ work: Workload, start: StartMark) async throws -> Read {
        let progress = ConsumeProgress(target: work.count)
        let watchdog = Task {
            var last = -1
            var quiet = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let now = progress.records.load(ordering: .relaxed)
                quiet = now == last ? quiet + 1 : 0
                last = now
                // Before the first records the join (Tansu holds it for half the session
                // timeout) and the first fetches may take a while.
                if quiet >= (now == 0 ? 120 : 10) {
                    await consumer.close(timeout: .zero)
                    return
                }
            }
        }
        var read = Read()
        do {
            loop: for try await batch in consumer.batches {
                // Views: no reference counting per record (the way a throughput-minded reader reads).
                batch.records.forEachView { record in
                    guard read.records < work.count else { return }
                    if let value = record.value, let first = value.first, let last = value.last {
                        read.sum &+= UInt64(value.count) &+ UInt64(first) &+ UInt64(last)
                        read.bytes += value.count
                    }
                    read.records += 1
                }
                if read.records == work.count { break loop }
                progress.records.store(read.records, ordering: .relaxed)
            }
        } catch {
            watchdog.cancel()
            await consumer.close(timeout: .seconds(5))
            throw error
        }
        read.cpuEnded = BenchSupport.processCPUNanoseconds()
        read.ended = BenchSupport.monotonicNanoseconds()
        watchdog.cancel()
        if work.threads, let before = start.mark?.threads {
            BenchSupport.printThreadCPU(BenchSupport.threadCPUDelta(before, BenchSupport.threadCPU()), records: read.records)
        }
        await consumer.close(timeout: .seconds(5))
        if read.records < work.count {
            throw CommandFailure("read \(read.records) of \(work.count) records (nothing new for 10 s: does '\(work.topic)' hold that many?)")
        }
        printError("klife bench: read \(read.records) records, \(read.bytes) value bytes, checksum \(read.sum)")
        printError(BenchSupport.fetchMemoryLine())
        return read
    }
}

/// When the measured section started: set once (the first assignment), read after the loop.
final class StartMark: Sendable {
    struct Mark: Sendable {
        var wall: UInt64
        var cpu: UInt64
        var threads: [Int: (name: String, nanoseconds: UInt64)]?
    }

    private let state = Mutex<Mark?>(nil)

    /// Records the clocks now, unless already set.
    func set(threads: Bool) {
        let snapshot = threads ? BenchSupport.threadCPU() : nil
        let mark = Mark(wall: BenchSupport.monotonicNanoseconds(), cpu: BenchSupport.processCPUNanoseconds(), threads: snapshot)
        state.withLock { if $0 == nil { $0 = mark } }
    }

    var mark: Mark? { state.withLock { $0 } }
}
