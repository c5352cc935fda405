@testable import Klife
import XCTest

/// The rate limits' token bucket and the consumer's delivery limiter, driven by a clock the
/// tests move by hand (nanoseconds): refill, burst, debt, rate changes, per-partition holds.
final class TokenBucketTests: XCTestCase {
    private let ms: UInt64 = 1_000_000
    private let second: UInt64 = 1_000_000_000

    func testStartsFullAndRefillsAtItsRateUpToTheBurst() {
        var bucket = TokenBucket(rate: 100, capacity: 50, now: 0)
        XCTAssertEqual(bucket.level(at: 0), 50, "a new bucket is full")
        XCTAssertEqual(bucket.wait(for: 50, now: 0), 0)
        bucket.take(50, now: 0)
        XCTAssertEqual(bucket.level(at: 0), 0)
        XCTAssertEqual(bucket.level(at: 100 * ms), 10, accuracy: 1e-9, "100 tokens/s: 10 in 100 ms")
        XCTAssertEqual(bucket.level(at: 10 * second), 50, "never above the burst")
        // 10 tokens are missing at 100 ms: 100 ms more.
        XCTAssertEqual(bucket.wait(for: 20, now: 100 * ms), 100 * ms)
        XCTAssertEqual(bucket.wait(for: 20, now: 200 * ms), 0, "allowed exactly when the wait ends")
    }

    func testACostLargerThanTheBucketGoesWhenFullIntoDebtAndTheNextWaits() {
        var bucket = TokenBucket(rate: 10, capacity: 5, now: 0)
        bucket.take(3, now: 0)
        // 20 > capacity 5: waits only until the bucket is full (3 missing → 300 ms), not for 20.
        XCTAssertEqual(bucket.wait(for: 20, now: 0), 300 * ms)
        XCTAssertEqual(bucket.wait(for: 20, now: 300 * ms), 0)
        bucket.take(20, now: 300 * ms)
        XCTAssertEqual(bucket.tokens, -15, accuracy: 1e-9, "in debt")
        // The next cost of 1 waits for the debt and itself: 16 tokens at 10/s.
        XCTAssertEqual(bucket.wait(for: 1, now: 300 * ms), 1600 * ms)
        XCTAssertEqual(bucket.wait(for: 1, now: 1900 * ms), 0)
    }

    func testTakenNeverExceedsBurstPlusRateTimesElapsed() {
        // Any sequence of costs within the capacity, each taken as soon as allowed.
        var bucket = TokenBucket(rate: 250, capacity: 100, now: 0)
        var random = SplitMix(seed: 0xB0C4E7)
        var now: UInt64 = 0
        var taken = 0.0
        for _ in 0..<2000 {
            let cost = Double(1 + Int(random.next() % 100))
            now += bucket.wait(for: cost, now: now)
            bucket.take(cost, now: now)
            taken += cost
            XCTAssertLessThanOrEqual(taken, 100 + 250 * Double(now) / 1e9 + 1e-6)
            now += random.next() % (5 * ms)
        }
        XCTAssertGreaterThan(taken, 250 * Double(now) / 1e9 - 100, "and the rate is reached when asked for")
    }

    func testRateChangeKeepsBalanceAndDebtCappedAtTheNewBurst() {
        var bucket = TokenBucket(rate: 100, capacity: 100, now: 0)
        bucket.take(40, now: 0)                          // 60 left
        bucket.change(rate: 10, capacity: 20, now: 0)
        XCTAssertEqual(bucket.tokens, 20, "capped at the new burst")
        bucket.take(50, now: 0)                          // debt 30
        bucket.change(rate: 1000, capacity: 1000, now: 0)
        XCTAssertEqual(bucket.tokens, -30, "a debt survives a change")
        XCTAssertEqual(bucket.wait(for: 10, now: 0), 40 * ms, "paid back at the new rate")
        // Time before the change counts at the old rate.
        var slow = TokenBucket(rate: 10, capacity: 100, now: 0)
        slow.take(100, now: 0)
        slow.change(rate: 1000, capacity: 100, now: second)
        XCTAssertEqual(slow.level(at: second), 10, accuracy: 1e-9)
    }

    func testTimeGoingBackwardsChangesNothing() {
        var bucket = TokenBucket(rate: 10, capacity: 10, now: 5 * second)
        bucket.take(10, now: 5 * second)
        XCTAssertEqual(bucket.level(at: 4 * second), 0)
        bucket.refill(now: 4 * second)
        XCTAssertEqual(bucket.updated, 5 * second)
    }

