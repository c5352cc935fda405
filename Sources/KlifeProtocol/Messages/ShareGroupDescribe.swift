/// ShareGroupDescribe request (key 77), version 1; flexible in every version (KIP-932).
///
///     group_ids:[COMPACT_STRING] include_authorized_operations:BOOL <tags>
///
/// Sent to each group's coordinator. (librdkafka's mock cluster does not implement it.)
public struct ShareGroupDescribeRequest: KafkaRequest, Equatable {
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

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        writer.writeArrayCount(groupIDs.count, flexible: true)
        for id in groupIDs { writer.writeCompactString(id) }
        writer.writeBool(includeAuthorizedOperations)
        writer.writeEmptyTaggedFields()
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
        // error, null message, three empty strings, two epochs, empty array, operations, tags: 20 bytes.
        let n = reader.readArrayCount(flexible: true, minimumElementSize: 20)
        groups = reader.readArray(count: n) { DescribedGroup(from: &$0) }
        reader.skipTaggedFields()
    }

    /// One share group.
    public struct DescribedGroup: Sendable, Hashable {
        /// The group's error, e.g. `GROUP_ID_NOT_FOUND`; 0 on success.
        public var errorCode: Int16
        /// Error details, if any.
        public var errorMessage: String?
        /// The group id.
        public var groupID: String
        /// The group state: `Empty`, `Stable` or `Dead`.
        public var groupState: String
        /// The group epoch.
        public var groupEpoch: Int32
        /// The epoch of the group's target assignment.
        public var assignmentEpoch: Int32
        /// The name of the server assignor (`simple`).
        public var assignorName: String
        /// The members.
        public var members: [Member]
        /// The authorized-operations bitfield, `Int32.min` when not asked for.
        public var authorizedOperations: Int32

        /// Creates a group entry.
        public init(
            errorCode: Int16 = 0, errorMessage: String? = nil, groupID: String, groupState: String = "",
            groupEpoch: Int32 = 0, assignmentEpoch: Int32 = 0, assignorName: String = "", members: [Member] = [],
            authorizedOperations: Int32 = .min
        ) {
            self.errorCode = errorCode
            self.errorMessage = errorMessage
            self.groupID = groupID
            self.groupState = groupState
            self.groupEpoch = groupEpoch
            self.assignmentEpoch = assignmentEpoch
            self.assignorName = assignorName
            self.members = members
            self.authorizedOperations = authorizedOperations
        }

        init(from r: inout ByteReader) {
            errorCode = r.readInt16()
            errorMessage = r.readCompactNullableString()
            groupID = r.readCompactString()
            groupState = r.readCompactString()
            groupEpoch = r.readInt32()
            assignmentEpoch = r.readInt32()
            assignorName = r.readCompactString()
            // id, null rack, epoch, two strings, empty array, empty assignment, tags.
            let n = r.readArrayCount(flexible: true, minimumElementSize: 12)
            members = r.readArray(count: n) { Member(from: &$0) }
            authorizedOperations = r.readInt32()
            r.skipTaggedFields()
        }
    }

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
