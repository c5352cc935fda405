@testable import Klife
import XCTest

/// The adaptive limit's AIMD algorithm, fed with synthetic latency sequences on a time the
/// tests choose (nanoseconds): fast decrease on a spike, slow recovery, bounds, errors, no
/// change without samples, one decrease per round trip, run-time changes, and the recent
/// latency window.
final class AdaptiveLimiterTests: XCTestCase {
    private let ms: UInt64 = 1_000_000

    /// Batches one after another: each handed out when the previous finished, `records` each
    /// (at most the limit), taking `perRecord` each record.
    private struct Run {
        var limiter: AdaptiveLimiter
        var now: UInt64 = 1_000_000_000
        var limits: [Int] = []

        init(_ settings: AdaptiveLimit) { limiter = AdaptiveLimiter(settings) }

        mutating func batches(_ n: Int, records: Int, perRecord: UInt64) {
            for _ in 0..<n {
                let size = min(records, limiter.currentLimit)
                let start = now
                now += UInt64(size) * perRecord
                limiter.recordSuccess(records: size, handedOutAt: start, now: now, inFlight: size)
                limits.append(limiter.currentLimit)
            }
        }

        mutating func failure() {
            let start = now
            now += 1
            limiter.recordFailure(handedOutAt: start, now: now)
            limits.append(limiter.currentLimit)
        }
    }

    func testStartsAtTheInitialLimitAndNothingChangesWithoutSamples() {
        let limiter = AdaptiveLimiter(AdaptiveLimit(minimum: 5, maximum: 100, initial: 40))
        XCTAssertEqual(limiter.currentLimit, 40)
        XCTAssertEqual(limiter.baseline, 0, "nothing learned yet")
        XCTAssertEqual(limiter.decreases, 0)
        XCTAssertNil(limiter.statistics(inFlight: 0).baselinePerRecord)
    }

    func testA5xSpikeHalvesTheLimitEveryBatchThenItRecoversAdditively() {
        var run = Run(AdaptiveLimit(minimum: 1, maximum: 200, initial: 100, increasePerRoundTrip: 10))
        run.batches(20, records: 100, perRecord: ms)
        let before = run.limiter.currentLimit
        XCTAssertGreaterThanOrEqual(before, 100, "normal latency: the limit in use does not go down")
        XCTAssertEqual(run.limiter.baseline, Double(ms), accuracy: 1)
        run.limits.removeAll()
        run.batches(4, records: 100, perRecord: 5 * ms)
        XCTAssertEqual(run.limits[0], before, "one slow batch alone is not congestion")
        XCTAssertEqual(run.limits[1], before / 2, "the second slow batch in a row halves the limit")
        XCTAssertEqual(run.limits[2], before / 4)
        XCTAssertEqual(run.limits[3], before / 8, "multiplicative: down to an eighth in four batches")
        XCTAssertEqual(run.limiter.lastCongestion, .latency)
        let bottom = run.limiter.currentLimit
        run.limits.removeAll()
        run.batches(5, records: 100, perRecord: ms)
        // Additive: each batch (the whole limit) adds increasePerRoundTrip records.
        XCTAssertEqual(run.limits.first, bottom + 10)
        for (a, b) in zip(run.limits, run.limits.dropFirst()) {
            XCTAssertEqual(b - a, 10, "one round trip adds 10 records, never a multiple")
        }
        XCTAssertLessThan(run.limiter.currentLimit, before, "five round trips do not undo three decreases")
        run.batches(200, records: 1_000, perRecord: ms)
        XCTAssertEqual(run.limiter.currentLimit, 200, "back up to the maximum in the end")
        XCTAssertEqual(run.limiter.decreases, 3)
    }

    func testLatencyIsComparedPerRecordSoSmallerBatchesAreNotCongestion() {
        var run = Run(AdaptiveLimit(minimum: 1, maximum: 1_000, initial: 100))
        run.batches(5, records: 100, perRecord: ms)
        // Batches of 10 take a tenth of the time: the same per record, not a drop.
        run.batches(20, records: 10, perRecord: ms)
        XCTAssertEqual(run.limiter.decreases, 0)
        // Below twice the baseline per record (tolerance 2) is normal too.
        run.batches(5, records: 100, perRecord: ms * 19 / 10)
        XCTAssertEqual(run.limiter.decreases, 0)
        run.batches(2, records: 100, perRecord: ms * 25 / 10)
        XCTAssertEqual(run.limiter.decreases, 1, "two batches in a row above twice the baseline")
    }

