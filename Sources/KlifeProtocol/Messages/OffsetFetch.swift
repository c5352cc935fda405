/// OffsetFetch request (key 9), versions 1–9; flexible from v6.
///
///     v1–7: group_id:STRING topics:[name:STRING partition_indexes:[INT32] <tags v6+>] (nullable v2+: all)
///           require_stable:BOOLEAN (v7) <tags v6+>
///     v8–9: groups:[group_id:STRING member_id:NULLABLE_STRING (v9) member_epoch:INT32 (v9)
///                   topics:[name:STRING partition_indexes:[INT32] <tags>] (nullable: all) <tags>]
///           require_stable:BOOLEAN <tags>
///
/// The Swift shape is always a list of groups; versions before 8 send the first one.
/// `require_stable` asks the broker to wait out pending transactional offset commits
/// (UNSTABLE_OFFSET_COMMIT meanwhile).
public struct OffsetFetchRequest: KafkaRequest, Equatable {
    /// Answered by ``OffsetFetchResponse``.
    public typealias Response = OffsetFetchResponse
    /// Key 9.
    public static let apiKey = ApiKey.offsetFetch
    /// v1 through v9.
    public static let supportedVersions: ClosedRange<Int16> = 1...9
    /// v6.
    public static let firstFlexibleVersion: Int16 = 6

    /// The groups asked about (one before v8).
    public var groups: [Group]
    /// Whether pending transactional commits must be decided first (v7+).
    public var requireStable: Bool

    /// Creates the request.
    public init(groups: [Group], requireStable: Bool = false) {
        self.groups = groups
        self.requireStable = requireStable
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 6
        if version >= 8 {
            writer.writeArrayCount(groups.count, flexible: flexible)
            for group in groups {
                writer.writeString(group.groupID, flexible: flexible)
                if version >= 9 {
                    writer.writeNullableString(group.memberID, flexible: flexible)
                    writer.writeInt32(group.memberEpoch)
                }
                Self.writeTopics(group.topics, into: &writer, flexible: flexible, nullable: true)
                writer.writeEmptyTaggedFields(flexible: flexible)
            }
        } else {
            let group = groups.first ?? Group(groupID: "")
            writer.writeString(group.groupID, flexible: flexible)
            // v1 has no null array: "all partitions" needs v2.
            Self.writeTopics(version >= 2 ? group.topics : group.topics ?? [], into: &writer, flexible: flexible,
                             nullable: version >= 2)
        }
        if version >= 7 { writer.writeBool(requireStable) }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }

    private static func writeTopics(_ topics: [Topic]?, into writer: inout ByteWriter, flexible: Bool, nullable: Bool) {
        writer.writeNullableArrayCount(topics?.count, flexible: flexible)
        for topic in topics ?? [] {
            writer.writeString(topic.name, flexible: flexible)
            writer.writeArrayCount(topic.partitionIndexes.count, flexible: flexible)
            for p in topic.partitionIndexes { writer.writeInt32(p) }
            writer.writeEmptyTaggedFields(flexible: flexible)
        }
    }

    /// One group's partitions.
    public struct Group: Sendable, Hashable {
        /// The group id.
        public var groupID: String
        /// The member asking (v9, KIP-848 groups), or `nil`.
        public var memberID: String?
        /// The member epoch (v9), or -1.
        public var memberEpoch: Int32
        /// The partitions, or `nil` for every partition with a committed offset (v2+).
        public var topics: [Topic]?

