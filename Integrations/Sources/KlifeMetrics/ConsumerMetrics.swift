public import CoreMetrics
public import Klife

/// Exports a consumer's statistics (``KlifeConsumer/statistics()``) as swift-metrics, by
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