    /// A lone slow batch (a pause, a checkpoint) among normal ones is not congestion; what is
    /// learned settles near a low percentile, not at the single fastest batch.
    func testALoneSlowBatchIsNotCongestionAndTheBaselineIsALowPercentile() {
        var run = Run(AdaptiveLimit(baseline: .learned(tolerance: 3), minimum: 1, maximum: 1_000, initial: 500))
        for round in 0..<200 {
            // Latency spreading from 1 to 2.5 ms per record, and every 12th batch 10× slower.
            run.batches(1, records: 100, perRecord: round % 12 == 11 ? 10 * ms : ms + UInt64(round % 4) * ms / 2)
        }
        XCTAssertEqual(run.limiter.decreases, 0, "no two slow batches in a row")
        XCTAssertGreaterThan(run.limiter.baseline, Double(ms), "above the fastest batch")
        XCTAssertLessThan(run.limiter.baseline, Double(ms) * 2, "below the typical one")
        run.batches(2, records: 100, perRecord: 10 * ms)
        XCTAssertEqual(run.limiter.decreases, 1, "two in a row are congestion")
    }

    func testNeverBelowTheMinimumNorAboveTheMaximum() {
        var run = Run(AdaptiveLimit(minimum: 8, maximum: 64, initial: 32))
        run.batches(3, records: 32, perRecord: ms)
        run.batches(50, records: 64, perRecord: 50 * ms)
        for _ in 0..<20 { run.failure() }
        XCTAssertEqual(run.limits.min(), 8, "floored at the minimum")
        run.batches(2_000, records: 64, perRecord: ms / 100)
        XCTAssertEqual(run.limits.max(), 64, "capped at the maximum")
        XCTAssertTrue(run.limits.allSatisfy { (8...64).contains($0) })
    }

    func testHandlerErrorsAreCongestion() {
        var run = Run(AdaptiveLimit(minimum: 1, maximum: 100, initial: 80))
        run.failure()
        XCTAssertEqual(run.limiter.currentLimit, 40)
        XCTAssertEqual(run.limiter.lastCongestion, .error)
        run.failure()
        XCTAssertEqual(run.limiter.currentLimit, 20)
        XCTAssertEqual(run.limiter.statistics(inFlight: 3).decreases, 2)
        XCTAssertEqual(run.limiter.statistics(inFlight: 3).inFlightRecords, 3)
    }

    func testBatchesHandedOutBeforeADecreaseDoNotDecreaseAgain() {
        var limiter = AdaptiveLimiter(AdaptiveLimit(minimum: 1, maximum: 100, initial: 64))
        limiter.recordSuccess(records: 10, handedOutAt: 0, now: 10 * ms, inFlight: 40)
        // Four batches in flight together, all slow: only the first one to finish decreases.
        for i in 0..<4 {
            limiter.recordSuccess(records: 10, handedOutAt: 20 * ms, now: 80 * ms + UInt64(i), inFlight: 40 - 10 * i)
        }
        XCTAssertEqual(limiter.currentLimit, 32, "one decrease per round trip")
        XCTAssertEqual(limiter.decreases, 1)
        // A failure of a batch handed out before that decrease: already answered.
        limiter.recordFailure(handedOutAt: 20 * ms, now: 90 * ms)
        XCTAssertEqual(limiter.currentLimit, 32)
        // A batch handed out after it, slow again: the next decrease.
        limiter.recordSuccess(records: 10, handedOutAt: 90 * ms, now: 150 * ms, inFlight: 10)
        XCTAssertEqual(limiter.currentLimit, 16)
    }

