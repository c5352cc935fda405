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
    private let counters: CounterTracker
    private let gauges: GaugeSet
    private let handlerLatency: LatencyTimers

    /// Prepares the metrics of `consumer` (nothing is recorded before the first ``update()``).
    /// - Parameters:
    ///   - consumer: The consumer to poll.
    ///   - dimensions: Dimensions added to every metric, e.g. `[("group", "readers")]`.
    ///   - factory: The metrics backend (`MetricsSystem.factory` by default).
    public init(consumer: KlifeConsumer, dimensions: [(String, String)] = [],
                factory: any MetricsFactory = MetricsSystem.factory) {
        self.consumer = consumer
        counters = CounterTracker(factory: factory, dimensions: dimensions)
        gauges = GaugeSet(factory: factory, dimensions: dimensions)
        handlerLatency = LatencyTimers("klife_consumer_handler_latency", factory: factory, dimensions: dimensions)
    }

    /// Polls the consumer's statistics once and records them.
    public func update() {
        let stats = consumer.statistics()
        counters.update("klife_consumer_records_fetched", total: stats.recordsFetched)
        counters.update("klife_consumer_bytes_fetched", total: stats.bytesFetched)
        counters.update("klife_consumer_batches_delivered", total: stats.batchesDelivered)
        counters.update("klife_consumer_retries", total: stats.outcomes.retries)
        counters.update("klife_consumer_dead_lettered", total: stats.outcomes.deadLettered)
        counters.update("klife_consumer_moved_to_retry_topics", total: stats.outcomes.movedToRetryTopics)
        counters.update("klife_consumer_rebalances", total: stats.group.rebalances)
        gauges.set("klife_consumer_lag", Double(stats.totalLag))
        gauges.set("klife_consumer_buffered_bytes", Double(stats.bufferedBytes))
        gauges.set("klife_consumer_in_flight_records", Double(stats.inFlightRecords))
        gauges.set("klife_consumer_assigned_partitions", Double(stats.partitions.count))
        var assigned: [[(String, String)]] = []
        for (partition, state) in stats.partitions where state.lag >= 0 {
            let extra = [("topic", partition.topic), ("partition", String(partition.partition))]
            gauges.set("klife_consumer_partition_lag", Double(state.lag), extra: extra)
            assigned.append(extra)
        }
        gauges.retain("klife_consumer_partition_lag", only: assigned)
        let summary = stats.handlerLatency
        handlerLatency.update(count: summary.count, p50: .microseconds(summary.p50), p99: .microseconds(summary.p99),
                              max: .microseconds(summary.max))
    }

    /// Calls ``update()`` every `interval` until the calling task is cancelled.
    /// - Parameter interval: Time between polls.
    public func run(every interval: Duration = .seconds(10)) async {
        while !Task.isCancelled {
            update()
            do { try await Task.sleep(for: interval) } catch { return }
        }
    }
}
