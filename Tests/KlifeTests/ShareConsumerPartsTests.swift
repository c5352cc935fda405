import Foundation
@testable import Klife
import KlifeIO
import KlifeProtocol
import XCTest

/// The share consumer's pieces on their own: settings, the share session value, the
/// acknowledgement ledger, and the cutting of ShareFetch answers into batches (hostile ones
/// included).
final class ShareConsumerPartsTests: XCTestCase {
    private func connect(_ mock: MockCluster) async throws -> KlifeClient {
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.connectTimeout = .seconds(3)
        config.requestTimeout = .seconds(5)
        return try await KlifeClient.connect(config)
    }

    // MARK: Settings

    func testInvalidSettingsFailAtConstructionNamingTheField() throws {
        func field(_ change: (inout ShareConsumerConfiguration) -> Void) -> String? {
            var settings = ShareConsumerConfiguration(groupID: "g", topics: ["t"])
            change(&settings)
            do {
                try settings.validate()
                return nil
            } catch {
                XCTAssertEqual(error.code, .invalidConfiguration)
                return "\(error)"
            }
        }
        XCTAssertNil(field { _ in })
        XCTAssertTrue(field { $0.groupID = "" }?.contains("shareConsumer.groupID") == true)
        XCTAssertTrue(field { $0.topics = [] }?.contains("shareConsumer.topics") == true)
        XCTAssertTrue(field { $0.topics = [""] }?.contains("shareConsumer.topics") == true)
        XCTAssertTrue(field { $0.maxRecords = 0 }?.contains("shareConsumer.maxRecords") == true)
        XCTAssertTrue(field { $0.fetchMaxWait = .seconds(-1) }?.contains("shareConsumer.fetchMaxWait") == true)
        XCTAssertTrue(field { $0.fetchMaxBytes = 0 }?.contains("shareConsumer.fetchMaxBytes") == true)
        XCTAssertTrue(field { $0.heartbeatInterval = .zero }?.contains("shareConsumer.heartbeatInterval") == true)
        XCTAssertTrue(field { $0.deadLetter = .init(topic: "", maxDeliveryCount: 3) }?
            .contains("shareConsumer.deadLetter.topic") == true)
        XCTAssertTrue(field { $0.deadLetter = .init(topic: "t", maxDeliveryCount: 3) }?
            .contains("shareConsumer.deadLetter.topic") == true)
        XCTAssertTrue(field { $0.deadLetter = .init(topic: "dlq", maxDeliveryCount: 0) }?
            .contains("shareConsumer.deadLetter.maxDeliveryCount") == true)
        XCTAssertTrue(field { $0.rateLimit = .init(perPartitionRecordsPerSecond: 5) }?
            .contains("shareConsumer.rateLimit") == true)
        XCTAssertTrue(field { $0.rateLimit = .init(recordsPerSecond: -1) }?.contains("rateLimit.recordsPerSecond") == true)
    }

    // MARK: Pure pieces

