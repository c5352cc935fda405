import Foundation
import Glibc
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import Synchronization
import XCTest

/// The soak: producers under faults for a long time, the log checked after every round and
/// once more at the end, and the process's resident memory sampled all along.
///
/// Every round runs, at the same time:
/// - against Tansu behind a ``FaultProxy``: an idempotent producer (a numbered stream per
///   partition) and a pool of two transactional producers (`transaction { }`, numbered
///   transactions of 1–10 records over several partitions, one in ten aborted on purpose).
///   The rounds cycle through three fault plans: random kills plus one stall longer than the
///   request timeout, repeated stalls, and garbled broker answers;
/// - against librdkafka's mock cluster (three brokers): an idempotent producer with two
///   reactors (a numbered stream per partition) while partition leaders move with requests in
///   flight and brokers go down and come back. Only faults a real broker produces are used.
///   The mock checks no sequence numbers for idempotent producers, so it writes whatever
///   reaches it in the order it arrives; therefore a broker goes down only when nothing is in
///   flight, and before each fault every record in flight is answered (a request still on its
///   way to a former leader could otherwise land after a leader moved back, which a real
///   broker would refuse with OUT_OF_ORDER_SEQUENCE_NUMBER).
///
/// After each round (faults off, everything answered) each partition is read from where the
/// previous round stopped: every acknowledged record exactly once and in production order,
/// one callback per record, failures explicit (carrying an error), acknowledged offsets
/// truthful; at read_committed every committed transaction whole, once and in order, every
/// failed one all or nothing, every one aborted on purpose invisible. Garbled answers carry no
/// checksum, so in garbling rounds the rules of ``ChaosTests`` apply to the idempotent stream:
/// failures and misreported offsets are allowed, duplicates and reorderings only after an
/// epoch bump, nothing acknowledged may be missing. At the end every log is read once more from
/// its start.
///
/// Memory: a thread samples VmRSS every few seconds into `.klife/soak/rss-<stamp>.csv`
/// (elapsed seconds, RSS KiB, records acknowledged so far). The run fails when RSS passes a
/// bound derived from the producers' buffer limits (``SoakMemoryBound``) or keeps growing
/// across rounds (``SoakLeakCheck``).
///
/// `KLIFE_SOAK_MINUTES=N` runs for N minutes (`scripts/soak.sh --minutes N`); without it a
/// bounded run of three short rounds (one per fault plan, ~10 s) exercises the same code with
/// the same assertions. `KLIFE_SOAK_SEED` fixes the fault schedules (every run prints its seed).
final class SoakTests: XCTestCase {
    func testProducersUnderFaultsStayExactlyOnceWithBoundedMemory() async throws {
        let settings = try SoakSettings.current()
        let run = try await SoakRun.start(settings)
        let report = await run.execute()
        await run.shutdown()
        report.print()

        let replay = settings.replay
        for violation in report.violations.prefix(30) { XCTFail("\(violation) \(replay)") }
        XCTAssertLessThanOrEqual(report.rssMaxKiB, report.bound.totalKiB,
                                 "RSS \(report.rssMaxKiB) KiB passed the bound \(report.bound.totalKiB) KiB \(replay)")
        XCTAssertFalse(report.leak.leaking, "RSS keeps growing across rounds: \(report.leak.detail) \(replay)")
        XCTAssertGreaterThan(report.tansu.acked, 0, "the idempotent producer on Tansu acknowledged nothing \(replay)")
        XCTAssertGreaterThan(report.mock.acked, 0, "the producer on the mock cluster acknowledged nothing \(replay)")
        XCTAssertGreaterThan(report.transactions.committed, 0, "no transaction committed \(replay)")
        XCTAssertGreaterThan(report.connectionsKilled, 0, "no connection was killed \(replay)")
        XCTAssertGreaterThan(report.stalls, 0, "no stall happened \(replay)")
        XCTAssertGreaterThan(report.bytesGarbled, 0, "nothing was garbled \(replay)")
        XCTAssertGreaterThan(report.leaderMoves, 0, "no leader moved \(replay)")
        XCTAssertGreaterThan(report.brokerRestarts, 0, "no broker went down and up \(replay)")
        XCTAssertGreaterThanOrEqual(report.samples, 3, "too few memory samples \(replay)")
    }

    /// The leak check flags RSS that keeps growing, and nothing else: not noise, not growth
    /// that stops (allocator arenas and caches filling up), not warm-up.
    func testLeakCheckFlagsOnlySustainedGrowth() {
        let mib = 1024
        var random = ChaosRandom(seed: 7)
        let noise = { (r: inout ChaosRandom) in Int(r.next() % UInt64(2 * mib)) - mib }
        let flat = (0..<30).map { _ in 60 * mib + noise(&random) }
        XCTAssertFalse(SoakLeakCheck.evaluate(flat).leaking, SoakLeakCheck.evaluate(flat).detail)
        let linear = (0..<30).map { 60 * mib + $0 * mib + noise(&random) }
        XCTAssertTrue(SoakLeakCheck.evaluate(linear).leaking, SoakLeakCheck.evaluate(linear).detail)
        let plateau = (0..<30).map { 60 * mib + min($0, 12) * 2 * mib + noise(&random) }
        XCTAssertFalse(SoakLeakCheck.evaluate(plateau).leaking, SoakLeakCheck.evaluate(plateau).detail)
        let warmUp = (0..<30).map { ($0 < 4 ? 30 * mib + $0 * 8 * mib : 62 * mib) + noise(&random) }
        XCTAssertFalse(SoakLeakCheck.evaluate(warmUp).leaking, SoakLeakCheck.evaluate(warmUp).detail)
        XCTAssertFalse(SoakLeakCheck.evaluate([60 * mib, 70 * mib, 80 * mib]).leaking, "three rounds show no trend")
    }
}

// MARK: - Settings

struct SoakSettings: Sendable {
    /// `KLIFE_SOAK_MINUTES`, or `nil` for the bounded run.
    var minutes: Double?
    var seed: UInt64
    /// Producing time of one round (reading back comes on top).
    var roundDuration: Duration
    /// How long faults go on after producing stopped, while the last records drain.
    var tail: Duration
    /// Rounds of the bounded run (a soak starts rounds until its time is up).
    var boundedRounds: Int
    var sampleInterval: Duration
    /// Where the RSS CSV goes.
    var directory: URL
    var stamp: String

    var replay: String {
        let minutes = self.minutes.map { " KLIFE_SOAK_MINUTES=\(SoakFormat.number($0))" } ?? ""
        return "(seed \(seed): replay with KLIFE_SOAK_SEED=\(seed)\(minutes) swift test --filter SoakTests)"
    }

    static func current() throws -> SoakSettings {
        let env = ProcessInfo.processInfo.environment
        var minutes: Double?
        if let text = env["KLIFE_SOAK_MINUTES"], !text.isEmpty {
            guard let value = Double(text), value > 0, value <= 24 * 60 else {
                throw SoakError("KLIFE_SOAK_MINUTES must be a number of minutes in (0, 1440], got '\(text)'")
            }
            minutes = value
        }
        let seed = env["KLIFE_SOAK_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...999_999_999)
        // A soak cuts its time into ~20 rounds of 15–60 s: enough rounds for a trend in memory,
        // long enough for faults to pile up inside one round.
        // The bounded run: three rounds of 1.5 s (a stall still outlasts the request timeout).
        let roundMilliseconds = minutes.map { min(60, max(15, Int($0 * 60 / 20))) * 1000 } ?? 1500
        let directory = env["KLIFE_SOAK_DIR"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? repositoryRoot.appendingPathComponent(".klife/soak")
        let stamp = env["KLIFE_SOAK_STAMP"].flatMap { $0.isEmpty ? nil : $0 } ?? SoakFormat.stamp(Date())
        let settings = SoakSettings(minutes: minutes, seed: seed, roundDuration: .milliseconds(roundMilliseconds),
                                    tail: minutes == nil ? .milliseconds(500) : .seconds(1), boundedRounds: 3,
                                    sampleInterval: minutes == nil ? .milliseconds(250) : .seconds(2),
                                    directory: directory, stamp: stamp)
        Swift.print("[soak] seed=\(seed) minutes=\(minutes.map(SoakFormat.number) ?? "none (bounded run: \(settings.boundedRounds) rounds)") "
            + "round=\(settings.roundDuration) sample=\(settings.sampleInterval)")
        return settings
    }
}

/// Production rates and shapes. Moderate on purpose: the soak shares two cores with builds.
enum SoakRates {
    /// Records per second of the idempotent producer on Tansu, and of the one on the mock.
    static let tansuPerSecond = 400.0
    static let mockPerSecond = 400.0
    /// Concurrent transactions (each holds one pool member); the pool has as many members.
    static let transactionWorkers = 2
    static let tansuPartitions = 4
    static let transactionPartitions = 3
    static let mockPartitions = 6
    static let mockBrokers = 3
}

struct SoakError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum SoakFormat {
    static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.2f", value)
    }

    static func mib(_ kib: Int) -> String { String(format: "%.1f", Double(kib) / 1024) }

    static func stamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return formatter.string(from: date)
    }

    static func seconds(_ duration: Duration) -> Double { duration / .seconds(1) }
}

// MARK: - Counters and findings

