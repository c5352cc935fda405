/// SyncGroup request (key 14), versions 0–5; flexible from v4.
///
///     group_id:STRING generation_id:INT32 member_id:STRING
///     group_instance_id:NULLABLE_STRING (v3+)
///     protocol_type:NULLABLE_STRING (v5+) protocol_name:NULLABLE_STRING (v5+)
///     assignments:[member_id:STRING assignment:BYTES <tags v4+>] <tags v4+>
///
/// The second call of a rebalance, sent by every member once its ``JoinGroupRequest`` is
/// answered. The leader sends the assignment of every member (for consumers, each an encoded
/// ``ConsumerProtocolAssignment``); the other members send none. The coordinator answers
/// each member with its own assignment once the leader's has arrived.
///
/// From v5 (KIP-559) the member repeats the protocol type and name the JoinGroup response
/// gave, and the coordinator rejects the call with `INCONSISTENT_GROUP_PROTOCOL` when they
/// differ from the group's. v1 and v2 add no field.
public struct SyncGroupRequest: KafkaRequest, Equatable {
    /// Answered by ``SyncGroupResponse``.
    public typealias Response = SyncGroupResponse
    /// Key 14.
    public static let apiKey = ApiKey.syncGroup
    /// v0 through v5.
    public static let supportedVersions: ClosedRange<Int16> = 0...5
    /// v4.
    public static let firstFlexibleVersion: Int16 = 4

    /// The group id.
    public var groupID: String
    /// The generation the JoinGroup response gave.
    public var generationID: Int32
    /// The member id the JoinGroup response gave.
    public var memberID: String
    /// The static member's instance id (v3+), if any.
    public var groupInstanceID: String?
    /// The group's protocol type (v5+), as the JoinGroup response gave it.
    public var protocolType: String?
    /// The chosen protocol's name (v5+), as the JoinGroup response gave it.
    public var protocolName: String?
    /// Every member's assignment when sent by the leader; empty otherwise.
    public var assignments: [Assignment]

    /// Creates the request.
    public init(groupID: String, generationID: Int32, memberID: String, groupInstanceID: String? = nil,
                protocolType: String? = nil, protocolName: String? = nil, assignments: [Assignment] = []) {
        self.groupID = groupID
        self.generationID = generationID
        self.memberID = memberID
        self.groupInstanceID = groupInstanceID
        self.protocolType = protocolType
        self.protocolName = protocolName
        self.assignments = assignments
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 4
        writer.writeString(groupID, flexible: flexible)
        writer.writeInt32(generationID)
        writer.writeString(memberID, flexible: flexible)
        if version >= 3 { writer.writeNullableString(groupInstanceID, flexible: flexible) }
        if version >= 5 {
            writer.writeCompactNullableString(protocolType)
            writer.writeCompactNullableString(protocolName)
        }
        writer.writeArrayCount(assignments.count, flexible: flexible)
        for a in assignments {
            writer.writeString(a.memberID, flexible: flexible)
            writer.writeSizedBytes(a.assignment, flexible: flexible)
            writer.writeEmptyTaggedFields(flexible: flexible)
        }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }

    /// One member's assignment, sent by the leader.
    public struct Assignment: Sendable, Hashable {
        /// The member it is for.
        public var memberID: String
        /// The assignment: for consumers, an encoded ``ConsumerProtocolAssignment``.
        public var assignment: [UInt8]

        /// Creates an assignment entry.
        public init(memberID: String, assignment: [UInt8]) {
            self.memberID = memberID
            self.assignment = assignment
        }
    }
}

/// SyncGroup response (key 14), versions 0–5.
///
///     throttle_time_ms:INT32 (v1+) error_code:INT16
///     protocol_type:NULLABLE_STRING (v5+) protocol_name:NULLABLE_STRING (v5+)
///     assignment:BYTES <tags v4+>
///
/// `REBALANCE_IN_PROGRESS` (27) means another rebalance began: join again. An empty
/// ``assignment`` means the leader assigned this member nothing (the coordinator fills in
/// empty bytes for members the leader left out), which is not a decodable
/// ``ConsumerProtocolAssignment``.
public struct SyncGroupResponse: KafkaResponse, Equatable {
    /// Quota throttle time (v1+; 0 otherwise).
    public var throttleTimeMs: Int32
    /// The error, 0 on success.
    public var errorCode: Int16
    /// The group's protocol type (v5+; `nil` before or when the broker sent null).
    public var protocolType: String?
    /// The chosen protocol's name (v5+; `nil` before or when the broker sent null).
    public var protocolName: String?
    /// This member's assignment: for consumers, an encoded ``ConsumerProtocolAssignment``.
    public var assignment: [UInt8]

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, errorCode: Int16 = 0, protocolType: String? = nil,
                protocolName: String? = nil, assignment: [UInt8] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.protocolType = protocolType
        self.protocolName = protocolName
        self.assignment = assignment
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 4
        throttleTimeMs = version >= 1 ? reader.readInt32() : 0
        errorCode = reader.readInt16()
        protocolType = version >= 5 ? reader.readCompactNullableString() : nil
        protocolName = version >= 5 ? reader.readCompactNullableString() : nil
        assignment = reader.readSizedBytes(flexible: flexible)
        reader.skipTaggedFields(flexible: flexible)
    }
}
