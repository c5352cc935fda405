/// What the group-administration calls of ``KlifeClient`` return: listings, descriptions,
/// offsets with lag, and where a reset moves a group.

/// The state a group coordinator reports for a group.
///
/// Classic groups are `PreparingRebalance`, `CompletingRebalance`, `Stable`, `Empty` or `Dead`;
/// KIP-848 consumer groups are `Assigning`, `Reconciling`, `Stable`, `Empty` or `Dead`. A state
/// this type has no constant for keeps the broker's spelling in ``rawValue``.
public struct GroupState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The broker's name for the state.
    public var rawValue: String

    /// Wraps a state name as the broker spells it.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Members are joining or rejoining (classic).
    public static let preparingRebalance = GroupState(rawValue: "PreparingRebalance")
    /// The members joined; the leader's assignment is awaited (classic).
    public static let completingRebalance = GroupState(rawValue: "CompletingRebalance")
    /// Every member holds its assignment.
    public static let stable = GroupState(rawValue: "Stable")
    /// The group exists (it has committed offsets) but has no members.
    public static let empty = GroupState(rawValue: "Empty")
    /// The group does not exist, or no longer: it has neither members nor offsets.
    public static let dead = GroupState(rawValue: "Dead")
    /// The coordinator is computing a new target assignment (KIP-848).
    public static let assigning = GroupState(rawValue: "Assigning")
    /// Members are moving towards the target assignment (KIP-848).
    public static let reconciling = GroupState(rawValue: "Reconciling")

    /// `Empty` or `Dead`: no member consumes, so the group's offsets may be reset and the group
    /// deleted. Every other state means members are (or are becoming) active.
    public var isInactive: Bool { self == .empty || self == .dead }

    /// The broker's name for the state.
    public var description: String { rawValue }
}

/// The kind of a group (ListGroups v5, KIP-848): which protocol its members speak.
public struct GroupType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The broker's name for the type.
    public var rawValue: String

    /// Wraps a type name as the broker spells it.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Members use JoinGroup/SyncGroup and a client-side assignor (also groups that only commit offsets).
    public static let classic = GroupType(rawValue: "classic")
    /// Members use ConsumerGroupHeartbeat and the coordinator assigns (KIP-848).
    public static let consumer = GroupType(rawValue: "consumer")
    /// A share group (KIP-932).
    public static let share = GroupType(rawValue: "share")
    /// A Kafka Streams group (KIP-1071).
    public static let streams = GroupType(rawValue: "streams")

    /// The broker's name for the type.
    public var description: String { rawValue }
}

/// One group as ListGroups reports it.
public struct GroupListing: Hashable, Sendable {
    /// The group id.
    public var groupID: String
    /// The protocol type: `consumer` for consumer groups, empty for groups that only commit offsets.
    public var protocolType: String
    /// The state, when the broker says (ListGroups v4 and later).
    public var state: GroupState?
    /// The type, when the broker says (ListGroups v5 and later).
    public var type: GroupType?
    /// The broker that listed the group: its coordinator.
    public var coordinator: Int32

    /// Creates a listing.
    public init(groupID: String, protocolType: String, state: GroupState?, type: GroupType?, coordinator: Int32) {
        self.groupID = groupID
        self.protocolType = protocolType
        self.state = state
        self.type = type
        self.coordinator = coordinator
    }
}

/// One member of a described group.
public struct GroupMemberDescription: Hashable, Sendable {
    /// The member id the coordinator gave it.
    public var memberID: String
    /// The static member's `group.instance.id`, if any.
    public var instanceID: String?
    /// The member's client id.
    public var clientID: String
    /// The member's host, as the coordinator saw it (`/127.0.0.1`).
    public var host: String
    /// The partitions the member holds, sorted. For a classic group only when its protocol type is
    /// `consumer` and it is `Stable` (the coordinator sends assignments only then).
    public var assignment: [TopicPartition]
    /// The partitions the coordinator is moving the member to (KIP-848 groups; `nil` for classic ones).
    public var targetAssignment: [TopicPartition]?
    /// The topics the member subscribed to (from its subscription in a classic `consumer` group), sorted.
    public var subscribedTopics: [String]
    /// The member's epoch (KIP-848 groups; `nil` for classic ones).
    public var memberEpoch: Int32?

