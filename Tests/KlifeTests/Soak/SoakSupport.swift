import Foundation
import Glibc
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import Synchronization
import XCTest

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
/// The consumer group: one more member than it has slots (a restarted slot's new member may
/// start while the old one's memory is being given back), each ``SoakGroupSettings/memberBytes``:
/// its prefetch bound (`maxBufferedBytes`) plus one producer batch, held as records of the
/// smallest size, the fetch answer's bytes, and the member's own client.
///
/// The fixed allowance (``allowanceBytes``) covers what grows independently of those limits
/// once the soak runs; justified term by term:
/// - threads: 4 reactors, 2 resolvers, the proxy, the mock's reader, the sampler and the
///   cooperative pool each get a glibc malloc arena (64 MiB reserved each, of which a busy
///   thread keeps ~1–4 MiB resident after frees, fragmentation included): 24 MiB;
/// - reading back: a Fetch answer of up to 1 MiB held as bytes, then as decoded batches and as
///   `ConsumerRecord`s (≈ 3 copies), while the previous page is released: 8 MiB;
/// - the harness's ledgers: per round ≤ 60 s × 400/s records per stream at ≈ 64 B each
///   (≈ 1.5 MiB each for two streams), the transactions' ledger, the final pass's one byte
///   per record produced (≤ 2 MiB for 30 minutes), and the group's one byte per offset read
///   (≤ 1 MiB for 30 minutes) with a few hundred assignments: 8 MiB;
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

    static func derive(baselineKiB: Int, clients: [(String, KlifeConfiguration)], groupMembers: Int) -> SoakMemoryBound {
        let stride = MemoryLayout<PendingRecord>.stride
        let group = Client(name: "consumer group (\(groupMembers)+1 members)", bytes: (groupMembers + 1) * SoakGroupSettings.memberBytes)
        return SoakMemoryBound(baselineKiB: baselineKiB, clients: clients.map { name, configuration in
            let producer = configuration.producer
            var ring = 1
            while ring < producer.queueCapacity { ring <<= 1 }
            let bytes = 2 * producer.maxBufferedBytes
                + producer.maxBufferedRecords * (2 * stride + 256)
                + configuration.reactorCount * ring * (stride + 8)
            return Client(name: name, bytes: bytes)
        } + [group])
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
                    let probe = await probeStuck(client, topic: topic, partition: partition, offset: offset, isolation: isolation)
                    throw SoakError("\(topic)/\(partition): no progress at offset \(offset) (end \(end), \(isolation)); \(probe)")
                }
                try await Task.sleep(for: .milliseconds(20))
            } else {
                stuck = 0
            }
            offset = page.nextOffset
        }
    }

    /// Reads one partition from `offset` to its high watermark at read_uncommitted, raw, and
    /// keeps what the COMMIT/ABORT markers in the log say is committed (the client's
    /// `TransactionFilter` with no aborted-transaction list): what a read_committed reader must
    /// see, decided from the log alone. The soak checks transactions this way because Tansu
    /// (0.6) can leave its last stable offset behind transactions whose markers are written
    /// (an EndTxn cut off by a dropped connection leaves that epoch's state undecided for good;
    /// `brokerStable` reports it). Stops before the first transaction without a marker.
    static func readDecided(_ client: KlifeClient, topic: String, partition: Int, from offset: Int64,
                            visit: (Int64, String?) -> Void) async throws -> (next: Int64, highWatermark: Int64, brokerStable: Int64) {
        var batches: [DecodedBatch] = []
        var position = offset
        var highWatermark: Int64 = -1
        var stable: Int64 = -1
        var stuck = 0
        let topicID = client.metadataStore.snapshot.metadata.topics[topic]?.topicID ?? .zero
        while highWatermark < 0 || position < highWatermark {
            guard let node = client.metadataStore.snapshot.metadata.leader(topic: topic, partition: Int32(partition)) else {
                throw SoakError("\(topic)/\(partition): no leader")
            }
            let request = FetchRequest(maxWaitMs: 200, minBytes: 1, maxBytes: 4 << 20, isolationLevel: 0, topics: [
                .init(name: topic, topicID: topicID,
                      partitions: [.init(partition: Int32(partition), fetchOffset: position, partitionMaxBytes: 4 << 20)]),
            ])
            let response = try await client.roundTrip(request, node: node, purpose: .fetch)
            guard let p = response.responses.first?.partitions.first, p.errorCode == 0 else {
                throw SoakError("\(topic)/\(partition) at \(position): fetch answered \(response.responses.first?.partitions.first?.errorCode ?? -1)")
            }
            highWatermark = p.highWatermark
            stable = p.lastStableOffset
            let decoded = try RecordBatchDecoder.decode(p.records, maxUncompressedBytes: 1 << 26)
            guard let last = decoded.batches.last else {
                if position >= highWatermark { break }
                stuck += 1
                if stuck >= 50 { throw SoakError("\(topic)/\(partition): no progress at \(position) (high watermark \(highWatermark))") }
                try await Task.sleep(for: .milliseconds(20))
                continue
            }
            stuck = 0
            batches += decoded.batches
            position = last.header.lastOffset + 1
        }
        let output = TransactionFilter(isolation: .readCommitted, lastStableOffset: max(highWatermark, 0), abortedTransactions: [])
            .apply(batches, from: offset)
        for (b, range) in output.visible {
            for r in batches[b].records[range] { visit(r.offset, r.value.flatMap { String(validating: $0, as: UTF8.self) }) }
        }
        return (output.nextOffset, highWatermark, stable)
    }

    /// The record batches from the first open transaction on (read_uncommitted, raw headers):
    /// base offset, producer id and epoch, transactional/control flags and the first value, to
    /// tell which transaction stays undecided.
    static func batchesAround(_ client: KlifeClient, topic: String, partition: Int, offset: Int64) async -> String {
        do {
            let stable = try await client.fetch(topic: topic, partition: Int32(partition), offset: offset, maxWait: .milliseconds(200),
                                                isolation: .readCommitted).lastStableOffset
            guard let node = client.metadataStore.snapshot.metadata.leader(topic: topic, partition: Int32(partition)) else {
                return "no leader"
            }
            let request = FetchRequest(maxWaitMs: 200, minBytes: 1, maxBytes: 1 << 20, isolationLevel: 0, topics: [
                .init(name: topic, topicID: client.metadataStore.snapshot.metadata.topics[topic]?.topicID ?? .zero,
                      partitions: [.init(partition: Int32(partition), fetchOffset: stable, partitionMaxBytes: 1 << 20)]),
            ])
            let response = try await client.roundTrip(request, node: node)
            guard let p = response.responses.first?.partitions.first else { return "no answer" }
            let decoded = try RecordBatchDecoder.decode(p.records, verifyCRC: false, maxUncompressedBytes: 1 << 24)
            let lines = decoded.batches.prefix(12).map { b -> String in
                let h = b.header
                let first = b.records.first.flatMap { $0.value.flatMap { String(validating: $0, as: UTF8.self) } } ?? "-"
                return "\(h.baseOffset)-\(h.lastOffset) pid \(h.producerID) e\(h.producerEpoch)\(h.isTransactional ? " txn" : "")\(h.isControl ? " ctl" : "") \(first)"
            }
            return "from lso \(stable): " + lines.joined(separator: " | ")
        } catch {
            return "batches: \(error)"
        }
    }

    /// What other readers see where a read made no progress: a new client, and the same
    /// client with a far larger size limit at read_uncommitted.
    static func probeStuck(_ client: KlifeClient, topic: String, partition: Int, offset: Int64,
                           isolation: IsolationLevel) async -> String {
        func describe(_ page: FetchResult) -> String {
            "\(page.records.count) records, first \(page.records.first.map { "\($0.offset)" } ?? "-"), next \(page.nextOffset), "
                + "hw \(page.highWatermark), lso \(page.lastStableOffset), log start \(page.logStartOffset)"
        }
        var lines: [String] = []
        do {
            var config = KlifeConfiguration(bootstrapServers: client.configuration.bootstrapServers)
            config.producer.idempotent = false
            let fresh = try await KlifeClient.connect(config)
            let page = try await fresh.fetch(topic: topic, partition: Int32(partition), offset: offset, maxWait: .milliseconds(200),
                                             isolation: isolation)
            lines.append("new client: \(describe(page))")
            let raw = try await fresh.fetch(topic: topic, partition: Int32(partition), offset: offset, maxBytes: 32 << 20,
                                            maxWait: .milliseconds(200), isolation: .readUncommitted)
            lines.append("new client, 32 MiB, read_uncommitted: \(describe(raw))")
            await fresh.close()
        } catch {
            lines.append("new client: \(error)")
        }
        do {
            let raw = try await client.fetch(topic: topic, partition: Int32(partition), offset: offset, maxBytes: 32 << 20,
                                             maxWait: .milliseconds(200), isolation: .readUncommitted)
            lines.append("same client, 32 MiB, read_uncommitted: \(describe(raw))")
        } catch {
            lines.append("same client: \(error)")
        }
        return lines.joined(separator: "; ")
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
