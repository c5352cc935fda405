public import CoreMetrics
public import Klife

/// Exports a client's producer statistics (`KlifeClient.statistics()`) as swift-metrics, by
/// polling: call ``update()`` yourself, or let ``run(every:)`` poll until its task is cancelled.
///
/// ```swift
/// let metrics = ClientMetrics(client: client, dimensions: [("service", "orders")])
/// let polling = Task { await metrics.run(every: .seconds(10)) }
/// ```
///
/// | Metric | Kind | From |
/// |---|---|---|
/// | `klife_producer_records_delivered` | counter | records acknowledged |
/// | `klife_producer_records_failed` | counter | records completed with an error |
/// | `klife_producer_requests` | counter | Produce requests sent |
/// | `klife_producer_batches` | counter | record batches sent |
/// | `klife_producer_bytes` | counter | bytes of Produce requests |
/// | `klife_producer_retries` | counter | batches put back for another attempt |
/// | `klife_producer_errors` | counter, dimension `broker` | failed requests and partition errors per broker node |
/// | `klife_producer_buffered_records` | gauge | records accepted and not completed (buffer use) |
/// | `klife_producer_buffered_bytes` | gauge | their encoded bytes |
/// | `klife_producer_latency` | timer, dimension `quantile` (`0.5`, `0.99`, `1`) | Produce round trip |
///
/// The library keeps latency as a histogram, not as single samples: the timers receive the
/// client's percentiles since it started, once per poll that saw new samples.
public final class ClientMetrics: Sendable {
    /// The client whose statistics are exported.
    public let client: KlifeClient
    private let recorders: MetricRecorders

    /// Prepares the metrics of `client` (nothing is recorded before the first ``update()``).
    /// - Parameters:
    ///   - client: The client to poll.
    ///   - dimensions: Dimensions added to every metric, e.g. `[("service", "orders")]`.
    ///   - factory: The metrics backend (`MetricsSystem.factory` by default).
    public init(client: KlifeClient, dimensions: [(String, String)] = [],
                factory: any MetricsFactory = MetricsSystem.factory) {
        self.client = client
        recorders = MetricRecorders(latencyLabel: "klife_producer_latency", factory: factory, dimensions: dimensions)
    }

    /// Polls the client's statistics once and records them.
    public func update() async {
        let stats = await client.statistics()
        recorders.counters.update("klife_producer_records_delivered", total: stats.recordsDelivered)
        recorders.counters.update("klife_producer_records_failed", total: stats.recordsFailed)
        recorders.counters.update("klife_producer_requests", total: stats.produceRequests)
        recorders.counters.update("klife_producer_batches", total: stats.batchesSent)
        recorders.counters.update("klife_producer_bytes", total: stats.bytesSent)
        recorders.counters.update("klife_producer_retries", total: stats.retries)
        for (broker, errors) in stats.errorsByBroker {
            recorders.counters.update("klife_producer_errors", total: errors, extra: [("broker", String(broker))])
        }
        recorders.gauges.set("klife_producer_buffered_records", Double(stats.pendingRecords))
        recorders.gauges.set("klife_producer_buffered_bytes", Double(stats.pendingBytes))
        recorders.record(stats.produceLatency)
    }

    /// Calls ``update()`` every `interval` until the calling task is cancelled.
    /// - Parameter interval: Time between polls.
    public func run(every interval: Duration = .seconds(10)) async {
        await poll(every: interval) { await update() }
    }
}

