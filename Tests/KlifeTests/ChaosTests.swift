import KlifeIO
import Foundation
import Klife
import KlifeProtocol
import KlifeTesting
import Synchronization
import XCTest

/// The producer under connection faults, against a real broker (Tansu) whose every
/// connection runs through a ``FaultProxy`` (the broker advertises the proxy's address).
///
/// A numbered stream (`seq-<n>`, keyed so each key stays on one partition) is produced
/// while the proxy kills connections at random or stalls them; afterwards every partition
/// is read back and checked: each number exactly once, per-partition order, one callback
/// per record, acknowledged offsets that hold what was acknowledged.
///
/// Scale: ~3,000 records over ~5 s by default. `KLIFE_SOAK=1` runs for
/// `KLIFE_SOAK_SECONDS` (default 120) at ~1,000 records/s. `KLIFE_CHAOS_SEED` fixes the
/// fault schedule (else a random seed, printed). `scripts/chaos.sh` loops over seeds.
final class ChaosTests: XCTestCase {
    /// (a) Idempotent producer, random kills at arbitrary byte positions.
    func testIdempotentProducerUnderRandomKillsIsExactlyOnceAndInOrder() async throws {
        let settings = ChaosSettings.current(test: "randomKills")
        let report = try await ChaosRun(settings: settings, idempotent: true, fault: .randomKills).run()
        report.print()
        XCTAssertGreaterThan(report.connectionsKilledMidTransfer, 0, "no kill cut a transfer \(settings.replay)")
        report.assertExactlyOnceInOrder(settings)
    }

    /// (b) Idempotent producer, stalls longer than the request timeout: the client times
    /// out, reconnects (through a stalled proxy), and on resume the stale requests reach
    /// the broker late, racing the retries.
    func testIdempotentProducerUnderStallsIsExactlyOnceAndInOrder() async throws {
        let settings = ChaosSettings.current(test: "stalls")
        let report = try await ChaosRun(settings: settings, idempotent: true, fault: .stalls).run()
        report.print()
        XCTAssertGreaterThan(report.stalls, 0, "no stall happened \(settings.replay)")
        report.assertExactlyOnceInOrder(settings)
    }

    /// (d) Idempotent producer, hostile bytes mid-stream: the proxy overwrites a few bytes of
    /// the broker's answers at random while requests are in flight. Each connection that
    /// receives garbage fails with a typed error (bad frame size, wrong correlation id,
    /// undecodable body, or a timeout waiting for a frame that never completes) and its
    /// records are retried on a new connection. The process never traps, nothing
    /// acknowledged is lost, every callback runs exactly once.
    ///
    /// Kafka answers carry no checksum, so garbage can also decode as a plausible answer: a
    /// corrupted error code fails records explicitly, a corrupted offset misreports one, and
    /// an answer forged into "your producer state is lost" makes the client take a new epoch
    /// and resend a batch the broker already has — a duplicate no client can avoid. So
    /// duplicates are allowed only when such an epoch bump happened.
    func testIdempotentProducerUnderGarbledResponsesLosesNothing() async throws {
        let settings = ChaosSettings.current(test: "garbling")
        let report = try await ChaosRun(settings: settings, idempotent: true, fault: .garbling).run()
        report.print()
        let replay = settings.replay
        XCTAssertGreaterThan(report.bytesGarbled, 0, "nothing was garbled \(replay)")
        XCTAssertGreaterThan(report.connectionsAccepted, 2, "no connection failed on garbage \(replay)")
        XCTAssertTrue(report.drained, "not every record completed \(replay)")
        XCTAssertEqual(report.lost, [], "acknowledged but missing \(replay)")
        XCTAssertEqual(report.badCallbackCounts, [:], "callbacks not exactly once \(replay)")
        XCTAssertEqual(report.foreign, [], "unexpected values in the topic \(replay)")
        let epochBumps = (report.requestsSent[.initProducerId] ?? 1) - 1
        if !report.duplicates.isEmpty {
            XCTAssertGreaterThan(epochBumps, 0, "duplicates without an epoch bump \(report.duplicates) \(replay)")
        }
        let extraCopies = report.duplicates.values.reduce(0) { $0 + $1 - 1 }
        XCTAssertEqual(report.logSize, report.records - report.failures.count + report.failedButWritten.count + extraCopies,
                       "log size disagrees with the outcomes \(replay)")
    }

