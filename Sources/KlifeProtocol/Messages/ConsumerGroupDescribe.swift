/// ConsumerGroupDescribe request (key 69), versions 0–1; flexible in every version (KIP-848).
///
///     group_ids:[COMPACT_STRING] include_authorized_operations:BOOL <tags>
///
/// Both versions have the same request layout; v1 only adds ``ConsumerGroupDescribeResponse/Member/memberType``
/// to the response (KIP-1099). Sent to each group's coordinator.
public struct ConsumerGroupDescribeRequest: FlexibleGroupDescribeRequest, Equatable {
    /// Answered by ``ConsumerGroupDescribeResponse``.
    public typealias Response = ConsumerGroupDescribeResponse
    /// Key 69.
    public static let apiKey = ApiKey.consumerGroupDescribe
    /// v0 through v1.
    public static let supportedVersions: ClosedRange<Int16> = 0...1
    /// v0: every version is flexible.
    public static let firstFlexibleVersion: Int16 = 0

    /// The groups to describe.
    public var groupIDs: [String]
    /// Ask for each group's authorized-operations bitfield.
    public var includeAuthorizedOperations: Bool

    /// Creates the request.
    public init(groupIDs: [String], includeAuthorizedOperations: Bool = false) {
        self.groupIDs = groupIDs
        self.includeAuthorizedOperations = includeAuthorizedOperations
    }
}

