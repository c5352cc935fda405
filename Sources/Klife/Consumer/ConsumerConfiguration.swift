/// Settings of a ``KlifeConsumer``: how batches are bounded, how much is fetched ahead, and
/// where a partition without a valid position starts.
///
/// ```swift
/// var settings = ConsumerConfiguration()
/// settings.maxRecords = 100                  // at most 100 records per batch
/// settings.maxBufferedBytes = 16 << 20       // fetch at most 16 MiB ahead of the application
/// settings.isolation = .readCommitted
/// let consumer = try client.consumer(settings)
/// ```
public struct ConsumerConfiguration: Sendable {
    /// The consumer group whose committed offsets ``KlifeConsumer/commit()`` writes and
    /// ``ConsumerStart/committed`` reads; `nil` for none. (Group membership builds on this.)
    public var groupID: String?
    /// At most this many records in one batch (a hard limit; default 500).
    public var maxRecords: Int = 500
    /// At most this many bytes of keys and values in one batch (a batch holds at least one
    /// record, even a larger one). Default 1 MiB.
    public var maxBatchBytes: Int = 1 << 20
    /// Fetched records waiting for the application, across all partitions, are bounded by this
    /// many bytes (keys and values): each fetch asks for at most the room left, and nothing is
    /// fetched while the buffer is full, so nothing fetched is ever thrown away. A broker returns
    /// the first record batch of an answer whole (KIP-74), so the bound can be passed by at
    /// most one producer batch. Default 64 MiB.
    public var maxBufferedBytes: Int = 64 << 20
    /// How long a broker may hold a fetch waiting for ``fetchMinBytes`` (a long poll on the
    /// fetch connection, which never delays produce acknowledgements). Default 500 ms.
    public var fetchMaxWait: Duration = .milliseconds(500)
    /// A broker answers a fetch once it has this many bytes (or ``fetchMaxWait`` passed).
    public var fetchMinBytes: Int32 = 1
    /// Size limit of one fetch answer (all partitions of a broker; soft, as in Kafka). Default 50 MiB.
    public var fetchMaxBytes: Int32 = 50 << 20
    /// Size limit per partition within one fetch answer (soft). Default 1 MiB.
    public var partitionMaxBytes: Int32 = 1 << 20
    /// ``IsolationLevel/readUncommitted`` (default) or ``IsolationLevel/readCommitted``.
    public var isolation: IsolationLevel = .readUncommitted
    /// Where a partition starts when its position is out of range (deleted by retention, or
    /// beyond the end), and where ``ConsumerStart/committed`` starts without a commit
    /// (``OffsetResetPolicy/none``: assigning fails).
    public var offsetReset: OffsetResetPolicy = .latest
    /// Wait after a fetch error of a partition before fetching it again (doubling up to
    /// ``retryBackoffMax``).
    public var retryBackoff: Duration = .milliseconds(100)
    /// Upper bound of the fetch retry backoff.
    public var retryBackoffMax: Duration = .seconds(1)

    /// Creates the default settings.
    public init() {}

    /// Checks every setting; the error names the field.
    public func validate() throws(KlifeError) {
        if let groupID, groupID.isEmpty { throw .invalidConfiguration("consumer.groupID", "must not be empty (nil for none)") }
        if maxRecords < 1 { throw .invalidConfiguration("consumer.maxRecords", "must be at least 1") }
        if maxBatchBytes < 1 { throw .invalidConfiguration("consumer.maxBatchBytes", "must be at least 1") }
        if maxBufferedBytes < 1024 { throw .invalidConfiguration("consumer.maxBufferedBytes", "must be at least 1024") }
        if fetchMaxWait < .zero || fetchMaxWait > .seconds(300) {
            throw .invalidConfiguration("consumer.fetchMaxWait", "must be between 0 and 300 seconds")
        }
        if fetchMinBytes < 1 { throw .invalidConfiguration("consumer.fetchMinBytes", "must be at least 1") }
        if fetchMaxBytes < 1024 { throw .invalidConfiguration("consumer.fetchMaxBytes", "must be at least 1024") }
        if partitionMaxBytes < 1024 { throw .invalidConfiguration("consumer.partitionMaxBytes", "must be at least 1024") }
        if retryBackoff <= .zero { throw .invalidConfiguration("consumer.retryBackoff", "must be positive") }
        if retryBackoffMax < retryBackoff {
            throw .invalidConfiguration("consumer.retryBackoffMax", "must be >= consumer.retryBackoff")
        }
    }
}

/// Where a partition whose position is missing or out of range starts.
public enum OffsetResetPolicy: Sendable, Hashable {
    /// The first offset still in the log.
    case earliest
    /// The end of the log: only records produced from now on.
    case latest
    /// No reset: the partition stops and its batches stream ends with
    /// ``KlifeError/Code/offsetOutOfRange``.
    case none
}

/// Where ``KlifeConsumer/assign(_:)`` starts a partition.
public enum ConsumerStart: Sendable, Hashable {
    /// The first offset still in the log.
    case earliest
    /// The end of the log.
    case latest
    /// This offset (the reset policy applies if it is out of range).
    case offset(Int64)
    /// The first offset whose timestamp is at or after this time (ms since epoch); the end of
    /// the log when there is none.
    case timestamp(Int64)
    /// The group's committed offset (``ConsumerConfiguration/groupID``), or where
    /// ``ConsumerConfiguration/offsetReset`` says when there is none.
    case committed
}
