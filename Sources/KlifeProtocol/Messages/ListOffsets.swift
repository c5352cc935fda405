/// ListOffsets request (key 2), versions 1–9; flexible from v6.
///
///     replica_id:INT32 isolation_level:INT8 (v2+)
///     topics:[name:STRING partitions:[partition_index:INT32 current_leader_epoch:INT32 (v4+)
///                                     timestamp:INT64 <tags>] <tags>] <tags>
///
/// `timestamp` is either a real timestamp (the earliest offset whose timestamp is at or
/// after it) or one of the special values below. The special values need a minimum
/// version, see ``minimumVersion(forTimestamp:)``:
///
/// | constant                   | value | meaning                                   | from |
/// |----------------------------|-------|-------------------------------------------|------|
/// | ``latestTimestamp``        | -1    | the log end offset (high watermark / LSO) | v0   |
/// | ``earliestTimestamp``      | -2    | the log start offset                      | v0   |
/// | ``maxTimestamp``           | -3    | the record with the largest timestamp     | v7   |
/// | ``earliestLocalTimestamp`` | -4    | the local (non-tiered) log start offset   | v8   |
/// | ``latestTieredTimestamp``  | -5    | the highest offset in tiered storage      | v9   |
public struct ListOffsetsRequest: KafkaRequest, Equatable {
    /// Answered by ``ListOffsetsResponse``.
    public typealias Response = ListOffsetsResponse
    /// Key 2.
    public static let apiKey = ApiKey.listOffsets
    /// v1 through v9 (v0 returned offset lists; v10 adds a tiered-storage timeout).
    public static let supportedVersions: ClosedRange<Int16> = 1...9
    /// v6.
    public static let firstFlexibleVersion: Int16 = 6

    /// Asks for the log end offset.
    public static let latestTimestamp: Int64 = -1
    /// Asks for the log start offset.
    public static let earliestTimestamp: Int64 = -2
    /// Asks for the offset of the record with the largest timestamp (v7+).
    public static let maxTimestamp: Int64 = -3
    /// Asks for the start of the local log, after tiered segments (v8+).
    public static let earliestLocalTimestamp: Int64 = -4
    /// Asks for the last offset moved to tiered storage (v9+).
    public static let latestTieredTimestamp: Int64 = -5

    /// The lowest version that understands `timestamp`.
    public static func minimumVersion(forTimestamp timestamp: Int64) -> Int16 {
        switch timestamp {
        case maxTimestamp: 7
        case earliestLocalTimestamp: 8
        case latestTieredTimestamp: 9
        default: 1
        }
    }

    /// -1 for consumers; a broker id for followers.
    public var replicaID: Int32
    /// 0 = read uncommitted, 1 = read committed (v2+). With 1, "latest" means the last stable offset.
    public var isolationLevel: Int8
    /// The partitions to look up.
    public var topics: [Topic]

    /// Creates the request.
    public init(replicaID: Int32 = -1, isolationLevel: Int8 = 0, topics: [Topic]) {
        self.replicaID = replicaID
        self.isolationLevel = isolationLevel
        self.topics = topics
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 6
        writer.writeInt32(replicaID)
        if version >= 2 { writer.writeInt8(isolationLevel) }
        writer.writeArrayCount(topics.count, flexible: flexible)
        for topic in topics {
            writer.writeString(topic.name, flexible: flexible)
            writer.writeArrayCount(topic.partitions.count, flexible: flexible)
            for p in topic.partitions {
                writer.writeInt32(p.partitionIndex)
                if version >= 4 { writer.writeInt32(p.currentLeaderEpoch) }
                writer.writeInt64(p.timestamp)
                writer.writeEmptyTaggedFields(flexible: flexible)
            }
            writer.writeEmptyTaggedFields(flexible: flexible)
        }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }

    /// The partitions of one topic to look up.
    public struct Topic: Sendable, Equatable {
        /// Topic name.
        public var name: String
        /// Partitions of the topic.
        public var partitions: [Partition]

        /// Creates a topic entry.
        public init(name: String, partitions: [Partition]) {
            self.name = name
            self.partitions = partitions
        }
    }

    /// One partition and the timestamp to look up.
    public struct Partition: Sendable, Hashable {
        /// The partition number.
        public var partitionIndex: Int32
        /// The leader epoch the client knows, for fencing (v4+); -1 to skip the check.
        public var currentLeaderEpoch: Int32
        /// A timestamp in ms, or one of the special values on ``ListOffsetsRequest``.
        public var timestamp: Int64

        /// Creates a partition entry.
        public init(partitionIndex: Int32, currentLeaderEpoch: Int32 = -1, timestamp: Int64) {
            self.partitionIndex = partitionIndex
            self.currentLeaderEpoch = currentLeaderEpoch
            self.timestamp = timestamp
        }
    }
}

/// ListOffsets response (key 2), versions 1–9.
///
///     throttle_time_ms:INT32 (v2+)
///     topics:[name:STRING partitions:[partition_index:INT32 error_code:INT16 timestamp:INT64 offset:INT64
///                                     leader_epoch:INT32 (v4+) <tags>] <tags>] <tags>
public struct ListOffsetsResponse: KafkaResponse, Equatable {
    /// Quota throttle time (v2+; 0 otherwise).
    public var throttleTimeMs: Int32
    /// Results per topic.
    public var topics: [Topic]

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, topics: [Topic] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.topics = topics
    }

    /// Decodes the body at `version`.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 6
        throttleTimeMs = version >= 2 ? reader.readInt32() : 0
        let n = reader.readArrayCount(flexible: flexible, minimumElementSize: flexible ? 3 : 6)
        topics = reader.readArray(count: n) { r in
            let name = r.readString(flexible: flexible)
            let count = r.readArrayCount(flexible: flexible, minimumElementSize: 22)
            let partitions = r.readArray(count: count) { r in
                let p = Partition(
                    partitionIndex: r.readInt32(), errorCode: r.readInt16(), timestamp: r.readInt64(),
                    offset: r.readInt64(), leaderEpoch: version >= 4 ? r.readInt32() : -1)
                r.skipTaggedFields(flexible: flexible)
                return p
            }
            r.skipTaggedFields(flexible: flexible)
            return Topic(name: name, partitions: partitions)
        }
        reader.skipTaggedFields(flexible: flexible)
    }

    /// Results for one topic.
    public struct Topic: Sendable, Equatable {
        /// Topic name.
        public var name: String
        /// Results per partition.
        public var partitions: [Partition]

        /// Creates a topic entry.
        public init(name: String, partitions: [Partition] = []) {
            self.name = name
            self.partitions = partitions
        }
    }

    /// The offset found for one partition.
    public struct Partition: Sendable, Hashable {
        /// The partition number.
        public var partitionIndex: Int32
        /// Partition-level error.
        public var errorCode: Int16
        /// The timestamp of the returned offset's record, -1 when not applicable.
        public var timestamp: Int64
        /// The offset found, -1 when none.
        public var offset: Int64
        /// The leader epoch of the returned offset (v4+; -1 otherwise).
        public var leaderEpoch: Int32

        /// Creates a partition entry.
        public init(partitionIndex: Int32, errorCode: Int16 = 0, timestamp: Int64 = -1, offset: Int64 = -1,
                    leaderEpoch: Int32 = -1) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
            self.timestamp = timestamp
            self.offset = offset
            self.leaderEpoch = leaderEpoch
        }
    }
}
