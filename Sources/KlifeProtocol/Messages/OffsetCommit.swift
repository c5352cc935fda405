/// OffsetCommit request (key 8), versions 2–9; flexible from v8.
///
///     group_id:STRING generation_id_or_member_epoch:INT32 member_id:STRING
///     group_instance_id:NULLABLE_STRING (v7+) retention_time_ms:INT64 (v2–4)
///     topics:[name:STRING
///             partitions:[partition_index:INT32 committed_offset:INT64 committed_leader_epoch:INT32 (v6+)
///                         committed_metadata:NULLABLE_STRING <tags v8+>] <tags v8+>] <tags v8+>
///
/// A consumer outside any group commits with generation -1 and an empty member id. In a classic
/// group the generation field carries the group generation; from v9 (KIP-848) it carries the
/// member epoch of a `consumer` group. v9 has v8's layout.
public struct OffsetCommitRequest: KafkaRequest, Equatable {
    /// Answered by ``OffsetCommitResponse``.
    public typealias Response = OffsetCommitResponse
    /// Key 8.
    public static let apiKey = ApiKey.offsetCommit
    /// v2 through v9.
    public static let supportedVersions: ClosedRange<Int16> = 2...9
    /// v8.
    public static let firstFlexibleVersion: Int16 = 8

    /// The group the offsets belong to.
    public var groupID: String
    /// The group generation (classic) or member epoch (v9, KIP-848); -1 outside a group.
    public var generationIDOrMemberEpoch: Int32
    /// The member id; empty outside a group.
    public var memberID: String
    /// The static member's instance id (v7+), if any.
    public var groupInstanceID: String?
    /// How long the broker keeps the offsets (v2–4); -1 for the broker's default.
    public var retentionTimeMs: Int64
    /// The offsets to commit, grouped by topic.
    public var topics: [Topic]

    /// Creates the request.
    public init(groupID: String, generationIDOrMemberEpoch: Int32 = -1, memberID: String = "",
                groupInstanceID: String? = nil, retentionTimeMs: Int64 = -1, topics: [Topic]) {
        self.groupID = groupID
        self.generationIDOrMemberEpoch = generationIDOrMemberEpoch
        self.memberID = memberID
        self.groupInstanceID = groupInstanceID
        self.retentionTimeMs = retentionTimeMs
        self.topics = topics
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 8
        writer.writeString(groupID, flexible: flexible)
        writer.writeInt32(generationIDOrMemberEpoch)
        writer.writeString(memberID, flexible: flexible)
        if version >= 7 { writer.writeNullableString(groupInstanceID, flexible: flexible) }
        if version <= 4 { writer.writeInt64(retentionTimeMs) }
        writer.writeArrayCount(topics.count, flexible: flexible)
        for topic in topics {
            writer.writeString(topic.name, flexible: flexible)
            writer.writeArrayCount(topic.partitions.count, flexible: flexible)
            for partition in topic.partitions {
                writer.writeInt32(partition.partitionIndex)
                writer.writeInt64(partition.committedOffset)
                if version >= 6 { writer.writeInt32(partition.committedLeaderEpoch) }
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
        /// Leader epoch of the last consumed record (v6+), or -1.
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

/// OffsetCommit response (key 8), versions 2–9.
///
///     throttle_time_ms:INT32 (v3+)
///     topics:[name:STRING partitions:[partition_index:INT32 error_code:INT16 <tags v8+>] <tags v8+>] <tags v8+>
public struct OffsetCommitResponse: KafkaResponse, Equatable {
    /// Quota throttle time (v3+; 0 before).
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
        let flexible = version >= 8
        throttleTimeMs = version >= 3 ? reader.readInt32() : 0
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
