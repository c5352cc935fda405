public import CoreMetrics
public import Klife

/// Exports a client's producer statistics (``KlifeClient/statistics()``) as swift-metrics, by
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
