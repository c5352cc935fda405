/// Manual rate limits on the batches a ``KlifeConsumer`` hands to the application
/// (``KlifeConsumer/next()``, ``KlifeConsumer/batches``, ``KlifeConsumer/run(_:)-((ConsumerBatch)->Void)``): records
/// per second and bytes (keys and values) per second, for the whole consumer and for each
/// partition. Every limit is a token bucket holding ``burst`` worth of its rate; `nil` leaves
/// that dimension unlimited.
///
/// ```swift
/// var settings = ConsumerConfiguration()
/// settings.rateLimit = ConsumerRateLimit(recordsPerSecond: 2_000, perPartitionBytesPerSecond: 1 << 20)
/// let consumer = try client.consumer(settings)
/// try consumer.setRateLimit(ConsumerRateLimit(recordsPerSecond: 500))   // slower, at run time
/// ```
///
/// A batch is handed out once every bucket it counts against allows it; one larger than a
/// whole bucket goes out when that bucket is full and leaves it in debt, so the next batch
/// waits longer (big batches are never stuck). A partition held back by its own limit lets
/// other partitions' batches go first. While batches wait, fetching goes on only up to
/// ``ConsumerConfiguration/maxBufferedBytes`` (nothing is dropped), heartbeats go on as
/// always, and nothing waiting is acknowledged or committed.
public struct ConsumerRateLimit: Sendable, Hashable {
    /// Records per second handed out by the consumer, over all partitions; `nil`: unlimited.
    public var recordsPerSecond: Double?
    /// Bytes of keys and values per second handed out by the consumer; `nil`: unlimited.
    public var bytesPerSecond: Double?
    /// Records per second handed out of each partition; `nil`: unlimited.
    public var perPartitionRecordsPerSecond: Double?
    /// Bytes of keys and values per second handed out of each partition; `nil`: unlimited.
    public var perPartitionBytesPerSecond: Double?
    /// How much each bucket holds, as time at its rate: after an idle spell up to
    /// `rate × burst` may go out at once. Default 1 s.
    public var burst: Duration

    /// A limit; at least one rate must be set.
    public init(recordsPerSecond: Double? = nil, bytesPerSecond: Double? = nil,
                perPartitionRecordsPerSecond: Double? = nil, perPartitionBytesPerSecond: Double? = nil,
                burst: Duration = .seconds(1)) {
        self.recordsPerSecond = recordsPerSecond
        self.bytesPerSecond = bytesPerSecond
        self.perPartitionRecordsPerSecond = perPartitionRecordsPerSecond
        self.perPartitionBytesPerSecond = perPartitionBytesPerSecond
        self.burst = burst
    }

    /// Checks every field; the error names it (under `consumer.rateLimit`).
    public func validate() throws(KlifeError) {
        let rates: [(String, Double?)] = [
            ("recordsPerSecond", recordsPerSecond), ("bytesPerSecond", bytesPerSecond),
            ("perPartitionRecordsPerSecond", perPartitionRecordsPerSecond),
            ("perPartitionBytesPerSecond", perPartitionBytesPerSecond),
        ]
        for (name, rate) in rates {
            if let rate, !(rate.isFinite && rate > 0) {
                throw .invalidConfiguration("consumer.rateLimit.\(name)", "must be a positive number (nil for no limit)")
            }
        }
        if rates.allSatisfy({ $0.1 == nil }) {
            throw .invalidConfiguration("consumer.rateLimit", "sets no rate (nil for no limit)")
        }
        if burst <= .zero || burst > .seconds(3600) {
            throw .invalidConfiguration("consumer.rateLimit.burst", "must be above 0 and at most 1 hour")
        }
    }

    /// ``burst`` in seconds.
    var burstSeconds: Double {
        let c = burst.components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}
