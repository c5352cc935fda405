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
///   request timeout, repeated stalls, and garbled broker answers (the transactional pool
///   rests in garbling rounds: Tansu never times out a transaction a forged answer left open);
/// - against librdkafka's mock cluster (three brokers): an idempotent producer with two
///   reactors (a numbered stream per partition) while partition leaders move with requests in
///   flight and brokers go down and come back. Only faults a real broker produces are used.
///   The mock checks no sequence numbers for idempotent producers, so it writes whatever
///   reaches it in the order it arrives; therefore a broker goes down only when nothing is in
///   flight, and before each fault every record in flight is answered (a request still on its
///   way to a former leader could otherwise land after a leader moved back, which a real
///   broker would refuse with OUT_OF_ORDER_SEQUENCE_NUMBER);
/// - a consumer group on Tansu (``SoakConsumerGroup``, three members, each with a client of its
///   own behind the same proxy) reading the idempotent stream's topic: in kill and stall rounds
///   one member is killed (its client closes without leaving) and another closes gracefully,
///   each replaced after a short or a long pause; in garbling rounds the group rests (every
///   member leaves first, new ones join once the faults stop). After each round, faults off,
///   the group catches up with the end of the log and ``GroupLedger`` checks that no offset was
///   skipped and that every re-delivery came from the commit its partition's new owner started at.
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
/// bounded run of three short rounds (one per fault plan, ~15 s) exercises the same code with
/// the same assertions; its group has one member, which joins during the first round and
/// leaves before the garbling round (Tansu holds every join for half the session timeout, so
/// restarts would cost seconds each). `KLIFE_SOAK_SEED` fixes the fault schedules (every run prints its seed).
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
        XCTAssertGreaterThan(report.group.ledger.verified, 0, "the consumer group read nothing \(replay)")
        XCTAssertGreaterThan(report.group.closed, 0, "no group member left \(replay)")
        if settings.minutes != nil {
            XCTAssertGreaterThan(report.group.killed, 0, "no group member was killed \(replay)")
        }
    }

    /// The group's ledger accepts re-deliveries from the commit a partition's new owner started
    /// at, and flags a read below it, a gap or a repeat inside one assignment, an offset nobody
    /// read, and a commit that went back.
    func testGroupLedgerAllowsRedeliveryFromTheCommitOnly() {
        func batch(_ offsets: Range<Int64>, assignment: UInt64) -> ConsumerBatch {
            ConsumerBatch(topicPartition: TopicPartition(topic: "t", partition: 0),
                          records: ConsumerRecords(topic: "t", partition: 0, offsets.map {
                              ConsumerRecord(topic: "t", partition: 0, offset: $0, timestamp: 0, key: nil,
                                             value: Array("v".utf8), headers: [])
                          }),
                          highWatermark: offsets.upperBound, lastStableOffset: -1, nextOffset: offsets.upperBound,
                          assignmentID: assignment)
        }
        let ledger = GroupLedger(partitions: 1)
        ledger.assigned(member: 1, name: "a", partition: 0, assignmentID: 1, committed: 0)
        ledger.read(member: 1, name: "a", batch: batch(0..<10, assignment: 1))
        ledger.ended(partition: 0, how: "killed", committed: 6)
        ledger.assigned(member: 2, name: "b", partition: 0, assignmentID: 1, committed: 6)
        ledger.read(member: 2, name: "b", batch: batch(6..<12, assignment: 1))
        let clean = ledger.verify(ends: [12])
        XCTAssertTrue(clean.counts.isEmpty, clean.summary)
        XCTAssertEqual(ledger.totals.redelivered, 4, "6..<10 read again from the commit")

        ledger.assigned(member: 3, name: "c", partition: 0, assignmentID: 4, committed: 12)
        ledger.read(member: 3, name: "c", batch: batch(11..<13, assignment: 4))
        ledger.read(member: 3, name: "c", batch: batch(15..<16, assignment: 4))
        ledger.read(member: 3, name: "c", batch: batch(15..<17, assignment: 4))
        ledger.assigned(member: 4, name: "d", partition: 0, assignmentID: 1, committed: 10)
        ledger.read(member: 4, name: "d", batch: batch(17..<18, assignment: 1))
        ledger.read(member: 4, name: "d", batch: batch(18..<19, assignment: 9))
        let broken = ledger.verify(ends: [20])
        XCTAssertEqual(broken.count("before commit"), 1, broken.summary)
        XCTAssertEqual(broken.count("gap in assignment"), 1, broken.summary)
        XCTAssertEqual(broken.count("repeat in assignment"), 1, broken.summary)
        XCTAssertEqual(broken.count("commit went back"), 1, broken.summary)
        XCTAssertEqual(broken.count("started past commit"), 1, broken.summary)
        XCTAssertEqual(broken.count("unattributed"), 1, broken.summary)
        XCTAssertEqual(broken.count("skipped"), 2, "13..<15 and 19..<20: \(broken.summary)")
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
