import Foundation
import Glibc
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import Synchronization
import XCTest

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