    /// (c) Documentation, not a contract: without idempotence (random kills plus one stall),
    /// a request whose answer was lost is resent and written twice, and retries overtake
    /// later batches. Only at-least-once is asserted (nothing acknowledged is missing, every
    /// callback ran once); duplicates and reorderings are printed.
    func testNonIdempotentProducerUnderFaultsDocumentsDuplicates() async throws {
        let settings = ChaosSettings.current(test: "nonIdempotent")
        let report = try await ChaosRun(settings: settings, idempotent: false, fault: .randomKillsAndStall).run()
        report.print()
        if !report.duplicates.isEmpty {
            let shown = report.duplicates.sorted { $0.key < $1.key }.prefix(20)
                .map { "seq-\($0.key)×\($0.value)" }.joined(separator: ", ")
            Swift.print("[chaos] non-idempotent duplicates (first 20): \(shown)")
        }
        if !report.reorderings.isEmpty {
            Swift.print("[chaos] non-idempotent reorderings (first 10): \(report.reorderings.prefix(10).joined(separator: "; "))")
        }
        XCTAssertEqual(report.lost, [], "acknowledged but missing \(settings.replay)")
        XCTAssertEqual(report.badCallbackCounts, [:], "callbacks not exactly once \(settings.replay)")
        XCTAssertEqual(report.foreign, [], "unexpected values in the topic \(settings.replay)")
    }
}

extension ChaosTests {
    /// The example of docs/testing.md ("Fault injection"), kept compiling and passing.
    func testDocsExampleOrdersSurviveConnectionKills() async throws {
        let (broker, proxy) = try await TestBroker.startBehindProxy()
        defer { proxy.stop(); broker.stop() }
        var config = KlifeConfiguration(bootstrapServers: [proxy.address])
        config.requestTimeout = .seconds(1)
        let client = try await KlifeClient.connect(config)
        try await client.createTopic("orders", partitions: 3)

        proxy.setRandomKills(every: .milliseconds(50) ... .milliseconds(300), seed: 42)
        for i in 0..<1_000 {
            client.produce(ProducerRecord(topic: "orders", key: "k\(i % 10)", value: "order-\(i)")) { _ in }
            if i % 100 == 99 { try await Task.sleep(for: .milliseconds(50)) }   // spread over ~0.5 s
        }
        await client.flush()
        proxy.setRandomKills(every: nil, seed: 0)     // quiet before reading back

        let values = try await client.allRecords(topic: "orders").compactMap(\.valueString)
        XCTAssertEqual(Set(values).count, 1_000)      // nothing lost
        XCTAssertEqual(values.count, 1_000)           // nothing twice (idempotent producer)
        XCTAssertGreaterThan(proxy.connectionsKilled, 0)
        await client.close()
    }
}

// MARK: - Settings

/// Scale and seed of one chaos test, from the environment.
struct ChaosSettings {
    var test: String
    var soak: Bool
    var seed: UInt64
    var duration: Duration
    var records: Int
    var partitions: Int32

    /// `KLIFE_CHAOS_SEED=<seed>` (plus `KLIFE_SOAK=1 KLIFE_SOAK_SECONDS=<s>` when soaking) replays this run.
    var replay: String {
        "(seed \(seed): replay with KLIFE_CHAOS_SEED=\(seed)\(soak ? " KLIFE_SOAK=1 KLIFE_SOAK_SECONDS=\(duration.components.seconds)" : ""))"
    }