/// Totals shared by the workloads, the fault drivers and the memory sampler.
final class SoakCounters: Sendable {
    /// Records the broker acknowledged (every workload, transactional ones included).
    let acked = Atomic<Int>(0)
    let stalls = Atomic<Int>(0)
    let leaderMoves = Atomic<Int>(0)
    let brokerRestarts = Atomic<Int>(0)
    /// Transactional clients replaced because a member was fenced.
    let clientReplacements = Atomic<Int>(0)
}

/// What a verification found, by kind: a count and a few examples each.
struct SoakIssues: Sendable {
    private(set) var counts: [String: Int] = [:]
    private(set) var examples: [String: [String]] = [:]

    mutating func add(_ kind: String, _ example: @autoclosure () -> String) {
        counts[kind, default: 0] += 1
        if examples[kind, default: []].count < 5 { examples[kind, default: []].append(example()) }
    }

    mutating func merge(_ other: SoakIssues) {
        for (kind, count) in other.counts {
            counts[kind, default: 0] += count
            let room = max(0, 5 - examples[kind, default: []].count)
            examples[kind, default: []] += (other.examples[kind] ?? []).prefix(room)
        }
    }

    func count(_ kind: String) -> Int { counts[kind] ?? 0 }

    /// Every kind not in `tolerated`, with its count and examples.
    func violations(tolerating tolerated: Set<String>) -> [String] {
        counts.keys.sorted().filter { !tolerated.contains($0) }.map { kind in
            "\(kind) ×\(counts[kind] ?? 0): \((examples[kind] ?? []).joined(separator: "; "))"
        }
    }

    var summary: String {
        counts.isEmpty ? "none" : counts.keys.sorted().map { "\($0)=\(counts[$0] ?? 0)" }.joined(separator: " ")
    }
}

// MARK: - Memory

enum ResidentMemory {
    /// VmRSS of this process in KiB, read from /proc/self/status.
    static func currentKiB() -> Int? {
        let fd = open("/proc/self/status", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { _ = Glibc.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
        }
        return nil
    }
}

/// Samples VmRSS on a thread of its own (so a busy cooperative pool cannot delay it) and
/// appends each sample to a CSV file as it is taken.
final class MemorySampler: Sendable {
    struct Sample: Sendable {
        var elapsed: Double
        var rssKiB: Int
        var acked: Int
    }

    let csv: URL
    private let interval: Duration
    private let acked: @Sendable () -> Int
    private let started = ContinuousClock.now
    private let samples = Locked<[Sample]>([])
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let file: FileHandle

    init(csv: URL, interval: Duration, acked: @escaping @Sendable () -> Int) throws {
        try FileManager.default.createDirectory(at: csv.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: csv.path, contents: Data("elapsed_s,rss_kib,acked_records\n".utf8)) else {
            throw SoakError("cannot create \(csv.path)")
        }
        file = try FileHandle(forWritingTo: csv)
        _ = try file.seekToEnd()
        self.csv = csv
        self.interval = interval
        self.acked = acked
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "soak-rss"
        thread.start()
    }

    /// Seconds since the sampler was created (the time axis of the CSV).
    var elapsed: Double { SoakFormat.seconds(ContinuousClock.now - started) }

    var all: [Sample] { samples.withLock { $0 } }

    /// Takes a last sample, closes the file and waits for the thread. Call once.
    func stop() {
        stopping.store(true, ordering: .releasing)
        finished.wait()
    }

    private func run() {
        while !stopping.load(ordering: .acquiring) {
            sample()
            let until = ContinuousClock.now + interval
            while ContinuousClock.now < until && !stopping.load(ordering: .acquiring) { usleep(20_000) }
        }
        sample()
        try? file.close()
        finished.signal()
    }

    private func sample() {
        guard let rss = ResidentMemory.currentKiB() else { return }
        let s = Sample(elapsed: elapsed, rssKiB: rss, acked: acked())
        samples.withLock { $0.append(s) }
        try? file.write(contentsOf: Data(String(format: "%.1f,%d,%d\n", s.elapsed, s.rssKiB, s.acked).utf8))
    }
}

/// The most the test process may hold: its RSS before the soak started, plus what the
/// producers' configured limits let them buffer, plus a fixed allowance.
///
/// Per client (every term is a configured limit times a size):
/// - `2 × maxBufferedBytes`: the buffered records' keys, values and headers, and the same
///   bytes once more encoded in Produce requests waiting in connection buffers (a record
///   stays buffered until acknowledged, so both can exist at once);
/// - `maxBufferedRecords × (2 × stride(PendingRecord) + 256)`: each buffered record sits in at
///   most two arrays at once (partition buffer, in-flight batch), plus its heap objects outside
///   the byte count: the value array's header (32 B), the callback's context (≈ 48 B), malloc
///   rounding and headers (≈ 16 B per object), with room to spare;
/// - `reactorCount × capacity × (stride(PendingRecord) + 8)`: the record rings (capacity
///   rounded up to a power of two, one sequence word per slot), allocated whole up front.
///
/// The fixed allowance (``allowanceBytes``) covers what grows independently of those limits
/// once the soak runs; justified term by term:
/// - threads: 4 reactors, 2 resolvers, the proxy, the mock's reader, the sampler and the
///   cooperative pool each get a glibc malloc arena (64 MiB reserved each, of which a busy
///   thread keeps ~1–4 MiB resident after frees, fragmentation included): 24 MiB;
/// - reading back: a Fetch answer of up to 1 MiB held as bytes, then as decoded batches and as
///   `ConsumerRecord`s (≈ 3 copies), while the previous page is released: 8 MiB;
/// - the harness's ledgers: per round ≤ 60 s × 400/s records per stream at ≈ 64 B each
///   (≈ 1.5 MiB each for two streams), the transactions' ledger, and the final pass's one byte
///   per record produced (≤ 2 MiB for 30 minutes): 8 MiB;
/// - the runtime's lazily loaded pieces after the baseline (Foundation's formatters and
///   locale data, Dispatch, libcrypto's tables once the first connection is made, the
///   Process/Pipe machinery of the mock's driver): 24 MiB.
/// In all 64 MiB. Measured runs stay far below the bound (see docs/testing.md, "Soak"); the
/// bound is there to catch unbounded growth, not to measure.
struct SoakMemoryBound: Sendable {
    struct Client: Sendable {
        var name: String
        var bytes: Int
    }

    static let allowanceBytes = 64 << 20

    var baselineKiB: Int
    var clients: [Client]

    var totalKiB: Int { baselineKiB + (clients.reduce(0) { $0 + $1.bytes } + Self.allowanceBytes) / 1024 }

    static func derive(baselineKiB: Int, clients: [(String, KlifeConfiguration)]) -> SoakMemoryBound {
        let stride = MemoryLayout<PendingRecord>.stride
        return SoakMemoryBound(baselineKiB: baselineKiB, clients: clients.map { name, configuration in
            let producer = configuration.producer
            var ring = 1
            while ring < producer.queueCapacity { ring <<= 1 }
            let bytes = 2 * producer.maxBufferedBytes
                + producer.maxBufferedRecords * (2 * stride + 256)
                + configuration.reactorCount * ring * (stride + 8)
            return Client(name: name, bytes: bytes)
        })
    }

    var description: String {
        "baseline \(SoakFormat.mib(baselineKiB)) MiB + buffers "
            + clients.map { "\($0.name) \(SoakFormat.mib($0.bytes / 1024))" }.joined(separator: ", ")
            + " MiB + allowance \(Self.allowanceBytes >> 20) MiB = \(SoakFormat.mib(totalKiB)) MiB"
    }

    /// The producer limits every soak client runs with (small, so the bound is meaningful).
    static func applyLimits(_ producer: inout ProducerConfiguration) {
        producer.maxBufferedRecords = 20_000
        producer.maxBufferedBytes = 4 << 20
        producer.queueCapacity = 4096
    }
}

/// "RSS keeps growing across rounds": the per-round medians, warm-up rounds left out, are
/// split into thirds; a leak is growth by more than `max(4 MiB, 5 %)` from the first third to
/// the second AND again from the second to the last. Growth that stops (arenas and caches
/// reaching their working size) or a one-time step is not a leak; a steady leak of more than
/// ~4 MiB per third of the run is. Needs at least 6 rounds after warm-up.
enum SoakLeakCheck {
    struct Verdict: Sendable {
        var leaking: Bool
        var detail: String
    }

    static func evaluate(_ roundKiB: [Int]) -> Verdict {
        let warmUp = max(2, roundKiB.count / 5)
        let rounds = Array(roundKiB.dropFirst(warmUp))
        guard rounds.count >= 6 else {
            return Verdict(leaking: false, detail: "\(roundKiB.count) round(s): too few for a trend (needs \(warmUp + 6))")
        }
        let third = rounds.count / 3
        let a = median(Array(rounds[0..<third]))
        let b = median(Array(rounds[third..<(rounds.count - third)]))
        let c = median(Array(rounds[(rounds.count - third)...]))
        let threshold = max(4096, a / 20)
        let slope = slopePerRound(rounds)
        let leaking = b - a > threshold && c - b > threshold
        let detail = "round medians by thirds \(SoakFormat.mib(a)) → \(SoakFormat.mib(b)) → \(SoakFormat.mib(c)) MiB "
            + "(threshold \(SoakFormat.mib(threshold)) MiB per step), slope \(String(format: "%.0f", slope)) KiB/round "
            + "over \(rounds.count) rounds after \(warmUp) warm-up"
        return Verdict(leaking: leaking, detail: detail)
    }

    static func median(_ values: [Int]) -> Int {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }

    /// Least-squares slope of the values against their index.
    static func slopePerRound(_ values: [Int]) -> Double {
        let n = Double(values.count)
        guard n >= 2 else { return 0 }
        let meanX = (n - 1) / 2
        let meanY = Double(values.reduce(0, +)) / n
        var num = 0.0, den = 0.0
        for (i, v) in values.enumerated() {
            num += (Double(i) - meanX) * (Double(v) - meanY)
            den += (Double(i) - meanX) * (Double(i) - meanX)
        }
        return den == 0 ? 0 : num / den
    }
}

// MARK: - Reading back

enum SoakLog {
    /// Reads one partition from `offset` to its end — the high watermark, or at read_committed
    /// the last stable offset — handing every record to `visit`. Retries failed fetches (a
    /// connection may still be broken from the round's faults). Returns the offset it stopped
    /// at and the partition's log start offset.
    static func read(_ client: KlifeClient, topic: String, partition: Int, from offset: Int64,
                     isolation: IsolationLevel = .readUncommitted,
                     visit: (ConsumerRecord) -> Void) async throws -> (next: Int64, logStart: Int64) {
        var offset = offset
        var logStart: Int64 = -1
        var stuck = 0
        while true {
            let page = try await fetch(client, topic: topic, partition: partition, offset: offset, isolation: isolation)
            if logStart < 0 && page.logStartOffset >= 0 { logStart = page.logStartOffset }
            for record in page.records { visit(record) }
            let end = isolation == .readCommitted && page.lastStableOffset >= 0 ? page.lastStableOffset : page.highWatermark
            if page.highWatermark >= 0 && page.nextOffset >= end { return (page.nextOffset, logStart) }
            if page.nextOffset == offset {
                stuck += 1
                if stuck >= 200 {
                    throw SoakError("\(topic)/\(partition): no progress at offset \(offset) (end \(end), \(isolation))")
                }
                try await Task.sleep(for: .milliseconds(20))
            } else {
                stuck = 0
            }
            offset = page.nextOffset
        }
    }

    static func fetch(_ client: KlifeClient, topic: String, partition: Int, offset: Int64, maxBytes: Int32 = 1 << 20,
                      isolation: IsolationLevel) async throws -> FetchResult {
        var attempt = 0
        while true {
            do {
                return try await client.fetch(topic: topic, partition: Int32(partition), offset: offset, maxBytes: maxBytes,
                                              maxWait: .milliseconds(10), isolation: isolation)
            } catch {
                attempt += 1
                if attempt >= 20 { throw SoakError("\(topic)/\(partition) at \(offset): fetch failed \(attempt) times, last: \(error)") }
                try await Task.sleep(for: .milliseconds(100 * min(attempt, 5)))
            }
        }
    }

    /// `tag:a:b` → (tag, a, b).
    static func parse(_ value: String?) -> (tag: Substring, a: Int, b: Int)? {
        guard let value else { return nil }
        let parts = value.split(separator: ":")
        guard parts.count == 3, let a = Int(parts[1]), let b = Int(parts[2]) else { return nil }
        return (parts[0], a, b)
    }
}

// MARK: - Numbered streams (idempotent producers)

/// One round of a numbered stream: the records produced, per partition in production order,
/// and what their callbacks reported (called on reactor threads).
final class StreamLedger: Sendable {
    struct Entry: Sendable {
        var callbacks: UInt8 = 0
        var offset: Int64 = -2
        var ackedPartition: Int32 = -1
        var failure: String?
        /// `enqueue` threw: the record was refused before queuing and, by contract, gets no callback.
        var refused: String?
    }

    struct State: Sendable {
        var entries: [[Entry]]
        var registered = 0
        var completed = 0
    }

    /// Sequence number of each partition's first record of the round.
    let firstSeq: [Int]
    private let state: Locked<State>
    private let counters: SoakCounters

    init(firstSeq: [Int], counters: SoakCounters) {
        self.firstSeq = firstSeq
        self.counters = counters
        state = Locked(State(entries: Array(repeating: [], count: firstSeq.count)))
    }

    /// The next record: partitions in turn.
    func register() -> (partition: Int, index: Int) {
        state.withLock { s in
            let p = s.registered % s.entries.count
            s.registered += 1
            s.entries[p].append(Entry())
            return (p, s.entries[p].count - 1)
        }
    }

    func complete(_ p: Int, _ i: Int, _ result: Result<RecordMetadata, KlifeError>) {
        let acked = state.withLock { s -> Bool in
            if s.entries[p][i].callbacks == 0 { s.completed += 1 }
            s.entries[p][i].callbacks &+= 1
            switch result {
            case .success(let meta):
                s.entries[p][i].offset = meta.offset
                s.entries[p][i].ackedPartition = meta.partition
                return true
            case .failure(let error):
                s.entries[p][i].failure = "\(error.code): \(error)"
                return false
            }
        }
        if acked { counters.acked.add(1, ordering: .relaxed) }
    }

    func refuse(_ p: Int, _ i: Int, _ error: KlifeError) {
        state.withLock { s in
            s.entries[p][i].refused = "\(error.code): \(error)"
            s.completed += 1
        }
    }

    /// Records still waiting for their callback.
    var pending: Int { state.withLock { $0.registered - $0.completed } }

    var snapshot: State { state.withLock { $0 } }
}

/// Per-partition numbered records (`<tag>:<partition>:<seq>`) from one idempotent client,
/// checked round by round from a cursor, and once more from the start at the end.
final class NumberedStream: Sendable {
    struct Totals: Sendable {
        var produced = 0
        var acked = 0
        var failed = 0
        var read = 0
        var duplicates = 0
        var reorderings = 0
        var failedButWritten = 0
        var unknownOffsets = 0
        var offsetMismatches = 0
    }

    private struct State: Sendable {
        var nextSeq: [Int]
        var cursor: [Int64]
        /// Sequence numbers never acknowledged (failed or refused), per partition: rare.
        var notAcked: [Set<Int>]
        /// Sequence ranges of rounds checked under the garbling rules (duplicates allowed).
        var tolerant: [[Range<Int>]]
        var totals = Totals()
    }

    let name: String
    let tag: String
    let topic: String
    let partitions: Int
    let client: KlifeClient
    private let counters: SoakCounters
    private let state: Locked<State>

    init(name: String, tag: String, topic: String, partitions: Int, client: KlifeClient, counters: SoakCounters) {
        self.name = name
        self.tag = tag
        self.topic = topic
        self.partitions = partitions
        self.client = client
        self.counters = counters
        state = Locked(State(nextSeq: Array(repeating: 0, count: partitions), cursor: Array(repeating: 0, count: partitions),
                            notAcked: Array(repeating: [], count: partitions), tolerant: Array(repeating: [], count: partitions)))
    }

    var totals: Totals { state.withLock { $0.totals } }

    func newRound() -> StreamLedger {
        StreamLedger(firstSeq: state.withLock { $0.nextSeq }, counters: counters)
    }

