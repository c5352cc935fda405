/// TxnOffsetCommit request (key 28), versions 0–3; flexible from v3.
///
///     transactional_id:STRING group_id:STRING producer_id:INT64 producer_epoch:INT16
///     generation_id:INT32 (v3+) member_id:STRING (v3+) group_instance_id:NULLABLE_STRING (v3+)
///     topics:[name:STRING
///             partitions:[partition_index:INT32 committed_offset:INT64 committed_leader_epoch:INT32 (v2+)
///                         committed_metadata:NULLABLE_STRING <tags v3+>] <tags v3+>] <tags v3+>
///
/// Sent to the group coordinator after ``AddOffsetsToTxnRequest``; the offsets become
/// visible only when the transaction commits. The v3 group fields (KIP-447) let the
/// coordinator fence zombie producers by consumer generation.
public struct TxnOffsetCommitRequest: KafkaRequest, Equatable {
    /// Answered by ``TxnOffsetCommitResponse``.
    public typealias Response = TxnOffsetCommitResponse
    /// Key 28.
    public static let apiKey = ApiKey.txnOffsetCommit
    /// v0 through v3.
    public static let supportedVersions: ClosedRange<Int16> = 0...3
    /// v3.
    public static let firstFlexibleVersion: Int16 = 3

    /// The transactional id of the transaction.
    public var transactionalID: String
    /// The consumer group the offsets belong to.
    public var groupID: String
    /// The producer id in use by the transactional id.
    public var producerID: Int64
    /// The epoch of ``producerID``.
    public var producerEpoch: Int16
    /// The consumer's group generation (v3+), or -1.
    public var generationID: Int32
    /// The consumer's member id (v3+), or empty.
    public var memberID: String
    /// The consumer's static group instance id (v3+), if any.
    public var groupInstanceID: String?
    /// The offsets to commit, grouped by topic.
    public var topics: [Topic]

    /// Creates the request.
    public init(transactionalID: String, groupID: String, producerID: Int64, producerEpoch: Int16,
                generationID: Int32 = -1, memberID: String = "", groupInstanceID: String? = nil,
                topics: [Topic]) {
        self.transactionalID = transactionalID
        self.groupID = groupID
        self.producerID = producerID
        self.producerEpoch = producerEpoch
        self.generationID = generationID
        self.memberID = memberID
        self.groupInstanceID = groupInstanceID
        self.topics = topics
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 3
        writer.writeString(transactionalID, flexible: flexible)
        writer.writeString(groupID, flexible: flexible)
        writer.writeInt64(producerID)
        writer.writeInt16(producerEpoch)
        if version >= 3 {
            writer.writeInt32(generationID)
            writer.writeCompactString(memberID)
            writer.writeCompactNullableString(groupInstanceID)
        }
        writer.writeArrayCount(topics.count, flexible: flexible)
        for topic in topics {
            writer.writeString(topic.name, flexible: flexible)
            writer.writeArrayCount(topic.partitions.count, flexible: flexible)
            for partition in topic.partitions {
                writer.writeInt32(partition.partitionIndex)
                writer.writeInt64(partition.committedOffset)
                if version >= 2 { writer.writeInt32(partition.committedLeaderEpoch) }
                writer.writeNullableString(partition.committedMetadata, flexible: flexible)
                writer.writeEmptyTaggedFields(flexible: flexible)
            }
            writer.writeEmptyTaggedFields(flexible: flexible)
        }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }

    /// The offsets to commit for one topic.
    public struct Topic: Sendable, Hashable {
        /// Topic name.
        public var name: String
        /// One entry per partition.
        public var partitions: [Partition]

        /// Creates a topic entry.
        public init(name: String, partitions: [Partition]) {
            self.name = name
            self.partitions = partitions
        }
    }

    /// The offset to commit for one partition.
    public struct Partition: Sendable, Hashable {
        /// Partition index.
        public var partitionIndex: Int32
        /// The offset to commit: the next offset the consumer will read.
        public var committedOffset: Int64
        /// Leader epoch of the last consumed record (v2+), or -1.
        public var committedLeaderEpoch: Int32
        /// Client metadata stored with the offset, if any.
        public var committedMetadata: String?

        /// Creates a partition entry.
        public init(partitionIndex: Int32, committedOffset: Int64, committedLeaderEpoch: Int32 = -1,
                    committedMetadata: String? = nil) {
            self.partitionIndex = partitionIndex
            self.committedOffset = committedOffset
            self.committedLeaderEpoch = committedLeaderEpoch
            self.committedMetadata = committedMetadata
        }
    }
}

/// TxnOffsetCommit response (key 28), versions 0–3.
///
///     throttle_time_ms:INT32
///     topics:[name:STRING partitions:[partition_index:INT32 error_code:INT16 <tags v3+>] <tags v3+>] <tags v3+>
public struct TxnOffsetCommitResponse: KafkaResponse, Equatable {
    /// Quota throttle time.
    public var throttleTimeMs: Int32
    /// One result per topic.
    public var topics: [Topic]

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, topics: [Topic] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.topics = topics
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 3
        throttleTimeMs = reader.readInt32()
        // A topic is at least a name length and a partition count.
        let n = reader.readArrayCount(flexible: flexible, minimumElementSize: flexible ? 2 : 6)
        topics = reader.readArray(count: n) { r in
            let name = r.readString(flexible: flexible)
            let m = r.readArrayCount(flexible: flexible, minimumElementSize: 6)
            let partitions = r.readArray(count: m) { p in
                let partition = Partition(partitionIndex: p.readInt32(), errorCode: p.readInt16())
                p.skipTaggedFields(flexible: flexible)
                return partition
            }
            r.skipTaggedFields(flexible: flexible)
            return Topic(name: name, partitions: partitions)
        }
        reader.skipTaggedFields(flexible: flexible)
    }

    /// The outcome for one topic.
    public struct Topic: Sendable, Hashable {
        /// Topic name.
        public var name: String
        /// One result per partition.
        public var partitions: [Partition]

        /// Creates a topic result.
        public init(name: String, partitions: [Partition]) {
            self.name = name
            self.partitions = partitions
        }
    }

    /// The outcome for one partition.
    public struct Partition: Sendable, Hashable {
        /// Partition index.
        public var partitionIndex: Int32
        /// The error, 0 on success.
        public var errorCode: Int16

        /// Creates a partition result.
        public init(partitionIndex: Int32, errorCode: Int16 = 0) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
        }
    }
}