    static func current(test: String) -> ChaosSettings {
        let env = ProcessInfo.processInfo.environment
        let soak = env["KLIFE_SOAK"].map { !$0.isEmpty && $0 != "0" } ?? false
        let seed = env["KLIFE_CHAOS_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...999_999_999)
        let seconds = soak ? max(5, env["KLIFE_SOAK_SECONDS"].flatMap { Int($0) } ?? 120) : 5
        let records = soak ? min(seconds * 1_000, 1_000_000) : 3_000
        let partitions = Int32(3 + seed % 4)     // 3...6
        Swift.print("[chaos] \(test): seed=\(seed) soak=\(soak) duration=\(seconds)s records=\(records) partitions=\(partitions)")
        return ChaosSettings(test: test, soak: soak, seed: seed, duration: .seconds(seconds),
                             records: records, partitions: partitions)
    }
}

/// xorshift64* for the test's own choices (stall lengths), seeded like the proxy.
struct ChaosRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed ^ 0xA5A5_5A5A_1234_5678 }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    mutating func milliseconds(_ range: ClosedRange<Int>) -> Duration {
        .milliseconds(range.lowerBound + Int(next() % UInt64(range.count)))
    }
}

// MARK: - One run

/// Per-record outcomes reported by delivery callbacks (called on reactor threads).
final class DeliveryLedger: Sendable {
    struct State {
        var callbacks: [UInt8]
        var acked: [Int64]           // offset, -1 unknown (duplicate-sequence ack), -2 none
        var ackedPartition: [Int32]
        var failures: [Int: String]  // seq -> error
        var completed = 0
    }
    let state: Locked<State>

    init(count: Int) {
        state = Locked(State(callbacks: Array(repeating: 0, count: count), acked: Array(repeating: -2, count: count),
                            ackedPartition: Array(repeating: -1, count: count), failures: [:]))
    }

    func record(_ seq: Int, _ result: Result<RecordMetadata, KlifeError>) {
        state.withLock { s in
            s.callbacks[seq] &+= 1
            s.completed += 1
            switch result {
            case .success(let meta):
                s.acked[seq] = meta.offset
                s.ackedPartition[seq] = meta.partition
            case .failure(let error):
                s.failures[seq] = "\(error.code): \(error)"
            }
        }
    }

    var completed: Int { state.withLock { $0.completed } }
}

final class ChaosRun: Sendable {
    enum Fault { case randomKills, stalls, randomKillsAndStall, garbling }

    let settings: ChaosSettings
    let idempotent: Bool
    let fault: Fault

    /// Request timeout while faults run: short, so stalls outlast it.
    static let requestTimeout: Duration = .seconds(1)

    /// Runs the stream under faults and analyses the log; an error thrown on the way names the seed.
    func run() async throws -> ChaosReport {
        do {
            return try await runUnreported()
        } catch {
            XCTFail("chaos run failed: \(error) \(settings.replay)")
            throw error
        }
    }