    func testConsumerRateLimitValidationNamesTheField() {
        func field(_ limit: ConsumerRateLimit) -> String? {
            do { try limit.validate(); return nil } catch { return "\(error)" }
        }
        XCTAssertNil(field(ConsumerRateLimit(recordsPerSecond: 10)))
        XCTAssertTrue(field(ConsumerRateLimit())?.contains("consumer.rateLimit") == true)
        XCTAssertTrue(field(ConsumerRateLimit(recordsPerSecond: 0))?.contains("consumer.rateLimit.recordsPerSecond") == true)
        XCTAssertTrue(field(ConsumerRateLimit(bytesPerSecond: -1))?.contains("consumer.rateLimit.bytesPerSecond") == true)
        XCTAssertTrue(field(ConsumerRateLimit(perPartitionRecordsPerSecond: .nan))?
            .contains("consumer.rateLimit.perPartitionRecordsPerSecond") == true)
        XCTAssertTrue(field(ConsumerRateLimit(perPartitionBytesPerSecond: .infinity))?
            .contains("consumer.rateLimit.perPartitionBytesPerSecond") == true)
        XCTAssertTrue(field(ConsumerRateLimit(recordsPerSecond: 1, burst: .zero))?.contains("consumer.rateLimit.burst") == true)
        var settings = ConsumerConfiguration()
        settings.rateLimit = ConsumerRateLimit(bytesPerSecond: 0)
        XCTAssertThrowsError(try settings.validate()) { XCTAssertTrue("\($0)".contains("consumer.rateLimit.bytesPerSecond")) }
    }

    func testLimiterHoldsOnlyThePartitionOverItsOwnLimit() {
        let a = TopicPartition(topic: "t", partition: 0)
        let b = TopicPartition(topic: "t", partition: 1)
        var limiter = DeliveryLimiter(ConsumerRateLimit(perPartitionRecordsPerSecond: 10, burst: .seconds(1)), now: 0)
        limiter.track(a, now: 0)
        limiter.track(b, now: 0)
        limiter.take(a, count: 10, size: 0, now: 0)
        XCTAssertEqual(limiter.partitionWait(a, count: 5, size: 0, now: 0), 500 * ms)
        XCTAssertEqual(limiter.partitionWait(b, count: 5, size: 0, now: 0), 0, "another partition is not held")
        XCTAssertEqual(limiter.consumerWait(count: 5, size: 0, now: 0), 0, "no consumer-wide limit")
        limiter.forget(a)
        XCTAssertEqual(limiter.partitionWait(a, count: 5, size: 0, now: 0), 0, "a partition given back starts full")
    }

    func testLimiterChangesAndCountsWaits() {
        var limiter = DeliveryLimiter(ConsumerRateLimit(recordsPerSecond: 100, bytesPerSecond: 1000), now: 0)
        limiter.take(TopicPartition(topic: "t", partition: 0), count: 100, size: 500, now: 0)
        XCTAssertEqual(limiter.consumerWait(count: 10, size: 10, now: 0), 100 * ms, "the records bucket holds")
        XCTAssertEqual(limiter.consumerWait(count: 0, size: 600, now: 0), 100 * ms, "the bytes bucket holds")
        limiter.beginWait(now: 10 * ms)
        limiter.beginWait(now: 20 * ms)                  // the same wait goes on
        XCTAssertEqual(limiter.totalWait(now: 30 * ms), 20 * ms)
        limiter.endWait(now: 110 * ms)
        XCTAssertEqual(limiter.totalWait(now: 500 * ms), 100 * ms)
        XCTAssertEqual(limiter.waits, 1)
        limiter.setLimit(ConsumerRateLimit(bytesPerSecond: 1000), now: 110 * ms)
        XCTAssertEqual(limiter.consumerWait(count: 1000, size: 10, now: 110 * ms), 0, "the records limit is gone")
        limiter.setLimit(nil, now: 110 * ms)
        XCTAssertFalse(limiter.isActive)
        XCTAssertEqual(limiter.consumerWait(count: 1000, size: 1 << 30, now: 110 * ms), 0)
    }
}

/// SplitMix64: seeded, so every run sees the same sequence.
struct SplitMix: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
