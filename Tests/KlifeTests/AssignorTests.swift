@testable import Klife
import XCTest

/// The classic-group assignors (no broker needed): Kafka's documented examples for range and
/// round robin, hand-written cooperative-sticky rebalances, and properties of the
/// cooperative-sticky assignor over many seeded random groups.
final class AssignorTests: XCTestCase {
    // MARK: Strategy

    func testStrategyNamesAndProtocols() {
        XCTAssertEqual(AssignmentStrategy.allCases.map(\.rawValue), ["range", "roundrobin", "cooperative-sticky"])
        for strategy in AssignmentStrategy.allCases {
            XCTAssertEqual(strategy.assignor.name, strategy.rawValue)
        }
        XCTAssertEqual(AssignmentStrategy(rawValue: "roundrobin"), .roundRobin)
        XCTAssertEqual(AssignmentStrategy.range.assignor.rebalanceProtocol, .eager)
        XCTAssertEqual(AssignmentStrategy.roundRobin.assignor.rebalanceProtocol, .eager)
        XCTAssertEqual(AssignmentStrategy.cooperativeSticky.assignor.rebalanceProtocol, .cooperative)
    }

    // MARK: Range

    /// The example of Kafka's `RangeAssignor` javadoc.
    func testRangeDocumentedExample() {
        let result = RangeAssignor().assign(members: [member("C1", ["t0", "t1"]), member("C0", ["t0", "t1"])],
                                            partitionCounts: ["t0": 3, "t1": 3])
        XCTAssertEqual(render(result), ["C0": "t0/0 t0/1 t1/0 t1/1", "C1": "t0/2 t1/2"])
    }

    func testRangeUnevenSubscriptions() {
        let members = [member("C0", ["t0", "t1"]), member("C1", ["t0"]), member("C2", ["t1"])]
        let result = RangeAssignor().assign(members: members, partitionCounts: ["t0": 3, "t1": 4])
        XCTAssertEqual(render(result), ["C0": "t0/0 t0/1 t1/0 t1/1", "C1": "t0/2", "C2": "t1/2 t1/3"])
    }

    func testRangeMorePartitionsPerMemberAndMoreMembersThanPartitions() {
        let three = [member("a", ["t"]), member("b", ["t"]), member("c", ["t"])]
        XCTAssertEqual(render(RangeAssignor().assign(members: three, partitionCounts: ["t": 8])),
                       ["a": "t/0 t/1 t/2", "b": "t/3 t/4 t/5", "c": "t/6 t/7"])
        XCTAssertEqual(render(RangeAssignor().assign(members: three, partitionCounts: ["t": 2])),
                       ["a": "t/0", "b": "t/1", "c": ""])
    }

    /// Members without topics, topics nobody subscribes to, subscribed topics missing from the
    /// metadata or without partitions, duplicate topics in a subscription.
    func testRangeEdgeCases() {
        let members = [member("a", ["t", "missing", "empty", "t"]), member("b", []), member("c", ["t"])]
        let result = RangeAssignor().assign(members: members, partitionCounts: ["t": 3, "empty": 0, "other": 5])
        XCTAssertEqual(render(result), ["a": "t/0 t/1", "b": "", "c": "t/2"])
        XCTAssertEqual(RangeAssignor().assign(members: [], partitionCounts: ["t": 3]), [:])
    }

    /// Static members come first, ordered by group instance id, so a restart with a new
    /// member id keeps the same ranges.
    func testRangeOrdersStaticMembersByInstanceID() {
        let members = [member("C0", ["t"], instance: "I2"), member("C1", ["t"], instance: "I1"), member("A", ["t"])]
        let result = RangeAssignor().assign(members: members, partitionCounts: ["t": 5])
        XCTAssertEqual(render(result), ["C1": "t/0 t/1", "C0": "t/2 t/3", "A": "t/4"])
        let restarted = [member("C9", ["t"], instance: "I2"), member("C1", ["t"], instance: "I1"), member("A", ["t"])]
        XCTAssertEqual(render(RangeAssignor().assign(members: restarted, partitionCounts: ["t": 5]))["C9"], "t/2 t/3")
    }