    private func runUnreported() async throws -> ChaosReport {
        let (broker, proxy) = try await TestBroker.startBehindProxy()
        defer {
            proxy.stop()
            broker.stop()
        }
        let started = ContinuousClock.now
        var config = KlifeConfiguration(bootstrapServers: [proxy.address])
        config.connectTimeout = .seconds(1)
        config.requestTimeout = Self.requestTimeout
        config.producer.idempotent = idempotent
        config.producer.maxInFlightPerBroker = 5
        config.producer.retryBackoff = .milliseconds(20)
        config.producer.retryBackoffMax = .milliseconds(250)
        config.producer.deliveryTimeout = settings.soak ? .seconds(300) : .seconds(60)
        config.producer.linger = .milliseconds(1)
        let producer = try await KlifeClient.connect(config)
        let topic = TestCluster.uniqueTopicName("chaos-\(settings.test)")
        try await producer.createTopic(topic, partitions: settings.partitions)
        _ = try await producer.metadata(topics: [topic])

        let ledger = DeliveryLedger(count: settings.records)
        let faults = Task { await drive(proxy) }

        // Produce the numbered stream paced over the test's duration.
        let clock = ContinuousClock()
        let produceStart = clock.now
        let total = settings.records
        let durationSeconds = Double(settings.duration.components.seconds)
        var next = 0
        while next < total {
            let elapsed = (clock.now - produceStart) / .seconds(1)
            let due = elapsed >= durationSeconds ? total : min(total, Int(Double(total) * elapsed / durationSeconds) + 1)
            while next < due {
                let seq = next
                let record = ProducerRecord(topic: topic, key: "key-\(seq % 64)", value: "seq-\(seq)")
                producer.produce(record) { result in ledger.record(seq, result) }
                next += 1
            }
            if next < total { try await Task.sleep(for: .milliseconds(5)) }
        }

        // Let faults continue a moment while the tail drains, then stop them and wait.
        _ = await waitFor(ledger, total, upTo: .seconds(1))
        faults.cancel()
        await faults.value
        proxy.setRandomKills(every: nil, seed: 0)
        proxy.resume()
        let drained = await waitFor(ledger, total, upTo: config.producer.deliveryTimeout + .seconds(15))
        let stats = await producer.statistics()
        await producer.close()

        // Read back. Metadata points at the proxy, which is quiet now.
        var readerConfig = KlifeConfiguration(bootstrapServers: [broker.bootstrapServers])
        readerConfig.producer.idempotent = false
        readerConfig.requestTimeout = .seconds(10)
        let reader = try await KlifeClient.connect(readerConfig)
        var log: [Int32: [ConsumerRecord]] = [:]
        for p in 0..<settings.partitions {
            log[p] = try await reader.allRecords(topic: topic, partition: p)
        }
        await reader.close()

        return ChaosReport(settings: settings, idempotent: idempotent, ledger: ledger.state.withLock { $0 },
                           log: log, drained: drained, connectionsKilled: proxy.connectionsKilled,
                           connectionsKilledMidTransfer: proxy.connectionsKilledMidTransfer,
                           connectionsAccepted: proxy.connectionsAccepted, stalls: stallCount.load(ordering: .relaxed),
                           bytesGarbled: proxy.bytesGarbled,
                           retriesRequests: stats.requestsSent, elapsed: ContinuousClock.now - started)
    }

    private let stallCount = Atomic<Int>(0)

    init(settings: ChaosSettings, idempotent: Bool, fault: Fault) {
        self.settings = settings
        self.idempotent = idempotent
        self.fault = fault
    }

    /// Runs the fault plan until cancelled (bounded by count as well).
    private func drive(_ proxy: FaultProxy) async {
        var random = ChaosRandom(seed: settings.seed)
        switch fault {
        case .randomKills:
            proxy.setRandomKills(every: .milliseconds(40) ... .milliseconds(300), seed: settings.seed)
        case .garbling:
            proxy.setRandomGarbling(every: .milliseconds(40) ... .milliseconds(300), seed: settings.seed)
        case .randomKillsAndStall:
            proxy.setRandomKills(every: .milliseconds(40) ... .milliseconds(300), seed: settings.seed)
            try? await Task.sleep(for: random.milliseconds(800...1500))
            guard !Task.isCancelled else { return }
            await stall(proxy, for: random.milliseconds(1500...2500))
        case .stalls:
            // Run, stall (1.5–2.5 × the request timeout), repeat; at most 1,000 cycles.
            for _ in 0..<1_000 {
                try? await Task.sleep(for: random.milliseconds(400...1200))
                guard !Task.isCancelled else { return }
                await stall(proxy, for: random.milliseconds(1500...2500))
                guard !Task.isCancelled else { return }
            }
        }
    }