    /// Produces at `rate` records per second for `duration`, partitions in turn. `enqueue`
    /// suspends while the producer's buffer is full, so a stall slows the stream down instead
    /// of growing memory.
    func produce(_ ledger: StreamLedger, for duration: Duration, perSecond rate: Double) async {
        let start = ContinuousClock.now
        var sent = 0
        while true {
            let elapsed = ContinuousClock.now - start
            if elapsed >= duration { break }
            let due = Int(rate * SoakFormat.seconds(elapsed)) + 1
            while sent < due {
                await produceOne(ledger)
                sent += 1
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    private func produceOne(_ ledger: StreamLedger) async {
        let (p, i) = ledger.register()
        let record = ProducerRecord(topic: topic, partition: Int32(p), value: "\(tag):\(p):\(ledger.firstSeq[p] + i)")
        do {
            try await client.enqueue(record) { result in ledger.complete(p, i, result) }
        } catch {
            ledger.refuse(p, i, error)
        }
    }

    /// Waits until every record of the round has had its callback.
    func waitForCallbacks(_ ledger: StreamLedger, upTo timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ledger.pending > 0 && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        return ledger.pending == 0
    }

    /// Waits until the client has nothing unanswered (every record acknowledged or failed).
    func waitUntilIdle(upTo timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while client.pendingRecordCount > 0 && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(2)) }
        return client.pendingRecordCount == 0
    }

    /// Checks the round's records from each partition's cursor to its end. Issue kinds:
    /// `lost`, `duplicate`, `reordered`, `callbacks`, `offset mismatch`, `foreign`, `failed`,
    /// `refused`, `failed but written`, `unknown offset` (acknowledged as a duplicate of a batch
    /// already written: the broker gives no offset), `read error`, `trimmed`.
    /// `tolerant` records the round's ranges as allowed to hold duplicates in the final pass.
    func verifyRound(_ ledger: StreamLedger, tolerant: Bool) async -> SoakIssues {
        var issues = SoakIssues()
        let snapshot = ledger.snapshot
        var cursors = state.withLock { $0.cursor }
        var totals = Totals()
        var notAcked: [[Int]] = Array(repeating: [], count: partitions)
        for p in 0..<partitions {
            let first = ledger.firstSeq[p]
            let entries = snapshot.entries[p]
            var occurrences = [UInt8](repeating: 0, count: entries.count)
            var foundAt = [Int64](repeating: -1, count: entries.count)
            var previous: (seq: Int, offset: Int64)?
            var read = 0
            do {
                let (next, logStart) = try await SoakLog.read(client, topic: topic, partition: p, from: cursors[p]) { r in
                    read += 1
                    guard let (tag, rp, seq) = SoakLog.parse(r.valueString), tag == self.tag, rp == p,
                          seq >= first, seq < first + entries.count else {
                        issues.add("foreign", "\(name) \(p)@\(r.offset): \(r.valueString ?? "nil") (round's seqs \(first)..<\(first + entries.count))")
                        return
                    }
                    let i = seq - first
                    if occurrences[i] < 255 { occurrences[i] += 1 }
                    if foundAt[i] < 0 { foundAt[i] = r.offset }
                    if let prev = previous, seq <= prev.seq {
                        issues.add("reordered", "\(name) partition \(p): seq \(seq)@\(r.offset) after seq \(prev.seq)@\(prev.offset)")
                    }
                    previous = (seq, r.offset)
                }
                if logStart > cursors[p] {
                    issues.add("trimmed", "\(name) partition \(p): log starts at \(logStart), past the cursor \(cursors[p])")
                }
                cursors[p] = next
            } catch {
                issues.add("read error", "\(name) partition \(p): \(error)")
            }
            totals.read += read
            for (i, e) in entries.enumerated() {
                let seq = first + i
                totals.produced += 1
                if let refused = e.refused {
                    issues.add("refused", "\(name) \(p):\(seq) \(refused)")
                    notAcked[p].append(seq)
                    if occurrences[i] > 0 { issues.add("foreign", "\(name) \(p):\(seq) refused before queuing, yet in the log") }
                    continue
                }
                if e.callbacks != 1 { issues.add("callbacks", "\(name) \(p):\(seq) callback ran \(e.callbacks) time(s)") }
                if occurrences[i] > 1 {
                    issues.add("duplicate", "\(name) \(p):\(seq) ×\(occurrences[i])")
                    totals.duplicates += 1
                }
                if e.callbacks == 0 {
                    notAcked[p].append(seq)
                    continue
                }
                if let failure = e.failure {
                    issues.add("failed", "\(name) \(p):\(seq) \(failure)")
                    totals.failed += 1
                    notAcked[p].append(seq)
                    if occurrences[i] > 0 {
                        issues.add("failed but written", "\(name) \(p):\(seq)")
                        totals.failedButWritten += 1
                    }
                    continue
                }
                totals.acked += 1
                if occurrences[i] == 0 { issues.add("lost", "\(name) \(p):\(seq) acknowledged at \(e.ackedPartition)@\(e.offset), not in the log") }
                if e.offset == -1 {
                    issues.add("unknown offset", "\(name) \(p):\(seq)")
                    totals.unknownOffsets += 1
                } else if occurrences[i] > 0 && (e.ackedPartition != Int32(p) || foundAt[i] != e.offset) {
                    issues.add("offset mismatch", "\(name) \(p):\(seq) acknowledged at \(e.ackedPartition)@\(e.offset), found at \(p)@\(foundAt[i])")
                    totals.offsetMismatches += 1
                }
            }
        }
        totals.reorderings = issues.count("reordered")
        let finalCursors = cursors, finalTotals = totals, finalNotAcked = notAcked
        state.withLock { s in
            for p in 0..<partitions {
                let count = snapshot.entries[p].count
                if tolerant && count > 0 { s.tolerant[p].append(ledger.firstSeq[p]..<(ledger.firstSeq[p] + count)) }
                s.nextSeq[p] = ledger.firstSeq[p] + count
                s.notAcked[p].formUnion(finalNotAcked[p])
            }
            s.cursor = finalCursors
            s.totals.produced += finalTotals.produced
            s.totals.acked += finalTotals.acked
            s.totals.failed += finalTotals.failed
            s.totals.read += finalTotals.read
            s.totals.duplicates += finalTotals.duplicates
            s.totals.reorderings += finalTotals.reorderings
            s.totals.failedButWritten += finalTotals.failedButWritten
            s.totals.unknownOffsets += finalTotals.unknownOffsets
            s.totals.offsetMismatches += finalTotals.offsetMismatches
        }
        return issues
    }

    /// Reads every partition once more from its start (or from where the broker's retention
    /// let it begin): each acknowledged record present, once (duplicates only inside rounds
    /// checked under the garbling rules), in order, nothing that was never produced, and
    /// nothing after the last round's cursor.
    func verifyWholeLog() async -> SoakIssues {
        var issues = SoakIssues()
        let s = state.withLock { $0 }
        for p in 0..<partitions {
            let total = s.nextSeq[p]
            let tolerant = s.tolerant[p]
            func allowed(_ seq: Int) -> Bool { tolerant.contains { $0.contains(seq) } }
            var occurrences = [UInt8](repeating: 0, count: total)
            var previous: Int?
            var firstSeen: Int?
            do {
                let (next, logStart) = try await SoakLog.read(client, topic: topic, partition: p, from: 0) { r in
                    guard let (tag, rp, seq) = SoakLog.parse(r.valueString), tag == self.tag, rp == p, seq >= 0, seq < total else {
                        issues.add("foreign", "\(name) \(p)@\(r.offset): \(r.valueString ?? "nil")")
                        return
                    }
                    if firstSeen == nil { firstSeen = seq }
                    if occurrences[seq] < 255 { occurrences[seq] += 1 }
                    if let prev = previous, seq <= prev, !(allowed(seq) && allowed(prev)) {
                        issues.add("reordered", "\(name) partition \(p): seq \(seq)@\(r.offset) after seq \(prev)")
                    }
                    previous = seq
                }
                if next != s.cursor[p] {
                    issues.add("log changed", "\(name) partition \(p): ends at \(next), the last round stopped at \(s.cursor[p])")
                }
                // The mock's retention may drop a partition's oldest batches: check from the first one left.
                let from = logStart > 0 ? (firstSeen ?? total) : 0
                for seq in from..<max(from, total) {
                    let n = occurrences[seq]
                    if n == 0 && !s.notAcked[p].contains(seq) {
                        issues.add("lost", "\(name) \(p):\(seq) acknowledged, missing from the whole log")
                    } else if n > 1 && !allowed(seq) {
                        issues.add("duplicate", "\(name) \(p):\(seq) ×\(n) in the whole log")
                    }
                }
            } catch {
                issues.add("read error", "\(name) partition \(p) (whole log): \(error)")
            }
        }
        return issues
    }
}

// MARK: - Transactions

enum TransactionOutcome: Sendable {
    case committed
    case abortedOnPurpose
    case failed(KlifeError.Code?, String)
}

/// Thrown from a transaction's block to abort it on purpose.
struct DeliberateAbort: Error {}

/// One round of transactions: their records' callbacks and their outcomes.
final class TransactionLedger: Sendable {
    struct Entry: Sendable {
        var size: Int
        var enqueued: [Bool]
        var callbacks: [UInt8]
        var acked: [Bool]
        var outcome: TransactionOutcome?
    }

    private let state = Locked<[Int: Entry]>([:])
    private let counters: SoakCounters

    init(counters: SoakCounters) { self.counters = counters }

    func begin(_ t: Int, size: Int) {
        state.withLock {
            $0[t] = Entry(size: size, enqueued: Array(repeating: false, count: size), callbacks: Array(repeating: 0, count: size),
                          acked: Array(repeating: false, count: size))
        }
    }

    func enqueued(_ t: Int, _ i: Int, _ value: Bool) { state.withLock { $0[t]?.enqueued[i] = value } }

    func complete(_ t: Int, _ i: Int, _ result: Result<RecordMetadata, KlifeError>) {
        let acked: Bool = if case .success = result { true } else { false }
        state.withLock { s in
            s[t]?.callbacks[i] &+= 1
            if acked { s[t]?.acked[i] = true }
        }
        if acked { counters.acked.add(1, ordering: .relaxed) }
    }

    func end(_ t: Int, _ outcome: TransactionOutcome) { state.withLock { $0[t]?.outcome = outcome } }

    var snapshot: [Int: Entry] { state.withLock { $0 } }
}

/// Numbered transactions (`x:<transaction>:<index>`, record `i` on partition `(t + i) mod P`)
/// from a transactional pool, checked at read_committed round by round and once more at the end.
final class TransactionStream: Sendable {
    struct Totals: Sendable {
        var started = 0
        var committed = 0
        var abortedOnPurpose = 0
        var failed = 0
        /// Failed (outcome unknown to the caller) yet committed whole.
        var failedButCommitted = 0
        var failuresByCode: [String: Int] = [:]
        var recordsRead = 0
    }

    /// Outcome of every transaction of the run, for the final pass: 0 committed, 1 aborted on
    /// purpose, 2 failed.
    private struct State: Sendable {
        var cursor: [Int64]
        var outcomes: [UInt8] = []
        var sizes: [UInt8] = []
        var totals = Totals()
    }

    let topic: String
    let partitions: Int
    let poolSize: Int
    let configuration: KlifeConfiguration
    private let current: Locked<KlifeClient>
    private let next = Atomic<Int>(0)
    private let state: Locked<State>

    init(topic: String, partitions: Int, configuration: KlifeConfiguration, client: KlifeClient) {
        self.topic = topic
        self.partitions = partitions
        self.poolSize = configuration.transactions?.poolSize ?? 1
        self.configuration = configuration
        current = Locked(client)
        state = Locked(State(cursor: Array(repeating: 0, count: partitions)))
    }

    var client: KlifeClient { current.withLock { $0 } }
    var totals: Totals { state.withLock { $0.totals } }