    // MARK: Round robin

    /// The two examples of Kafka's `RoundRobinAssignor` javadoc.
    func testRoundRobinDocumentedExamples() {
        let identical = RoundRobinAssignor().assign(members: [member("C0", ["t0", "t1"]), member("C1", ["t0", "t1"])],
                                                    partitionCounts: ["t0": 3, "t1": 3])
        XCTAssertEqual(render(identical), ["C0": "t0/0 t0/2 t1/1", "C1": "t0/1 t1/0 t1/2"])

        let members = [member("C2", ["t0", "t1", "t2"]), member("C0", ["t0"]), member("C1", ["t0", "t1"])]
        let uneven = RoundRobinAssignor().assign(members: members, partitionCounts: ["t0": 1, "t1": 2, "t2": 3])
        XCTAssertEqual(render(uneven), ["C0": "t0/0", "C1": "t1/0", "C2": "t1/1 t2/0 t2/1 t2/2"])
    }

    func testRoundRobinStaticMembersAndEdgeCases() {
        let members = [member("C5", ["t0", "t1"], instance: "I0"), member("C3", ["t0", "t1"], instance: "I1"),
                       member("C4", ["t0", "t1"], instance: "I2")]
        let result = RoundRobinAssignor().assign(members: members, partitionCounts: ["t0": 3, "t1": 3])
        XCTAssertEqual(render(result), ["C5": "t0/0 t1/0", "C3": "t0/1 t1/1", "C4": "t0/2 t1/2"])

        let odd = [member("a", ["t", "missing", "empty"]), member("b", []), member("c", ["t", "u"])]
        let oddResult = RoundRobinAssignor().assign(members: odd, partitionCounts: ["t": 3, "u": 2, "empty": 0, "x": 4])
        XCTAssertEqual(render(oddResult), ["a": "t/0 t/2", "b": "", "c": "t/1 u/0 u/1"])
        XCTAssertEqual(RoundRobinAssignor().assign(members: [], partitionCounts: ["t": 3]), [:])
        XCTAssertEqual(render(RoundRobinAssignor().assign(members: [member("a", ["t"])], partitionCounts: [:])), ["a": ""])
    }

    // MARK: Cooperative sticky, by hand

    func testStickyNewGroupDealsPartitionsEvenly() {
        let plan = sticky([member("B", ["t0", "t1"]), member("A", ["t0", "t1"])], ["t0": 3, "t1": 3])
        XCTAssertEqual(render(plan.assignment), ["A": "t0/0 t0/2 t1/1", "B": "t0/1 t1/0 t1/2"])
        XCTAssertEqual(plan.target, plan.assignment)
    }

    /// A member joins: the partitions it should get are only revoked from their owners in the
    /// first round, and given to it in the second; the third changes nothing.
    func testStickyMemberJoins() {
        let counts: [String: Int32] = ["t0": 3, "t1": 3]
        let first = sticky([member("A", ["t0", "t1"], owned: "t0/0 t0/2 t1/1", generation: 1),
                            member("B", ["t0", "t1"], owned: "t0/1 t1/0 t1/2", generation: 1),
                            member("C", ["t0", "t1"])], counts)
        XCTAssertEqual(render(first.target), ["A": "t0/0 t1/1", "B": "t1/0 t1/2", "C": "t0/1 t0/2"])
        XCTAssertEqual(render(first.assignment), ["A": "t0/0 t1/1", "B": "t1/0 t1/2", "C": ""])
        XCTAssertEqual(render(first.pending), ["C": "t0/1 t0/2"])

        let second = sticky(followUp(first.assignment, ["A": ["t0", "t1"], "B": ["t0", "t1"], "C": ["t0", "t1"]],
                                     generation: 2), counts)
        XCTAssertEqual(second.assignment, first.target)
        XCTAssertEqual(second.target, second.assignment)
    }

