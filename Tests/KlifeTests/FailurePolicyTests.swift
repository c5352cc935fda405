@testable import Klife
import KlifeProtocol
import XCTest

/// The failure policy's backoff and validation, the retry chains' names and destinations, and
/// the headers of a moved record — without a broker.
final class FailurePolicyTests: XCTestCase {
    /// A generator for policies without jitter (which draw nothing).
    struct FixedRandom: RandomNumberGenerator {
        var value: UInt64
        mutating func next() -> UInt64 { value }
    }

    func testBackoffDoublesUpToItsCapWithJitterWithinBounds() {
        let policy = FailurePolicy(backoff: .milliseconds(100), maxBackoff: .seconds(1), jitter: 0)
        var random = FixedRandom(value: 0)
        XCTAssertEqual(policy.delay(afterAttempt: 1, random: &random), .milliseconds(100))
        XCTAssertEqual(policy.delay(afterAttempt: 2, random: &random), .milliseconds(200))
        XCTAssertEqual(policy.delay(afterAttempt: 4, random: &random), .milliseconds(800))
        XCTAssertEqual(policy.delay(afterAttempt: 5, random: &random), .seconds(1), "capped")
        XCTAssertEqual(policy.delay(afterAttempt: 500, random: &random), .seconds(1), "no overflow after many attempts")

        let jittered = FailurePolicy(backoff: .milliseconds(100), maxBackoff: .seconds(1), jitter: 0.5)
        var system = SystemRandomNumberGenerator()
        for attempt in 1...20 {
            let wait = jittered.delay(afterAttempt: attempt, random: &system).nanoseconds
            let base: UInt64 = min(UInt64(100_000_000) << UInt64(min(attempt - 1, 30)), 1_000_000_000)
            XCTAssertGreaterThanOrEqual(wait, base / 2 - 1)
            XCTAssertLessThanOrEqual(wait, base * 3 / 2 + 1)
        }
    }

    func testInvalidPoliciesAndChainsNameTheirField() {
        func field(_ change: (inout ConsumerConfiguration) -> Void) -> String? {
            var settings = ConsumerConfiguration()
            settings.groupID = "g"
            settings.topics = ["orders"]
            change(&settings)
            do {
                try settings.validate()
                return nil
            } catch {
                XCTAssertEqual(error.code, .invalidConfiguration)
                return "\(error)"
            }
        }
        XCTAssertTrue(field { $0.failurePolicy.maxAttempts = 0 }?.contains("consumer.failurePolicy.maxAttempts") == true)
        XCTAssertTrue(field { $0.failurePolicy.backoff = .zero }?.contains("consumer.failurePolicy.backoff") == true)
        XCTAssertTrue(field { $0.failurePolicy.maxBackoff = .milliseconds(1) }?.contains("consumer.failurePolicy.maxBackoff") == true)
        XCTAssertTrue(field { $0.failurePolicy.jitter = 1.5 }?.contains("consumer.failurePolicy.jitter") == true)
        XCTAssertTrue(field { $0.failurePolicy.batchAttempts = 0 }?.contains("consumer.failurePolicy.batchAttempts") == true)
        XCTAssertTrue(field { $0.retryTopics = RetryTopics(delays: [], deadLetter: false) }?.contains("consumer.retryTopics") == true)
        XCTAssertTrue(field { $0.retryTopics = RetryTopics(delays: [.zero]) }?.contains("consumer.retryTopics.delays") == true)
        XCTAssertTrue(field {
            $0.retryTopics = RetryTopics(delays: [.seconds(1)], perTopic: ["orders": .init(retryNames: [], deadLetterName: "dead")])
        }?.contains("consumer.retryTopics.perTopic[orders].retryNames") == true)
        XCTAssertTrue(field {
            $0.retryTopics = RetryTopics(delays: [.seconds(1)], perTopic: ["orders": .init(delays: [.zero])])
        }?.contains("consumer.retryTopics.perTopic[orders].delays") == true)
        XCTAssertTrue(field {
            $0.retryTopics = RetryTopics(delays: [.seconds(1)], perTopic: ["orders": .init(retryNames: ["orders"], deadLetterName: "dead")])
        }?.contains("consumer.retryTopics.perTopic[orders]") == true)
        XCTAssertTrue(field {
            $0.topics = []
            $0.retryTopics = RetryTopics(delays: [.seconds(1)])
        }?.contains("consumer.retryTopics") == true)
        XCTAssertNil(field { $0.retryTopics = RetryTopics(delays: [.seconds(5), .seconds(60)]) })
    }

    func testChainNamesFollowTheConventionUnlessGiven() {
        let topics = RetryTopics(delays: [.milliseconds(500), .seconds(5), .seconds(60), .seconds(600), .seconds(7200)])
        XCTAssertEqual(topics.retryTopics(of: "orders"),
                       ["orders.retry.500ms", "orders.retry.5s", "orders.retry.1m", "orders.retry.10m", "orders.retry.2h"])
        XCTAssertEqual(topics.deadLetterTopic(of: "orders"), "orders.dlq")
        let named = RetryTopics(delays: [.seconds(5)], perTopic: ["orders": .init(retryNames: ["o-later"], deadLetterName: "o-dead")])
        XCTAssertEqual(named.retryTopics(of: "orders"), ["o-later"])
        XCTAssertEqual(named.deadLetterTopic(of: "orders"), "o-dead")
        XCTAssertEqual(named.retryTopics(of: "payments"), ["payments.retry.5s"], "other topics follow the convention")
        let own = RetryTopics(delays: [.seconds(5)], perTopic: ["audit": .init(delays: [.seconds(60), .seconds(3600)])])
        XCTAssertEqual(own.retryTopics(of: "audit"), ["audit.retry.1m", "audit.retry.1h"], "a topic's own delays")
        XCTAssertEqual(own.delays(of: "audit"), [.seconds(60), .seconds(3600)])
        XCTAssertEqual(own.delays(of: "orders"), [.seconds(5)])
        XCTAssertNil(RetryTopics(delays: [.seconds(5)], deadLetter: false).deadLetterTopic(of: "orders"))
    }