    private func stall(_ proxy: FaultProxy, for duration: Duration) async {
        proxy.pause()
        stallCount.add(1, ordering: .relaxed)
        // Not cancellable: a stall always lasts longer than the request timeout.
        let until = ContinuousClock.now + duration
        while ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(20)) }
        proxy.resume()
    }

    private func waitFor(_ ledger: DeliveryLedger, _ total: Int, upTo timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if ledger.completed >= total { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return ledger.completed >= total
    }
}

// MARK: - Analysis

struct ChaosReport {
    let settings: ChaosSettings
    let idempotent: Bool
    let records: Int
    let drained: Bool
    let connectionsKilled: Int
    let connectionsKilledMidTransfer: Int
    let connectionsAccepted: Int
    let stalls: Int
    /// Bytes from the broker the proxy overwrote with garbage.
    let bytesGarbled: Int
    let elapsed: Duration
    let requestsSent: [ApiKey: Int]

    /// Sequence numbers acknowledged as written but absent from the log.
    var lost: [Int] = []
    /// Sequence numbers present more than once, with their count.
    var duplicates: [Int: Int] = [:]
    /// Per-partition order violations, described.
    var reorderings: [String] = []
    /// Sequence numbers whose callback ran other than exactly once, with the count.
    var badCallbackCounts: [Int: Int] = [:]
    /// Records whose delivery failed (seq -> error).
    var failures: [Int: String] = [:]
    /// Failed records that are in the log nonetheless (written, answer lost, then timed out).
    var failedButWritten: [Int] = []
    /// Acknowledged (partition, offset) pairs that hold another record.
    var offsetMismatches: [String] = []
    /// Acknowledged without a known offset (the broker answered DUPLICATE_SEQUENCE_NUMBER).
    var unknownOffsetAcks = 0
    /// Values that are not `seq-<n>` with n in range.
    var foreign: [String] = []
    /// Records read back.
    var logSize = 0

    init(settings: ChaosSettings, idempotent: Bool, ledger: DeliveryLedger.State, log: [Int32: [ConsumerRecord]],
         drained: Bool, connectionsKilled: Int, connectionsKilledMidTransfer: Int, connectionsAccepted: Int, stalls: Int,
         bytesGarbled: Int = 0, retriesRequests: [ApiKey: Int], elapsed: Duration) {
        self.settings = settings
        self.idempotent = idempotent
        self.records = settings.records
        self.drained = drained
        self.connectionsKilled = connectionsKilled
        self.connectionsKilledMidTransfer = connectionsKilledMidTransfer
        self.connectionsAccepted = connectionsAccepted
        self.stalls = stalls
        self.bytesGarbled = bytesGarbled
        self.elapsed = elapsed
        self.requestsSent = retriesRequests
        let n = settings.records

        var occurrences = [Int](repeating: 0, count: n)
        var location: [Int: (Int32, Int64)] = [:]
        for (partition, records) in log.sorted(by: { $0.key < $1.key }) {
            var previous: (seq: Int, offset: Int64)?
            for r in records {
                logSize += 1
                guard let text = r.valueString, text.hasPrefix("seq-"), let seq = Int(text.dropFirst(4)), (0..<n).contains(seq) else {
                    foreign.append("\(partition)@\(r.offset): \(r.valueString ?? "nil")")
                    continue
                }
                occurrences[seq] += 1
                if location[seq] == nil { location[seq] = (partition, r.offset) }
                if let p = previous, seq <= p.seq {
                    reorderings.append("partition \(partition): seq-\(seq)@\(r.offset) after seq-\(p.seq)@\(p.offset)")
                }
                previous = (seq, r.offset)
            }
        }
        for seq in 0..<n {
            if occurrences[seq] > 1 { duplicates[seq] = occurrences[seq] }
            if ledger.callbacks[seq] != 1 { badCallbackCounts[seq] = Int(ledger.callbacks[seq]) }
            if let error = ledger.failures[seq] {
                failures[seq] = error
                if occurrences[seq] > 0 { failedButWritten.append(seq) }
            } else if ledger.callbacks[seq] > 0 {
                if occurrences[seq] == 0 { lost.append(seq) }
                let offset = ledger.acked[seq]
                if offset == -1 {
                    unknownOffsetAcks += 1
                } else if offset >= 0, let at = location[seq], occurrences[seq] == 1,
                          at.0 != ledger.ackedPartition[seq] || at.1 != offset {
                    offsetMismatches.append("seq-\(seq) acked at \(ledger.ackedPartition[seq])@\(offset), found at \(at.0)@\(at.1)")
                }
            }
        }
    }

