/// ShareFetch request (key 78), version 1; flexible in every version (KIP-932).
///
///     group_id:COMPACT_NULLABLE_STRING member_id:COMPACT_NULLABLE_STRING
///     share_session_epoch:INT32 max_wait_ms:INT32 min_bytes:INT32 max_bytes:INT32
///     max_records:INT32 (v1+) batch_size:INT32 (v1+)
///     topics:[topic_id:UUID
///             partitions:[partition_index:INT32
///                         acknowledgement_batches:[first_offset:INT64 last_offset:INT64
///                                                  acknowledge_types:[INT8] <tags>] <tags>] <tags>]
///     forgotten_topics_data:[topic_id:UUID partitions:[INT32] <tags>] <tags>
///
/// Fetches and acquires records for a share group member from one broker, and settles
/// records acquired earlier from the same broker. The share session is keyed by group,
/// member and broker: epoch 0 opens it (and must carry no acknowledgements), each later
/// request sends the next epoch (1, 2, ...) and lists only partitions added since the
/// previous one plus those with acknowledgements; `forgottenTopics` removes partitions;
/// epoch -1 closes it (acknowledgements allowed, nothing fetched, no forgotten topics).
public struct ShareFetchRequest: KafkaRequest, Equatable {
    /// Answered by ``ShareFetchResponse``.
    public typealias Response = ShareFetchResponse
    /// Key 78.
    public static let apiKey = ApiKey.shareFetch
    /// v1 only (the first stable version, with `max_records` and `batch_size`).
    public static let supportedVersions: ClosedRange<Int16> = 1...1
    /// Every version is flexible.
    public static let firstFlexibleVersion: Int16 = 0

    /// ``shareSessionEpoch`` that opens a share session.
    public static let openEpoch: Int32 = 0
    /// ``shareSessionEpoch`` that closes a share session.
    public static let closeEpoch: Int32 = -1

    /// The share group id.
    public var groupID: String?
    /// The member id.
    public var memberID: String?
    /// 0 to open the session, -1 to close it, otherwise the next epoch of the session.
    public var shareSessionEpoch: Int32
    /// How long the broker may wait for `minBytes`.
    public var maxWaitMs: Int32
    /// The bytes to wait for before answering.
    public var minBytes: Int32
    /// The most bytes in the answer (a soft limit: the first batch is always returned).
    public var maxBytes: Int32
    /// The most records to acquire (v1+); a soft limit rounded up to whole batches.
    public var maxRecords: Int32
    /// The preferred number of records per acquired batch (v1+).
    public var batchSize: Int32
    /// Partitions to add to the session, and partitions whose records are acknowledged.
    public var topics: [Topic]
    /// Partitions to remove from the session.
    public var forgottenTopics: [ForgottenTopic]

    /// Creates the request.
    public init(
        groupID: String?, memberID: String?, shareSessionEpoch: Int32, maxWaitMs: Int32, minBytes: Int32 = 1,
        maxBytes: Int32 = 52_428_800, maxRecords: Int32 = 500, batchSize: Int32 = 500, topics: [Topic] = [],
        forgottenTopics: [ForgottenTopic] = []
    ) {
        self.groupID = groupID
        self.memberID = memberID
        self.shareSessionEpoch = shareSessionEpoch
        self.maxWaitMs = maxWaitMs
        self.minBytes = minBytes
        self.maxBytes = maxBytes
        self.maxRecords = maxRecords
        self.batchSize = batchSize
        self.topics = topics
        self.forgottenTopics = forgottenTopics
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        writer.writeCompactNullableString(groupID)
        writer.writeCompactNullableString(memberID)
        writer.writeInt32(shareSessionEpoch)
        writer.writeInt32(maxWaitMs)
        writer.writeInt32(minBytes)
        writer.writeInt32(maxBytes)
        writer.writeInt32(maxRecords)
        writer.writeInt32(batchSize)
        Topic.encode(topics, into: &writer)
        writer.writeArrayCount(forgottenTopics.count, flexible: true)
        for topic in forgottenTopics {
            writer.writeUUID(topic.topicID)
            writer.writeArrayCount(topic.partitions.count, flexible: true)
            for partition in topic.partitions { writer.writeInt32(partition) }
            writer.writeEmptyTaggedFields()
        }
        writer.writeEmptyTaggedFields()
    }

    /// The partitions of one topic in a share fetch (and in a ShareAcknowledge).
    ///
    ///     topic_id:UUID
    ///     partitions:[partition_index:INT32 acknowledgement_batches:[...] <tags>] <tags>
    public typealias Topic = ShareTopic<Partition>

    /// One partition of a share fetch, with the records of it being acknowledged.
    public struct Partition: Sendable, Hashable {
        /// The partition index.
        public var partitionIndex: Int32
        /// Acknowledgements, in ascending offset order without overlap.
        public var acknowledgementBatches: [ShareAcknowledgementBatch]

        /// Creates an entry.
        public init(partitionIndex: Int32, acknowledgementBatches: [ShareAcknowledgementBatch] = []) {
            self.partitionIndex = partitionIndex
            self.acknowledgementBatches = acknowledgementBatches
        }
    }

    /// Partitions of one topic to drop from the share session.
    public typealias ForgottenTopic = ConsumerGroupHeartbeatRequest.TopicPartitions
}