    func testEachStepOfAChainLeadsToTheNextAndTheLastToTheDeadLetterTopic() async throws {
        let client = try await Shared.client()
        let topics = RetryTopics(delays: [.seconds(5), .seconds(60)])
        let mover = RecordMover(client: client, topics: topics, sources: ["orders"])
        XCTAssertEqual(mover.retryTopicNames, ["orders.retry.5s", "orders.retry.1m"])
        XCTAssertEqual(mover.destination(from: "orders", deadLetter: false)?.topic, "orders.retry.5s")
        XCTAssertEqual(mover.destination(from: "orders", deadLetter: false)?.delay, .seconds(5))
        XCTAssertEqual(mover.destination(from: "orders.retry.5s", deadLetter: false)?.topic, "orders.retry.1m")
        XCTAssertEqual(mover.destination(from: "orders.retry.1m", deadLetter: false)?.topic, "orders.dlq")
        XCTAssertNil(mover.destination(from: "orders.retry.1m", deadLetter: false)?.delay)
        XCTAssertEqual(mover.destination(from: "orders", deadLetter: true)?.topic, "orders.dlq", "dead-lettered: straight to the end")
        let noDeadLetter = RecordMover(client: client, topics: RetryTopics(delays: [.seconds(5)], deadLetter: false), sources: ["orders"])
        XCTAssertNil(noDeadLetter.destination(from: "orders.retry.5s", deadLetter: false))
        XCTAssertNil(noDeadLetter.destination(from: "orders", deadLetter: true))
        await client.close()
    }

    func testAMovedRecordKeepsItsBytesAndHeadersAndGainsItsOrigin() {
        let record = ConsumerRecord(topic: "orders", partition: 3, offset: 41, timestamp: 1_700_000_000_000,
                                    key: Array("k".utf8), value: Array("v".utf8),
                                    headers: [RecordHeader(key: "trace", value: Array("abc".utf8))])
        let first = RetryHeaders.moved(record, to: "orders.retry.5s", attempts: 3, error: "timeout",
                                       firstFailure: 1_700_000_000_500, due: 1_700_000_005_500)
        XCTAssertEqual(first.topic, "orders.retry.5s")
        XCTAssertEqual(first.key, Array("k".utf8))
        XCTAssertEqual(first.value, Array("v".utf8))
        func header(_ r: ProducerRecord, _ name: String) -> String? {
            r.headers.last { $0.key == name }.flatMap { $0.value.map { String(decoding: $0, as: UTF8.self) } }
        }
        XCTAssertEqual(header(first, "trace"), "abc")
        XCTAssertEqual(header(first, RetryHeaders.originalTopic), "orders")
        XCTAssertEqual(header(first, RetryHeaders.originalPartition), "3")
        XCTAssertEqual(header(first, RetryHeaders.originalOffset), "41")
        XCTAssertEqual(header(first, RetryHeaders.originalTimestamp), "1700000000000")
        XCTAssertEqual(header(first, RetryHeaders.attempt), "3")
        XCTAssertEqual(header(first, RetryHeaders.error), "timeout")
        XCTAssertEqual(header(first, RetryHeaders.firstFailure), "1700000000500")
        XCTAssertEqual(header(first, RetryHeaders.due), "1700000005500")

        // Read back from the retry topic and moved on: the origin and first failure stay.
        let again = ConsumerRecord(topic: "orders.retry.5s", partition: 0, offset: 7, timestamp: 1_700_000_000_600,
                                   key: first.key, value: first.value, headers: first.headers)
        XCTAssertEqual(RetryHeaders.dueTime(of: again), 1_700_000_005_500)
        XCTAssertEqual(RetryHeaders.attempts(of: again.headers), 3)
        let second = RetryHeaders.moved(again, to: "orders.dlq", attempts: 5, error: "still failing",
                                        firstFailure: 1_700_000_009_000, due: nil)
        XCTAssertEqual(header(second, RetryHeaders.originalTopic), "orders")
        XCTAssertEqual(header(second, RetryHeaders.originalOffset), "41")
        XCTAssertEqual(header(second, RetryHeaders.firstFailure), "1700000000500")
        XCTAssertEqual(header(second, RetryHeaders.attempt), "5")
        XCTAssertNil(header(second, RetryHeaders.due), "the dead-letter topic hands nothing out again")
        XCTAssertEqual(second.headers.filter { $0.key == RetryHeaders.attempt }.count, 1, "chain headers are replaced, not repeated")
        XCTAssertEqual(header(second, "trace"), "abc")
    }

    func testBatchOutcomeRecordsOnlyFailures() {
        let record = ConsumerRecord(topic: "t", partition: 0, offset: 9, timestamp: 0, key: nil, value: nil, headers: [])
        var outcome = BatchOutcome.done
        outcome.retry(record, error: "busy")
        XCTAssertEqual(outcome.outcome(forOffset: 9), .retry(after: nil, error: "busy"))
        outcome.set(.done, forOffset: 9)
        XCTAssertEqual(outcome, .done)
        outcome.deadLetter(record, reason: "poison")
        XCTAssertEqual(outcome.failures, [9: .deadLetter(reason: "poison")])
        XCTAssertEqual(BatchOutcome.retry(after: .seconds(1)).retryBatch?.after, .seconds(1))
    }
}
