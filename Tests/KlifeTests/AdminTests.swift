import Klife
import KlifeProtocol
import KlifeTesting
import XCTest

final class AdminTests: XCTestCase {
    func testCreateDescribeDeleteTopic() async throws {
        let client = try await Shared.client()
        let name = TestCluster.uniqueTopicName("admin")
        try await client.createTopic(name, partitions: 4)
        let metadata = try await client.metadata(topics: [name])
        let topic = try XCTUnwrap(metadata.topics[name])
        XCTAssertEqual(topic.partitions.map(\.partition), [0, 1, 2, 3])
        XCTAssertFalse(metadata.brokers.isEmpty)
        for p in topic.partitions { XCTAssertNotNil(metadata.brokers[p.leaderID], "leader of \(p.partition) is a known broker") }
        try await client.deleteTopic(name)
        let after = try await client.metadata(topics: [name])
        XCTAssertNil(after.topics[name])
        do {
            try await client.deleteTopic(name)
            XCTFail("deleted a missing topic")
        } catch {
            XCTAssertEqual(error.code, .unknownTopicOrPartition)
        }
        await client.close()
    }

    func testTwoReactorsPinnedProduceAndFetch() async throws {
        let client = try await Shared.client {
            $0.reactorCount = 2
            $0.reactorCPUAffinity = [[0], [0]]
        }
        let topic = try await Shared.topic(client, partitions: 2)
        let results = await client.produceBatch((0..<50).map { ProducerRecord(topic: topic, value: "m\($0)") })
        XCTAssertEqual(try results.map { try $0.get() }.count, 50)
        let records = try await client.allRecords(topic: topic)
        XCTAssertEqual(Set(records.compactMap(\.valueString)), Set((0..<50).map { "m\($0)" }))
        await client.close()
    }
}
