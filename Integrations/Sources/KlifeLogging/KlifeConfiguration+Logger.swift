public import Klife
public import Logging

extension KlifeConfiguration {
    /// Sends the client's log events to `logger`, and lets through the events at or above the
    /// logger's level (`LogLevel` has four levels: `trace` maps to `debug`, `notice` to
    /// `info`, `critical` to `error`).
    ///
    /// ```swift
    /// var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:9092"])
    /// config.log(to: Logger(label: "orders.kafka"))
    /// ```
    ///
    /// Events arrive from reactor threads; `logger`'s handler must be cheap and thread-safe, as
    /// every swift-log handler is. An event about one broker carries it as the `broker` metadata
    /// value. Changing `KlifeConfiguration.logLevel` afterwards still filters in the client.
    /// - Parameter logger: Where the events go; its `logLevel` sets `KlifeConfiguration.logLevel`.
    public mutating func log(to logger: Logger) {
        logLevel = Klife.LogLevel(logger.logLevel)
        logHandler = { event in logger.log(event) }
    }
}

extension Logger {
    /// Logs one of the client's events at the matching level, with its broker as the `broker`
    /// metadata value and `klife` as the source.
    /// - Parameter event: An event the client handed to `KlifeConfiguration.logHandler`.
    public func log(_ event: Klife.LogEvent) {
        var metadata: Logger.Metadata = [:]
        if let broker = event.broker { metadata["broker"] = .string(broker) }
        log(level: Logger.Level(event.level), "\(event.message)", metadata: metadata, source: "klife")
    }
}

extension Logger.Level {
    /// The swift-log level of a Klife level: `debug`, `info`, `warning` and `error` keep their names.
    /// - Parameter level: The client's level.
    public init(_ level: Klife.LogLevel) {
        switch level {
        case .debug: self = .debug
        case .info: self = .info
        case .warning: self = .warning
        case .error: self = .error
        }
    }
}

extension Klife.LogLevel {
    /// The Klife level that lets through what a logger at `level` shows: `trace` and `debug`
    /// become `debug`, `info` and `notice` become `info`, `critical` becomes `error`.
    /// - Parameter level: The logger's level.
    public init(_ level: Logger.Level) {
        switch level {
        case .trace, .debug: self = .debug
        case .info, .notice: self = .info
        case .warning: self = .warning
        case .error, .critical: self = .error
        }
    }
}
