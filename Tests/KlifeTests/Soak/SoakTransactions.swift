import Foundation
import Glibc
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import Synchronization
import XCTest

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
                // Undecided in the log: a transaction with no marker (the broker's own last stable
                // offset is only reported, see SoakLog.readDecided).
                if let read = try? await SoakLog.readDecided(client, topic: topic, partition: p, from: cursors[p], visit: { _, _ in }) {
                    if read.next >= read.highWatermark { break }
                    last = "a transaction without a marker at \(read.next) < high watermark \(read.highWatermark)"
                }
                if ContinuousClock.now >= deadline {
                    let around = await SoakLog.batchesAround(client, topic: topic, partition: p, offset: cursors[p])
                    issues.add("undecided", "\(topic)/\(p): \(last) after the pool's members took new epochs; \(around)")
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
                let (next, _, stable) = try await SoakLog.readDecided(client, topic: topic, partition: p, from: cursors[p]) { offset, value in
                    read += 1
                    guard let (tag, t, i) = SoakLog.parse(value), tag == "x", let txn = txns[t], i >= 0, i < txn.size else {
                        issues.add("foreign", "\(topic)/\(p)@\(offset): \(value ?? "nil")")
                        return
                    }
                    seen[t, default: []].append((p, i))
                }
                if stable >= 0 && stable < next {
                    issues.add("broker lso behind", "\(topic)/\(p): the broker's last stable offset \(stable) < \(next), decided in the log")
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
                let (next, _, _) = try await SoakLog.readDecided(client, topic: topic, partition: p, from: 0) { offset, value in
                    guard let (tag, t, i) = SoakLog.parse(value), tag == "x", t >= 0, t < counts.count, i >= 0,
                          i < Int(s.sizes[t]) else {
                        issues.add("foreign", "\(topic)/\(p)@\(offset): \(value ?? "nil") (whole log)")
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