    /// A member leaves: its partitions go to the others at once (nobody else owns them), the
    /// others keep theirs.
    func testStickyMemberLeaves() {
        let plan = sticky([member("A", ["t0", "t1"], owned: "t0/0 t1/1", generation: 2),
                           member("B", ["t0", "t1"], owned: "t1/0 t1/2", generation: 2)], ["t0": 3, "t1": 3])
        XCTAssertEqual(render(plan.assignment), ["A": "t0/0 t0/1 t1/1", "B": "t0/2 t1/0 t1/2"])
        XCTAssertEqual(plan.target, plan.assignment)
    }

    /// Two members claim the same partition: the higher generation keeps it; the other one
    /// loses it without anything to wait for.
    func testStickyConflictingOwnersHigherGenerationWins() {
        let plan = sticky([member("A", ["t"], owned: "t/0 t/1", generation: 2),
                           member("B", ["t"], owned: "t/0 t/2", generation: 1)], ["t": 4])
        XCTAssertEqual(render(plan.assignment), ["A": "t/0 t/1", "B": "t/2 t/3"])
        XCTAssertEqual(plan.target, plan.assignment)
    }

    /// Same generation: nobody keeps the partition, and whoever gets it waits for the other
    /// claimant to revoke it.
    func testStickyConflictingOwnersSameGenerationNobodyKeeps() {
        let counts: [String: Int32] = ["t": 4]
        let plan = sticky([member("A", ["t"], owned: "t/0 t/1", generation: 2),
                           member("B", ["t"], owned: "t/0 t/2", generation: 2)], counts)
        XCTAssertEqual(render(plan.target), ["A": "t/0 t/1", "B": "t/2 t/3"])
        XCTAssertEqual(render(plan.assignment), ["A": "t/1", "B": "t/2 t/3"])

        let second = sticky(followUp(plan.assignment, ["A": ["t"], "B": ["t"]], generation: 3), counts)
        XCTAssertEqual(second.assignment, plan.target)
    }

    /// Owned partitions of a topic that is gone, beyond the partition count, or of a topic the
    /// member left are dropped; the last kind is given to the new member only once revoked.
    func testStickyDropsStaleOwnedPartitions() {
        let counts: [String: Int32] = ["t0": 2, "t1": 2]
        let plan = sticky([member("A", ["t0"], owned: "t0/0 t1/0 gone/0 t0/7", generation: 4),
                           member("B", ["t0", "t1"], owned: "t0/1", generation: 4)], counts)
        XCTAssertEqual(render(plan.target), ["A": "t0/0 t0/1", "B": "t1/0 t1/1"])
        XCTAssertEqual(render(plan.assignment), ["A": "t0/0", "B": "t1/1"])

        let second = sticky(followUp(plan.assignment, ["A": ["t0"], "B": ["t0", "t1"]], generation: 5), counts)
        XCTAssertEqual(second.assignment, plan.target)
    }

    /// New partitions of a topic go to the members at once, evenly.
    func testStickyPartitionsAdded() {
        let plan = sticky([member("A", ["t"], owned: "t/0 t/1", generation: 3),
                           member("B", ["t"], owned: "t/2 t/3", generation: 3)], ["t": 7])
        XCTAssertEqual(render(plan.assignment), ["A": "t/0 t/1 t/4 t/6", "B": "t/2 t/3 t/5"])
        XCTAssertEqual(plan.target, plan.assignment)
    }