    func testAnIdleLimitDoesNotGrow() {
        var limiter = AdaptiveLimiter(AdaptiveLimit(minimum: 1, maximum: 1_000, initial: 100))
        for i in 0..<100 {
            let start = UInt64(i) * 10 * ms
            limiter.recordSuccess(records: 10, handedOutAt: start, now: start + 10 * ms, inFlight: 10)
        }
        XCTAssertEqual(limiter.currentLimit, 100, "10 in flight of 100: the limit is not what holds the consumer back")
    }

    func testATargetLatencyReplacesTheLearnedBaseline() {
        var run = Run(AdaptiveLimit(baseline: .target(perRecord: .milliseconds(2)), minimum: 1, maximum: 100, initial: 100))
        XCTAssertEqual(run.limiter.statistics(inFlight: 0).baselinePerRecord, .milliseconds(2))
        run.batches(3, records: 100, perRecord: ms)
        XCTAssertEqual(run.limiter.decreases, 0, "under the target")
        run.batches(2, records: 100, perRecord: 3 * ms)
        XCTAssertEqual(run.limiter.currentLimit, 50, "over the target twice in a row: congestion, whatever was seen before")
        XCTAssertEqual(run.limiter.baseline, Double(2 * ms), "a target is never learned over")
    }

    func testALearnedBaselineFollowsLowerLatencyAtOnceAndHigherLatencySlowly() {
        var run = Run(AdaptiveLimit(minimum: 1, maximum: 100, initial: 10))
        run.batches(1, records: 10, perRecord: 4 * ms)
        XCTAssertEqual(run.limiter.baseline, Double(4 * ms), accuracy: 1)
        run.batches(40, records: 10, perRecord: ms)
        XCTAssertEqual(run.limiter.baseline, Double(ms), accuracy: Double(ms) / 10, "faster samples pull it down within a few dozen")
        let settled = run.limiter.baseline
        run.batches(10, records: 10, perRecord: ms * 3 / 2)
        XCTAssertGreaterThan(run.limiter.baseline, settled)
        XCTAssertLessThan(run.limiter.baseline, settled * 1.1, "drifts up slowly")
        // A downstream slower for good (10×) is learned as the new normal in the end (each
        // congested batch lifts its class by at most 1/1000): decreases stop.
        run.batches(20_000, records: 10, perRecord: 10 * ms)
        let decreases = run.limiter.decreases
        run.batches(50, records: 10, perRecord: 10 * ms)
        XCTAssertEqual(run.limiter.decreases, decreases, "the new latency is no longer congestion")
    }

    func testAChangeKeepsTheLimitWithinTheNewBoundsAndTheLearnedBaseline() {
        var run = Run(AdaptiveLimit(minimum: 1, maximum: 100, initial: 80))
        run.batches(3, records: 80, perRecord: ms)
        let baseline = run.limiter.baseline
        run.limiter.change(AdaptiveLimit(minimum: 1, maximum: 30, initial: 10))
        XCTAssertEqual(run.limiter.currentLimit, 30, "clamped to the new maximum, not reset to the initial")
        XCTAssertEqual(run.limiter.baseline, baseline)
        run.limiter.change(AdaptiveLimit(minimum: 50, maximum: 60, initial: 55))
        XCTAssertEqual(run.limiter.currentLimit, 50)
        run.limiter.change(AdaptiveLimit(baseline: .target(perRecord: .microseconds(5)), minimum: 50, maximum: 60, initial: 55))
        XCTAssertEqual(run.limiter.baseline, 5_000)
    }