    /// Runs transactions back to back until `deadline`: 1–10 records each, produced with
    /// `enqueue` or `produceBatch`, one in ten aborted on purpose by throwing from the block.
    func work(until deadline: ContinuousClock.Instant, ledger: TransactionLedger, seed: UInt64) async {
        var random = ChaosRandom(seed: seed)
        let client = self.client
        while ContinuousClock.now < deadline {
            let t = next.add(1, ordering: .relaxed).oldValue
            let size = 1 + Int(random.next() % 10)
            let batchForm = random.next() % 2 == 0
            let abortOnPurpose = random.next() % 10 == 0
            ledger.begin(t, size: size)
            let records = (0..<size).map { i in
                ProducerRecord(topic: topic, partition: Int32((t + i) % partitions), value: "x:\(t):\(i)")
            }
            let outcome: TransactionOutcome
            do {
                try await client.transaction { txn in
                    if batchForm {
                        let results = try await txn.produceBatch(records)
                        for (i, result) in results.enumerated() {
                            ledger.enqueued(t, i, true)
                            ledger.complete(t, i, result)
                        }
                    } else {
                        for (i, record) in records.enumerated() {
                            ledger.enqueued(t, i, true)
                            do {
                                try await txn.enqueue(record) { result in ledger.complete(t, i, result) }
                            } catch {
                                ledger.enqueued(t, i, false)
                                throw error
                            }
                        }
                    }
                    if abortOnPurpose { throw DeliberateAbort() }
                }
                outcome = .committed
            } catch is DeliberateAbort {
                outcome = .abortedOnPurpose
            } catch let error as KlifeError {
                outcome = .failed(error.code, "\(error)")
            } catch {
                outcome = .failed(nil, "\(error)")
            }
            ledger.end(t, outcome)
            try? await Task.sleep(for: random.milliseconds(0...15))
        }
    }

    /// Decides every transaction still open: one empty transaction per pool member at once
    /// (they wait for each other inside the block, so each holds a different member). A member
    /// whose last transaction ended without a known outcome takes a new epoch when it begins,
    /// which aborts what it left open. Then waits until each partition's last stable offset
    /// reaches its high watermark.
    func settle() async -> SoakIssues {
        var issues = SoakIssues()
        for attempt in 1...3 {
            let client = self.client
            let arrived = SoakCounter()
            let pool = poolSize
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<pool {
                    group.addTask {
                        _ = try? await client.transaction { _ in
                            arrived.increment()
                            let until = ContinuousClock.now + .seconds(5)
                            while arrived.value < pool && ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(5)) }
                        }
                    }
                }
            }
            issues = await undecidedPartitions(upTo: .seconds(attempt == 3 ? 30 : 10))
            if issues.counts.isEmpty { break }
        }
        return issues
    }

    private func undecidedPartitions(upTo timeout: Duration) async -> SoakIssues {
        var issues = SoakIssues()
        let cursors = state.withLock { $0.cursor }
        let deadline = ContinuousClock.now + timeout
        for p in 0..<partitions {
            var last = "no answer"
            while true {
                if let page = try? await SoakLog.fetch(client, topic: topic, partition: p, offset: cursors[p], maxBytes: 4096,
                                                        isolation: .readCommitted) {
                    if page.lastStableOffset < 0 || page.lastStableOffset >= page.highWatermark { break }
                    last = "last stable offset \(page.lastStableOffset) < high watermark \(page.highWatermark)"
                }
                if ContinuousClock.now >= deadline {
                    issues.add("undecided", "\(topic)/\(p): \(last) after the pool's members took new epochs")
                    break
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        return issues
    }

    /// Checks the round's transactions at read_committed from each partition's cursor. Issue
    /// kinds: `committed not whole`, `committed unacknowledged`, `aborted visible`, `partly
    /// visible`, `callbacks`, `no outcome`, `foreign`, `read error`, and the tolerated `failed`,
    /// `failed but committed`, `fenced`.
    func verifyRound(_ ledger: TransactionLedger) async -> SoakIssues {
        var issues = SoakIssues()
        let txns = ledger.snapshot
        var cursors = state.withLock { $0.cursor }
        var seen: [Int: [(partition: Int, index: Int)]] = [:]
        var read = 0
        for p in 0..<partitions {
            do {
                let (next, _) = try await SoakLog.read(client, topic: topic, partition: p, from: cursors[p],
                                                       isolation: .readCommitted) { r in
                    read += 1
                    guard let (tag, t, i) = SoakLog.parse(r.valueString), tag == "x", let txn = txns[t], i >= 0, i < txn.size else {
                        issues.add("foreign", "\(topic)/\(p)@\(r.offset): \(r.valueString ?? "nil")")
                        return
                    }
                    seen[t, default: []].append((p, i))
                }
                cursors[p] = next
            } catch {
                issues.add("read error", "\(topic)/\(p): \(error)")
            }
        }

        var totals = Totals()
        totals.recordsRead = read
        var codes: [(Int, UInt8, UInt8)] = []
        for t in txns.keys.sorted() {
            let txn = txns[t]!
            let visible = seen[t] ?? []
            totals.started += 1
            for i in 0..<txn.size where txn.callbacks[i] != (txn.enqueued[i] ? 1 : 0) {
                issues.add("callbacks", "transaction \(t) record \(i): \(txn.callbacks[i]) callback(s), enqueued \(txn.enqueued[i])")
            }
            let whole = Self.isWhole(visible, size: txn.size)
            let shown = "transaction \(t) (\(txn.size) records) visible as \(visible.map { "\($0.index)@p\($0.partition)" })"
            switch txn.outcome {
            case nil:
                issues.add("no outcome", "transaction \(t) never ended")
            case .committed:
                totals.committed += 1
                codes.append((t, 0, UInt8(txn.size)))
                if !whole { issues.add("committed not whole", shown) }
                if txn.acked.contains(false) { issues.add("committed unacknowledged", "transaction \(t): acked \(txn.acked)") }
            case .abortedOnPurpose:
                totals.abortedOnPurpose += 1
                codes.append((t, 1, UInt8(txn.size)))
                if !visible.isEmpty { issues.add("aborted visible", shown) }
            case .failed(let code, let message):
                totals.failed += 1
                codes.append((t, 2, UInt8(txn.size)))
                totals.failuresByCode["\(code.map { "\($0)" } ?? "other")", default: 0] += 1
                issues.add("failed", "transaction \(t): \(message)")
                if code == .producerFenced { issues.add("fenced", "transaction \(t): \(message)") }
                if whole {
                    totals.failedButCommitted += 1
                    issues.add("failed but committed", "transaction \(t)")
                } else if !visible.isEmpty {
                    issues.add("partly visible", shown)
                }
            }
        }
        let finalCursors = cursors, finalTotals = totals
        state.withLock { s in
            for (t, outcome, size) in codes {
                if t != s.outcomes.count { issues.add("no outcome", "transaction numbers not contiguous at \(t) (expected \(s.outcomes.count))") }
                while s.outcomes.count < t {
                    s.outcomes.append(2)
                    s.sizes.append(0)
                }
                s.outcomes.append(outcome)
                s.sizes.append(size)
            }
            s.cursor = finalCursors
            s.totals.started += finalTotals.started
            s.totals.committed += finalTotals.committed
            s.totals.abortedOnPurpose += finalTotals.abortedOnPurpose
            s.totals.failed += finalTotals.failed
            s.totals.failedButCommitted += finalTotals.failedButCommitted
            s.totals.recordsRead += finalTotals.recordsRead
            s.totals.failuresByCode.merge(finalTotals.failuresByCode, uniquingKeysWith: +)
        }
        return issues
    }

    /// Every record of the transaction exactly once, each partition's share in order.
    static func isWhole(_ visible: [(partition: Int, index: Int)], size: Int) -> Bool {
        guard visible.count == size, Set(visible.map(\.index)) == Set(0..<size) else { return false }
        var last: [Int: Int] = [:]
        for v in visible {
            if let l = last[v.partition], v.index <= l { return false }
            last[v.partition] = v.index
        }
        return true
    }

    /// Reads the topic once more from the start at read_committed and counts each
    /// transaction's records: committed ones whole, aborted ones absent, failed ones all or nothing.
    func verifyWholeLog() async -> SoakIssues {
        var issues = SoakIssues()
        let s = state.withLock { $0 }
        var counts = [Int16](repeating: 0, count: s.outcomes.count)
        for p in 0..<partitions {
            do {
                let (next, _) = try await SoakLog.read(client, topic: topic, partition: p, from: 0, isolation: .readCommitted) { r in
                    guard let (tag, t, i) = SoakLog.parse(r.valueString), tag == "x", t >= 0, t < counts.count, i >= 0,
                          i < Int(s.sizes[t]) else {
                        issues.add("foreign", "\(topic)/\(p)@\(r.offset): \(r.valueString ?? "nil") (whole log)")
                        return
                    }
                    counts[t] &+= 1
                }
                if next != s.cursor[p] {
                    issues.add("log changed", "\(topic)/\(p): ends at \(next), the last round stopped at \(s.cursor[p])")
                }
            } catch {
                issues.add("read error", "\(topic)/\(p) (whole log): \(error)")
            }
        }
        for t in 0..<counts.count {
            let n = Int(counts[t]), size = Int(s.sizes[t])
            switch s.outcomes[t] {
            case 0 where n != size: issues.add("committed not whole", "transaction \(t): \(n) of \(size) records in the whole log")
            case 1 where n != 0: issues.add("aborted visible", "transaction \(t): \(n) records in the whole log")
            case 2 where n != 0 && n != size: issues.add("partly visible", "transaction \(t): \(n) of \(size) records in the whole log")
            default: break
            }
        }
        return issues
    }

    /// Replaces the client (after a member was fenced: a fenced member never writes again).
    func replaceClient() async throws {
        let old = client
        await old.close()
        let fresh = try await KlifeClient.connect(configuration)
        current.withLock { $0 = fresh }
    }
}

/// A counter for tasks that cannot capture an `Atomic` (it is not copyable).
final class SoakCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// The latest events of one side of the run (fault actions, the clients' log events), kept
/// in a fixed-size ring and printed when a round fails.
final class SoakEventLog: Sendable {
    private struct State: Sendable {
        var lines: [String] = []
        var next = 0
    }

    private let capacity: Int
    private let started = ContinuousClock.now
    private let state = Locked(State())

    init(capacity: Int = 300) { self.capacity = capacity }

    func append(_ line: String) {
        let stamped = String(format: "%9.3f ", SoakFormat.seconds(ContinuousClock.now - started)) + line
        state.withLock { s in
            if s.lines.count < capacity {
                s.lines.append(stamped)
            } else {
                s.lines[s.next] = stamped
            }
            s.next = (s.next + 1) % capacity
        }
    }

    /// A log handler for a client, its events prefixed with `name`.
    func handler(_ name: String) -> @Sendable (LogEvent) -> Void {
        { [self] event in append("\(name) \(event)") }
    }

    /// The latest `count` lines, oldest first.
    func recent(_ count: Int) -> [String] {
        state.withLock { s in
            let ordered = s.lines.count < capacity ? s.lines : Array(s.lines[s.next...] + s.lines[..<s.next])
            return Array(ordered.suffix(count))
        }
    }
}

// MARK: - Faults

enum SoakFaultPlan: String, Sendable, CaseIterable {
    /// Random kills, plus one stall longer than the request timeout.
    case kills
    /// Stalls of 1.5–2.5 s every 0.4–1.2 s.
    case stalls
    /// Garbled broker answers.
    case garbling
}

/// Runs a round's fault plan on the proxy until cancelled. A stall, once begun, always lasts
/// its full length.
func driveProxyFaults(_ plan: SoakFaultPlan, proxy: FaultProxy, seed: UInt64, round: Duration, counters: SoakCounters) async {
    var random = ChaosRandom(seed: seed)
    func stall() async {
        let length = random.milliseconds(1500...2500)
        proxy.pause()
        counters.stalls.add(1, ordering: .relaxed)
        let until = ContinuousClock.now + length
        while ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(20)) }
        proxy.resume()
    }
    switch plan {
    case .kills:
        proxy.setRandomKills(every: .milliseconds(30) ... .milliseconds(300), seed: seed)
        let roundMs = Int(SoakFormat.seconds(round) * 1000)
        try? await Task.sleep(for: random.milliseconds((roundMs * 3 / 10)...(roundMs * 6 / 10)))
        guard !Task.isCancelled else { return }
        await stall()
    case .stalls:
        for _ in 0..<10_000 {
            try? await Task.sleep(for: random.milliseconds(400...1200))
            guard !Task.isCancelled else { return }
            await stall()
        }
    case .garbling:
        proxy.setRandomGarbling(every: .milliseconds(40) ... .milliseconds(300), seed: seed)
    }
}