        /// Creates a group entry.
        public init(groupID: String, memberID: String? = nil, memberEpoch: Int32 = -1, topics: [Topic]? = nil) {
            self.groupID = groupID
            self.memberID = memberID
            self.memberEpoch = memberEpoch
            self.topics = topics
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

/// OffsetFetch response (key 9), versions 1–9.
///
///     v1–7: throttle_time_ms:INT32 (v3+)
///           topics:[name:STRING partitions:[partition_index:INT32 committed_offset:INT64
///                   committed_leader_epoch:INT32 (v5+) metadata:NULLABLE_STRING error_code:INT16 <tags v6+>] <tags v6+>]
///           error_code:INT16 (v2+) <tags v6+>
///     v8–9: throttle_time_ms:INT32 groups:[group_id:STRING topics:[…as above…] error_code:INT16 <tags>] <tags>
///
/// Always decoded as a list of groups: before v8 one group whose ``Group/groupID`` is empty (the
/// answer does not repeat it). A partition without a committed offset has offset -1.
public struct OffsetFetchResponse: KafkaResponse, Equatable {
    /// Quota throttle time (v3+; 0 before).
    public var throttleTimeMs: Int32
    /// One entry per group asked about.
    public var groups: [Group]

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, groups: [Group] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.groups = groups
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 6
        throttleTimeMs = version >= 3 ? reader.readInt32() : 0
        if version >= 8 {
            // A group is at least a name length, a topic count and an error code.
            let n = reader.readArrayCount(flexible: flexible, minimumElementSize: 4)
            groups = reader.readArray(count: n) { r in
                let id = r.readString(flexible: flexible)
                let topics = Self.readTopics(&r, flexible: flexible, version: version)
                let code = r.readInt16()
                r.skipTaggedFields(flexible: flexible)
                return Group(groupID: id, topics: topics, errorCode: code)
            }
        } else {
            let topics = Self.readTopics(&reader, flexible: flexible, version: version)
            let code = version >= 2 ? reader.readInt16() : 0
            groups = [Group(groupID: "", topics: topics, errorCode: code)]
        }
        reader.skipTaggedFields(flexible: flexible)
    }

    private static func readTopics(_ reader: inout ByteReader, flexible: Bool, version: Int16) -> [Topic] {
        let n = reader.readArrayCount(flexible: flexible, minimumElementSize: flexible ? 2 : 6)
        return reader.readArray(count: n) { r in
            let name = r.readString(flexible: flexible)
            // A partition is at least index, offset, metadata length and error code.
            let m = r.readArrayCount(flexible: flexible, minimumElementSize: 15)
            let partitions = r.readArray(count: m) { p in
                let index = p.readInt32()
                let offset = p.readInt64()
                let epoch = version >= 5 ? p.readInt32() : -1
                let metadata = p.readNullableString(flexible: flexible)
                let code = p.readInt16()
                p.skipTaggedFields(flexible: flexible)
                return Partition(partitionIndex: index, committedOffset: offset, committedLeaderEpoch: epoch,
                                 metadata: metadata, errorCode: code)
            }
            r.skipTaggedFields(flexible: flexible)
            return Topic(name: name, partitions: partitions)
        }
    }

    /// One group's committed offsets.
    public struct Group: Sendable, Hashable {
        /// The group id (empty before v8).
        public var groupID: String
        /// One entry per topic.
        public var topics: [Topic]
        /// A group-level error (v2+), 0 on success.
        public var errorCode: Int16

        /// Creates a group entry.
        public init(groupID: String, topics: [Topic], errorCode: Int16 = 0) {
            self.groupID = groupID
            self.topics = topics
            self.errorCode = errorCode
        }
    }

    /// One topic's committed offsets.
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

    /// One partition's committed offset.
    public struct Partition: Sendable, Hashable {
        /// Partition index.
        public var partitionIndex: Int32
        /// The committed offset, -1 when none.
        public var committedOffset: Int64
        /// Leader epoch stored with the offset (v5+), or -1.
        public var committedLeaderEpoch: Int32
        /// Metadata stored with the offset.
        public var metadata: String?
        /// The error, 0 on success.
        public var errorCode: Int16

        /// Creates a partition entry.
        public init(partitionIndex: Int32, committedOffset: Int64, committedLeaderEpoch: Int32 = -1, metadata: String? = nil,
                    errorCode: Int16 = 0) {
            self.partitionIndex = partitionIndex
            self.committedOffset = committedOffset
            self.committedLeaderEpoch = committedLeaderEpoch
            self.metadata = metadata
            self.errorCode = errorCode
        }
    }
}
