/// Staying in and leaving a classic group: Heartbeat (key 12) and LeaveGroup (key 13).
///
/// Heartbeat request (key 12), versions 0–4; flexible from v4.
///
///     group_id:STRING generation_id:INT32 member_id:STRING
///     group_instance_id:NULLABLE_STRING (v3+) <tags v4+>
///
/// Sent by every member of a classic group, more often than the session timeout (Kafka's
/// consumer: every 3 s against a 45 s session), to stay in the group. The answer is how the
/// coordinator tells a member that a rebalance began: the member keeps consuming, finishes
/// what it must (commits, revocation callbacks) and sends ``JoinGroupRequest`` again.
/// v1 and v2 add no field.
///
/// What the response's error asks of the member:
///
/// | error | meaning | the member |
/// |---|---|---|
/// | `REBALANCE_IN_PROGRESS` (27) | a rebalance began | rejoins with its member id |
/// | `ILLEGAL_GENERATION` (22) | it missed a generation | rejoins; under eager, its partitions are lost |
/// | `UNKNOWN_MEMBER_ID` (25) | the coordinator forgot it | clears its member id and rejoins |
/// | `FENCED_INSTANCE_ID` (82) | another process took its instance id | stops: fatal for that static member |
/// | `NOT_COORDINATOR` (16), `COORDINATOR_NOT_AVAILABLE` (15) | the coordinator moved | finds the coordinator again |
public struct HeartbeatRequest: KafkaRequest, Equatable {
    /// Answered by ``HeartbeatResponse``.
    public typealias Response = HeartbeatResponse
    /// Key 12.
    public static let apiKey = ApiKey.heartbeat
    /// v0 through v4.
    public static let supportedVersions: ClosedRange<Int16> = 0...4
    /// v4.
    public static let firstFlexibleVersion: Int16 = 4

    /// The group id.
    public var groupID: String
    /// The generation the member is in.
    public var generationID: Int32
    /// The member id.
    public var memberID: String
    /// The static member's instance id (v3+), if any.
    public var groupInstanceID: String?

    /// Creates the request.
    public init(groupID: String, generationID: Int32, memberID: String, groupInstanceID: String? = nil) {
        self.groupID = groupID
        self.generationID = generationID
        self.memberID = memberID
        self.groupInstanceID = groupInstanceID
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 4
        writer.writeString(groupID, flexible: flexible)
        writer.writeInt32(generationID)
        writer.writeString(memberID, flexible: flexible)
        if version >= 3 { writer.writeNullableString(groupInstanceID, flexible: flexible) }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }
}

/// Heartbeat response (key 12), versions 0–4.
///
///     throttle_time_ms:INT32 (v1+) error_code:INT16 <tags v4+>
///
/// See ``HeartbeatRequest`` for what each error asks of the member.
public struct HeartbeatResponse: KafkaResponse, Equatable {
    /// Quota throttle time (v1+; 0 otherwise).
    public var throttleTimeMs: Int32
    /// The error, 0 while the group is stable.
    public var errorCode: Int16

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, errorCode: Int16 = 0) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        throttleTimeMs = version >= 1 ? reader.readInt32() : 0
        errorCode = reader.readInt16()
        reader.skipTaggedFields(flexible: version >= 4)
    }
}

/// LeaveGroup request (key 13), versions 0–5; flexible from v4.
///
///     v0–2: group_id:STRING member_id:STRING
///     v3+:  group_id:STRING
///           members:[member_id:STRING group_instance_id:NULLABLE_STRING reason:NULLABLE_STRING (v5+)
///                    <tags v4+>] <tags v4+>
///
/// A dynamic member sends it when it closes, so the group rebalances at once instead of
/// after the session timeout. A static member usually does not: the coordinator keeps its
/// partitions for it until the session timeout, so a restart causes no rebalance. From v3
/// (KIP-345) the request names a batch of members, each by member id or by group instance
/// id (an administrator removing static members sends an empty member id); v0–2 carry the
/// first member's id only. v1 and v2 add no field.
public struct LeaveGroupRequest: KafkaRequest, Equatable {
    /// Answered by ``LeaveGroupResponse``.
    public typealias Response = LeaveGroupResponse
    /// Key 13.
    public static let apiKey = ApiKey.leaveGroup
    /// v0 through v5.
    public static let supportedVersions: ClosedRange<Int16> = 0...5
    /// v4.
    public static let firstFlexibleVersion: Int16 = 4