    /// Balance that needs a chain: A can only give to B, B can only give to C.
    func testStickyBalancesThroughChains() {
        let counts: [String: Int32] = ["t0": 2, "t1": 2, "t2": 2]
        let subscriptions = ["A": ["t0", "t1"], "B": ["t1", "t2"], "C": ["t2"]]
        let plan = sticky([member("A", ["t0", "t1"], owned: "t0/0 t0/1 t1/0 t1/1", generation: 1),
                           member("B", ["t1", "t2"], owned: "t2/0 t2/1", generation: 1),
                           member("C", ["t2"])], counts)
        XCTAssertEqual(render(plan.target), ["A": "t0/0 t0/1", "B": "t1/0 t1/1", "C": "t2/0 t2/1"])
        XCTAssertEqual(render(plan.assignment), ["A": "t0/0 t0/1", "B": "", "C": ""])

        let second = sticky(followUp(plan.assignment, subscriptions, generation: 2), counts)
        XCTAssertEqual(second.assignment, plan.target)
        let third = sticky(followUp(second.assignment, subscriptions, generation: 3), counts)
        XCTAssertEqual(third.assignment, second.assignment)
    }

    /// A topic only one member subscribes to stays whole with it, however unbalanced.
    func testStickyUnsharedTopicStaysWithItsMember() {
        let plan = sticky([member("A", ["big", "t"]), member("B", ["t"]), member("C", ["t"])], ["big": 9, "t": 3])
        XCTAssertEqual(render(plan.assignment), ["A": "big/0 big/1 big/2 big/3 big/4 big/5 big/6 big/7 big/8",
                                                 "B": "t/0 t/2", "C": "t/1"])
    }

    // MARK: Determinism

    /// The same group in any member order gives the same assignment, for every assignor.
    func testAssignorsIgnoreMemberOrder() {
        var random = AssignorRandom(seed: 0xD1CE)
        for _ in 0..<200 {
            let scenario = StickyScenario.random(&random)
            for strategy in AssignmentStrategy.allCases {
                let assignor = strategy.assignor
                let expected = assignor.assign(members: scenario.members, partitionCounts: scenario.counts)
                for _ in 0..<3 {
                    let shuffled = random.shuffled(scenario.members)
                    XCTAssertEqual(assignor.assign(members: shuffled, partitionCounts: scenario.counts), expected,
                                   "\(strategy): \(scenario)")
                }
            }
        }
    }

    // MARK: Cooperative sticky, properties

    /// Random groups (different or identical subscriptions, owned partitions from a previous
    /// generation with stale and conflicting claims, topics grown or gone), each followed by
    /// the rebalances the revocations trigger: the invariants of ``checkSticky`` hold in every
    /// round, the second round hands out everything withheld, and the third changes nothing.
    func testStickyPropertiesOverRandomGroups() {
        var random = AssignorRandom(seed: 0x5EED_0429)
        var withheldRounds = 0
        for _ in 0..<1_500 {
            let scenario = StickyScenario.random(&random)
            let first = sticky(scenario.members, scenario.counts)
            checkSticky(first, scenario)
            if first.assignment != first.target { withheldRounds += 1 }

            let subscriptions = Dictionary(uniqueKeysWithValues: scenario.members.map { ($0.memberID, $0.topics) })
            let generation = (scenario.members.map(\.generation).max() ?? 0) + 1
            let secondInput = StickyScenario(members: followUp(first.assignment, subscriptions, generation: generation),
                                             counts: scenario.counts)
            let second = sticky(secondInput.members, secondInput.counts)
            checkSticky(second, secondInput)
            XCTAssertEqual(second.assignment, second.target, "second round withholds: \(scenario)")
            for (memberID, partitions) in first.assignment {
                XCTAssertTrue(Set(partitions).isSubset(of: second.assignment[memberID] ?? []),
                              "second round takes back what the first gave: \(scenario)")
            }

            let third = sticky(followUp(second.assignment, subscriptions, generation: generation + 1), scenario.counts)
            XCTAssertEqual(third.assignment, second.assignment, "third round moves partitions: \(scenario)")
        }
        // The generator does exercise the cooperative path.
        XCTAssertGreaterThan(withheldRounds, 300)
    }

