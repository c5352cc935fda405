/// Kafka's `cooperative-sticky` assignor (KIP-429): balanced, sticky and cooperative.
///
/// - Balanced: as balanced as the subscriptions allow (see ``StickyBalancer``); members with
///   identical subscriptions differ by at most one partition.
/// - Sticky: within that balance, members keep as many of the partitions they own as possible.
/// - Cooperative: a partition moving from one member to another is only taken from its old
///   member this round. The old member revokes it and rejoins, and the follow-up rebalance
///   gives it to the new member, so no partition ever has two owners.
///
/// What counts as owned:
/// - partitions of topics that no longer exist, beyond the topic's partition count, or of
///   topics the member no longer subscribes to are dropped;
/// - a partition claimed by several members stays with the one of the highest generation; with
///   a tie at the highest generation nobody keeps it.
///
/// A partition the target gives to a member is withheld this round when another member still
/// lists it as owned (it is being rebalanced away, its member unsubscribed from the topic, or
/// two members of the same generation claim it): until that member has revoked it, it
/// consumes it. Only the winner of a claim by a higher generation gets it at once, as it
/// already owns it; the stale claimant sees it missing from its assignment and revokes it.
///
/// The member order is by member id, so the result is the same whatever the order of the
/// input. Replica racks are not part of the input: the assignment is never rack-aware.
struct CooperativeStickyAssignor: PartitionAssignor {
    var name: String { AssignmentStrategy.cooperativeSticky.rawValue }
    var rebalanceProtocol: RebalanceProtocol { .cooperative }

    func assign(members: [GroupMemberSubscription], partitionCounts: [String: Int32]) -> [String: [TopicPartition]] {
        plan(members: members, partitionCounts: partitionCounts).assignment
    }

    /// The balanced target and what the members get this round.
    func plan(members: [GroupMemberSubscription], partitionCounts: [String: Int32]) -> StickyPlan {
        let input = StickyInput(members: members, partitionCounts: partitionCounts)
        let owners = input.owners()
        var balancer = StickyBalancer(memberTopics: input.memberTopics, topicCount: input.topics.count,
                                      partitionTopic: input.partitionTopic, owner: owners)
        balancer.run()

        let claims = input.claims()
        var plan = StickyPlan(target: AssignmentOrder.emptyAssignment(input.members),
                              assignment: AssignmentOrder.emptyAssignment(input.members))
        // Partitions in index order are sorted by topic then partition: lists come out sorted.
        for (partition, holder) in balancer.holder.enumerated() where holder >= 0 {
            let memberID = input.members[holder].memberID
            let topicPartition = input.topicPartition(partition)
            plan.target[memberID, default: []].append(topicPartition)
            let claimedByOthers = claims[partition].contains { $0 != holder }
            if owners[partition] == holder || !claimedByOthers {
                plan.assignment[memberID, default: []].append(topicPartition)
            }
        }
        return plan
    }
}

/// Result of the cooperative-sticky assignor.
struct StickyPlan: Sendable, Equatable {
    /// Where each partition should end up: the assignment once the revocations are done.
    var target: [String: [TopicPartition]]
    /// What each member gets this round: the target without the partitions another member
    /// still owns, which that member only revokes now.
    var assignment: [String: [TopicPartition]]

    /// Partitions of the target not given this round, by the member that will get them.
    var pending: [String: [TopicPartition]] {
        var pending: [String: [TopicPartition]] = [:]
        for (member, partitions) in target {
            let given = Set(assignment[member] ?? [])
            let missing = partitions.filter { !given.contains($0) }
            if !missing.isEmpty { pending[member] = missing }
        }
        return pending
    }
}

/// The assignor's input over dense indexes (see ``StickyBalancer``).
struct StickyInput {
    /// Members with unique ids, sorted by member id.
    let members: [GroupMemberSubscription]
    /// Subscribed topics that exist, sorted.
    let topics: [String]
    /// Index of each topic in `topics`.
    let topicIndex: [String: Int]
    /// Index of each topic's first partition.
    let topicStart: [Int]
    /// Topic of each partition.
    let partitionTopic: [Int]
    /// Existing topics each member subscribes to, ascending.
    let memberTopics: [[Int]]

    init(members: [GroupMemberSubscription], partitionCounts: [String: Int32]) {
        var seen = Set<String>()
        self.members = members.filter { seen.insert($0.memberID).inserted }
            .sorted { AssignmentOrder.precedes($0.memberID, $1.memberID) }
        topics = AssignmentOrder.existingTopics(self.members.flatMap(\.topics), partitionCounts: partitionCounts)
        var topicIndex: [String: Int] = [:]
        var topicStart: [Int] = []
        var partitionTopic: [Int] = []
        for (index, topic) in topics.enumerated() {
            topicIndex[topic] = index
            topicStart.append(partitionTopic.count)
            partitionTopic += repeatElement(index, count: Int(partitionCounts[topic] ?? 0))
        }
        self.topicIndex = topicIndex
        self.topicStart = topicStart
        self.partitionTopic = partitionTopic
        memberTopics = self.members.map { member in
            Set(member.topics.compactMap { topicIndex[$0] }).sorted()
        }
    }

    /// The partition index of `topicPartition`, if its topic is subscribed by someone and
    /// exists with that partition.
    func index(of topicPartition: TopicPartition) -> Int? {
        guard let topic = topicIndex[topicPartition.topic], topicPartition.partition >= 0 else { return nil }
        let end = topic + 1 < topicStart.count ? topicStart[topic + 1] : partitionTopic.count
        let index = topicStart[topic] + Int(topicPartition.partition)
        return index < end ? index : nil
    }

    /// The topic and partition number of a partition index.
    func topicPartition(_ index: Int) -> TopicPartition {
        let topic = partitionTopic[index]
        return TopicPartition(topic: topics[topic], partition: Int32(index - topicStart[topic]))
    }

    /// The owner of each partition, or -1: among the members that list it as owned and still
    /// subscribe to its topic, the one with the highest generation, unless several share it.
    func owners() -> [Int] {
        var owner = [Int](repeating: -1, count: partitionTopic.count)
        var generation = [Int32](repeating: .min, count: partitionTopic.count)
        var tied = [Bool](repeating: false, count: partitionTopic.count)
        for (member, subscription) in members.enumerated() {
            let subscribed = Set(memberTopics[member])
            var listed = Set<Int>()
            for topicPartition in subscription.ownedPartitions {
                guard let partition = index(of: topicPartition), subscribed.contains(partitionTopic[partition]),
                      listed.insert(partition).inserted else { continue }
                if owner[partition] < 0 || subscription.generation > generation[partition] {
                    owner[partition] = member
                    generation[partition] = subscription.generation
                    tied[partition] = false
                } else if subscription.generation == generation[partition] {
                    tied[partition] = true
                }
            }
        }
        for partition in owner.indices where tied[partition] {
            owner[partition] = -1
        }
        return owner
    }

    /// For each partition, every member listing it as owned, valid claim or not.
    func claims() -> [[Int]] {
        var claims = [[Int]](repeating: [], count: partitionTopic.count)
        for (member, subscription) in members.enumerated() {
            for topicPartition in Set(subscription.ownedPartitions) {
                if let partition = index(of: topicPartition) { claims[partition].append(member) }
            }
        }
        return claims
    }
}
