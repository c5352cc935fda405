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
    /// The consumer group: with ``topics`` the consumer joins it as a member and is given
    /// partitions; without, it only names the group whose committed offsets
    /// ``KlifeConsumer/commit()`` writes and ``ConsumerStart/committed`` reads. `nil` for none.
    public var groupID: String?
    /// Topics to consume as a member of ``groupID`` (the group divides their partitions among
    /// its members). Empty: partitions are assigned by hand with ``KlifeConsumer/assign(_:)``.
    public var topics: [String] = []
    /// The group protocol: ``GroupProtocol/classic`` (JoinGroup/SyncGroup, assignment computed
    /// by the elected member) or ``GroupProtocol/consumer`` (KIP-848, assignment by the broker).
    public var groupProtocol: GroupProtocol = .classic
    /// Classic protocol: the assignment strategies this member supports, preferred first; the
    /// group uses the first one every member supports. Default cooperative-sticky (partitions
    /// that keep their owner keep being consumed during a rebalance). Mixing with members of
    /// other clients needs a strategy they support too.
    public var assignmentStrategies: [AssignmentStrategy] = [.cooperativeSticky]
    /// Consumer protocol: the broker-side assignor ("uniform", "range"); `nil` for the broker's default.
    public var serverAssignor: String?
    /// Static membership: a stable id of this member (for example the pod name). A static member
    /// restarted within ``sessionTimeout`` gets its partitions back without a rebalance, and it
    /// does not leave the group when it closes.
    public var groupInstanceID: String?
    /// Classic protocol: the member is removed when the coordinator hears no heartbeat for this
    /// long (a crash is noticed after it). Default 45 s.
    public var sessionTimeout: Duration = .seconds(45)
    /// Classic protocol: time between heartbeats (sent by the reactor, whatever the application
    /// does). Default 3 s. The consumer protocol takes the broker's interval.
    public var heartbeatInterval: Duration = .seconds(3)
    /// How long the coordinator waits for every member to rejoin during a rebalance, and so the
    /// upper bound of what this member spends revoking partitions. Default 60 s.
    public var rebalanceTimeout: Duration = .seconds(60)
    /// How long revoking a partition waits for its batch still being processed (by a handler of
    /// ``KlifeConsumer/run(_:)-((ConsumerBatch)->Void)``, or a batch not yet marked processed) before it commits what is
    /// processed and gives the partition up. Must be below ``rebalanceTimeout``. Default 30 s.
    public var revokeTimeout: Duration = .seconds(30)
    /// Commits the *processed* positions (see ``acknowledgement``) this often; `nil`: only
    /// ``KlifeConsumer/commit()``, and the commits on revoke and on close. Default 5 s.
    public var autoCommitInterval: Duration? = .seconds(5)
    /// When a batch read from ``KlifeConsumer/batches`` counts as processed (and so may be
    /// committed). Default ``BatchAcknowledgement/onNextBatch``.
    public var acknowledgement: BatchAcknowledgement = .onNextBatch
    /// Called (awaited) after partitions were given to this member, before they are fetched:
    /// a ``KlifeConsumer/seek(_:to:)`` here decides where they start.
    public var onAssigned: (@Sendable (Set<TopicPartition>) async -> Void)?
    /// Called (awaited) when partitions are taken away in a rebalance, after their processing
    /// stopped and before their processed positions are committed.
    public var onRevoked: (@Sendable (Set<TopicPartition>) async -> Void)?
    /// Called (awaited) when the member lost partitions without a chance to commit (it was
    /// removed from the group, for example after missing its session timeout): others may
    /// already be reading them.
    public var onLost: (@Sendable (Set<TopicPartition>) async -> Void)?
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
    /// Rate limits on handing batches to the application (records and bytes per second, per
    /// consumer and per partition; see ``ConsumerRateLimit``). `nil` (default): none. Changed
    /// at run time with ``KlifeConsumer/setRateLimit(_:)``.
    public var rateLimit: ConsumerRateLimit?
    /// An adaptive limit on records in flight (handed out, not yet finished) and so on batch
    /// sizes, from measured latency and handler errors (see ``AdaptiveLimit``). `nil`
    /// (default): none. Changed at run time with ``KlifeConsumer/setAdaptiveLimit(_:)``.
    public var adaptiveLimit: AdaptiveLimit?
    /// The downstream's capacity signal for ``KlifeConsumer/run(_:)-((ConsumerBatch)->Void)``: a handler is started
    /// only when the downstream can take its batch (see ``DownstreamCapacity``). `nil`
    /// (default): handlers start as batches are ready.
    public var downstream: DownstreamCapacity?
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
    /// What happens to records a ``KlifeConsumer/run(_:)-((ConsumerBatch)->Void)`` handler could not finish: attempts,
    /// backoff with jitter, halving failed batches, and what stops a partition. Default: retry
    /// without limit (100 ms doubling to 30 s, 20 % jitter), never halve.
    public var failurePolicy = FailurePolicy()
    /// Retry and dead-letter topics for records whose attempts run out (`nil`: none; such a
    /// record stops its partition). Needs ``topics`` (the chains are per subscribed topic).
    public var retryTopics: RetryTopics?

    /// Creates the default settings.
    public init() {}

    /// Checks every setting; the error names the field.
    public func validate() throws(KlifeError) {
        if let groupID, groupID.isEmpty { throw .invalidConfiguration("consumer.groupID", "must not be empty (nil for none)") }
        try validateGroup()
        if maxRecords < 1 { throw .invalidConfiguration("consumer.maxRecords", "must be at least 1") }
        if maxBatchBytes < 1 { throw .invalidConfiguration("consumer.maxBatchBytes", "must be at least 1") }
        if maxBufferedBytes < 1024 { throw .invalidConfiguration("consumer.maxBufferedBytes", "must be at least 1024") }
        if fetchMaxWait < .zero || fetchMaxWait > .seconds(300) {
            throw .invalidConfiguration("consumer.fetchMaxWait", "must be between 0 and 300 seconds")
        }
        if fetchMinBytes < 1 { throw .invalidConfiguration("consumer.fetchMinBytes", "must be at least 1") }
        if fetchMaxBytes < 1024 { throw .invalidConfiguration("consumer.fetchMaxBytes", "must be at least 1024") }
        if partitionMaxBytes < 1024 { throw .invalidConfiguration("consumer.partitionMaxBytes", "must be at least 1024") }
        try rateLimit?.validate()
        try failurePolicy.validate()
        if let retryTopics {
            if topics.isEmpty { throw .invalidConfiguration("consumer.retryTopics", "needs consumer.topics (a subscription)") }
            try retryTopics.validate(sources: topics)
        }
        try adaptiveLimit?.validate()
        try downstream?.validate()
        if retryBackoff <= .zero { throw .invalidConfiguration("consumer.retryBackoff", "must be positive") }
        if retryBackoffMax < retryBackoff {
            throw .invalidConfiguration("consumer.retryBackoffMax", "must be >= consumer.retryBackoff")
        }
    }
}