/// Exports a consumer's statistics (`KlifeConsumer.statistics()`) as swift-metrics, by
/// polling: call ``update()`` yourself, or let ``run(every:)`` poll until its task is cancelled.
///
/// ```swift
/// let metrics = ConsumerMetrics(consumer: consumer, dimensions: [("group", "readers")])
/// let polling = Task { await metrics.run(every: .seconds(10)) }
/// ```
///
/// | Metric | Kind | From |
/// |---|---|---|
/// | `klife_consumer_records_fetched` | counter | visible records fetched |
/// | `klife_consumer_bytes_fetched` | counter | bytes of keys and values fetched |
/// | `klife_consumer_batches_delivered` | counter | batches handed to the application |
/// | `klife_consumer_retries` | counter | handler attempts after the first |
/// | `klife_consumer_dead_lettered` | counter | records written to a dead-letter topic |
/// | `klife_consumer_moved_to_retry_topics` | counter | records written to a retry topic |
/// | `klife_consumer_rebalances` | counter | rebalances of the group membership |
/// | `klife_consumer_lag` | gauge | records not yet handed out, all partitions |
/// | `klife_consumer_partition_lag` | gauge, dimensions `topic`, `partition` | the same, per assigned partition (gone with the partition) |
/// | `klife_consumer_buffered_bytes` | gauge | bytes fetched ahead (buffer use) |
/// | `klife_consumer_in_flight_records` | gauge | records handed out and not finished |
/// | `klife_consumer_assigned_partitions` | gauge | partitions assigned |
/// | `klife_consumer_handler_latency` | timer, dimension `quantile` (`0.5`, `0.99`, `1`) | batch hand-out until the handler finished |
///
/// The handler latency timers receive the consumer's percentiles since it started, once per
/// poll that saw new batches finish.
public final class ConsumerMetrics: Sendable {
    /// The consumer whose statistics are exported.
    public let consumer: KlifeConsumer
    private let recorders: MetricRecorders

    /// Prepares the metrics of `consumer` (nothing is recorded before the first ``update()``).
    /// - Parameters:
    ///   - consumer: The consumer to poll.
    ///   - dimensions: Dimensions added to every metric, e.g. `[("group", "readers")]`.
    ///   - factory: The metrics backend (`MetricsSystem.factory` by default).
    public init(consumer: KlifeConsumer, dimensions: [(String, String)] = [],
                factory: any MetricsFactory = MetricsSystem.factory) {
        self.consumer = consumer
        recorders = MetricRecorders(latencyLabel: "klife_consumer_handler_latency", factory: factory, dimensions: dimensions)
    }

    /// Polls the consumer's statistics once and records them.
    public func update() {
        let stats = consumer.statistics()
        recorders.counters.update("klife_consumer_records_fetched", total: stats.recordsFetched)
        recorders.counters.update("klife_consumer_bytes_fetched", total: stats.bytesFetched)
        recorders.counters.update("klife_consumer_batches_delivered", total: stats.batchesDelivered)
        recorders.counters.update("klife_consumer_retries", total: stats.outcomes.retries)
        recorders.counters.update("klife_consumer_dead_lettered", total: stats.outcomes.deadLettered)
        recorders.counters.update("klife_consumer_moved_to_retry_topics", total: stats.outcomes.movedToRetryTopics)
        recorders.counters.update("klife_consumer_rebalances", total: stats.group.rebalances)
        recorders.gauges.set("klife_consumer_lag", Double(stats.totalLag))
        recorders.gauges.set("klife_consumer_buffered_bytes", Double(stats.bufferedBytes))
        recorders.gauges.set("klife_consumer_in_flight_records", Double(stats.inFlightRecords))
        recorders.gauges.set("klife_consumer_assigned_partitions", Double(stats.partitions.count))
        var assigned: [[(String, String)]] = []
        for (partition, state) in stats.partitions where state.lag >= 0 {
            let extra = [("topic", partition.topic), ("partition", String(partition.partition))]
            recorders.gauges.set("klife_consumer_partition_lag", Double(state.lag), extra: extra)
            assigned.append(extra)
        }
        recorders.gauges.retain("klife_consumer_partition_lag", only: assigned)
        recorders.record(stats.handlerLatency)
    }

    /// Calls ``update()`` every `interval` until the calling task is cancelled.
    /// - Parameter interval: Time between polls.
    public func run(every interval: Duration = .seconds(10)) async {
        await poll(every: interval) { update() }
    }
}
