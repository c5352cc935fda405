/// JoinGroup request (key 11), versions 0–9; flexible from v6.
///
///     group_id:STRING session_timeout_ms:INT32 rebalance_timeout_ms:INT32 (v1+)
///     member_id:STRING group_instance_id:NULLABLE_STRING (v5+) protocol_type:STRING
///     protocols:[name:STRING metadata:BYTES <tags v6+>]
///     reason:NULLABLE_STRING (v8+) <tags v6+>
///
/// The first call of a classic group member, and the one it repeats on every rebalance. A new
/// member sends an empty ``memberID``; from v4 (KIP-394) the coordinator answers
/// `MEMBER_ID_REQUIRED` (79) with a member id in the response, and the member joins again with
/// it. The coordinator holds the answer until every member has joined or the rebalance timeout
/// passes, so the call can take as long as ``rebalanceTimeoutMs``.
///
/// For a consumer group ``protocolType`` is ``ConsumerProtocol/protocolType`` and each
/// protocol is an assignment strategy whose metadata is a ``ConsumerProtocolSubscription``.
/// Versions 2–4, 7 and 9 add no request field: v4 brings the KIP-394 join, v2, v7 and v9 add
/// response fields, v3 changes only when a throttled broker answers.
public struct JoinGroupRequest: KafkaRequest, Equatable {
    /// Answered by ``JoinGroupResponse``.
    public typealias Response = JoinGroupResponse
    /// Key 11.
    public static let apiKey = ApiKey.joinGroup
    /// v0 through v9.
    public static let supportedVersions: ClosedRange<Int16> = 0...9
    /// v6.
    public static let firstFlexibleVersion: Int16 = 6

    /// The group id.
    public var groupID: String
    /// How long the coordinator waits for a heartbeat before it removes the member.
    public var sessionTimeoutMs: Int32
    /// How long the coordinator waits for every member to rejoin during a rebalance (v1+; v0
    /// brokers use ``sessionTimeoutMs``).
    public var rebalanceTimeoutMs: Int32
    /// The member id the coordinator gave, or empty when joining for the first time.
    public var memberID: String
    /// The static member's instance id (v5+), if any.
    public var groupInstanceID: String?
    /// The class of protocols: ``ConsumerProtocol/protocolType`` for consumers.
    public var protocolType: String
    /// The protocols the member supports, most preferred first.
    public var protocols: [GroupProtocol]
    /// Why the member joins or rejoins (v8+), for the broker's log.
    public var reason: String?

    /// Creates the request.
    public init(groupID: String, sessionTimeoutMs: Int32, rebalanceTimeoutMs: Int32 = -1, memberID: String = "",
                groupInstanceID: String? = nil, protocolType: String = ConsumerProtocol.protocolType,
                protocols: [GroupProtocol], reason: String? = nil) {
        self.groupID = groupID
        self.sessionTimeoutMs = sessionTimeoutMs
        self.rebalanceTimeoutMs = rebalanceTimeoutMs
        self.memberID = memberID
        self.groupInstanceID = groupInstanceID
        self.protocolType = protocolType
        self.protocols = protocols
        self.reason = reason
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 6
        writer.writeString(groupID, flexible: flexible)
        writer.writeInt32(sessionTimeoutMs)
        if version >= 1 { writer.writeInt32(rebalanceTimeoutMs) }
        writer.writeString(memberID, flexible: flexible)
        if version >= 5 { writer.writeNullableString(groupInstanceID, flexible: flexible) }
        writer.writeString(protocolType, flexible: flexible)
        writer.writeArrayCount(protocols.count, flexible: flexible)
        for p in protocols {
            writer.writeString(p.name, flexible: flexible)
            writer.writeSizedBytes(p.metadata, flexible: flexible)
            writer.writeEmptyTaggedFields(flexible: flexible)
        }
        if version >= 8 { writer.writeCompactNullableString(reason) }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }

    /// One protocol the member supports.
    public struct GroupProtocol: Sendable, Hashable {
        /// The protocol name: for consumers, the assignment strategy ("range", "cooperative-sticky").
        public var name: String
        /// The protocol metadata: for consumers, an encoded ``ConsumerProtocolSubscription``.
        public var metadata: [UInt8]

        /// Creates a protocol entry.
        public init(name: String, metadata: [UInt8]) {
            self.name = name
            self.metadata = metadata
        }
    }
}