    /// The group id.
    public var groupID: String
    /// The members leaving: v0–2 send only the first one's ``Member/memberID`` (empty when none).
    public var members: [Member]

    /// Creates the request for a batch of members.
    public init(groupID: String, members: [Member]) {
        self.groupID = groupID
        self.members = members
    }

    /// Creates the request for one member leaving.
    public init(groupID: String, memberID: String, groupInstanceID: String? = nil, reason: String? = nil) {
        self.init(groupID: groupID,
                  members: [Member(memberID: memberID, groupInstanceID: groupInstanceID, reason: reason)])
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 4
        writer.writeString(groupID, flexible: flexible)
        if version <= 2 {
            writer.writeString(members.first?.memberID ?? "")
        } else {
            writer.writeArrayCount(members.count, flexible: flexible)
            for m in members {
                writer.writeString(m.memberID, flexible: flexible)
                writer.writeNullableString(m.groupInstanceID, flexible: flexible)
                if version >= 5 { writer.writeCompactNullableString(m.reason) }
                writer.writeEmptyTaggedFields(flexible: flexible)
            }
        }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }

    /// One member leaving.
    public struct Member: Sendable, Hashable {
        /// The member id; empty to name a static member by ``groupInstanceID`` alone (v3+).
        public var memberID: String
        /// The static member's instance id (v3+), if any.
        public var groupInstanceID: String?
        /// Why the member leaves (v5+), for the broker's log.
        public var reason: String?

        /// Creates a member entry.
        public init(memberID: String, groupInstanceID: String? = nil, reason: String? = nil) {
            self.memberID = memberID
            self.groupInstanceID = groupInstanceID
            self.reason = reason
        }
    }
}

/// LeaveGroup response (key 13), versions 0–5.
///
///     throttle_time_ms:INT32 (v1+) error_code:INT16
///     members:[member_id:STRING group_instance_id:NULLABLE_STRING error_code:INT16 <tags v4+>] (v3+)
///     <tags v4+>
///
/// ``errorCode`` is about the request as a whole (for example `NOT_COORDINATOR`); from v3
/// each member named has its own outcome in ``members`` (`UNKNOWN_MEMBER_ID`,
/// `FENCED_INSTANCE_ID`). Version 5 has v4's layout.
public struct LeaveGroupResponse: KafkaResponse, Equatable {
    /// Quota throttle time (v1+; 0 otherwise).
    public var throttleTimeMs: Int32
    /// The error of the whole request, 0 on success.
    public var errorCode: Int16
    /// One outcome per member named (v3+; empty otherwise).
    public var members: [Member]

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, errorCode: Int16 = 0, members: [Member] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.members = members
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 4
        throttleTimeMs = version >= 1 ? reader.readInt32() : 0
        errorCode = reader.readInt16()
        if version >= 3 {
            // A member is at least its id, its instance id and its error code, plus tags.
            let n = reader.readArrayCount(flexible: flexible, minimumElementSize: flexible ? 5 : 6)
            members = reader.readArray(count: n) { r in
                let member = Member(memberID: r.readString(flexible: flexible),
                                    groupInstanceID: r.readNullableString(flexible: flexible),
                                    errorCode: r.readInt16())
                r.skipTaggedFields(flexible: flexible)
                return member
            }
        } else {
            members = []
        }
        reader.skipTaggedFields(flexible: flexible)
    }

    /// The outcome for one member.
    public struct Member: Sendable, Hashable {
        /// The member id named in the request.
        public var memberID: String
        /// The instance id named in the request, if any.
        public var groupInstanceID: String?
        /// The error, 0 on success.
        public var errorCode: Int16

        /// Creates a member outcome.
        public init(memberID: String, groupInstanceID: String? = nil, errorCode: Int16 = 0) {
            self.memberID = memberID
            self.groupInstanceID = groupInstanceID
            self.errorCode = errorCode
        }
    }
}
