/// How the partitions of a classic consumer group are divided among its members.
///
/// The group leader runs the strategy every member supports and sends the result to the
/// coordinator; the name in `rawValue` is the protocol name members announce when they join.
public enum AssignmentStrategy: String, Sendable, CaseIterable {
    /// Per topic, contiguous ranges of partitions to the members subscribed to it, in member
    /// order; the first members get one more when the count does not divide evenly. Topics with
    /// equal partition counts and subscribers are co-partitioned (partition `n` of each goes to
    /// the same member). Eager: every member gives up all its partitions before each rebalance.
    case range

    /// All subscribed partitions, sorted by topic then partition, dealt one by one to the
    /// members in turn, skipping members not subscribed to the partition's topic. Eager.
    case roundRobin = "roundrobin"

    /// As balanced as the subscriptions allow while keeping partitions where they are, and
    /// cooperative: members keep consuming the partitions that stay with them during a
    /// rebalance, and a partition that changes hands is first only taken away, then given to
    /// its new member in the rebalance that follows.
    case cooperativeSticky = "cooperative-sticky"

    /// The assignor that implements this strategy.
    var assignor: any PartitionAssignor {
        switch self {
        case .range: RangeAssignor()
        case .roundRobin: RoundRobinAssignor()
        case .cooperativeSticky: CooperativeStickyAssignor()
        }
    }
}

/// Whether members give up all their partitions before rejoining (`eager`) or only the ones
/// the new assignment takes from them (`cooperative`).
enum RebalanceProtocol: Sendable, Hashable {
    case eager
    case cooperative
}

/// What the group leader knows of one member when it computes the assignment: the decoded
/// subscription of a JoinGroup response entry.
struct GroupMemberSubscription: Sendable, Hashable {
    /// Member id given by the coordinator; unique within the group.
    var memberID: String
    /// `group.instance.id` of a static member.
    var groupInstanceID: String?
    /// Topics the member subscribes to.
    var topics: [String]
    /// Partitions the member owns now (cooperative protocol; empty under eager).
    var ownedPartitions: [TopicPartition]
    /// Generation in which the member got `ownedPartitions`; -1 when unknown.
    var generation: Int32
    /// The member's `client.rack`, if set.
    var rackID: String?

    init(memberID: String, groupInstanceID: String? = nil, topics: [String],
         ownedPartitions: [TopicPartition] = [], generation: Int32 = -1, rackID: String? = nil) {
        self.memberID = memberID
        self.groupInstanceID = groupInstanceID
        self.topics = topics
        self.ownedPartitions = ownedPartitions
        self.generation = generation
        self.rackID = rackID
    }
}

/// A client-side assignor of a classic consumer group, run by the group leader.
///
/// Assignors are pure and deterministic: the same members and partition counts give the same
/// assignment whatever the order of `members`.
protocol PartitionAssignor: Sendable {
    /// Protocol name as sent in JoinGroup ("range", "roundrobin", "cooperative-sticky").
    var name: String { get }
    /// The rebalance protocol the assignor's results are meant for.
    var rebalanceProtocol: RebalanceProtocol { get }

    /// Computes the assignment.
    ///
    /// - Parameters:
    ///   - members: every member of the group, with unique member ids.
    ///   - partitionCounts: partition count of each topic known to exist; subscribed topics
    ///     missing here (or with no partitions) are not assigned.
    /// - Returns: the partitions of every member (an empty list for members that get none),
    ///   each list sorted by topic then partition.
    func assign(members: [GroupMemberSubscription], partitionCounts: [String: Int32]) -> [String: [TopicPartition]]
}

// MARK: - Eager assignors

/// Kafka's `range` assignor: each topic on its own, its partitions cut into contiguous ranges
/// for the members subscribed to it.
///
/// Members are ordered as Kafka orders them (static members first by group instance id, then
/// by member id). With `n` partitions and `m` subscribers, each gets `n / m` and the first
/// `n % m` one more. Two members, two topics of three partitions:
///
///     C0: t0/0, t0/1, t1/0, t1/1
///     C1: t0/2, t1/2
///
/// Replica racks are not part of the input, so Kafka's rack-aware variant never applies.
struct RangeAssignor: PartitionAssignor {
    var name: String { AssignmentStrategy.range.rawValue }
    var rebalanceProtocol: RebalanceProtocol { .eager }

