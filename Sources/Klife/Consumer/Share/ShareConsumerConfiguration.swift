/// Settings of a share group consumer (KIP-932); see ``KlifeClient/shareConsumer(_:)``.
///
/// ```swift
/// var settings = ShareConsumerConfiguration(groupID: "invoices", topics: ["invoices"])
/// settings.acknowledgement = .explicit
/// settings.maxRecords = 100
/// let consumer = try client.shareConsumer(settings)
/// for try await batch in consumer.batches {
///     for record in batch { try consumer.acknowledge(record, try await handle(record) ? .accept : .release) }
/// }
/// ```
public struct ShareConsumerConfiguration: Sendable {
    /// When records a consumer was given count as processed.
    public enum AcknowledgementMode: Sendable, Hashable {
        /// Every record of a batch not acknowledged by the time the next batch is asked for is
        /// accepted then (the share group counterpart of committing on the next poll).
        case implicit
        /// Only ``KlifeShareConsumer/acknowledge(_:_:)-(ShareRecord,_)`` settles a record; one never
        /// acknowledged goes back to the group when its acquisition lock times out.
        case explicit
    }

    /// Where records go that were delivered too many times, instead of to the application.
    public struct DeadLetter: Sendable, Hashable {
        /// The topic the records are produced to (same key, value and headers, plus
        /// `klife-share-source` = `topic/partition/offset` and `klife-share-deliveries`).
        public var topic: String
        /// A record delivered more often than this is moved to ``topic`` and then accepted.
        public var maxDeliveryCount: Int

        /// Creates the setting.
        public init(topic: String, maxDeliveryCount: Int) {
            self.topic = topic
            self.maxDeliveryCount = maxDeliveryCount
        }
    }

    /// The share group to join.
    public var groupID: String
    /// The topics to subscribe to.
    public var topics: [String]
    /// When records count as processed (default ``AcknowledgementMode/implicit``).
    public var acknowledgement: AcknowledgementMode = .implicit
    /// The most records in one batch handed out (and asked of each broker per ShareFetch).
    public var maxRecords: Int = 500
    /// How long a broker may hold a ShareFetch waiting for records.
    public var fetchMaxWait: Duration = .milliseconds(500)
    /// The most bytes a ShareFetch answer may carry.
    public var fetchMaxBytes: Int32 = 50 << 20
    /// The most bytes a fetched answer may inflate to when decompressed.
    public var maxUncompressedBytes: Int = 256 << 20
    /// The heartbeat interval until the coordinator's first answer sets its own.
    public var heartbeatInterval: Duration = .seconds(3)
    /// Records delivered too often go here (default: none, they are handed out like any other).
    public var deadLetter: DeadLetter?
    /// The rack the member runs in, sent to the coordinator.
    public var rackID: String?
    /// A limit on the records (and bytes of keys and values) handed out per second, over the
    /// whole consumer; the per-partition rates of ``ConsumerRateLimit`` do not apply (records
    /// of one partition go to many members). `nil`: unlimited.
    public var rateLimit: ConsumerRateLimit?
    /// Permits from the application's downstream: one is acquired before each batch is
    /// fetched and handed out, and released when the next batch is asked for (or on close).
    /// `nil`: no permits.
    public var downstream: (any DownstreamPermits)?

    /// Creates settings for `groupID` reading `topics`.
    public init(groupID: String, topics: [String]) {
        self.groupID = groupID
        self.topics = topics
    }

    /// Checks every field.
    /// - Throws: ``KlifeError/Code/invalidConfiguration`` naming the first bad field.
    public func validate() throws(KlifeError) {
        if groupID.isEmpty { throw .invalidConfiguration("shareConsumer.groupID", "must not be empty") }
        if topics.isEmpty { throw .invalidConfiguration("shareConsumer.topics", "must name at least one topic") }
        if topics.contains(where: \.isEmpty) {
            throw .invalidConfiguration("shareConsumer.topics", "topic names must not be empty")
        }
        if maxRecords < 1 || maxRecords > Int(Int32.max) {
            throw .invalidConfiguration("shareConsumer.maxRecords", "must be between 1 and \(Int32.max)")
        }
        if fetchMaxWait < .zero || fetchMaxWait > .seconds(300) {
            throw .invalidConfiguration("shareConsumer.fetchMaxWait", "must be between 0 and 300 seconds")
        }
        if fetchMaxBytes < 1 { throw .invalidConfiguration("shareConsumer.fetchMaxBytes", "must be at least 1") }
        if maxUncompressedBytes < 1 {
            throw .invalidConfiguration("shareConsumer.maxUncompressedBytes", "must be at least 1")
        }
        if heartbeatInterval <= .zero {
            throw .invalidConfiguration("shareConsumer.heartbeatInterval", "must be positive")
        }
        if let rateLimit {
            if rateLimit.perPartitionRecordsPerSecond != nil || rateLimit.perPartitionBytesPerSecond != nil {
                throw .invalidConfiguration("shareConsumer.rateLimit", "per-partition rates do not apply to a share group")
            }
            try rateLimit.validate()
        }
        if let deadLetter {
            if deadLetter.topic.isEmpty {
                throw .invalidConfiguration("shareConsumer.deadLetter.topic", "must not be empty")
            }
            if topics.contains(deadLetter.topic) {
                throw .invalidConfiguration("shareConsumer.deadLetter.topic", "must not be a topic the group reads")
            }
            if deadLetter.maxDeliveryCount < 1 || deadLetter.maxDeliveryCount > Int(Int16.max) {
                throw .invalidConfiguration("shareConsumer.deadLetter.maxDeliveryCount",
                                            "must be between 1 and \(Int16.max)")
            }
        }
    }
}
