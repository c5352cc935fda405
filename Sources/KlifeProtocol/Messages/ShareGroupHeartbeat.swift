/// ShareGroupHeartbeat request (key 76), version 1; flexible in every version (KIP-932).
///
///     group_id:COMPACT_STRING member_id:COMPACT_STRING member_epoch:INT32
///     rack_id:COMPACT_NULLABLE_STRING
///     subscribed_topic_names:[COMPACT_STRING] (nullable) <tags>
///
/// The membership call of a share group: a member joins with epoch 0 and a member id it
/// generated itself, keeps heartbeating with the epoch the coordinator last returned, and
/// leaves with -1. Unlike a consumer group there is nothing to revoke: the coordinator may
/// hand the same partition to many members, and records, not partitions, are what members
/// own (through acquisition locks taken by ShareFetch). v0 was the early-access layout of
/// Kafka 4.0 with the same fields; brokers that speak it do not speak v1 of ShareFetch,
/// so only v1 is offered.
public struct ShareGroupHeartbeatRequest: KafkaRequest, Equatable {
    /// Answered by ``ShareGroupHeartbeatResponse``.
    public typealias Response = ShareGroupHeartbeatResponse
    /// Key 76.
    public static let apiKey = ApiKey.shareGroupHeartbeat
    /// v1 only (the first stable version).
    public static let supportedVersions: ClosedRange<Int16> = 1...1
    /// Every version is flexible.
    public static let firstFlexibleVersion: Int16 = 0

    /// ``memberEpoch`` of a member joining the group.
    public static let joinEpoch: Int32 = 0
    /// ``memberEpoch`` of a member leaving the group.
    public static let leaveEpoch: Int32 = -1

    /// The share group id.
    public var groupID: String
    /// The member id the member generated for itself and keeps for its whole life.
    public var memberID: String
    /// The current member epoch, ``joinEpoch`` or ``leaveEpoch``.
    public var memberEpoch: Int32
    /// The member's rack; `nil` when not configured or unchanged since the last heartbeat.
    public var rackID: String?
    /// The subscribed topic names; `nil` when unchanged since the last heartbeat.
    public var subscribedTopicNames: [String]?

    /// Creates the request.
    public init(groupID: String, memberID: String, memberEpoch: Int32, rackID: String? = nil,
                subscribedTopicNames: [String]? = nil) {
        self.groupID = groupID
        self.memberID = memberID
        self.memberEpoch = memberEpoch
        self.rackID = rackID
        self.subscribedTopicNames = subscribedTopicNames
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        writer.writeCompactString(groupID)
        writer.writeCompactString(memberID)
        writer.writeInt32(memberEpoch)
        writer.writeCompactNullableString(rackID)
        writer.writeNullableArrayCount(subscribedTopicNames?.count, flexible: true)
        for name in subscribedTopicNames ?? [] { writer.writeCompactString(name) }
        writer.writeEmptyTaggedFields()
    }
}

/// ShareGroupHeartbeat response (key 76), version 1.
///
///     throttle_time_ms:INT32 error_code:INT16 error_message:COMPACT_NULLABLE_STRING
///     member_id:COMPACT_NULLABLE_STRING member_epoch:INT32 heartbeat_interval_ms:INT32
///     assignment:(nullable struct)
///         presence:INT8 (-1 null, 1 present)
///         topic_partitions:[topic_id:UUID partitions:[INT32] <tags>] <tags>
///     <tags>
///
/// The assignment has the layout of the KIP-848 heartbeat's; `nil` means unchanged, an
/// empty list means the member has no partitions.
public struct ShareGroupHeartbeatResponse: KafkaResponse, Equatable {
    /// Partitions of one topic, by id.
    public typealias TopicPartitions = ConsumerGroupHeartbeatRequest.TopicPartitions
    /// The partitions assigned to the member.
    public typealias Assignment = ConsumerGroupHeartbeatResponse.Assignment

    /// Quota throttle time.
    public var throttleTimeMs: Int32
    /// The error, 0 on success (for example `UNKNOWN_MEMBER_ID`, `FENCED_MEMBER_EPOCH`).
    public var errorCode: Int16
    /// Error details, if any.
    public var errorMessage: String?
    /// The member id, echoed back on success; `nil` otherwise.
    public var memberID: String?
    /// The member epoch the member must send next.
    public var memberEpoch: Int32
    /// How often the member should heartbeat, in milliseconds.
    public var heartbeatIntervalMs: Int32
    /// The member's new assignment; `nil` when it did not change.
    public var assignment: Assignment?

    /// Creates a response.
    public init(
        throttleTimeMs: Int32 = 0, errorCode: Int16 = 0, errorMessage: String? = nil, memberID: String? = nil,
        memberEpoch: Int32 = 0, heartbeatIntervalMs: Int32 = 0, assignment: Assignment? = nil
    ) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.memberID = memberID
        self.memberEpoch = memberEpoch
        self.heartbeatIntervalMs = heartbeatIntervalMs
        self.assignment = assignment
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        // The same grammar as the KIP-848 heartbeat response: decode through it.
        let shared = ConsumerGroupHeartbeatResponse(from: &reader, version: 1)
        throttleTimeMs = shared.throttleTimeMs
        errorCode = shared.errorCode
        errorMessage = shared.errorMessage
        memberID = shared.memberID
        memberEpoch = shared.memberEpoch
        heartbeatIntervalMs = shared.heartbeatIntervalMs
        assignment = shared.assignment
    }
}