/// Drives the mock cluster's faults while its stream produces: leader moves with records in
/// flight, and broker restarts (down, optionally fail-over of its partitions, up) begun with
/// nothing in flight. Every fault starts from a quiet producer (everything answered), so no
/// request is still on its way to a broker that is about to lead its partition again.
final class MockFaults: Sendable {
    private struct State: Sendable {
        var leaders: [Int32]
        var actions = 0
    }

    let mock: MockCluster
    let stream: NumberedStream
    let events: SoakEventLog
    private let counters: SoakCounters
    private let state: Locked<State>

    init(mock: MockCluster, stream: NumberedStream, events: SoakEventLog, counters: SoakCounters) throws {
        self.mock = mock
        self.stream = stream
        self.events = events
        self.counters = counters
        let brokers = Int32(mock.brokerCount)
        let leaders = (0..<stream.partitions).map { Int32($0) % brokers + 1 }
        for (p, broker) in leaders.enumerated() { try mock.leader(stream.topic, Int32(p), broker: broker) }
        state = Locked(State(leaders: leaders))
    }

    /// Produces and injects faults until `deadline`, then waits until everything is answered.
    /// Every third action is a broker restart, the others move leaders.
    func run(_ ledger: StreamLedger, until deadline: ContinuousClock.Instant, seed: UInt64) async -> SoakIssues {
        var issues = SoakIssues()
        var random = ChaosRandom(seed: seed)
        let rate = SoakRates.mockPerSecond
        let brokers = Int32(mock.brokerCount)
        func produce(_ range: ClosedRange<Int>) async {
            let left = deadline - ContinuousClock.now
            await stream.produce(ledger, for: min(random.milliseconds(range), max(left, .milliseconds(50))), perSecond: rate)
        }
        func other(than excluded: Set<Int32>) -> Int32 {
            let candidates = (1...brokers).filter { !excluded.contains($0) }
            return candidates[Int(random.next() % UInt64(candidates.count))]
        }
        func move(_ p: Int, to broker: Int32) throws {
            events.append("mock: partition \(p) leader \(state.withLock { $0.leaders[p] }) → \(broker) (pending \(stream.client.pendingRecordCount))")
            try mock.leader(stream.topic, Int32(p), broker: broker)
            state.withLock { $0.leaders[p] = broker }
            counters.leaderMoves.add(1, ordering: .relaxed)
        }
        do {
            while ContinuousClock.now < deadline {
                await produce(200...800)
                let action = state.withLock { s -> Int in
                    s.actions += 1
                    return s.actions
                }
                if action % 3 != 2 {
                    // Leaders move while records are in flight: the old leader answers what it
                    // wrote and refuses the rest (NOT_LEADER_OR_FOLLOWER); the client retries
                    // those at the new leader, in order.
                    let count = 1 + Int(random.next() % UInt64(stream.partitions))
                    for _ in 0..<count {
                        let p = Int(random.next() % UInt64(stream.partitions))
                        try move(p, to: other(than: [state.withLock { $0.leaders[p] }]))
                    }
                    await produce(200...800)
                } else {
                    // A broker goes down with nothing in flight (the mock would write a resent
                    // request twice: it checks no sequences), stays down while records for its
                    // partitions pile up, maybe hands its partitions to the others, comes back.
                    guard await stream.waitUntilIdle(upTo: .seconds(60)) else {
                        issues.add("stuck", "mock: records unanswered for 60 s before a restart")
                        break
                    }
                    let broker = Int32(1 + random.next() % UInt64(brokers))
                    let led = state.withLock { s in s.leaders.indices.filter { s.leaders[$0] == broker } }
                    events.append("mock: broker \(broker) down (leads \(led))")
                    try mock.down(broker)
                    await produce(300...1500)
                    if random.next() % 2 == 0 {
                        events.append("mock: fail-over of broker \(broker)'s partitions \(led)")
                        for p in led { try move(p, to: other(than: [broker])) }
                        await produce(200...800)
                    }
                    events.append("mock: broker \(broker) up (pending \(stream.client.pendingRecordCount))")
                    try mock.up(broker)
                    counters.brokerRestarts.add(1, ordering: .relaxed)
                    await produce(200...800)
                }
                guard await stream.waitUntilIdle(upTo: .seconds(60)) else {
                    issues.add("stuck", "mock: records unanswered for 60 s after a fault")
                    break
                }
                events.append("mock: idle (\(ledger.snapshot.registered) records so far this round)")
            }
        } catch {
            issues.add("mock command", "\(error)")
            for b in 1...brokers { try? mock.up(b) }
        }
        if !(await stream.waitForCallbacks(ledger, upTo: .seconds(150))) {
            issues.add("not drained", "mock: \(ledger.pending) record(s) without a callback 150 s after the round")
        }
        return issues
    }
}

// MARK: - The run

struct SoakRoundSummary: Sendable {
    var round: Int
    var plan: SoakFaultPlan
    var seconds: Double
    var rssMedianKiB: Int
    var violations: [String]
    var line: String
}

struct SoakReport: Sendable {
    var settings: SoakSettings
    var elapsed: Double
    var rounds: [SoakRoundSummary]
    var violations: [String]
    var tansu: NumberedStream.Totals
    var mock: NumberedStream.Totals
    var transactions: TransactionStream.Totals
    var connectionsKilled: Int
    var connectionsKilledMidTransfer: Int
    var connectionsAccepted: Int
    var bytesGarbled: Int
    var stalls: Int
    var leaderMoves: Int
    var brokerRestarts: Int
    var clientReplacements: Int
    var epochBumps: Int
    var samples: Int
    var rssMinKiB: Int
    var rssMedianKiB: Int
    var rssMaxKiB: Int
    var series: [MemorySampler.Sample]
    var bound: SoakMemoryBound
    var leak: SoakLeakCheck.Verdict
    var csv: String

    var passed: Bool { violations.isEmpty && rssMaxKiB <= bound.totalKiB && !leak.leaking }