    /// A larger group: a third of the members leave and as many join, on a group with
    /// identical and with mixed subscriptions.
    func testStickyLargeGroupChurn() {
        var random = AssignorRandom(seed: 77)
        var counts: [String: Int32] = [:]
        for topic in 0..<30 { counts["topic-\(topic)"] = Int32(1 + random.below(40)) }
        let topics = counts.keys.sorted()
        for mixed in [false, true] {
            var subscriptions: [String: [String]] = [:]
            for index in 0..<60 {
                subscriptions["member-\(index)"] = mixed ? topics.filter { _ in random.chance(60) } : topics
            }
            var members = subscriptions.map { member($0.key, $0.value) }
            var plan = sticky(members, counts)
            checkSticky(plan, StickyScenario(members: members, counts: counts))
            plan = sticky(followUp(plan.assignment, subscriptions, generation: 1), counts)

            for index in 0..<20 {
                subscriptions["member-\(index)"] = nil
                subscriptions["joiner-\(index)"] = mixed ? topics.filter { _ in random.chance(60) } : topics
            }
            members = followUp(plan.assignment.filter { subscriptions[$0.key] != nil }, subscriptions, generation: 2)
            plan = sticky(members, counts)
            checkSticky(plan, StickyScenario(members: members, counts: counts))
            members = followUp(plan.assignment, subscriptions, generation: 3)
            let settled = sticky(members, counts)
            checkSticky(settled, StickyScenario(members: members, counts: counts))
            XCTAssertEqual(settled.assignment, settled.target)
        }
    }

    // MARK: Helpers

    private func sticky(_ members: [GroupMemberSubscription], _ counts: [String: Int32]) -> StickyPlan {
        CooperativeStickyAssignor().plan(members: members, partitionCounts: counts)
    }
}

// MARK: - Test data

/// `t0/0 t0/1 t1/0`: one string per member's partitions.
private func render(_ assignment: [String: [TopicPartition]]) -> [String: String] {
    assignment.mapValues { $0.map(\.description).joined(separator: " ") }
}

/// Partitions written as `topic/partition`, separated by spaces.
private func partitions(_ text: String) -> [TopicPartition] {
    text.split(separator: " ").map { item in
        let parts = item.split(separator: "/")
        return TopicPartition(topic: String(parts[0]), partition: Int32(parts[1])!)
    }
}

private func member(_ id: String, _ topics: [String], instance: String? = nil, owned: String = "",
                    generation: Int32 = -1) -> GroupMemberSubscription {
    GroupMemberSubscription(memberID: id, groupInstanceID: instance, topics: topics,
                            ownedPartitions: partitions(owned), generation: generation)
}

/// The members of the rebalance that follows: each owns what it was given.
private func followUp(_ assignment: [String: [TopicPartition]], _ subscriptions: [String: [String]],
                      generation: Int32) -> [GroupMemberSubscription] {
    subscriptions.keys.sorted().map { id in
        GroupMemberSubscription(memberID: id, topics: subscriptions[id]!, ownedPartitions: assignment[id] ?? [],
                                generation: generation)
    }
}

/// SplitMix64: seeded, so every run sees the same groups.
struct AssignorRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// Uniform in `0..<bound`.
    mutating func below(_ bound: Int) -> Int {
        Int(next().multipliedFullWidth(by: UInt64(bound)).high)
    }

    /// True with the given probability in percent.
    mutating func chance(_ percent: Int) -> Bool {
        below(100) < percent
    }

    mutating func shuffled<T>(_ items: [T]) -> [T] {
        var items = items
        for index in stride(from: items.count - 1, to: 0, by: -1) {
            items.swapAt(index, below(index + 1))
        }
        return items
    }
}

// MARK: - Cooperative-sticky properties

