import Foundation
import Klife
import Synchronization

/// The demo's phases, in the order they happen.
enum Phase: String, Sendable {
    /// Joining the group, until the first batch is in (Tansu holds a first join for seconds).
    case joining
    case normal
    case restarting
    case struggle
    case recovery
}

/// What the handlers did so far, shared by the handler tasks, the sampler and the controller.
final class Progress: Sendable {
    private struct State {
        var inserted = 0
        var conflicts = 0
        var batches = 0
        /// Handler durations (ms) since the sampler last looked.
        var window: [Double] = []
        /// Batch sizes since the sampler last looked.
        var sizes: [Int] = []
        var phase = Phase.joining
    }

    private let state = Mutex(State())

    func record(handled: Int, inserted: Int, milliseconds: Double) {
        state.withLock {
            $0.inserted += inserted
            $0.conflicts += handled - inserted
            $0.batches += 1
            $0.window.append(milliseconds)
            $0.sizes.append(handled)
        }
    }

    var inserted: Int { state.withLock { $0.inserted } }
    var conflicts: Int { state.withLock { $0.conflicts } }

    var phase: Phase {
        get { state.withLock { $0.phase } }
        set { state.withLock { $0.phase = newValue } }
    }

    /// The totals, and the handler durations since the last call (which it empties).
    func drain() -> (inserted: Int, conflicts: Int, phase: Phase, window: [Double], sizes: [Int]) {
        state.withLock { s in
            defer {
                s.window.removeAll(keepingCapacity: true)
                s.sizes.removeAll(keepingCapacity: true)
            }
            return (s.inserted, s.conflicts, s.phase, s.window, s.sizes)
        }
    }
}

/// One row of the timeline CSV.
struct Sample: Sendable {
    var time: Double
    var phase: Phase
    var recordsPerSecond: Double
    var inserted: Int
    var conflicts: Int
    var windowP50: Double?
    var windowP99: Double?
    var statsP50: Double?
    var statsP99: Double?
    var rateLimit: Double?
    var lag: Int64?
    var bufferedBytes: Int?
    var adaptiveLimit: Int?
    var inFlight: Int?
    var limitDecreases: Int?
    var recentP99: Double?
    var batches = 0
    var batchMin: Int?
    var batchP50: Int?

    static let header = "time_s,phase,records_per_s,inserted,conflicts,handler_p50_ms,handler_p99_ms,"
        + "stats_handler_p50_ms,stats_handler_p99_ms,rate_limit,lag,buffered_bytes,"
        + "adaptive_limit,in_flight,limit_decreases,recent_p99_ms,batches,batch_min,batch_p50"

    var csv: String {
        func f(_ v: Double?, _ digits: Int = 2) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "" }
        func i<T: BinaryInteger>(_ v: T?) -> String { v.map { "\($0)" } ?? "" }
        let columns: [String] = [f(time, 3), phase.rawValue, f(recordsPerSecond, 1), i(inserted), i(conflicts),
                                 f(windowP50), f(windowP99), f(statsP50), f(statsP99), f(rateLimit, 1),
                                 i(lag), i(bufferedBytes), i(adaptiveLimit), i(inFlight), i(limitDecreases),
                                 f(recentP99), i(batches), i(batchMin), i(batchP50)]
        return columns.joined(separator: ",")
    }
}

/// Samples the progress and the consumer's statistics at a fixed interval.
final class Timeline: Sendable {
    private let samples = Mutex<[Sample]>([])
    private let consumer = Mutex<KlifeConsumer?>(nil)

    /// The consumer whose statistics go into the samples from now on.
    func watch(_ consumer: KlifeConsumer?) { self.consumer.withLock { $0 = consumer } }

    var all: [Sample] { samples.withLock { $0 } }

    /// Samples every `interval` until cancelled; prints a progress line to stderr every 2 s.
    func run(_ progress: Progress, interval: Duration, started: ContinuousClock.Instant, total: Int) async {
        let clock = ContinuousClock()
        var last = (time: 0.0, inserted: 0)
        var lastPrinted = -2.0
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let now = clock.now - started
            let t = Double(now.components.seconds) + Double(now.components.attoseconds) / 1e18
            let p = progress.drain()
            let window = p.window.sorted()
            let sizes = p.sizes.sorted()
            var sample = Sample(time: t, phase: p.phase,
                                recordsPerSecond: Double(p.inserted - last.inserted) / max(t - last.time, 1e-3),
                                inserted: p.inserted, conflicts: p.conflicts,
                                windowP50: Self.quantile(window, 0.5), windowP99: Self.quantile(window, 0.99))
            sample.batches = sizes.count
            sample.batchMin = sizes.first
            sample.batchP50 = sizes.isEmpty ? nil : sizes[(sizes.count - 1) / 2]
            if let stats = consumer.withLock({ $0 })?.statistics() {
                if stats.handlerLatency.count > 0 {
                    sample.statsP50 = stats.handlerLatency.p50 / 1000
                    sample.statsP99 = stats.handlerLatency.p99 / 1000
                }
                sample.rateLimit = stats.rateLimit?.recordsPerSecond
                let lags = stats.partitions.values.map(\.lag).filter { $0 >= 0 }
                sample.lag = lags.isEmpty ? nil : lags.reduce(0, +)
                sample.bufferedBytes = stats.bufferedBytes
                sample.inFlight = stats.inFlightRecords
                sample.adaptiveLimit = stats.adaptiveLimit?.limit
                sample.limitDecreases = stats.adaptiveLimit?.decreases
                if stats.recentLatency.count > 0 {
                    sample.recentP99 = Double(stats.recentLatency.p99.components.attoseconds) / 1e15
                        + Double(stats.recentLatency.p99.components.seconds) * 1000
                }
            }
            samples.withLock { $0.append(sample) }
            last = (t, p.inserted)
            if t - lastPrinted >= 2 {
                lastPrinted = t
                let p99 = sample.windowP99.map { String(format: "%.0f ms", $0) } ?? "-"
                let limit = sample.adaptiveLimit.map { "  limit \($0)" } ?? ""
                FileHandle.standardError.write(Data(String(
                    format: "flow-demo: %5.1fs %-10@ %8.0f records/s  %7d/%d in  handler p99 %@%@\n",
                    t, p.phase.rawValue as NSString, sample.recordsPerSecond, p.inserted, total, p99 as NSString,
                    limit as NSString).utf8))
            }
        }
    }

    func writeCSV(to path: String) throws {
        let text = ([Sample.header] + all.map(\.csv)).joined(separator: "\n") + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func quantile(_ sorted: [Double], _ q: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let index = min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.up)) - 1)
        return sorted[max(0, index)]
    }
}
