/// Kafka API keys used by this client.
public enum ApiKey: Int16, Sendable, CaseIterable, CustomStringConvertible {
    /// Writes record batches to partitions.
    case produce = 0
    /// Reads record batches from partitions.
    case fetch = 1
    /// Looks up offsets by time (earliest, latest, a timestamp).
    case listOffsets = 2
    /// Brokers, topics, partitions and their leaders.
    case metadata = 3
    /// Commits a group's offsets.
    case offsetCommit = 8
    /// Reads a group's committed offsets.
    case offsetFetch = 9
    /// Finds the broker coordinating a group or a transactional id.
    case findCoordinator = 10
    /// Joins a classic consumer group (a rebalance).
    case joinGroup = 11
    /// Keeps a classic group membership alive.
    case heartbeat = 12
    /// Leaves a classic consumer group.
    case leaveGroup = 13
    /// Hands out (leader) or receives a classic group's assignment.
    case syncGroup = 14
    /// Classic group description (state, protocol, members with their metadata and assignment).
    case describeGroups = 15
    /// The groups a broker coordinates (ask every broker for the whole cluster).
    case listGroups = 16
    /// Chooses the SASL mechanism.
    case saslHandshake = 17
    /// The API versions a broker supports.
    case apiVersions = 18
    /// Creates topics.
    case createTopics = 19
    /// Deletes topics.
    case deleteTopics = 20
    /// Gets a producer id and epoch (idempotence, transactions).
    case initProducerId = 22
    /// Adds partitions to an open transaction.
    case addPartitionsToTxn = 24
    /// Adds a group's offsets to an open transaction.
    case addOffsetsToTxn = 25
    /// Commits or aborts a transaction.
    case endTxn = 26
    /// Commits a group's offsets inside a transaction.
    case txnOffsetCommit = 28
    /// Carries one SASL authentication step.
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