extension ConsumerConfiguration {
    /// Whether the consumer joins ``groupID`` as a member.
    var isGroupMember: Bool { !topics.isEmpty }

    fileprivate func validateGroup() throws(KlifeError) {
        if !topics.isEmpty && groupID == nil {
            throw .invalidConfiguration("consumer.groupID", "is required to subscribe to consumer.topics")
        }
        if topics.contains(where: \.isEmpty) { throw .invalidConfiguration("consumer.topics", "a topic name is empty") }
        if Set(topics).count != topics.count { throw .invalidConfiguration("consumer.topics", "lists a topic twice") }
        if let groupInstanceID, groupInstanceID.isEmpty {
            throw .invalidConfiguration("consumer.groupInstanceID", "must not be empty (nil for a dynamic member)")
        }
        switch groupProtocol {
        case .classic:
            if assignmentStrategies.isEmpty {
                throw .invalidConfiguration("consumer.assignmentStrategies", "must name at least one strategy")
            }
            if Set(assignmentStrategies).count != assignmentStrategies.count {
                throw .invalidConfiguration("consumer.assignmentStrategies", "lists a strategy twice")
            }
            if serverAssignor != nil {
                throw .invalidConfiguration("consumer.serverAssignor", "applies to the consumer group protocol only")
            }
        case .consumer:
            if let serverAssignor, serverAssignor.isEmpty {
                throw .invalidConfiguration("consumer.serverAssignor", "must not be empty (nil for the broker's default)")
            }
        }
        if sessionTimeout < .milliseconds(1) || sessionTimeout > .seconds(3600) {
            throw .invalidConfiguration("consumer.sessionTimeout", "must be between 1 ms and 1 hour")
        }
        if heartbeatInterval <= .zero || heartbeatInterval >= sessionTimeout {
            throw .invalidConfiguration("consumer.heartbeatInterval", "must be positive and below consumer.sessionTimeout")
        }
        if rebalanceTimeout < .milliseconds(1) || rebalanceTimeout > .seconds(3600) {
            throw .invalidConfiguration("consumer.rebalanceTimeout", "must be between 1 ms and 1 hour")
        }
        if revokeTimeout < .zero || revokeTimeout >= rebalanceTimeout {
            throw .invalidConfiguration("consumer.revokeTimeout", "must be at least 0 and below consumer.rebalanceTimeout")
        }
        if let autoCommitInterval, autoCommitInterval <= .zero {
            throw .invalidConfiguration("consumer.autoCommitInterval", "must be positive (nil to commit by hand)")
        }
    }
}

/// Which consumer-group protocol a member speaks.
public enum GroupProtocol: String, Sendable, Hashable, CaseIterable {
    /// JoinGroup, SyncGroup and Heartbeat; the elected member computes the assignment with an
    /// ``AssignmentStrategy``. Every Kafka broker and client speaks it.
    case classic
    /// KIP-848: one ConsumerGroupHeartbeat call; the broker computes the assignment and
    /// rebalances each member on its own (Kafka 4.0 and later).
    case consumer
}

/// When a batch read from ``KlifeConsumer/batches`` (or ``KlifeConsumer/next()``) counts as
/// processed: only processed positions are committed, automatically or on revoke and close.
public enum BatchAcknowledgement: Sendable, Hashable {
    /// A batch is processed once the reader asks for the next batch (the loop body finished),
    /// or when ``KlifeConsumer/commit()`` is called.
    case onNextBatch
    /// Only ``KlifeConsumer/markProcessed(_:)`` marks a batch processed (for readers that
    /// hand batches to other tasks).
    case explicit
}

/// Where a partition whose position is missing or out of range starts.
public enum OffsetResetPolicy: Sendable, Hashable {
    /// The first offset still in the log.
    case earliest
    /// The end of the log: only records produced from now on.
    case latest
    /// No reset: the partition stops and its batches stream ends with
    /// a ``KlifeError`` whose ``KlifeError/kafkaErrorCode`` is `offsetOutOfRange`.
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
