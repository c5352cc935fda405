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

/// ShareGroupHeartbeat response (key 76), version 1: the grammar of the KIP-848 heartbeat
/// response, so the same type.
///
///     throttle_time_ms:INT32 error_code:INT16 error_message:COMPACT_NULLABLE_STRING
///     member_id:COMPACT_NULLABLE_STRING member_epoch:INT32 heartbeat_interval_ms:INT32
///     assignment:(nullable struct)
///         presence:INT8 (-1 null, 1 present)
///         topic_partitions:[topic_id:UUID partitions:[INT32] <tags>] <tags>
///     <tags>
///
/// `memberID` echoes the member's id on success; `assignment` is `nil` when unchanged, an
/// empty list when the member has no partitions. (Both KIP-848 versions decode alike, so the
/// version passed when decoding does not matter.)
public typealias ShareGroupHeartbeatResponse = ConsumerGroupHeartbeatResponse