    func testShareSessionEpochsAddAndForgetPartitions() {
        let a = SharePartitionKey(topicID: partsTopicID, partition: 0)
        let b = SharePartitionKey(topicID: partsTopicID, partition: 1)
        var session = ShareSession()
        let build = { (epoch: Int32, topics: [ShareFetchRequest.Topic], forgotten: [ShareFetchRequest.ForgottenTopic]) in
            ShareFetchRequest(groupID: "g", memberID: "m", shareSessionEpoch: epoch, maxWaitMs: 0, topics: topics,
                              forgottenTopics: forgotten)
        }
        let ack = [partsTopicID: [Int32(0): [ShareAcknowledgementBatch(firstOffset: 1, lastOffset: 1, type: .accept)]]]
        // Opening: epoch 0, every wanted partition, acknowledgements withheld.
        var request = session.fetchRequest(wanted: [a], acknowledgements: ack, build: build)
        XCTAssertEqual(request.shareSessionEpoch, 0)
        XCTAssertEqual(request.topics, [.init(topicID: partsTopicID, partitions: [.init(partitionIndex: 0)])])
        session.fetched(wanted: [a])
        XCTAssertEqual(session.epoch, 1)
        // Nothing changed: no partitions listed.
        request = session.fetchRequest(wanted: [a], acknowledgements: [:], build: build)
        XCTAssertEqual(request.shareSessionEpoch, 1)
        XCTAssertEqual(request.topics, [])
        // Acknowledgements ride along; a new partition is added.
        request = session.fetchRequest(wanted: [a, b], acknowledgements: ack, build: build)
        XCTAssertEqual(request.topics, [.init(topicID: partsTopicID, partitions: [
            .init(partitionIndex: 0, acknowledgementBatches: [.init(firstOffset: 1, lastOffset: 1, type: .accept)]),
            .init(partitionIndex: 1),
        ])])
        session.fetched(wanted: [a, b])
        session.acknowledged()
        XCTAssertEqual(session.epoch, 3)
        // A partition no longer wanted is forgotten.
        request = session.fetchRequest(wanted: [b], acknowledgements: [:], build: build)
        XCTAssertEqual(request.forgottenTopics, [.init(topicID: partsTopicID, partitions: [0])])
        session.reset()
        XCTAssertFalse(session.isOpen)
        XCTAssertEqual(session.fetchRequest(wanted: [b], acknowledgements: [:], build: build).shareSessionEpoch, 0)
    }

    func testLedgerSettlesHeldRecordsOnce() {
        let source = ShareSource(node: 1, topicID: partsTopicID, partition: 0)
        var ledger = ShareAcknowledgementLedger()
        ledger.acquired(source, offsets: (0...4).map { ($0, 1) })
        XCTAssertTrue(ledger.isHeld(source, offset: 3, deliveryCount: 1))
        XCTAssertFalse(ledger.isHeld(source, offset: 3, deliveryCount: 2), "a later delivery is a new one")
        ledger.handedOut(source, offsets: 0...2)
        XCTAssertTrue(ledger.settle(source, offset: 1, as: .release))
        XCTAssertFalse(ledger.settle(source, offset: 1, as: .accept), "settled once")
        XCTAssertFalse(ledger.settle(source, offset: 9, as: .accept), "never acquired")
        XCTAssertEqual(ledger.acceptHandedOut(), 2, "0 and 2; 3 and 4 were not handed out")
        XCTAssertEqual(ledger.heldCount, 2)
        XCTAssertEqual(ledger.takePending(for: 1), [partsTopicID: [0: [
            .init(firstOffset: 0, lastOffset: 2, acknowledgeTypes: [1, 2, 1]),
        ]]])
        XCTAssertEqual(ledger.takePending(for: 1), [:])
        // Settled and sent, not yet answered: a report of it at the same count is no delivery.
        XCTAssertTrue(ledger.isHeld(source, offset: 1, deliveryCount: 1))
        XCTAssertFalse(ledger.isHeld(source, offset: 1, deliveryCount: 2), "released and delivered again")
        ledger.answered(node: 1)
        XCTAssertFalse(ledger.isHeld(source, offset: 1, deliveryCount: 1))
        XCTAssertEqual(ledger.forget(node: 1), 2)
        XCTAssertEqual(ledger.heldCount, 0)
    }

    func testDeliveryCountLookupOverSortedRanges() {
        let ranges: [ShareFetchResponse.AcquiredRecords] = [
            .init(firstOffset: 0, lastOffset: 3, deliveryCount: 1), .init(firstOffset: 7, lastOffset: 7, deliveryCount: 4),
        ]
        XCTAssertEqual(ShareFetcher.deliveryCount(of: 0, in: ranges), 1)
        XCTAssertEqual(ShareFetcher.deliveryCount(of: 3, in: ranges), 1)
        XCTAssertNil(ShareFetcher.deliveryCount(of: 5, in: ranges))
        XCTAssertEqual(ShareFetcher.deliveryCount(of: 7, in: ranges), 4)
        XCTAssertNil(ShareFetcher.deliveryCount(of: 8, in: ranges))
        XCTAssertNil(ShareFetcher.deliveryCount(of: 0, in: []))
    }

