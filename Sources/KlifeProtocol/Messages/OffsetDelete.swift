/// OffsetDelete request (key 47), version 0; never flexible.
///
///     group_id:STRING topics:[name:STRING partitions:[partition_index:INT32]]
///
/// Sent to the group coordinator (KIP-496) to drop a group's committed offsets for some partitions,
/// for example after a topic left the group's subscription. The broker refuses, per partition, with
/// `GROUP_SUBSCRIBED_TO_TOPIC` (86) while the group still consumes the topic; a group that does not
/// exist answers `GROUP_ID_NOT_FOUND` (69) at the top level.
public struct OffsetDeleteRequest: KafkaRequest, Equatable {
    /// Answered by ``OffsetDeleteResponse``.
    public typealias Response = OffsetDeleteResponse
    /// Key 47.
    public static let apiKey = ApiKey.offsetDelete
    /// v0 only.
    public static let supportedVersions: ClosedRange<Int16> = 0...0
    /// Never flexible, so past every supported version.
    public static let firstFlexibleVersion: Int16 = .max

    /// The group whose offsets are deleted.
    public var groupID: String
    /// The partitions whose offsets are deleted, grouped by topic.
    public var topics: [Topic]

    /// Creates the request.
    public init(groupID: String, topics: [Topic]) {
        self.groupID = groupID
        self.topics = topics
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        writer.writeString(groupID)
        writer.writeArrayCount(topics.count, flexible: false)
        for topic in topics {
            writer.writeString(topic.name)
            // Each partition is a one-field struct on the wire: the same bytes as an INT32 array.
            writer.writeArrayCount(topic.partitionIndexes.count, flexible: false)
            for index in topic.partitionIndexes { writer.writeInt32(index) }
        }
    }

    /// The partitions of one topic.
    public struct Topic: Sendable, Hashable {
        /// Topic name.
        public var name: String
        /// Partition indexes.
        public var partitionIndexes: [Int32]

        /// Creates a topic entry.
        public init(name: String, partitionIndexes: [Int32]) {
            self.name = name
            self.partitionIndexes = partitionIndexes
        }
    }
}

/// OffsetDelete response (key 47), version 0.
///
///     error_code:INT16 throttle_time_ms:INT32
///     topics:[name:STRING partitions:[partition_index:INT32 error_code:INT16]]
///
/// Errors about the group as a whole (coordinator moved, unknown group, ...) are in ``errorCode``;
/// each partition carries its own outcome.
public struct OffsetDeleteResponse: KafkaResponse, Equatable {
    /// The group-level error, 0 on success.
    public var errorCode: Int16
    /// Quota throttle time.
    public var throttleTimeMs: Int32
    /// One result per topic.
    public var topics: [Topic]

    /// Creates a response.
    public init(errorCode: Int16 = 0, throttleTimeMs: Int32 = 0, topics: [Topic] = []) {
        self.errorCode = errorCode
        self.throttleTimeMs = throttleTimeMs
        self.topics = topics
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        errorCode = reader.readInt16()
        throttleTimeMs = reader.readInt32()
        // A topic is at least a name length and a partition count.
        let n = reader.readArrayCount(flexible: false, minimumElementSize: 6)
        topics = reader.readArray(count: n) { r in
            let name = r.readString()
            let m = r.readArrayCount(flexible: false, minimumElementSize: 6)
            let partitions = r.readArray(count: m) { p in
                Partition(partitionIndex: p.readInt32(), errorCode: p.readInt16())
            }
            return Topic(name: name, partitions: partitions)
        }
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
        /// The error, 0 on success (for example `GROUP_SUBSCRIBED_TO_TOPIC`, 86).
        public var errorCode: Int16

        /// Creates a partition result.
        public init(partitionIndex: Int32, errorCode: Int16 = 0) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
        }
    }
}