/// A group to assign: its members and the partition counts.
struct StickyScenario: CustomStringConvertible {
    var members: [GroupMemberSubscription]
    var counts: [String: Int32]

    var description: String {
        let members = members.map { member in
            "\(member.memberID)\(member.topics) gen \(member.generation) owns \(member.ownedPartitions.map(\.description))"
        }
        return "counts \(counts.sorted { $0.key < $1.key }); " + members.joined(separator: "; ")
    }

    /// Up to five topics of up to eight partitions (some empty), sometimes a subscribed topic
    /// that does not exist or an existing one nobody subscribes to; up to eight members with
    /// identical or random subscriptions, some static; ownership left by a previous generation
    /// (stale generations, partitions beyond today's count, of topics since unsubscribed, a
    /// few claimed twice).
    static func random(_ random: inout AssignorRandom) -> StickyScenario {
        var counts: [String: Int32] = [:]
        var topics: [String] = []
        for index in 0..<(1 + random.below(5)) {
            topics.append("t\(index)")
            counts["t\(index)"] = Int32(random.below(9))
        }
        if random.chance(30) { topics.append("gone") }
        if random.chance(20) { counts["nobody"] = 4 }

        let identical = random.chance(50)
        let shared = topics.filter { _ in random.chance(70) }
        let generation = Int32(1 + random.below(5))
        var members: [GroupMemberSubscription] = []
        for index in 0..<(1 + random.below(8)) {
            let memberGeneration = random.chance(80) ? generation : (random.chance(50) ? generation - 1 : -1)
            members.append(GroupMemberSubscription(
                memberID: "m\(random.below(100))-\(index)",
                groupInstanceID: random.chance(20) ? "i\(random.below(10))" : nil,
                topics: identical ? shared : topics.filter { _ in random.chance(50) },
                generation: memberGeneration))
        }
        for topic in topics {
            let known = Int(counts[topic] ?? 3) + (random.chance(20) ? 2 : 0)
            for partition in 0..<known where random.chance(75) {
                let owned = TopicPartition(topic: topic, partition: Int32(partition))
                let owner = random.below(members.count)
                members[owner].ownedPartitions.append(owned)
                let other = random.below(members.count)
                if other != owner, random.chance(5) {
                    members[other].ownedPartitions.append(owned)
                }
            }
        }
        for index in members.indices {
            members[index].ownedPartitions = random.shuffled(members[index].ownedPartitions)
        }
        return StickyScenario(members: random.shuffled(members), counts: counts)
    }

    /// The partition exists.
    func exists(_ partition: TopicPartition) -> Bool {
        partition.partition >= 0 && partition.partition < (counts[partition.topic] ?? 0)
    }

    /// Each member's subscribed topics that exist with partitions.
    var effectiveTopics: [String: Set<String>] {
        Dictionary(uniqueKeysWithValues: members.map { member in
            (member.memberID, Set(member.topics.filter { (counts[$0] ?? 0) > 0 }))
        })
    }

    /// Owner of each validly owned partition: among the members listing it that subscribe to
    /// its topic, the only one with the highest generation.
    var owners: [TopicPartition: String] {
        var claimants: [TopicPartition: [(id: String, generation: Int32)]] = [:]
        for member in members {
            for partition in Set(member.ownedPartitions) where exists(partition) && member.topics.contains(partition.topic) {
                claimants[partition, default: []].append((member.memberID, member.generation))
            }
        }
        return claimants.compactMapValues { claims in
            let top = claims.map(\.generation).max()!
            let winners = claims.filter { $0.generation == top }
            return winners.count == 1 ? winners[0].id : nil
        }
    }
}