    func testShareFetchAnswersAreCutToTheAcquiredRangesAndHostileOnesNeverTrap() async throws {
        let mock = try MockCluster(brokers: 1, topics: [("t", 1)])
        defer { mock.stop() }
        let client = try await connect(mock)
        var settings = ShareConsumerConfiguration(groupID: "g", topics: ["t"])
        settings.maxRecords = 2
        let fetcher = ShareFetcher(client: client, settings: settings, memberID: "m")
        let source = ShareSource(node: 1, topicID: partsTopicID, partition: 0)
        let tp = TopicPartition(topic: "t", partition: 0)
        let batch = RecordBatchEncoder.encode(baseTimestamp: 0, records: (0..<5).map { (0, nil, Array("v\($0)".utf8), []) })
        func deliver(_ ranges: [ShareFetchResponse.AcquiredRecords], _ records: [UInt8]) throws(KlifeError) -> [ShareBatch] {
            try fetcher.deliveries(.init(partitionIndex: 0, records: records, acquiredRecords: ranges), tp: tp,
                                   source: source, lockTimeout: .seconds(1), receivedAt: .now, broker: "1")
        }
        // Only the acquired offsets, with their counts, in batches of at most maxRecords.
        let cut = try deliver([.init(firstOffset: 1, lastOffset: 3, deliveryCount: 2)], batch)
        XCTAssertEqual(cut.map { $0.map(\.offset) }, [[1, 2], [3]])
        XCTAssertEqual(cut.flatMap { $0.map(\.deliveryCount) }, [2, 2, 2])
        XCTAssertEqual(cut.first?.first?.valueString, "v1")
        XCTAssertEqual(fetcher.heldRecords, 3)
        // Reported again at the same count: not delivered twice; at a higher count: a new delivery.
        XCTAssertEqual(try deliver([.init(firstOffset: 1, lastOffset: 3, deliveryCount: 2)], batch).count, 0)
        XCTAssertEqual(try deliver([.init(firstOffset: 3, lastOffset: 3, deliveryCount: 3)], batch)
            .flatMap { $0.map(\.deliveryCount) }, [3])
        // Acquired offsets without records are settled as gaps, not handed out or held.
        XCTAssertEqual(try deliver([.init(firstOffset: 4, lastOffset: 9, deliveryCount: 1)], batch)
            .flatMap { $0.map(\.offset) }, [4])
        XCTAssertEqual(fetcher.heldRecords, 4)
        // Hostile ranges: reversed, enormous, overlapping, negative counts.
        XCTAssertEqual(try deliver([.init(firstOffset: 3, lastOffset: 1, deliveryCount: 1)], batch).count, 0)
        _ = try deliver([.init(firstOffset: 0, lastOffset: .max, deliveryCount: -5),
                         .init(firstOffset: .min, lastOffset: 2, deliveryCount: 1)], batch)
        // Bytes that do not decode (a CRC that does not match) are a typed error.
        var corrupt = batch
        corrupt[corrupt.count - 1] ^= 0xff
        XCTAssertThrowsError(try deliver([.init(firstOffset: 0, lastOffset: 1, deliveryCount: 1)], corrupt)) { error in
            XCTAssertEqual((error as? KlifeError)?.code, .malformedResponse)
        }
        // Mutated batches and ranges never trap.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            var bytes = batch
            for _ in 0..<Int.random(in: 1...4, using: &rng) { bytes[Int.random(in: 0..<bytes.count, using: &rng)] = .random(in: 0...255, using: &rng) }
            let first = Int64.random(in: -3...8, using: &rng)
            _ = try? deliver([.init(firstOffset: first, lastOffset: first + .random(in: -2...6, using: &rng),
                                    deliveryCount: .random(in: -2...9, using: &rng))], bytes)
        }
        await client.close()
    }
}

private let partsTopicID = KafkaUUID(high: 7, low: 9)
