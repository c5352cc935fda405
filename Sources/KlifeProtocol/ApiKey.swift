/// Kafka API keys used by this client.
public enum ApiKey: Int16, Sendable, CaseIterable, CustomStringConvertible {
    case produce = 0
    case fetch = 1
    case listOffsets = 2
    case metadata = 3
    case offsetCommit = 8
    case offsetFetch = 9
    case findCoordinator = 10
    case joinGroup = 11
    case heartbeat = 12
    case leaveGroup = 13
    case syncGroup = 14
    /// Classic group description (state, protocol, members with their metadata and assignment).
    case describeGroups = 15
    /// The groups a broker coordinates (ask every broker for the whole cluster).
    case listGroups = 16
    case saslHandshake = 17
    case apiVersions = 18
    case createTopics = 19
    case deleteTopics = 20
    case initProducerId = 22
    case addPartitionsToTxn = 24
    case addOffsetsToTxn = 25
    case endTxn = 26
    case txnOffsetCommit = 28
    case saslAuthenticate = 36
    /// Deletes empty groups and their committed offsets.
    case deleteGroups = 42
    /// Deletes a group's committed offsets for some partitions.
    case offsetDelete = 47
    /// KIP-848 consumer group heartbeat (joins, leaves and carries the assignment).
    case consumerGroupHeartbeat = 68
    /// KIP-848 consumer group description.
    case consumerGroupDescribe = 69
    /// KIP-932 share group heartbeat (joins, leaves and carries the assignment).
    case shareGroupHeartbeat = 76
    /// KIP-932 share group description.
    case shareGroupDescribe = 77
    /// KIP-932 fetch that acquires records for a share group member (and acknowledges earlier ones).
    case shareFetch = 78
    /// KIP-932 acknowledgement of records acquired through ``shareFetch``.
    case shareAcknowledge = 79

    /// The name used in Kafka's documentation, for error messages.
    public var description: String {
        switch self {
        case .produce: "Produce"
        case .fetch: "Fetch"
        case .listOffsets: "ListOffsets"
        case .metadata: "Metadata"
        case .offsetCommit: "OffsetCommit"
        case .offsetFetch: "OffsetFetch"
        case .findCoordinator: "FindCoordinator"
        case .joinGroup: "JoinGroup"
        case .heartbeat: "Heartbeat"
        case .leaveGroup: "LeaveGroup"
        case .syncGroup: "SyncGroup"
        case .describeGroups: "DescribeGroups"
        case .listGroups: "ListGroups"
        case .saslHandshake: "SaslHandshake"
        case .apiVersions: "ApiVersions"
        case .createTopics: "CreateTopics"
        case .deleteTopics: "DeleteTopics"
        case .initProducerId: "InitProducerId"
        case .addPartitionsToTxn: "AddPartitionsToTxn"
        case .addOffsetsToTxn: "AddOffsetsToTxn"
        case .endTxn: "EndTxn"
        case .txnOffsetCommit: "TxnOffsetCommit"
        case .saslAuthenticate: "SaslAuthenticate"
        case .deleteGroups: "DeleteGroups"
        case .offsetDelete: "OffsetDelete"
        case .consumerGroupHeartbeat: "ConsumerGroupHeartbeat"
        case .consumerGroupDescribe: "ConsumerGroupDescribe"
        case .shareGroupHeartbeat: "ShareGroupHeartbeat"
        case .shareGroupDescribe: "ShareGroupDescribe"
        case .shareFetch: "ShareFetch"
        case .shareAcknowledge: "ShareAcknowledge"
        }
    }
}