extension AssignorTests {
    /// Checks a cooperative-sticky plan:
    /// - the target gives every partition of a subscribed topic to exactly one of its
    ///   subscribers, and lists are sorted;
    /// - cooperative: a member is given nothing another member lists as owned, unless it is the
    ///   partition's valid owner (it lists it too, subscribes to its topic, and no other such
    ///   member has a generation as high); the rest of the target is given;
    /// - balanced: no chain of moves (a holder of a partition of a topic to a subscriber of it,
    ///   and so on) leads from a member to one with two partitions fewer; so members with the
    ///   same topics differ by at most one;
    /// - sticky: an owner that lost a partition it owns has at least as many partitions as the
    ///   member that got it; when all members subscribe to the same topics, each keeps at least
    ///   as many of its partitions as it owns, up to the lower quota.
    func checkSticky(_ plan: StickyPlan, _ scenario: StickyScenario, file: StaticString = #filePath, line: UInt = #line) {
        let topics = scenario.effectiveTopics
        let owners = scenario.owners
        let memberIDs = Set(topics.keys)
        XCTAssertEqual(Set(plan.target.keys), memberIDs, file: file, line: line)
        XCTAssertEqual(Set(plan.assignment.keys), memberIDs, file: file, line: line)

        var holder: [TopicPartition: String] = [:]
        for (memberID, partitions) in plan.target {
            XCTAssertEqual(partitions, partitions.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) },
                           "unsorted: \(scenario)", file: file, line: line)
            for partition in partitions {
                XCTAssertTrue(topics[memberID]!.contains(partition.topic) && scenario.exists(partition),
                              "\(partition) to \(memberID): \(scenario)", file: file, line: line)
                XCTAssertNil(holder.updateValue(memberID, forKey: partition), "\(partition) twice: \(scenario)",
                             file: file, line: line)
            }
        }
        let subscribed = Set(topics.values.joined())
        XCTAssertEqual(holder.count, subscribed.map { Int(scenario.counts[$0]!) }.reduce(0, +),
                       "partitions left out: \(scenario)", file: file, line: line)

        var claimants: [TopicPartition: Set<String>] = [:]
        for member in scenario.members {
            for partition in member.ownedPartitions { claimants[partition, default: []].insert(member.memberID) }
        }
        for (memberID, partitions) in plan.target {
            let given = plan.assignment[memberID]!
            XCTAssertEqual(given, partitions.filter(given.contains), file: file, line: line)
            for partition in partitions {
                let others = claimants[partition, default: []].subtracting([memberID])
                let mayGive = others.isEmpty || owners[partition] == memberID
                XCTAssertEqual(given.contains(partition), mayGive, "\(partition) to \(memberID): \(scenario)",
                               file: file, line: line)
            }
        }

        let counts = plan.target.mapValues(\.count)
        var subscribers: [String: [String]] = [:]
        for (memberID, memberTopics) in topics {
            for topic in memberTopics { subscribers[topic, default: []].append(memberID) }
        }
        for start in memberIDs {
            var seen: Set<String> = [start]
            var queue = [start]
            while let current = queue.popLast() {
                XCTAssertGreaterThan(counts[current]! + 2, counts[start]!,
                                     "\(start) could give to \(current): \(scenario)", file: file, line: line)
                for topic in Set(plan.target[current]!.map(\.topic)) {
                    for next in subscribers[topic]! where seen.insert(next).inserted { queue.append(next) }
                }
            }
        }

        for (partition, owner) in owners {
            let current = holder[partition]!
            if current != owner {
                XCTAssertGreaterThanOrEqual(counts[owner]!, counts[current]!,
                                            "\(owner) lost \(partition) to \(current): \(scenario)", file: file, line: line)
            }
        }
        if let first = topics.values.first, topics.values.allSatisfy({ $0 == first }) {
            let lowerQuota = holder.count / memberIDs.count
            for memberID in memberIDs {
                let owned = owners.filter { $0.value == memberID }.map(\.key)
                let kept = owned.filter { holder[$0] == memberID }.count
                XCTAssertGreaterThanOrEqual(kept, min(owned.count, lowerQuota), "\(memberID): \(scenario)",
                                            file: file, line: line)
            }
        }
    }
}