    func print() {
        let minutes = Int(elapsed) / 60, seconds = Int(elapsed) % 60
        let plans = Dictionary(grouping: rounds, by: \.plan).mapValues(\.count)
        let points = series.map { "\(Int($0.elapsed))s:\(SoakFormat.mib($0.rssKiB))" }.joined(separator: " ")
        let failures = transactions.failuresByCode.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        Swift.print("""
            [soak] ---- summary (seed \(settings.seed)) ----
            [soak] duration: \(minutes)m\(String(format: "%02d", seconds))s, rounds: \(rounds.count) \
            (kills \(plans[.kills] ?? 0), stalls \(plans[.stalls] ?? 0), garbling \(plans[.garbling] ?? 0))
            [soak] records acknowledged: \(tansu.acked + mock.acked) idempotent (Tansu \(tansu.acked), mock \(mock.acked)), \
            failed explicitly \(tansu.failed + mock.failed), read back \(tansu.read + mock.read + transactions.recordsRead)
            [soak] idempotent anomalies under garbling: duplicates \(tansu.duplicates), reordered \(tansu.reorderings), \
            offsets misreported \(tansu.offsetMismatches), failed but written \(tansu.failedButWritten), epoch bumps \(epochBumps)
            [soak] transactions: \(transactions.started) (committed \(transactions.committed), aborted on purpose \
            \(transactions.abortedOnPurpose), failed \(transactions.failed)\(failures.isEmpty ? "" : ": \(failures)"); \
            failed yet committed whole \(transactions.failedButCommitted)), pool clients replaced \(clientReplacements)
            [soak] faults: connections killed \(connectionsKilled) (mid-transfer \(connectionsKilledMidTransfer), accepted \
            \(connectionsAccepted)), stalls \(stalls), bytes garbled \(bytesGarbled), leader moves \(leaderMoves), \
            broker restarts \(brokerRestarts)
            [soak] rss: min \(SoakFormat.mib(rssMinKiB)) / median \(SoakFormat.mib(rssMedianKiB)) / max \
            \(SoakFormat.mib(rssMaxKiB)) MiB over \(samples) samples; bound \(bound.description)
            [soak] rss trend: \(leak.detail)\(leak.leaking ? " — LEAK" : "")
            [soak] rss series (MiB): \(points)
            [soak] rss csv: \(csv)
            [soak] result: \(passed ? "PASS" : "FAIL")\(violations.isEmpty ? "" : " (\(violations.count) violation(s); first: \(violations[0]))")
            """)
    }
}

final class SoakRun: Sendable {
    let settings: SoakSettings
    let counters: SoakCounters
    let broker: TestBroker
    let proxy: FaultProxy
    let mock: MockCluster
    let tansu: NumberedStream
    let transactions: TransactionStream
    let mockStream: NumberedStream
    let mockFaults: MockFaults
    let sampler: MemorySampler
    let bound: SoakMemoryBound
    /// Events of the Tansu side (the two clients) and of the mock side (its client and faults).
    let tansuEvents: SoakEventLog
    let mockEvents: SoakEventLog

    private init(settings: SoakSettings, counters: SoakCounters, broker: TestBroker, proxy: FaultProxy, mock: MockCluster,
                 tansu: NumberedStream, transactions: TransactionStream, mockStream: NumberedStream, mockFaults: MockFaults,
                 sampler: MemorySampler, bound: SoakMemoryBound, tansuEvents: SoakEventLog, mockEvents: SoakEventLog) {
        self.tansuEvents = tansuEvents
        self.mockEvents = mockEvents
        self.settings = settings
        self.counters = counters
        self.broker = broker
        self.proxy = proxy
        self.mock = mock
        self.tansu = tansu
        self.transactions = transactions
        self.mockStream = mockStream
        self.mockFaults = mockFaults
        self.sampler = sampler
        self.bound = bound
    }

    /// Starts the sampler (first, so the CSV covers everything), Tansu behind its proxy, the
    /// mock cluster, the three clients and their topics.
    static func start(_ settings: SoakSettings) async throws -> SoakRun {
        let baseline = ResidentMemory.currentKiB() ?? 0
        let counters = SoakCounters()
        let csv = settings.directory.appendingPathComponent("rss-\(settings.stamp).csv")
        let sampler = try MemorySampler(csv: csv, interval: settings.sampleInterval) { counters.acked.load(ordering: .relaxed) }
        sampler.start()
        var cleanup: [() -> Void] = [{ sampler.stop() }]
        let tansuEvents = SoakEventLog(), mockEvents = SoakEventLog()
        var clients: [KlifeClient] = []
        do {
            let (broker, proxy) = try await TestBroker.startBehindProxy()
            cleanup.append { proxy.stop(); broker.stop() }
            let mockTopic = "soak"
            let mock = try MockCluster(brokers: SoakRates.mockBrokers, topics: [(mockTopic, Int32(SoakRates.mockPartitions))])
            cleanup.append { mock.stop() }

            var idempotent = KlifeConfiguration(bootstrapServers: [proxy.address])
            idempotent.connectTimeout = .seconds(1)
            idempotent.requestTimeout = ChaosRun.requestTimeout
            idempotent.producer.maxInFlightPerBroker = 5
            idempotent.producer.retryBackoff = .milliseconds(20)
            idempotent.producer.retryBackoffMax = .milliseconds(250)
            idempotent.producer.deliveryTimeout = .seconds(120)
            idempotent.producer.linger = .milliseconds(1)
            SoakMemoryBound.applyLimits(&idempotent.producer)
            idempotent.logHandler = tansuEvents.handler("[idempotent]")

            var transactional = KlifeConfiguration(bootstrapServers: [proxy.address])
            transactional.connectTimeout = .seconds(2)
            transactional.requestTimeout = .seconds(2)
            transactional.producer.retryBackoff = .milliseconds(20)
            transactional.producer.retryBackoffMax = .milliseconds(250)
            transactional.producer.deliveryTimeout = .seconds(30)
            transactional.producer.linger = .milliseconds(1)
            transactional.transactions = TransactionConfiguration(baseTransactionalID: "soak-\(settings.seed)",
                                                                  poolSize: SoakRates.transactionWorkers, timeout: .seconds(30))
            SoakMemoryBound.applyLimits(&transactional.producer)
            transactional.logHandler = tansuEvents.handler("[transactional]")

            var onMock = KlifeConfiguration(bootstrapServers: mock.bootstrap)
            onMock.reactorCount = 2
            onMock.connectTimeout = .seconds(3)
            onMock.requestTimeout = .seconds(3)
            onMock.producer.maxInFlightPerBroker = 5
            onMock.producer.retryBackoff = .milliseconds(20)
            onMock.producer.retryBackoffMax = .milliseconds(250)
            onMock.producer.deliveryTimeout = .seconds(120)
            onMock.producer.linger = .milliseconds(1)
            SoakMemoryBound.applyLimits(&onMock.producer)
            onMock.logHandler = mockEvents.handler("[mock client]")

            let tansuClient = try await KlifeClient.connect(idempotent)
            clients.append(tansuClient)
            let transactionClient = try await KlifeClient.connect(transactional)
            clients.append(transactionClient)
            let mockClient = try await KlifeClient.connect(onMock)
            clients.append(mockClient)

            let tansuTopic = TestCluster.uniqueTopicName("soak-idempotent")
            let transactionTopic = TestCluster.uniqueTopicName("soak-transactions")
            try await tansuClient.createTopic(tansuTopic, partitions: Int32(SoakRates.tansuPartitions))
            try await tansuClient.createTopic(transactionTopic, partitions: Int32(SoakRates.transactionPartitions))
            _ = try await tansuClient.metadata(topics: [tansuTopic])
            _ = try await transactionClient.metadata(topics: [transactionTopic])
            _ = try await mockClient.metadata(topics: [mockTopic])

            let tansu = NumberedStream(name: "tansu", tag: "i", topic: tansuTopic, partitions: SoakRates.tansuPartitions,
                                       client: tansuClient, counters: counters)
            let transactions = TransactionStream(topic: transactionTopic, partitions: SoakRates.transactionPartitions,
                                                 configuration: transactional, client: transactionClient)
            let mockStream = NumberedStream(name: "mock", tag: "m", topic: mockTopic, partitions: SoakRates.mockPartitions,
                                            client: mockClient, counters: counters)
            let mockFaults = try MockFaults(mock: mock, stream: mockStream, events: mockEvents, counters: counters)
            let bound = SoakMemoryBound.derive(baselineKiB: baseline, clients: [
                ("tansu idempotent", idempotent), ("tansu transactional", transactional), ("mock idempotent", onMock),
            ])
            Swift.print("[soak] memory bound: \(bound.description) (PendingRecord stride \(MemoryLayout<PendingRecord>.stride) B)")
            return SoakRun(settings: settings, counters: counters, broker: broker, proxy: proxy, mock: mock, tansu: tansu,
                           transactions: transactions, mockStream: mockStream, mockFaults: mockFaults, sampler: sampler,
                           bound: bound, tansuEvents: tansuEvents, mockEvents: mockEvents)
        } catch {
            for client in clients { await client.close() }
            for step in cleanup.reversed() { step() }
            throw error
        }
    }

    /// Closes the clients and stops the brokers, the proxy and the sampler (if still running).
    func shutdown() async {
        await tansu.client.close()
        await transactions.client.close()
        await mockStream.client.close()
        proxy.stop()
        broker.stop()
        mock.stop()
    }

