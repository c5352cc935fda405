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