    func assign(members: [GroupMemberSubscription], partitionCounts: [String: Int32]) -> [String: [TopicPartition]] {
        let members = AssignmentOrder.uniqueMembers(members)
        var result = AssignmentOrder.emptyAssignment(members)

        var subscribers: [String: [String]] = [:]
        for member in members {
            for topic in Set(member.topics) {
                subscribers[topic, default: []].append(member.memberID)
            }
        }
        let topics = AssignmentOrder.existingTopics(subscribers.keys, partitionCounts: partitionCounts)
        for topic in topics {
            // Members were appended in member order, so each list is already sorted.
            guard let consumers = subscribers[topic], let count = partitionCounts[topic] else { continue }
            let perMember = Int(count) / consumers.count
            let withExtra = Int(count) % consumers.count
            for (index, member) in consumers.enumerated() {
                let start = perMember * index + min(index, withExtra)
                let length = perMember + (index < withExtra ? 1 : 0)
                for partition in start..<(start + length) {
                    result[member, default: []].append(TopicPartition(topic: topic, partition: Int32(partition)))
                }
            }
        }
        return AssignmentOrder.sorted(result)
    }
}

/// Kafka's `roundrobin` assignor: every subscribed partition, sorted by topic then partition,
/// dealt in turn to the members in Kafka's member order, skipping a member not subscribed to the
/// partition's topic.
///
/// Identical subscriptions give counts that differ by at most one. Two members, two topics of
/// three partitions:
///
///     C0: t0/0, t0/2, t1/1
///     C1: t0/1, t1/0, t1/2
///
/// Different subscriptions can leave it unbalanced: C0 on t0, C1 on t0 and t1, C2 on t0, t1, t2
/// with 1, 2 and 3 partitions give C0 t0/0; C1 t1/0; C2 t1/1, t2/0, t2/1, t2/2.
struct RoundRobinAssignor: PartitionAssignor {
    var name: String { AssignmentStrategy.roundRobin.rawValue }
    var rebalanceProtocol: RebalanceProtocol { .eager }

    func assign(members: [GroupMemberSubscription], partitionCounts: [String: Int32]) -> [String: [TopicPartition]] {
        let members = AssignmentOrder.uniqueMembers(members)
        var result = AssignmentOrder.emptyAssignment(members)
        guard !members.isEmpty else { return result }

        let subscriptions = members.map { Set($0.topics) }
        let topics = AssignmentOrder.existingTopics(subscriptions.joined(), partitionCounts: partitionCounts)
        // The member that gets the next partition if it subscribes to its topic.
        var next = 0
        for topic in topics {
            let count = partitionCounts[topic] ?? 0
            for partition in 0..<count {
                // Some member subscribes to every topic in `topics`, so this ends.
                while !subscriptions[next].contains(topic) {
                    next = (next + 1) % members.count
                }
                result[members[next].memberID, default: []].append(TopicPartition(topic: topic, partition: partition))
                next = (next + 1) % members.count
            }
        }
        return AssignmentOrder.sorted(result)
    }
}


// MARK: - Shared helpers

enum AssignmentOrder {
    /// Java's `String.compareTo` order (UTF-16 code units), which Kafka's assignors sort
    /// member ids and topics by; same as Swift's `<` for ASCII.
    static func precedes(_ a: String, _ b: String) -> Bool {
        a.utf16.lexicographicallyPrecedes(b.utf16)
    }

    /// Topic then partition.
    static func precedes(_ a: TopicPartition, _ b: TopicPartition) -> Bool {
        a.topic == b.topic ? a.partition < b.partition : precedes(a.topic, b.topic)
    }

    /// The member order of Kafka's range and round-robin assignors: static members first, by
    /// group instance id, then the others by member id. Instance ids keep a static member's
    /// place across restarts, when it comes back with a new member id.
    static func memberPrecedes(_ a: GroupMemberSubscription, _ b: GroupMemberSubscription) -> Bool {
        switch (a.groupInstanceID, b.groupInstanceID) {
        case let (x?, y?) where x != y: precedes(x, y)
        case (.some, nil): true
        case (nil, .some): false
        default: precedes(a.memberID, b.memberID)
        }
    }

    /// Members with duplicate ids dropped (the first one stays), in `memberPrecedes` order.
    static func uniqueMembers(_ members: [GroupMemberSubscription]) -> [GroupMemberSubscription] {
        var seen = Set<String>()
        return members.filter { seen.insert($0.memberID).inserted }.sorted(by: memberPrecedes)
    }

    /// Sorted, deduplicated topics that exist with at least one partition.
    static func existingTopics<S: Sequence<String>>(_ topics: S, partitionCounts: [String: Int32]) -> [String] {
        Set(topics).filter { (partitionCounts[$0] ?? 0) > 0 }.sorted(by: precedes)
    }

    /// An empty list for every member, so members that get nothing still appear.
    static func emptyAssignment(_ members: [GroupMemberSubscription]) -> [String: [TopicPartition]] {
        var result: [String: [TopicPartition]] = [:]
        for member in members { result[member.memberID] = [] }
        return result
    }

    /// Each member's list sorted by topic then partition.
    static func sorted(_ assignment: [String: [TopicPartition]]) -> [String: [TopicPartition]] {
        assignment.mapValues { $0.sorted(by: precedes) }
    }
}