    /// Runs rounds until the time is up (or the bounded number); a round with violations
    /// does not end the run (its cursors moved past what it checked), so a long run reports
    /// how often a fault shows up and still measures memory to the end. Then the whole-log
    /// pass and the memory verdict.
    func execute() async -> SoakReport {
        let started = ContinuousClock.now
        var rounds: [SoakRoundSummary] = []
        var violations: [String] = []
        var epochBumps = 0
        var failedRounds = 0
        let end = settings.minutes.map { started + .milliseconds(Int($0 * 60_000)) }
        var n = 0
        while true {
            if let end {
                if n > 0 && ContinuousClock.now + settings.roundDuration > end { break }
            } else if n >= settings.boundedRounds {
                break
            }
            let (summary, bumps) = await round(n)
            epochBumps += bumps
            rounds.append(summary)
            Swift.print(summary.line)
            if !summary.violations.isEmpty {
                failedRounds += 1
                for v in summary.violations { Swift.print("[soak]   violation: \(v)") }
            }
            if !summary.violations.isEmpty && failedRounds <= 3 {
                for (name, log) in [("tansu", tansuEvents), ("mock", mockEvents)] {
                    Swift.print("[soak]   latest \(name) events:")
                    for line in log.recent(80) { Swift.print("[soak]     \(line)") }
                }
            }
            violations += summary.violations.map { "round \(n) (\(summary.plan)): \($0)" }
            n += 1
        }

        // The whole run once more, from the start of every log.
        let finalPass = ContinuousClock.now
        var whole = await tansu.verifyWholeLog()
        whole.merge(await mockStream.verifyWholeLog())
        whole.merge(await transactions.verifyWholeLog())
        violations += whole.violations(tolerating: []).map { "whole log: \($0)" }
        Swift.print("[soak] whole-log pass: \(whole.summary) in \(String(format: "%.1f", SoakFormat.seconds(ContinuousClock.now - finalPass))) s")

        sampler.stop()
        let samples = sampler.all
        let rss = samples.map(\.rssKiB).sorted()
        let leak = SoakLeakCheck.evaluate(rounds.map(\.rssMedianKiB))
        var series: [MemorySampler.Sample] = []
        if !samples.isEmpty {
            let points = min(10, samples.count)
            for k in 0..<points { series.append(samples[points == 1 ? 0 : k * (samples.count - 1) / (points - 1)]) }
        }
        return SoakReport(settings: settings, elapsed: SoakFormat.seconds(ContinuousClock.now - started), rounds: rounds,
                          violations: violations, tansu: tansu.totals, mock: mockStream.totals, transactions: transactions.totals,
                          connectionsKilled: proxy.connectionsKilled, connectionsKilledMidTransfer: proxy.connectionsKilledMidTransfer,
                          connectionsAccepted: proxy.connectionsAccepted, bytesGarbled: proxy.bytesGarbled,
                          stalls: counters.stalls.load(ordering: .relaxed), leaderMoves: counters.leaderMoves.load(ordering: .relaxed),
                          brokerRestarts: counters.brokerRestarts.load(ordering: .relaxed),
                          clientReplacements: counters.clientReplacements.load(ordering: .relaxed), epochBumps: epochBumps,
                          samples: samples.count, rssMinKiB: rss.first ?? 0, rssMedianKiB: rss.isEmpty ? 0 : rss[rss.count / 2],
                          rssMaxKiB: rss.last ?? 0, series: series, bound: bound, leak: leak, csv: sampler.csv.path)
    }

    /// One round: produce under faults, quiet down, settle, verify. Returns its summary and
    /// the idempotent Tansu producer's epoch bumps during it.
    private func round(_ n: Int) async -> (SoakRoundSummary, Int) {
        let plan = SoakFaultPlan.allCases[n % SoakFaultPlan.allCases.count]
        let seed = settings.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(n) &+ 1
        let startedAt = sampler.elapsed
        let began = ContinuousClock.now
        let before = (killed: proxy.connectionsKilled, garbled: proxy.bytesGarbled, stalls: counters.stalls.load(ordering: .relaxed),
                      moves: counters.leaderMoves.load(ordering: .relaxed), restarts: counters.brokerRestarts.load(ordering: .relaxed),
                      tansu: tansu.totals, mock: mockStream.totals, txn: transactions.totals)
        let bumpsBefore = await tansu.client.statistics().requestsSent[.initProducerId] ?? 0

        let tansuLedger = tansu.newRound()
        let mockLedger = mockStream.newRound()
        let transactionLedger = TransactionLedger(counters: counters)
        let produceUntil = ContinuousClock.now + settings.roundDuration
        let (proxy, counters, duration) = (self.proxy, self.counters, settings.roundDuration)
        let faults = Task { await driveProxyFaults(plan, proxy: proxy, seed: seed, round: duration, counters: counters) }

        var mockIssues = SoakIssues()
        let (tansu, transactions, mockFaults) = (self.tansu, self.transactions, self.mockFaults)
        await withTaskGroup(of: SoakIssues?.self) { group in
            group.addTask {
                await tansu.produce(tansuLedger, for: duration, perSecond: SoakRates.tansuPerSecond)
                return nil
            }
            for worker in 0..<SoakRates.transactionWorkers {
                group.addTask {
                    await transactions.work(until: produceUntil, ledger: transactionLedger, seed: seed &+ UInt64(worker) &* 7919)
                    return nil
                }
            }
            group.addTask { await mockFaults.run(mockLedger, until: produceUntil, seed: seed ^ 0x5DEE_CE66) }
            for await issues in group { if let issues { mockIssues.merge(issues) } }
        }

        // Faults go on a moment while the tail drains, then stop; the proxy forgets anything armed.
        try? await Task.sleep(for: settings.tail)
        faults.cancel()
        await faults.value
        proxy.setRandomKills(every: nil, seed: 0)
        proxy.resume()

        var tansuIssues = SoakIssues()
        if !(await tansu.waitForCallbacks(tansuLedger, upTo: .seconds(150))) {
            tansuIssues.add("not drained", "tansu: \(tansuLedger.pending) record(s) without a callback 150 s after the round")
        }
        let bumps = (await tansu.client.statistics().requestsSent[.initProducerId] ?? 0) - bumpsBefore
        var transactionIssues = await transactions.settle()

        // Garbled answers carry no checksum: failures and misreported offsets are allowed,
        // duplicates and reorderings only after an epoch bump (see ChaosTests).
        let garbling = plan == .garbling
        tansuIssues.merge(await tansu.verifyRound(tansuLedger, tolerant: garbling && bumps > 0))
        mockIssues.merge(await mockStream.verifyRound(mockLedger, tolerant: false))
        transactionIssues.merge(await transactions.verifyRound(transactionLedger))

        var tansuTolerated: Set<String> = ["unknown offset"]
        if garbling {
            tansuTolerated.formUnion(["failed", "failed but written", "offset mismatch"])
            if bumps > 0 { tansuTolerated.formUnion(["duplicate", "reordered"]) }
        }
        var transactionTolerated: Set<String> = ["failed", "failed but committed"]
        if garbling { transactionTolerated.insert("fenced") }
        var violations = tansuIssues.violations(tolerating: tansuTolerated).map { "tansu idempotent: \($0)" }
        violations += mockIssues.violations(tolerating: ["unknown offset"]).map { "mock idempotent: \($0)" }
        violations += transactionIssues.violations(tolerating: transactionTolerated).map { "transactions: \($0)" }

        if transactionIssues.count("fenced") > 0 {
            do {
                try await transactions.replaceClient()
                counters.clientReplacements.add(1, ordering: .relaxed)
            } catch {
                violations.append("transactions: cannot replace the fenced client: \(error)")
            }
        }

        let endedAt = sampler.elapsed
        let inRound = sampler.all.filter { $0.elapsed >= startedAt && $0.elapsed <= endedAt }.map(\.rssKiB)
        let rssMedian = SoakLeakCheck.median(inRound.isEmpty ? [ResidentMemory.currentKiB() ?? 0] : inRound)
        let (t, m, x) = (tansu.totals, mockStream.totals, transactions.totals)
        let seconds = SoakFormat.seconds(ContinuousClock.now - began)
        let line = """
            [soak] round \(n) \(plan.rawValue) (seed \(seed)): \(String(format: "%.1f", seconds)) s; \
            tansu +\(t.acked - before.tansu.acked) acked, +\(t.failed - before.tansu.failed) failed [\(tansuIssues.summary)]; \
            transactions +\(x.started - before.txn.started) (committed +\(x.committed - before.txn.committed), \
            aborted on purpose +\(x.abortedOnPurpose - before.txn.abortedOnPurpose), failed +\(x.failed - before.txn.failed)) \
            [\(transactionIssues.summary)]; mock +\(m.acked - before.mock.acked) acked [\(mockIssues.summary)]; \
            kills +\(proxy.connectionsKilled - before.killed), stalls +\(counters.stalls.load(ordering: .relaxed) - before.stalls), \
            garbled +\(proxy.bytesGarbled - before.garbled) B, epoch bumps +\(bumps), \
            moves +\(counters.leaderMoves.load(ordering: .relaxed) - before.moves), \
            restarts +\(counters.brokerRestarts.load(ordering: .relaxed) - before.restarts); \
            rss median \(SoakFormat.mib(rssMedian)) MiB; \(violations.isEmpty ? "ok" : "FAILED: \(violations.count) violation(s)")
            """
        return (SoakRoundSummary(round: n, plan: plan, seconds: seconds, rssMedianKiB: rssMedian, violations: violations, line: line),
                bumps)
    }
}
