/// Fetch request (key 1), versions 4–17; flexible from v12. The response is ``FetchResponse``.
///
///     replica_id:INT32 (v4–14) max_wait_ms:INT32 min_bytes:INT32 max_bytes:INT32 isolation_level:INT8
///     session_id:INT32 (v7+) session_epoch:INT32 (v7+)
///     topics:[topic:STRING (v4–12) | topic_id:UUID (v13+)
///             partitions:[partition:INT32 current_leader_epoch:INT32 (v9+) fetch_offset:INT64
///                         last_fetched_epoch:INT32 (v12+) log_start_offset:INT64 (v5+)
///                         partition_max_bytes:INT32 <tags>] <tags>]
///     forgotten_topics_data:[topic:STRING (v7–12) | topic_id:UUID (v13+) partitions:[INT32] <tags>] (v7+)
///     rack_id:STRING (v11+) <tags>
///
/// Topics are named up to v12 and identified by id from v13: fill in ``Topic/topicID``
/// (from Metadata v10+) when negotiating v13 or later. The tagged `cluster_id` (v12+),
/// `replica_state` (v15+) and `replica_directory_id` (v17+) are follower-only and never sent;
/// from v15 ``replicaID`` is therefore not sent at all, which is right for consumers.
public struct FetchRequest: KafkaRequest, Equatable {
    /// Answered by ``FetchResponse``.
    public typealias Response = FetchResponse
    /// Key 1.
    public static let apiKey = ApiKey.fetch
    /// v4 (first with record batch v2) through v17.
    public static let supportedVersions: ClosedRange<Int16> = 4...17
    /// v12.
    public static let firstFlexibleVersion: Int16 = 12

    /// -1 for consumers. Sent only up to v14.
    public var replicaID: Int32
    /// How long the broker may wait for ``minBytes`` to accumulate.
    public var maxWaitMs: Int32
    /// Answer as soon as this many bytes are available.
    public var minBytes: Int32
    /// Overall response size limit (the first batch is returned even if larger).
    public var maxBytes: Int32
    /// 0 = read uncommitted, 1 = read committed.
    public var isolationLevel: Int8
    /// Incremental fetch session id (KIP-227; v7+); 0 for none.
    public var sessionID: Int32
    /// Incremental fetch session epoch (v7+): -1 = no session, 0 = open a new one.
    public var sessionEpoch: Int32
    /// Partitions to fetch (in an incremental session: added or changed ones only).
    public var topics: [Topic]
    /// Partitions to drop from the fetch session (v7+).
    public var forgottenTopics: [ForgottenTopic]
    /// The consumer's rack, for follower fetching (KIP-392; v11+).
    public var rackID: String

    /// Creates the request.
    public init(
        replicaID: Int32 = -1, maxWaitMs: Int32 = 500, minBytes: Int32 = 1, maxBytes: Int32 = 52_428_800,
        isolationLevel: Int8 = 0, sessionID: Int32 = 0, sessionEpoch: Int32 = -1, topics: [Topic],
        forgottenTopics: [ForgottenTopic] = [], rackID: String = ""
    ) {
        self.replicaID = replicaID
        self.maxWaitMs = maxWaitMs
        self.minBytes = minBytes
        self.maxBytes = maxBytes
        self.isolationLevel = isolationLevel
        self.sessionID = sessionID
        self.sessionEpoch = sessionEpoch
        self.topics = topics
        self.forgottenTopics = forgottenTopics
        self.rackID = rackID
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 12
        if version <= 14 { writer.writeInt32(replicaID) }
        writer.writeInt32(maxWaitMs)
        writer.writeInt32(minBytes)
        writer.writeInt32(maxBytes)
        writer.writeInt8(isolationLevel)
        if version >= 7 {
            writer.writeInt32(sessionID)
            writer.writeInt32(sessionEpoch)
        }
        writer.writeArrayCount(topics.count, flexible: flexible)
        for topic in topics {
            if version >= 13 {
                writer.writeUUID(topic.topicID)
            } else {
                writer.writeString(topic.name, flexible: flexible)
            }
            writer.writeArrayCount(topic.partitions.count, flexible: flexible)
            for p in topic.partitions {
                writer.writeInt32(p.partition)
                if version >= 9 { writer.writeInt32(p.currentLeaderEpoch) }
                writer.writeInt64(p.fetchOffset)
                if version >= 12 { writer.writeInt32(p.lastFetchedEpoch) }
                if version >= 5 { writer.writeInt64(p.logStartOffset) }
                writer.writeInt32(p.partitionMaxBytes)
                writer.writeEmptyTaggedFields(flexible: flexible)
            }
            writer.writeEmptyTaggedFields(flexible: flexible)
        }
        if version >= 7 {
            writer.writeArrayCount(forgottenTopics.count, flexible: flexible)
            for topic in forgottenTopics {
                if version >= 13 {
                    writer.writeUUID(topic.topicID)
                } else {
                    writer.writeString(topic.name, flexible: flexible)
                }
                writer.writeArrayCount(topic.partitions.count, flexible: flexible)
                for p in topic.partitions { writer.writeInt32(p) }
                writer.writeEmptyTaggedFields(flexible: flexible)
            }
        }
        if version >= 11 { writer.writeString(rackID, flexible: flexible) }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }

    /// The partitions of one topic to fetch.
    public struct Topic: Sendable, Equatable {
        /// Topic name (sent up to v12).
        public var name: String
        /// Topic id (sent from v13).
        public var topicID: KafkaUUID
        /// Partitions to fetch.
        public var partitions: [Partition]

        /// Creates a topic entry.
        public init(name: String, topicID: KafkaUUID = .zero, partitions: [Partition]) {
            self.name = name
            self.topicID = topicID
            self.partitions = partitions
        }
    }

    /// Where to fetch one partition from.
    public struct Partition: Sendable, Hashable {
        /// The partition number.
        public var partition: Int32
        /// The leader epoch the client knows, for fencing (v9+); -1 to skip the check.
        public var currentLeaderEpoch: Int32
        /// The offset to read from.
        public var fetchOffset: Int64
        /// Epoch of the last fetched record, for divergence detection (v12+); -1 for none.
        public var lastFetchedEpoch: Int32
        /// Follower log start offset (v5+); -1 for consumers.
        public var logStartOffset: Int64
        /// Size limit for this partition (the first batch is returned even if larger).
        public var partitionMaxBytes: Int32

        /// Creates a partition entry.
        public init(partition: Int32, currentLeaderEpoch: Int32 = -1, fetchOffset: Int64, lastFetchedEpoch: Int32 = -1,
                    logStartOffset: Int64 = -1, partitionMaxBytes: Int32) {
            self.partition = partition
            self.currentLeaderEpoch = currentLeaderEpoch
            self.fetchOffset = fetchOffset
            self.lastFetchedEpoch = lastFetchedEpoch
            self.logStartOffset = logStartOffset
            self.partitionMaxBytes = partitionMaxBytes
        }
    }

    /// Partitions to remove from an incremental fetch session.
    public struct ForgottenTopic: Sendable, Hashable {
        /// Topic name (sent v7–12).
        public var name: String
        /// Topic id (sent from v13).
        public var topicID: KafkaUUID
        /// Partition numbers to forget.
        public var partitions: [Int32]

        /// Creates an entry.
        public init(name: String, topicID: KafkaUUID = .zero, partitions: [Int32]) {
            self.name = name
            self.topicID = topicID
            self.partitions = partitions
        }
    }
}
