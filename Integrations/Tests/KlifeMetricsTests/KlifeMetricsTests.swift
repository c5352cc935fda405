import Klife
import KlifeMetrics
import KlifeTesting
import MetricsTestKit
import XCTest

final class KlifeMetricsTests: XCTestCase {
    private static let cluster = Task { try await TestCluster.start() }

    func testProducerStatisticsBecomeCountersGaugesAndTimers() async throws {
        let cluster = try await Self.cluster.value
        let client = try await cluster.client()
        let topic = TestCluster.uniqueTopicName("metrics-producer")
        try await client.createTopic(topic, partitions: 1)
        let backend = TestMetrics()
        let metrics = ClientMetrics(client: client, dimensions: [("service", "test")], factory: backend)

        for i in 0..<5 { _ = try await client.produce(ProducerRecord(topic: topic, value: "v\(i)")) }
        await metrics.update()
        XCTAssertEqual(try backend.expectCounter("klife_producer_records_delivered", [("service", "test")]).totalValue, 5)
        XCTAssertEqual(try backend.expectGauge("klife_producer_buffered_records", [("service", "test")]).lastValue, 0)
        let p99 = try backend.expectTimer("klife_producer_latency", [("service", "test"), ("quantile", "0.99")])
        XCTAssertEqual(p99.values.count, 1)
        XCTAssertGreaterThan(p99.lastValue ?? 0, 0)

        // A poll adds only what the totals grew by; a poll without new samples records no latency.
        for i in 0..<3 { _ = try await client.produce(ProducerRecord(topic: topic, value: "w\(i)")) }
        await metrics.update()
        await metrics.update()
        XCTAssertEqual(try backend.expectCounter("klife_producer_records_delivered", [("service", "test")]).totalValue, 8)
        XCTAssertEqual(p99.values.count, 2)
        await client.close()
    }

    func testConsumerStatisticsExportLagPerPartitionAndHandlerLatency() async throws {
        let cluster = try await Self.cluster.value
        let client = try await cluster.client()
        let topic = TestCluster.uniqueTopicName("metrics-consumer")
        try await client.createTopic(topic, partitions: 1)
        for i in 0..<4 { _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "v\(i)")) }
        let consumer = try client.consumer()
        let partition = TopicPartition(topic: topic, partition: 0)
        try await consumer.assign([partition: .earliest])
        let backend = TestMetrics()
        let metrics = ConsumerMetrics(consumer: consumer, factory: backend)

        var read = 0
        while read < 4, let batch = try await consumer.next() { read += batch.records.count }
        metrics.update()
        XCTAssertEqual(try backend.expectCounter("klife_consumer_records_fetched").totalValue, 4)
        XCTAssertEqual(try backend.expectGauge("klife_consumer_assigned_partitions").lastValue, 1)
        XCTAssertEqual(try backend.expectGauge("klife_consumer_lag").lastValue, 0)
        XCTAssertEqual(try backend.expectGauge("klife_consumer_partition_lag",
                                               [("topic", topic), ("partition", "0")]).lastValue, 0)

        // A partition that goes away takes its gauge with it.
        consumer.unassign([partition])
        metrics.update()
        XCTAssertThrowsError(try backend.expectGauge("klife_consumer_partition_lag", [("topic", topic), ("partition", "0")]))
        await consumer.close()
        await client.close()
    }
}
