import Glibc

/// Severity of a ``LogEvent``.
public enum LogLevel: Int, Sendable, Comparable, CustomStringConvertible {
    /// Detail useful when investigating.
    case debug = 0
    /// Normal but noteworthy: a retry, a metadata change.
    case info = 1
    /// Something failed and was handled: a lost connection, an epoch bump.
    case warning = 2
    /// Something failed and records or calls failed with it.
    case error = 3

    /// Orders levels by severity.
    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The lowercase name.
    public var description: String {
        switch self {
        case .debug: "debug"
        case .info: "info"
        case .warning: "warning"
        case .error: "error"
        }
    }
}

/// One thing the client wants to tell its user's logger.
///
/// ```swift
/// config.logHandler = { event in
///     if event.level >= .warning { print("klife \(event.level): \(event.message)") }
/// }
/// ```
public struct LogEvent: Sendable, CustomStringConvertible {
    /// Severity.
    public var level: LogLevel
    /// What happened, in one line.
    public var message: String
    /// The broker concerned (`host:port`), when there is one.
    public var broker: String?

    /// An event, as the client makes them (for log adapters' tests, or to route an
    /// application's own events through the same hook).
    /// - Parameters:
    ///   - level: Severity.
    ///   - message: What happened, in one line.
    ///   - broker: The broker concerned (`host:port`), if any.
    public init(level: LogLevel, message: String, broker: String? = nil) {
        self.level = level
        self.message = message
        self.broker = broker
    }

    /// `level: message [broker]`.
    public var description: String { "\(level): \(message)" + (broker.map { " [\($0)]" } ?? "") }
}

/// Latency percentiles in microseconds.
public struct LatencySummary: Sendable, Equatable {
    /// Samples measured.
    public var count: Int
    /// Median.
    public var p50: Double
    /// 90th percentile.
    public var p90: Double
    /// 99th percentile.
    public var p99: Double
    /// Largest sample.
    public var max: Double
}

/// A log-bucketed histogram of durations (4 buckets per power of two, about ±9 % resolution).
struct LatencyHistogram {
    private(set) var buckets = [Int](repeating: 0, count: 160)
    private(set) var count = 0
    private(set) var maxMicros: Double = 0

    mutating func record(nanoseconds: UInt64) {
        let micros = Double(nanoseconds) / 1000
        let index = micros < 1 ? 0 : Swift.min(buckets.count - 1, Int(log2(micros) * 4))
        buckets[index] += 1
        count += 1
        maxMicros = Swift.max(maxMicros, micros)
    }

    mutating func merge(_ other: LatencyHistogram) {
        for i in buckets.indices { buckets[i] += other.buckets[i] }
        count += other.count
        maxMicros = Swift.max(maxMicros, other.maxMicros)
    }

    /// The upper bound of the bucket holding quantile `q`.
    func quantile(_ q: Double) -> Double {
        guard count > 0 else { return 0 }
        let target = Int((Double(count) * q).rounded(.up))
        var seen = 0
        for (i, n) in buckets.enumerated() {
            seen += n
            if seen >= Swift.max(target, 1) { return Swift.min(Self.upperBound(i), maxMicros) }
        }
        return maxMicros
    }

    static func upperBound(_ index: Int) -> Double { exp2(Double(index + 1) / 4) }

    var summary: LatencySummary {
        LatencySummary(count: count, p50: quantile(0.5), p90: quantile(0.9), p99: quantile(0.99), max: maxMicros)
    }
}

/// Producer counters kept by one reactor (confined to it), merged into ``KlifeClient/Statistics``.
struct ProducerCounters {
    var batchesSent = 0
    var produceRequests = 0
    var bytesSent = 0
    var retries = 0
    var errorsByBroker: [Int32: Int] = [:]
    var latency = LatencyHistogram()

    mutating func merge(_ other: ProducerCounters) {
        batchesSent += other.batchesSent
        produceRequests += other.produceRequests
        bytesSent += other.bytesSent
        retries += other.retries
        errorsByBroker.merge(other.errorsByBroker, uniquingKeysWith: +)
        latency.merge(other.latency)
    }
}
