import XCTest
import KlifeProtocol
import KlifeTesting
@testable import Klife

/// A fact about librdkafka's mock cluster that the fault tests must keep in mind: it does not
/// deduplicate an idempotent producer's retries. Kafka keeps the last five batches of each
/// producer and partition and answers a batch sent again (same producer id, epoch and
/// sequence) with its original offset; the mock appends it again. So when a mock broker goes
/// down after appending a batch but before its answer left, the producer's correct retry (same
/// sequence) is written twice: a duplicate in the mock's log is not evidence against the
/// client. This test pins the behaviour, so a mock that starts deduplicating is noticed.
final class MockIdempotenceTests: XCTestCase {
    func testTheMockAppendsABatchSentAgainWithTheSameSequence() async throws {
        let topic = "idem-\(UInt32.random(in: 0...UInt32.max))"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1)])
        defer { mock.stop() }
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.producer.idempotent = false
        let client = try await KlifeClient.connect(config)
        let id = try await client.requestProducerID(InitProducerIdRequest())

        func send(_ sequence: Int32, _ value: String) async throws -> (code: KafkaErrorCode, offset: Int64) {
            let batch = RecordBatchEncoder.encode(baseTimestamp: 1_000, records: [(1_000, nil, Array(value.utf8), [])],
                                                  producerID: id.producerID, producerEpoch: id.producerEpoch,
                                                  baseSequence: sequence)
            let request = ProduceRequest(acks: -1, timeoutMs: 5_000,
                                         topics: [.init(name: topic, partitions: [.init(index: 0, records: batch)])])
            let answer = try await client.roundTripToLeader(request, topic: topic, partition: 0)
            let p = answer.topics[0].partitions[0]
            return (KafkaErrorCode(rawValue: p.errorCode), p.baseOffset)
        }

        let first = try await send(0, "a")
        let again = try await send(0, "a")      // a retry: same producer id, epoch and sequence
        let next = try await send(1, "b")
        XCTAssertEqual([first.code, again.code, next.code], [.none, .none, .none])
        XCTAssertEqual([first.offset, again.offset, next.offset], [0, 1, 2], "Kafka would answer the retry with offset 0")
        let records = try await client.allRecords(topic: topic, partition: 0)
        XCTAssertEqual(records.map(\.valueString), ["a", "a", "b"], "the retry is in the log twice")
        await client.close()
    }
}