/// JoinGroup response (key 11), versions 0–9.
///
///     throttle_time_ms:INT32 (v2+) error_code:INT16 generation_id:INT32
///     protocol_type:NULLABLE_STRING (v7+) protocol_name:STRING (nullable v7+)
///     leader:STRING skip_assignment:BOOLEAN (v9+) member_id:STRING
///     members:[member_id:STRING group_instance_id:NULLABLE_STRING (v5+) metadata:BYTES <tags v6+>]
///     <tags v6+>
///
/// Every member learns the generation, the chosen protocol and the leader; only the leader
/// gets ``members`` (empty for the others), each with the metadata it joined with, and
/// computes the assignment it then sends in ``SyncGroupRequest``. With ``skipAssignment``
/// (v9+, KIP-814) the leader gets the members but must not assign: the group keeps its current
/// assignment (a static leader rejoined without changes), and the members are there so the
/// leader can watch their subscriptions.
public struct JoinGroupResponse: KafkaResponse, Equatable {
    /// Quota throttle time (v2+; 0 otherwise).
    public var throttleTimeMs: Int32
    /// The error, 0 on success (for example `MEMBER_ID_REQUIRED`, `UNKNOWN_MEMBER_ID`,
    /// `INCONSISTENT_GROUP_PROTOCOL`, `REBALANCE_IN_PROGRESS`).
    public var errorCode: Int16
    /// The generation of the group, -1 on error.
    public var generationID: Int32
    /// The group's protocol type (v7+; `nil` before or when the broker sent null).
    public var protocolType: String?
    /// The protocol the coordinator chose; `nil` only when the broker sent null (v7+, on error).
    public var protocolName: String?
    /// The leader's member id.
    public var leader: String
    /// Whether the leader must skip computing the assignment (v9+; `false` otherwise).
    public var skipAssignment: Bool
    /// This member's id: the one to use from now on (or to join again with, after `MEMBER_ID_REQUIRED`).
    public var memberID: String
    /// Every member with its protocol metadata, for the leader; empty for the others.
    public var members: [Member]

    /// Whether this member is the group's leader.
    public var isLeader: Bool { !memberID.isEmpty && leader == memberID }

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, errorCode: Int16 = 0, generationID: Int32 = -1,
                protocolType: String? = nil, protocolName: String? = nil, leader: String = "",
                skipAssignment: Bool = false, memberID: String = "", members: [Member] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.generationID = generationID
        self.protocolType = protocolType
        self.protocolName = protocolName
        self.leader = leader
        self.skipAssignment = skipAssignment
        self.memberID = memberID
        self.members = members
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 6
        throttleTimeMs = version >= 2 ? reader.readInt32() : 0
        errorCode = reader.readInt16()
        generationID = reader.readInt32()
        protocolType = version >= 7 ? reader.readCompactNullableString() : nil
        protocolName = version >= 7 ? reader.readCompactNullableString() : reader.readString(flexible: flexible)
        leader = reader.readString(flexible: flexible)
        skipAssignment = version >= 9 ? reader.readBool() : false
        memberID = reader.readString(flexible: flexible)
        // A member is at least its id, its instance id (v5+) and its metadata length, plus tags.
        let minimum = flexible ? 4 : (version >= 5 ? 8 : 6)
        let n = reader.readArrayCount(flexible: flexible, minimumElementSize: minimum)
        members = reader.readArray(count: n) { r in
            let id = r.readString(flexible: flexible)
            let instance = version >= 5 ? r.readNullableString(flexible: flexible) : nil
            let member = Member(memberID: id, groupInstanceID: instance, metadata: r.readSizedBytes(flexible: flexible))
            r.skipTaggedFields(flexible: flexible)
            return member
        }
        reader.skipTaggedFields(flexible: flexible)
    }

    /// One member of the group, as the leader sees it.
    public struct Member: Sendable, Hashable {
        /// The member id.
        public var memberID: String
        /// The static member's instance id (v5+), if any.
        public var groupInstanceID: String?
        /// The metadata the member joined with for the chosen protocol: for consumers, an
        /// encoded ``ConsumerProtocolSubscription``.
        public var metadata: [UInt8]

        /// Creates a member entry.
        public init(memberID: String, groupInstanceID: String? = nil, metadata: [UInt8]) {
            self.memberID = memberID
            self.groupInstanceID = groupInstanceID
            self.metadata = metadata
        }
    }
}
