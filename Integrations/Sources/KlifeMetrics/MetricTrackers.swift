import CoreMetrics
import Klife
import Synchronization

/// Turns the running totals the library reports into swift-metrics counter increments: each
/// poll adds what a total grew by since the previous poll.
///
/// The library's statistics are totals since the client or consumer started, and a
/// swift-metrics `Counter` only counts up by increments, so the tracker remembers the last
/// total it saw for each counter. A total that went down (a new client behind the same
/// labels) starts over from zero.
final class CounterTracker: Sendable {
    private let factory: any MetricsFactory
    private let dimensions: [(String, String)]
    private let state = Mutex<[String: (counter: Counter, last: Int64)]>([:])

    init(factory: any MetricsFactory, dimensions: [(String, String)]) {
        self.factory = factory
        self.dimensions = dimensions
    }

    /// Adds to counter `label` (with `extra` dimensions) what `total` grew by since last time.
    func update(_ label: String, total: Int, extra: [(String, String)] = []) {
        let key = ([label] + extra.map { "\($0.0)=\($0.1)" }).joined(separator: "|")
        let total = Int64(total)
        let increment: (Counter, Int64)? = state.withLock { counters in
            var entry = counters[key] ?? (Counter(label: label, dimensions: dimensions + extra, factory: factory), 0)
            let grown = total >= entry.last ? total - entry.last : total
            entry.last = total
            counters[key] = entry
            return grown > 0 ? (entry.counter, grown) : nil
        }
        if let (counter, amount) = increment { counter.increment(by: amount) }
    }
}

/// Latency percentiles recorded into swift-metrics timers, one timer per quantile (dimension
/// `quantile`), each time new samples arrived since the previous poll.
final class LatencyTimers: Sendable {
    private let timers: [(quantile: String, timer: CoreMetrics.Timer)]
    private let lastCount = Mutex<Int>(0)

    init(_ label: String, factory: any MetricsFactory, dimensions: [(String, String)]) {
        timers = ["0.5", "0.99", "1"].map { quantile in
            (quantile, CoreMetrics.Timer(label: label, dimensions: dimensions + [("quantile", quantile)], factory: factory))
        }
    }

    /// Records `p50`, `p99` and `max` when `count` (the samples behind them) changed.
    func update(count: Int, p50: Duration, p99: Duration, max: Duration) {
        let changed = lastCount.withLock { last -> Bool in
            defer { last = count }
            return count != last
        }
        guard changed && count > 0 else { return }
        for ((_, timer), value) in zip(timers, [p50, p99, max]) {
            timer.recordNanoseconds(value.nanoseconds)
        }
    }
}

extension Duration {
    /// Whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds.multipliedReportingOverflow(by: 1_000_000_000).overflow
            ? .max : seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// A duration of `micros` microseconds (the unit of `LatencySummary`).
    static func microseconds(_ micros: Double) -> Duration { .nanoseconds(Int64(micros * 1000)) }
}

/// Gauges by label and dimensions, made once and set on each poll; a gauge whose subject went
/// away (a revoked partition) is destroyed.
final class GaugeSet: Sendable {
    private let factory: any MetricsFactory
    private let dimensions: [(String, String)]
    private let gauges = Mutex<[String: Gauge]>([:])

    init(factory: any MetricsFactory, dimensions: [(String, String)]) {
        self.factory = factory
        self.dimensions = dimensions
    }

    private static func key(_ label: String, _ extra: [(String, String)]) -> String {
        ([label] + extra.map { "\($0.0)=\($0.1)" }).joined(separator: "|")
    }

    /// Sets gauge `label` (with `extra` dimensions) to `value`.
    func set(_ label: String, _ value: Double, extra: [(String, String)] = []) {
        let key = Self.key(label, extra)
        let gauge = gauges.withLock { gauges in
            if let gauge = gauges[key] { return gauge }
            let gauge = Gauge(label: label, dimensions: dimensions + extra, factory: factory)
            gauges[key] = gauge
            return gauge
        }
        gauge.record(value)
    }

    /// Destroys the gauges of `label` whose keys are not among `kept` (keys as `set` makes them).
    func retain(_ label: String, only kept: [[(String, String)]]) {
        let keep = Set(kept.map { Self.key(label, $0) })
        let prefix = label + "|"
        let gone = gauges.withLock { gauges -> [Gauge] in
            let stale = gauges.keys.filter { $0.hasPrefix(prefix) && !keep.contains($0) }
            return stale.compactMap { gauges.removeValue(forKey: $0) }
        }
        for gauge in gone { gauge.destroy() }
    }
}

/// The counters, gauges and latency timers of one exporter, sharing its dimensions and backend.
struct MetricRecorders: Sendable {
    let counters: CounterTracker
    let gauges: GaugeSet
    let latency: LatencyTimers

    init(latencyLabel: String, factory: any MetricsFactory, dimensions: [(String, String)]) {
        counters = CounterTracker(factory: factory, dimensions: dimensions)
        gauges = GaugeSet(factory: factory, dimensions: dimensions)
        latency = LatencyTimers(latencyLabel, factory: factory, dimensions: dimensions)
    }

    /// Records a `LatencySummary` (microseconds) into the latency timers.
    func record(_ summary: LatencySummary) {
        latency.update(count: summary.count, p50: .microseconds(summary.p50), p99: .microseconds(summary.p99),
                       max: .microseconds(summary.max))
    }
}

/// Calls `update` every `interval` until the calling task is cancelled.
func poll(every interval: Duration, _ update: () async -> Void) async {
    while !Task.isCancelled {
        await update()
        do { try await Task.sleep(for: interval) } catch { return }
    }
}
