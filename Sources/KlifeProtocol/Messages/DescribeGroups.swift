/// DescribeGroups request (key 15), versions 0–5; flexible from v5.
///
///     groups:[STRING] include_authorized_operations:BOOL (v3+) <tags v5+>
///
/// Sent to each group's coordinator. Describes classic groups; ``ConsumerGroupDescribeRequest``
/// describes KIP-848 groups. Versions 1 and 2 have v0's layout; v4 only adds the members'
/// instance ids to the response.
public struct DescribeGroupsRequest: KafkaRequest, Equatable {
    /// Answered by ``DescribeGroupsResponse``.
    public typealias Response = DescribeGroupsResponse
    /// Key 15.
    public static let apiKey = ApiKey.describeGroups
    /// v0 through v5.
    public static let supportedVersions: ClosedRange<Int16> = 0...5
    /// v5.
    public static let firstFlexibleVersion: Int16 = 5

    /// The groups to describe.
    public var groupIDs: [String]
    /// Ask for each group's authorized-operations bitfield (sent from v3).
    public var includeAuthorizedOperations: Bool

    /// Creates the request.
    public init(groupIDs: [String], includeAuthorizedOperations: Bool = false) {
        self.groupIDs = groupIDs
        self.includeAuthorizedOperations = includeAuthorizedOperations
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 5
        writer.writeArrayCount(groupIDs.count, flexible: flexible)
        for id in groupIDs { writer.writeString(id, flexible: flexible) }
        if version >= 3 { writer.writeBool(includeAuthorizedOperations) }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }
}

/// DescribeGroups response (key 15), versions 0–5.
///
///     throttle_time_ms:INT32 (v1+)
///     groups:[error_code:INT16 group_id:STRING group_state:STRING protocol_type:STRING protocol_data:STRING
///             members:[member_id:STRING group_instance_id:NULLABLE_STRING (v4+) client_id:STRING
///                      client_host:STRING member_metadata:BYTES member_assignment:BYTES <tags v5+>]
///             authorized_operations:INT32 (v3+) <tags v5+>] <tags v5+>
///
/// `protocol_data` names the chosen protocol (for `consumer` groups the assignor, such as `range`);
/// the brokers fill it, and the members' metadata and assignment, only while the group is `Stable`.
/// For `consumer` groups the two byte fields hold the consumer protocol's subscription and
/// assignment. A `Dead` group has no members.
public struct DescribeGroupsResponse: KafkaResponse, Equatable {
    /// Quota throttle time (v1+; 0 before).
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
        let flexible = version >= 5
        throttleTimeMs = version >= 1 ? reader.readInt32() : 0
        let n = reader.readArrayCount(flexible: flexible, minimumElementSize: DescribedGroup.minimumSize(flexible: flexible))
        groups = reader.readArray(count: n) { DescribedGroup(from: &$0, version: version) }
        reader.skipTaggedFields(flexible: flexible)
    }

    /// One described group.
    public struct DescribedGroup: Sendable, Hashable {
        /// The error, 0 on success (for example `COORDINATOR_LOAD_IN_PROGRESS`, 14).
        public var errorCode: Int16
        /// The group id.
        public var groupID: String
        /// The group state (`Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty`, `Dead`), or empty.
        public var groupState: String
        /// The protocol type (`consumer` for consumer groups), or empty.
        public var protocolType: String
        /// The chosen protocol (the assignor of a `consumer` group), or empty.
        public var protocolData: String
        /// The members.
        public var members: [Member]
        /// Authorized operations bitfield (v3+, when asked; `Int32.min` otherwise).
        public var authorizedOperations: Int32

        /// Creates a group entry.
        public init(
            errorCode: Int16 = 0, groupID: String, groupState: String = "", protocolType: String = "",
            protocolData: String = "", members: [Member] = [], authorizedOperations: Int32 = .min
        ) {
            self.errorCode = errorCode
            self.groupID = groupID
            self.groupState = groupState
            self.protocolType = protocolType
            self.protocolData = protocolData
            self.members = members
            self.authorizedOperations = authorizedOperations
        }

        /// Bytes a group takes at least: the error code, four empty strings and an empty member
        /// count (and, when flexible, the bitfield and the tag section of v5).
        static func minimumSize(flexible: Bool) -> Int { flexible ? 12 : 14 }

        /// Reads a group; check `r.error` afterwards.
        init(from r: inout ByteReader, version: Int16) {
            let flexible = version >= 5
            errorCode = r.readInt16()
            groupID = r.readString(flexible: flexible)
            groupState = r.readString(flexible: flexible)
            protocolType = r.readString(flexible: flexible)
            protocolData = r.readString(flexible: flexible)
            let n = r.readArrayCount(flexible: flexible, minimumElementSize: Member.minimumSize(flexible: flexible))
            members = r.readArray(count: n) { Member(from: &$0, version: version) }
            authorizedOperations = version >= 3 ? r.readInt32() : .min
            r.skipTaggedFields(flexible: flexible)
        }
    }

    /// One member of a group.
    public struct Member: Sendable, Hashable {
        /// The member id the coordinator gave.
        public var memberID: String
        /// The static member's instance id (v4+), if any.
        public var groupInstanceID: String?
        /// The client id of the member's last JoinGroup.
        public var clientID: String
        /// The member's host.
        public var clientHost: String
        /// The member's metadata for the chosen protocol (a consumer's subscription); empty unless `Stable`.
        public var memberMetadata: [UInt8]
        /// The member's assignment from the leader (a consumer's partitions); empty unless `Stable`.
        public var memberAssignment: [UInt8]

        /// Creates a member entry.
        public init(memberID: String, groupInstanceID: String? = nil, clientID: String = "", clientHost: String = "",
                    memberMetadata: [UInt8] = [], memberAssignment: [UInt8] = []) {
            self.memberID = memberID
            self.groupInstanceID = groupInstanceID
            self.clientID = clientID
            self.clientHost = clientHost
            self.memberMetadata = memberMetadata
            self.memberAssignment = memberAssignment
        }

        /// Bytes a member takes at least: three empty strings and two empty byte strings (and,
        /// when flexible, a null instance id and the tag section of v5).
        static func minimumSize(flexible: Bool) -> Int { flexible ? 7 : 14 }

        /// Reads a member; check `r.error` afterwards.
        init(from r: inout ByteReader, version: Int16) {
            let flexible = version >= 5
            memberID = r.readString(flexible: flexible)
            groupInstanceID = version >= 4 ? r.readNullableString(flexible: flexible) : nil
            clientID = r.readString(flexible: flexible)
            clientHost = r.readString(flexible: flexible)
            memberMetadata = r.readSizedBytes(flexible: flexible)
            memberAssignment = r.readSizedBytes(flexible: flexible)
            r.skipTaggedFields(flexible: flexible)
        }
    }
}