/// ConsumerGroupDescribe response (key 69), versions 0–1.
///
///     throttle_time_ms:INT32
///     groups:[error_code:INT16 error_message:COMPACT_NULLABLE_STRING group_id:COMPACT_STRING
///             group_state:COMPACT_STRING group_epoch:INT32 assignment_epoch:INT32 assignor_name:COMPACT_STRING
///             members:[member_id:COMPACT_STRING instance_id:COMPACT_NULLABLE_STRING rack_id:COMPACT_NULLABLE_STRING
///                      member_epoch:INT32 client_id:COMPACT_STRING client_host:COMPACT_STRING
///                      subscribed_topic_names:[COMPACT_STRING] subscribed_topic_regex:COMPACT_NULLABLE_STRING
///                      assignment:Assignment target_assignment:Assignment member_type:INT8 (v1+) <tags>]
///             authorized_operations:INT32 <tags>] <tags>
///     Assignment:
///         topic_partitions:[topic_id:UUID topic_name:COMPACT_STRING partitions:[INT32] <tags>] <tags>
///
/// The two assignments are non-nullable structs: written inline, with no presence byte.
public struct ConsumerGroupDescribeResponse: KafkaResponse, Equatable {
    /// Quota throttle time.
    public var throttleTimeMs: Int32
    /// One entry per group asked for.
    public var groups: [DescribedGroup]

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, groups: [DescribedGroup] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.groups = groups
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        throttleTimeMs = reader.readInt32()
        let n = reader.readArrayCount(flexible: true, minimumElementSize: DescribedGroup.minimumSize)
        groups = reader.readArray(count: n) { r in
            DescribedGroup(from: &r, memberMinimumSize: Member.minimumSize(version: version)) {
                Member(from: &$0, version: version)
            }
        }
        reader.skipTaggedFields()
    }

    /// One described group.
    public typealias DescribedGroup = DescribedGroupEntry<Member>

    /// One member of a group.
    public struct Member: Sendable, Hashable {
        /// ``memberType`` when unknown (and before v1).
        public static let unknownMemberType: Int8 = -1
        /// ``memberType`` of a member that speaks the classic group protocol.
        public static let classicMemberType: Int8 = 0
        /// ``memberType`` of a member that speaks the KIP-848 consumer protocol.
        public static let consumerMemberType: Int8 = 1

        /// The member id.
        public var memberID: String
        /// The static instance id, if any.
        public var instanceID: String?
        /// The member's rack, if any.
        public var rackID: String?
        /// The member's current epoch.
        public var memberEpoch: Int32
        /// The member's client id.
        public var clientID: String
        /// The member's host.
        public var clientHost: String
        /// The subscribed topic names.
        public var subscribedTopicNames: [String]
        /// The subscribed topic regular expression, if any.
        public var subscribedTopicRegex: String?
        /// The partitions the member owns now.
        public var assignment: Assignment
        /// The partitions the member is moving to.
        public var targetAssignment: Assignment
        /// Classic or consumer member (v1+; ``unknownMemberType`` otherwise).
        public var memberType: Int8

        /// Creates a member entry.
        public init(
            memberID: String, instanceID: String? = nil, rackID: String? = nil, memberEpoch: Int32 = 0,
            clientID: String = "", clientHost: String = "", subscribedTopicNames: [String] = [],
            subscribedTopicRegex: String? = nil, assignment: Assignment = Assignment(),
            targetAssignment: Assignment = Assignment(), memberType: Int8 = Member.unknownMemberType
        ) {
            self.memberID = memberID
            self.instanceID = instanceID
            self.rackID = rackID
            self.memberEpoch = memberEpoch
            self.clientID = clientID
            self.clientHost = clientHost
            self.subscribedTopicNames = subscribedTopicNames
            self.subscribedTopicRegex = subscribedTopicRegex
            self.assignment = assignment
            self.targetAssignment = targetAssignment
            self.memberType = memberType
        }

        /// Bytes a member takes at least at `version`: empty or null strings and arrays, the
        /// epoch, two empty assignments, the member type from v1, no tags.
        static func minimumSize(version: Int16) -> Int { version >= 1 ? 17 : 16 }

        /// Reads a member; check `r.error` afterwards.
        init(from r: inout ByteReader, version: Int16) {
            memberID = r.readCompactString()
            instanceID = r.readCompactNullableString()
            rackID = r.readCompactNullableString()
            memberEpoch = r.readInt32()
            clientID = r.readCompactString()
            clientHost = r.readCompactString()
            let n = r.readArrayCount(flexible: true)
            subscribedTopicNames = r.readArray(count: n) { $0.readCompactString() }
            subscribedTopicRegex = r.readCompactNullableString()
            assignment = Assignment(from: &r)
            targetAssignment = Assignment(from: &r)
            memberType = version >= 1 ? r.readInt8() : Member.unknownMemberType
            r.skipTaggedFields()
        }
    }

    /// Partitions assigned to a member.
    ///
    ///     topic_partitions:[topic_id:UUID topic_name:COMPACT_STRING partitions:[INT32] <tags>] <tags>
    public struct Assignment: Sendable, Hashable {
        /// The assigned partitions, by topic.
        public var topicPartitions: [TopicPartitions]

        /// Creates an assignment.
        public init(topicPartitions: [TopicPartitions] = []) {
            self.topicPartitions = topicPartitions
        }

        /// Reads an assignment; check `r.error` afterwards.
        init(from r: inout ByteReader) {
            let n = r.readArrayCount(flexible: true, minimumElementSize: TopicPartitions.minimumSize)
            topicPartitions = r.readArray(count: n) { TopicPartitions(from: &$0) }
            r.skipTaggedFields()
        }
    }

    /// The partitions of one topic, by id and name.
    public struct TopicPartitions: Sendable, Hashable {
        /// The topic id.
        public var topicID: KafkaUUID
        /// The topic name.
        public var topicName: String
        /// The partition indexes.
        public var partitions: [Int32]

        /// Creates an entry.
        public init(topicID: KafkaUUID, topicName: String, partitions: [Int32]) {
            self.topicID = topicID
            self.topicName = topicName
            self.partitions = partitions
        }

        /// Bytes an entry takes at least: the id, an empty name and array, no tags.
        static let minimumSize = 19

        /// Reads an entry; check `r.error` afterwards.
        init(from r: inout ByteReader) {
            topicID = r.readUUID()
            topicName = r.readCompactString()
            let n = r.readArrayCount(flexible: true, minimumElementSize: 4)
            partitions = r.readArray(count: n) { $0.readInt32() }
            r.skipTaggedFields()
        }
    }
}