    func testInvalidSettingsNameTheirField() {
        let cases: [(AdaptiveLimit, String)] = [
            (AdaptiveLimit(minimum: 0), "consumer.adaptiveLimit.minimum"),
            (AdaptiveLimit(minimum: 10, maximum: 5, initial: 5), "consumer.adaptiveLimit.maximum"),
            (AdaptiveLimit(minimum: 10, maximum: 50, initial: 60), "consumer.adaptiveLimit.initial"),
            (AdaptiveLimit(decreaseFactor: 1), "consumer.adaptiveLimit.decreaseFactor"),
            (AdaptiveLimit(decreaseFactor: 0), "consumer.adaptiveLimit.decreaseFactor"),
            (AdaptiveLimit(increasePerRoundTrip: 0), "consumer.adaptiveLimit.increasePerRoundTrip"),
            (AdaptiveLimit(baseline: .learned(tolerance: 1)), "consumer.adaptiveLimit.baseline"),
            (AdaptiveLimit(baseline: .target(perRecord: .zero)), "consumer.adaptiveLimit.baseline"),
        ]
        for (limit, field) in cases {
            var settings = ConsumerConfiguration()
            settings.adaptiveLimit = limit
            XCTAssertThrowsError(try settings.validate(), field) { error in
                XCTAssertEqual((error as? KlifeError)?.code, .invalidConfiguration)
                XCTAssertTrue("\(error)".contains(field), "\(error) names \(field)")
            }
        }
        var settings = ConsumerConfiguration()
        settings.adaptiveLimit = AdaptiveLimit()
        settings.downstream = .query(poll: .zero) { 1 }
        XCTAssertThrowsError(try settings.validate()) { XCTAssertTrue("\($0)".contains("consumer.downstream.poll")) }
        settings.downstream = .query { 1 }
        XCTAssertNoThrow(try settings.validate())
    }

    func testRecentLatenciesKeepOnlyTheLastWindow() {
        var recent = RecentLatencies()
        XCTAssertNil(recent.percentiles)
        for i in 1...100 { recent.record(UInt64(i) * ms) }
        XCTAssertEqual(recent.percentiles?.count, 100)
        XCTAssertEqual(recent.percentiles?.p50, .milliseconds(50))
        XCTAssertEqual(recent.percentiles?.p99, .milliseconds(99))
        // A window of 256: after 256 samples of 1 s the earlier ones are gone.
        for _ in 0..<RecentLatencies.capacity { recent.record(1_000 * ms) }
        XCTAssertEqual(recent.percentiles?.count, RecentLatencies.capacity)
        XCTAssertEqual(recent.percentiles?.p50, .seconds(1))
        XCTAssertEqual(recent.percentiles?.p99, .seconds(1))
    }

    /// A batch split down to a few records costs about a fixed amount (a round trip, a
    /// statement) whatever its size: compared with batches of its own size, it is not congestion.
    func testSmallBatchesWithAFixedCostAreNotCongestion() {
        for baseline in [AdaptiveLimit.Baseline.learned(tolerance: 2), .target(perRecord: .microseconds(400))] {
            var limiter = AdaptiveLimiter(AdaptiveLimit(baseline: baseline, minimum: 1, maximum: 3_000, initial: 3_000))
            var now: UInt64 = 1_000_000_000
            func batch(_ records: Int, fixed: UInt64, perRecord: UInt64) {
                let start = now
                now += fixed + UInt64(records) * perRecord
                limiter.recordSuccess(records: records, handedOutAt: start, now: now, inFlight: 3_000)
            }
            for _ in 0..<20 { batch(500, fixed: 3 * ms, perRecord: 100_000) }  // 53 ms for 500: 0.1 ms per record
            for size in [1, 3, 12, 40, 1, 7, 2, 12, 3] { batch(size, fixed: 3 * ms, perRecord: 100_000) }
            XCTAssertEqual(limiter.decreases, 0, "\(baseline): small batches at the fixed cost are normal")
            batch(10, fixed: 40 * ms, perRecord: 100_000)
            batch(10, fixed: 40 * ms, perRecord: 100_000)
            XCTAssertEqual(limiter.decreases, 1, "\(baseline): small batches far slower than any before, twice in a row, are congestion")
        }
    }

    /// A struggle of a few hundred slow batches does not become the new normal: the baseline
    /// rises by at most 1/1000 of itself per congested batch.
    func testALongStruggleDoesNotBecomeTheBaseline() {
        var run = Run(AdaptiveLimit(baseline: .learned(tolerance: 3), minimum: 10, maximum: 1_000, initial: 500))
        run.batches(50, records: 100, perRecord: ms)
        let learned = run.limiter.baseline
        run.batches(300, records: 100, perRecord: 50 * ms)
        XCTAssertLessThan(run.limiter.baseline, learned * 1.35, "300 congested batches lift it by at most 1.001^300")
        XCTAssertEqual(run.limiter.currentLimit, 10, "still congested at the end of the struggle: the limit stays down")
    }
}
