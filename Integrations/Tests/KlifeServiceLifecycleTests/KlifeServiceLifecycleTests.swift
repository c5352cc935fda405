import Klife
import KlifeServiceLifecycle
import KlifeTesting
import Logging
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import XCTest

final class KlifeServiceLifecycleTests: XCTestCase {
    private static let cluster = Task { try await TestCluster.start() }

    func testGracefulShutdownFlushesBufferedRecordsAndClosesTheClient() async throws {
        let cluster = try await Self.cluster.value
        let client = try await cluster.client()
        let topic = TestCluster.uniqueTopicName("service-client")
        try await client.createTopic(topic, partitions: 1)
        let delivered = Atomic<Int>(0)

        try await testGracefulShutdown { trigger in
            let group = ServiceGroup(services: [KlifeClientService(client: client)], logger: Logger(label: "test"))
            async let running: Void = group.run()
            for i in 0..<100 {
                client.produce(ProducerRecord(topic: topic, value: "v\(i)")) { result in
                    if case .success = result { delivered.add(1, ordering: .relaxed) }
                }
            }
            trigger.triggerGracefulShutdown()
            try await running
        }

        XCTAssertEqual(delivered.load(ordering: .relaxed), 100, "every buffered record was acknowledged before the close")
        do {
            _ = try await client.produce(ProducerRecord(topic: topic, value: "late"))
            XCTFail("the client is closed")
        } catch {
            XCTAssertEqual(error.code, .clientClosed)
        }
        let reader = try await cluster.client()
        let values = try await reader.allRecords(topic: topic).compactMap(\.valueString)
        XCTAssertEqual(values.count, 100)
        await reader.close()
    }

    func testAConsumerServiceProcessesThenCommitsOnGracefulShutdown() async throws {
        let cluster = try await Self.cluster.value
        let client = try await cluster.client()
        let topic = TestCluster.uniqueTopicName("service-consumer")
        try await client.createTopic(topic, partitions: 1)
        for i in 0..<10 { _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "v\(i)")) }
        var settings = ConsumerConfiguration()
        let groupID = TestCluster.uniqueTopicName("service-group")
        settings.groupID = groupID
        let consumer = try client.consumer(settings)
        let partition = TopicPartition(topic: topic, partition: 0)
        try await consumer.assign([partition: .earliest])

        let (processed, processedNotice) = AsyncStream<Int>.makeStream()
        let handled = Atomic<Int>(0)
        let service = KlifeConsumerService(consumer: consumer) { batch in
            let total = handled.add(batch.records.count, ordering: .relaxed).newValue
            processedNotice.yield(total)
        }

        try await testGracefulShutdown { trigger in
            let group = ServiceGroup(services: [KlifeClientService(client: client), service],
                                     logger: Logger(label: "test"))
            async let running: Void = group.run()
            for await total in processed where total >= 10 { break }
            trigger.triggerGracefulShutdown()
            try await running
        }

        XCTAssertEqual(handled.load(ordering: .relaxed), 10)
        let admin = try await cluster.client()
        let offsets = try await admin.groupOffsets(groupID)
        XCTAssertEqual(offsets[partition]?.committed, 10, "the processed position was committed on close")
        await admin.close()
    }
}
