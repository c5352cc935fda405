import XCTest
import KlifeProtocol

final class ErrorCodeTests: XCTestCase {
    func testTableIsContiguousWithoutDuplicates() {
        let codes = KafkaErrorCode.allKnown.map(\.rawValue)
        XCTAssertEqual(Set(codes).count, codes.count, "duplicate raw values")
        XCTAssertEqual(codes, Array(KafkaErrorCode.knownRange), "table must list -1...133 in order")
        let names = KafkaErrorCode.allKnown.map(\.name)
        XCTAssertEqual(Set(names).count, names.count, "duplicate names")
        for code in KafkaErrorCode.allKnown {
            XCTAssertTrue(code.isKnown)
            XCTAssertFalse(code.name.isEmpty)
            XCTAssertTrue(code.name.allSatisfy { $0.isUppercase || $0 == "_" }, code.name)
            XCTAssertEqual(KafkaErrorCode(rawValue: code.rawValue).name, code.name)
        }
    }

    func testKnownNames() {
        let expected: [(KafkaErrorCode, Int16, String)] = [
            (.unknownServerError, -1, "UNKNOWN_SERVER_ERROR"),
            (.none, 0, "NONE"),
            (.offsetOutOfRange, 1, "OFFSET_OUT_OF_RANGE"),
            (.unknownTopicOrPartition, 3, "UNKNOWN_TOPIC_OR_PARTITION"),
            (.leaderNotAvailable, 5, "LEADER_NOT_AVAILABLE"),
            (.notLeaderOrFollower, 6, "NOT_LEADER_OR_FOLLOWER"),
            (.requestTimedOut, 7, "REQUEST_TIMED_OUT"),
            (.messageTooLarge, 10, "MESSAGE_TOO_LARGE"),
            (.coordinatorNotAvailable, 15, "COORDINATOR_NOT_AVAILABLE"),
            (.notCoordinator, 16, "NOT_COORDINATOR"),
            (.unsupportedVersion, 35, "UNSUPPORTED_VERSION"),
            (.topicAlreadyExists, 36, "TOPIC_ALREADY_EXISTS"),
            (.notController, 41, "NOT_CONTROLLER"),
            (.outOfOrderSequenceNumber, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER"),
            (.duplicateSequenceNumber, 46, "DUPLICATE_SEQUENCE_NUMBER"),
            (.unknownProducerID, 59, "UNKNOWN_PRODUCER_ID"),
            (.fencedLeaderEpoch, 74, "FENCED_LEADER_EPOCH"),
            (.invalidRecord, 87, "INVALID_RECORD"),
            (.producerFenced, 90, "PRODUCER_FENCED"),
            (.unknownTopicID, 100, "UNKNOWN_TOPIC_ID"),
            (.transactionAbortable, 120, "TRANSACTION_ABORTABLE"),
            (.invalidRegularExpression, 128, "INVALID_REGULAR_EXPRESSION"),
            (.shareSessionLimitReached, 133, "SHARE_SESSION_LIMIT_REACHED"),
        ]
        for (code, raw, name) in expected {
            XCTAssertEqual(code.rawValue, raw, name)
            XCTAssertEqual(code.name, name)
            XCTAssertEqual(KafkaErrorCode(rawValue: raw), code)
            XCTAssertEqual(KafkaErrorCode(rawValue: raw).name, name)
        }
    }

    func testRetriableFlags() {
        let retriable: [KafkaErrorCode] = [
            .corruptMessage, .unknownTopicOrPartition, .leaderNotAvailable, .notLeaderOrFollower, .requestTimedOut,
            .networkException, .coordinatorLoadInProgress, .coordinatorNotAvailable, .notCoordinator,
            .notEnoughReplicas, .notEnoughReplicasAfterAppend, .notController, .concurrentTransactions,
            .kafkaStorageError, .fetchSessionIDNotFound, .fencedLeaderEpoch, .unknownLeaderEpoch, .offsetNotAvailable,
            .unstableOffsetCommit, .throttlingQuotaExceeded, .unknownTopicID,
        ]
        let fatal: [KafkaErrorCode] = [
            .unknownServerError, .none, .offsetOutOfRange, .brokerNotAvailable, .messageTooLarge,
            .topicAuthorizationFailed, .unsupportedVersion, .topicAlreadyExists, .outOfOrderSequenceNumber,
            .duplicateSequenceNumber, .invalidProducerEpoch, .unknownProducerID, .rebalanceInProgress,
            .invalidRecord, .producerFenced, .transactionAbortable, .offsetMovedToTieredStorage,
        ]
        for code in retriable { XCTAssertTrue(code.isRetriable, code.description) }
        for code in fatal { XCTAssertFalse(code.isRetriable, code.description) }
        // 32 codes map to RetriableException subclasses in Kafka's Errors table.
        XCTAssertEqual(KafkaErrorCode.allKnown.filter(\.isRetriable).count, 32)
    }

    func testRetriableSetMatchesKafka() {
        // Codes whose Java exception extends RetriableException (directly or through
        // InvalidMetadataException / NotLeaderForPartitionException), Kafka 4.x.
        let retriable: Set<Int16> = [
            2, 3, 5, 6, 7, 9, 13, 14, 15, 16, 19, 20, 41, 51, 56, 70, 71, 72, 74, 75, 78, 80, 83, 84, 88, 89,
            100, 103, 106, 122, 123, 133,
        ]
        for code in KafkaErrorCode.allKnown {
            XCTAssertEqual(code.isRetriable, retriable.contains(code.rawValue), code.description)
        }
    }

    func testUnknownCodes() {
        for raw: Int16 in [-2, 134, 999, .max, .min] {
            let code = KafkaErrorCode(rawValue: raw)
            XCTAssertEqual(code.name, "UNKNOWN_CODE_\(raw)")
            XCTAssertFalse(code.isRetriable)
            XCTAssertFalse(code.isKnown)
            XCTAssertEqual(code.rawValue, raw)
        }
    }

    func testDescriptionAndEquality() {
        XCTAssertEqual(KafkaErrorCode.notLeaderOrFollower.description, "NOT_LEADER_OR_FOLLOWER (6)")
        XCTAssertEqual(KafkaErrorCode(rawValue: 500).description, "UNKNOWN_CODE_500 (500)")
        XCTAssertEqual(Set([KafkaErrorCode(rawValue: 6), .notLeaderOrFollower, KafkaErrorCode(6)]).count, 1)
        XCTAssertTrue(KafkaErrorCode.none.isSuccess)
        XCTAssertFalse(KafkaErrorCode.notController.isSuccess)
    }
}