    func print() {
        let failedCodes = Dictionary(grouping: failures.values, by: { $0.prefix(while: { $0 != ":" }) }).mapValues(\.count)
        Swift.print("""
            [chaos] \(settings.test): seed=\(settings.seed) idempotent=\(idempotent) records=\(records) \
            partitions=\(settings.partitions) read=\(logSize) lost=\(lost.count) duplicates=\(duplicates.count) \
            reordered=\(reorderings.count) failed=\(failures.count)\(failedCodes.isEmpty ? "" : " \(failedCodes)") \
            failedButWritten=\(failedButWritten.count) unknownOffsetAcks=\(unknownOffsetAcks) \
            offsetMismatches=\(offsetMismatches.count) badCallbacks=\(badCallbackCounts.count) drained=\(drained) \
            kills=\(connectionsKilled) (mid-transfer \(connectionsKilledMidTransfer)) connections=\(connectionsAccepted) stalls=\(stalls) garbled=\(bytesGarbled) \
            produceRequests=\(requestsSent[.produce] ?? 0) initProducerId=\(requestsSent[.initProducerId] ?? 0) \
            elapsed=\(elapsed)
            """)
    }

    /// The idempotent producer's contract: nothing lost, nothing twice, order kept, one
    /// callback per record, truthful offsets, and (with a generous delivery timeout) no failures.
    func assertExactlyOnceInOrder(_ settings: ChaosSettings, file: StaticString = #filePath, line: UInt = #line) {
        let replay = settings.replay
        XCTAssertTrue(drained, "not every record completed within the delivery timeout \(replay)", file: file, line: line)
        XCTAssertEqual(lost.count, 0, "acknowledged but missing (first 20): \(lost.prefix(20)) \(replay)", file: file, line: line)
        XCTAssertEqual(duplicates.count, 0,
                       "duplicated (first 20): \(duplicates.sorted { $0.key < $1.key }.prefix(20).map { "seq-\($0.key)×\($0.value)" }) \(replay)",
                       file: file, line: line)
        XCTAssertEqual(reorderings.count, 0, "out of order (first 10): \(reorderings.prefix(10)) \(replay)", file: file, line: line)
        XCTAssertEqual(badCallbackCounts.count, 0,
                       "callbacks not exactly once (first 20): \(badCallbackCounts.sorted { $0.key < $1.key }.prefix(20)) \(replay)",
                       file: file, line: line)
        XCTAssertEqual(offsetMismatches.count, 0, "acknowledged offsets wrong (first 10): \(offsetMismatches.prefix(10)) \(replay)",
                       file: file, line: line)
        XCTAssertEqual(foreign.count, 0, "unexpected values (first 10): \(foreign.prefix(10)) \(replay)", file: file, line: line)
        XCTAssertEqual(failures.count, 0,
                       "delivery failures (first 10): \(failures.sorted { $0.key < $1.key }.prefix(10)) \(replay)",
                       file: file, line: line)
        XCTAssertEqual(logSize, records - failures.count + failedButWritten.count,
                       "log holds \(logSize) records for \(records) produced \(replay)", file: file, line: line)
    }
}
