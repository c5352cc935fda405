/// ShareGroupDescribe request (key 77), version 1; flexible in every version (KIP-932).
///
///     group_ids:[COMPACT_STRING] include_authorized_operations:BOOL <tags>
///
/// Sent to each group's coordinator. (librdkafka's mock cluster does not implement it.)
public struct ShareGroupDescribeRequest: FlexibleGroupDescribeRequest, Equatable {
    /// Answered by ``ShareGroupDescribeResponse``.
    public typealias Response = ShareGroupDescribeResponse
    /// Key 77.
    public static let apiKey = ApiKey.shareGroupDescribe
    /// v1 only (the first stable version; v0 had the same layout).
    public static let supportedVersions: ClosedRange<Int16> = 1...1
    /// Every version is flexible.
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

/// ShareGroupDescribe response (key 77), version 1.
///
///     throttle_time_ms:INT32
///     groups:[error_code:INT16 error_message:COMPACT_NULLABLE_STRING group_id:COMPACT_STRING
///             group_state:COMPACT_STRING group_epoch:INT32 assignment_epoch:INT32 assignor_name:COMPACT_STRING
///             members:[member_id:COMPACT_STRING rack_id:COMPACT_NULLABLE_STRING member_epoch:INT32
///                      client_id:COMPACT_STRING client_host:COMPACT_STRING
///                      subscribed_topic_names:[COMPACT_STRING] assignment:Assignment <tags>]
///             authorized_operations:INT32 <tags>] <tags>
///     Assignment:
///         topic_partitions:[topic_id:UUID topic_name:COMPACT_STRING partitions:[INT32] <tags>] <tags>
///
/// The assignment is a non-nullable struct written inline (the layout of
/// ``ConsumerGroupDescribeResponse/Assignment``).
public struct ShareGroupDescribeResponse: KafkaResponse, Equatable {
    /// A member's assigned partitions, by topic.
    public typealias Assignment = ConsumerGroupDescribeResponse.Assignment

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
            // A member: id, null rack, epoch, two strings, empty array, empty assignment, tags.
            DescribedGroup(from: &r, memberMinimumSize: 12) { Member(from: &$0) }
        }
        reader.skipTaggedFields()
    }

    /// One share group (its state `Empty`, `Stable` or `Dead`; its assignor `simple`).
    public typealias DescribedGroup = DescribedGroupEntry<Member>

    /// One member of a share group.
    public struct Member: Sendable, Hashable {
        /// The member id.
        public var memberID: String
        /// The member's rack, if configured.
        public var rackID: String?
        /// The member epoch.
        public var memberEpoch: Int32
        /// The client id the member connected with.
        public var clientID: String
        /// The host the member connected from.
        public var clientHost: String
        /// The topics the member subscribes to.
        public var subscribedTopicNames: [String]
        /// The partitions assigned to the member.
        public var assignment: Assignment

        /// Creates a member entry.
        public init(
            memberID: String, rackID: String? = nil, memberEpoch: Int32 = 0, clientID: String = "",
            clientHost: String = "", subscribedTopicNames: [String] = [], assignment: Assignment = Assignment()
        ) {
            self.memberID = memberID
            self.rackID = rackID
            self.memberEpoch = memberEpoch
            self.clientID = clientID
            self.clientHost = clientHost
            self.subscribedTopicNames = subscribedTopicNames
            self.assignment = assignment
        }

        init(from r: inout ByteReader) {
            memberID = r.readCompactString()
            rackID = r.readCompactNullableString()
            memberEpoch = r.readInt32()
            clientID = r.readCompactString()
            clientHost = r.readCompactString()
            let n = r.readArrayCount(flexible: true, minimumElementSize: 1)
            subscribedTopicNames = r.readArray(count: n) { $0.readCompactString() }
            assignment = Assignment(from: &r)
            r.skipTaggedFields()
        }
    }
}