    /// Creates a member description.
    public init(memberID: String, instanceID: String? = nil, clientID: String, host: String,
                assignment: [TopicPartition], targetAssignment: [TopicPartition]? = nil,
                subscribedTopics: [String] = [], memberEpoch: Int32? = nil) {
        self.memberID = memberID
        self.instanceID = instanceID
        self.clientID = clientID
        self.host = host
        self.assignment = assignment
        self.targetAssignment = targetAssignment
        self.subscribedTopics = subscribedTopics
        self.memberEpoch = memberEpoch
    }
}

/// A group as its coordinator describes it.
public struct GroupDescription: Hashable, Sendable {
    /// The group id.
    public var groupID: String
    /// The group's state; `Dead` for a group the coordinator does not know.
    public var state: GroupState
    /// ``GroupType/classic`` when DescribeGroups described it, ``GroupType/consumer`` when
    /// ConsumerGroupDescribe did (a KIP-848 group).
    public var type: GroupType
    /// The protocol type: `consumer` for consumer groups, empty for groups that only commit offsets.
    public var protocolType: String
    /// The chosen protocol: the assignor (`range`, `roundrobin`, `cooperative-sticky`, or the
    /// coordinator's `uniform`/`range` for KIP-848 groups); empty while none is chosen.
    public var protocolName: String
    /// The group epoch (KIP-848 groups; `nil` for classic ones).
    public var groupEpoch: Int32?
    /// The epoch of the target assignment (KIP-848 groups; `nil` for classic ones).
    public var assignmentEpoch: Int32?
    /// The coordinator that answered.
    public var coordinator: Int32
    /// The members, sorted by member id.
    public var members: [GroupMemberDescription]

    /// Creates a description.
    public init(groupID: String, state: GroupState, type: GroupType, protocolType: String, protocolName: String,
                groupEpoch: Int32? = nil, assignmentEpoch: Int32? = nil, coordinator: Int32,
                members: [GroupMemberDescription]) {
        self.groupID = groupID
        self.state = state
        self.type = type
        self.protocolType = protocolType
        self.protocolName = protocolName
        self.groupEpoch = groupEpoch
        self.assignmentEpoch = assignmentEpoch
        self.coordinator = coordinator
        self.members = members
    }
}

/// A group's position in one partition next to the partition's end.
public struct GroupPartitionOffsets: Hashable, Sendable {
    /// The committed offset: the next offset the group will read.
    public var committed: Int64
    /// The partition's high watermark, `nil` when the partition no longer exists.
    public var endOffset: Int64?

    /// Creates an entry.
    public init(committed: Int64, endOffset: Int64?) {
        self.committed = committed
        self.endOffset = endOffset
    }

    /// Records the group has yet to read: `endOffset - committed`, never below zero (a commit past
    /// the end, or a log truncated under it); `nil` without an end offset.
    public var lag: Int64? { endOffset.map { max(0, $0 - committed) } }
}

/// Where ``KlifeClient/resetGroupOffsets(_:topic:to:)`` moves a group's committed offsets.
public enum OffsetResetTarget: Hashable, Sendable {
    /// The first offset still in each partition's log.
    case earliest
    /// Each partition's end (high watermark): everything written so far counts as read.
    case latest
    /// This offset in every partition, kept within the partition's log (below its first offset
    /// it becomes the first offset, past its end it becomes the end).
    case offset(Int64)
    /// The first offset whose record timestamp is at or after this time (ms since the epoch); the
    /// end for a partition with no such record.
    case timestamp(Int64)
}
