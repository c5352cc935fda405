/// The balancing core of the cooperative-sticky assignor, over dense indexes: members
/// `0..<memberCount` (in member-id order), topics `0..<topicCount` (sorted), partitions
/// `0..<partitionCount` (topic by topic, ascending within a topic).
///
/// It finds a target that is as balanced as the subscriptions allow and, within that, keeps
/// as many partitions with their owners as it can:
///
/// 1. Owners keep all the partitions they own.
/// 2. Unowned partitions go one by one to the least loaded member that subscribes to their
///    topic, topics with the fewest subscribers first.
/// 3. Balancing moves partitions along chains: member `a` gives a partition of topic `x` to
///    `b`, which gives one of topic `y` to `c`, and so on, until a member with at least two
///    fewer partitions than `a` gets one. First only partitions handed out in step 2 may move;
///    then owned ones too, from the most loaded members first.
/// 4. An owned partition that ended up with a member holding more partitions than its owner
///    goes back to its owner (the two counts swap, so balance is unchanged).
///
/// When no chain is left, the assignment is balanced in the strongest sense: no sequence of
/// moves can bring a member's count closer to another's. In particular members with identical
/// subscriptions differ by at most one, and no partition could move to a member subscribed to
/// it with two fewer partitions than its holder (Kafka's own balance test). Step 3 first
/// balancing only new partitions makes the follow-up rebalance of a cooperative round settle:
/// when the owned partitions already fit a balanced assignment, no owned partition moves.
struct StickyBalancer {
    /// Existing topics each member subscribes to, ascending.
    let memberTopics: [[Int]]
    /// Members subscribing to each topic, ascending.
    let subscribers: [[Int]]
    /// Topic of each partition.
    let partitionTopic: [Int]
    /// The member whose claim on each partition is kept if balance allows, or -1.
    let owner: [Int]
    /// Member holding each partition, -1 while unassigned.
    private(set) var holder: [Int]
    /// Number of partitions each member holds.
    private(set) var counts: [Int]
    /// Per member, by topic: held partitions the member does not own, the first to move.
    private var fresh: [[Int: Set<Int>]]
    /// Per member, by topic: held partitions the member owns.
    private var kept: [[Int: Set<Int>]]
    /// Per member: the topics it holds partitions of, ascending (what a search walks, rather
    /// than every subscribed topic).
    private var heldTopics: [[Int]]

    /// Starts from every owner holding the partitions it owns.
    ///
    /// - Parameters:
    ///   - memberTopics: existing subscribed topics of each member, ascending.
    ///   - partitionTopic: topic of each partition, non-decreasing.
    ///   - owner: owner of each partition or -1; an owner subscribes to the partition's topic.
    init(memberTopics: [[Int]], topicCount: Int, partitionTopic: [Int], owner: [Int]) {
        self.memberTopics = memberTopics
        var subscribers = [[Int]](repeating: [], count: topicCount)
        for (member, topics) in memberTopics.enumerated() {
            for topic in topics { subscribers[topic].append(member) }
        }
        self.subscribers = subscribers
        self.partitionTopic = partitionTopic
        self.owner = owner
        holder = [Int](repeating: -1, count: partitionTopic.count)
        counts = [Int](repeating: 0, count: memberTopics.count)
        fresh = [[Int: Set<Int>]](repeating: [:], count: memberTopics.count)
        kept = fresh
        heldTopics = [[Int]](repeating: [], count: memberTopics.count)
        for (partition, member) in owner.enumerated() where member >= 0 {
            move(partition, to: member)
        }
    }

    /// Runs steps 2 to 4; afterwards every partition of a subscribed topic has a holder.
    mutating func run() {
        assignUnassigned()
        balance(movingOwned: false)
        balance(movingOwned: true)
        returnToOwners()
    }

    // MARK: Steps

    /// Step 2: unassigned partitions to the least loaded subscriber (lowest index on ties),
    /// topics with fewer subscribers first, so the members that can take the scarce topics are
    /// not filled up with the others.
    mutating func assignUnassigned() {
        let order = partitionTopic.indices
            .filter { holder[$0] < 0 && !subscribers[partitionTopic[$0]].isEmpty }
            .sorted { a, b in
                let sa = subscribers[partitionTopic[a]].count, sb = subscribers[partitionTopic[b]].count
                return sa != sb ? sa < sb : a < b
            }
        for partition in order {
            var best = -1
            for member in subscribers[partitionTopic[partition]] where best < 0 || counts[member] < counts[best] {
                best = member
            }
            move(partition, to: best)
        }
    }

    /// Step 3: applies chains of moves until none is left. `movingOwned` false lets only
    /// partitions their holders do not own move.
    mutating func balance(movingOwned: Bool) {
        // Searches that found nothing stay valid until a chain passes through a member they
        // reached: members they cleared are not searched from again until then.
        var stuck: [(reached: Set<Int>, cleared: [Int])] = []
        var clearedBy = [Int](repeating: 0, count: counts.count)
        let eligible = memberTopics.indices.filter { !memberTopics[$0].isEmpty }
        while let least = eligible.map({ counts[$0] }).min() {
            // The most loaded first: draining one member far below the others would move
            // more partitions than needed.
            let sources = eligible.filter { counts[$0] >= least + 2 && clearedBy[$0] == 0 }
                .sorted { counts[$0] != counts[$1] ? counts[$0] > counts[$1] : $0 < $1 }
            var chain: [Int]?
            for source in sources where clearedBy[source] == 0 {
                switch augment(from: source, movingOwned: movingOwned) {
                case .moved(let members):
                    chain = members
                case .stuck(let reached):
                    // Whatever a reached member reaches, the source reaches too, and all of it
                    // has at least counts[source] - 1: a member with no more than the source
                    // would find nothing either.
                    let cleared = reached.filter { counts[$0] <= counts[source] }
                    for member in cleared { clearedBy[member] += 1 }
                    stuck.append((Set(reached), cleared))
                }
                if chain != nil { break }
            }
            guard let chain else { return }
            stuck.removeAll { search in
                guard chain.contains(where: search.reached.contains) else { return false }
                for member in search.cleared { clearedBy[member] -= 1 }
                return true
            }
        }
    }

    /// Step 4: an owned partition held by a member with more partitions than its owner goes
    /// back; the counts swap, so balance is the same and one more partition stays put.
    mutating func returnToOwners() {
        var changed = true
        while changed {
            changed = false
            for partition in holder.indices {
                let owned = owner[partition], current = holder[partition]
                if owned >= 0, current >= 0, current != owned, counts[current] > counts[owned] {
                    move(partition, to: owned)
                    changed = true
                }
            }
        }
    }

    // MARK: Chains

    /// Outcome of a search for a chain of moves.
    private enum ChainSearch {
        /// Partitions moved along the chain through these members.
        case moved([Int])
        /// No chain; these members were reached.
        case stuck([Int])
    }

    /// Breadth-first search from `source` for a member with at least two partitions fewer;
    /// moves one partition along each link of the shortest chain found.
    private mutating func augment(from source: Int, movingOwned: Bool) -> ChainSearch {
        let limit = counts[source] - 2
        var parent = [Int](repeating: -1, count: counts.count)
        var via = [Int](repeating: -1, count: counts.count)
        var seen = [Bool](repeating: false, count: counts.count)
        // A topic's subscribers are all seen once one holder of it has been expanded.
        var expanded = [Bool](repeating: false, count: subscribers.count)
        seen[source] = true
        var reached = [source]
        var layer = [source]
        var sink = -1
        search: while !layer.isEmpty {
            var next: [Int] = []
            for member in layer {
                // Links through partitions the member does not own first, so a member reached
                // both ways gets one of those.
                for owned in movingOwned ? [false, true] : [false] {
                    for topic in heldTopics[member] where !expanded[topic] && canGive(member, topic, owned: owned) {
                        expanded[topic] = true
                        for other in subscribers[topic] where !seen[other] {
                            seen[other] = true
                            parent[other] = member
                            via[other] = topic
                            next.append(other)
                            if counts[other] <= limit && (sink < 0 || counts[other] < counts[sink]) {
                                sink = other
                            }
                        }
                        // The first topic that leads to a member low enough ends the search: a
                        // wider look would cost a scan of the whole group on every move.
                        if sink >= 0 { break search }
                    }
                }
            }
            reached += next
            layer = next
        }
        guard sink >= 0 else { return .stuck(reached) }
        // From the sink back, so each member on the chain gives away a partition it had before
        // rather than the one it is about to get.
        var chain = [sink]
        var receiver = sink
        while receiver != source {
            let giver = parent[receiver]
            let partition = pick(from: giver, topic: via[receiver], for: receiver, movingOwned: movingOwned)
            move(partition, to: receiver)
            chain.append(giver)
            receiver = giver
        }
        return .moved(chain)
    }

    /// Whether `member` holds a partition of `topic` it does not own (`owned` false), or only
    /// ones it owns (`owned` true).
    private func canGive(_ member: Int, _ topic: Int, owned: Bool) -> Bool {
        owned ? fresh[member][topic] == nil && kept[member][topic] != nil : fresh[member][topic] != nil
    }

    /// The partition of `topic` that `giver` gives to `receiver`: one the receiver owns if
    /// any, else the highest one the giver does not own, else (when allowed) the highest one
    /// the giver owns.
    private func pick(from giver: Int, topic: Int, for receiver: Int, movingOwned: Bool) -> Int {
        if let candidates = fresh[giver][topic] {
            if let back = candidates.filter({ owner[$0] == receiver }).min() { return back }
            if let highest = candidates.max() { return highest }
        }
        precondition(movingOwned, "chain link without a movable partition")
        return kept[giver][topic]!.max()!
    }

    // MARK: Bookkeeping

    /// Gives `partition` to `member`, taking it from its holder if any.
    private mutating func move(_ partition: Int, to member: Int) {
        let topic = partitionTopic[partition]
        let previous = holder[partition]
        if previous >= 0 {
            if owner[partition] == previous {
                Self.remove(partition, topic, from: &kept[previous])
            } else {
                Self.remove(partition, topic, from: &fresh[previous])
            }
            counts[previous] -= 1
            if fresh[previous][topic] == nil && kept[previous][topic] == nil {
                heldTopics[previous].remove(at: Self.position(of: topic, in: heldTopics[previous]))
            }
        }
        holder[partition] = member
        counts[member] += 1
        if fresh[member][topic] == nil && kept[member][topic] == nil {
            heldTopics[member].insert(topic, at: Self.position(of: topic, in: heldTopics[member]))
        }
        if owner[partition] == member {
            kept[member][topic, default: []].insert(partition)
        } else {
            fresh[member][topic, default: []].insert(partition)
        }
    }

    /// Where `value` is or would go in the ascending `sorted`.
    private static func position(of value: Int, in sorted: [Int]) -> Int {
        var low = 0, high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            if sorted[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Removes `partition` from its topic's set, dropping the set when it empties (so a
    /// present key always means at least one partition).
    private static func remove(_ partition: Int, _ topic: Int, from sets: inout [Int: Set<Int>]) {
        sets[topic]?.remove(partition)
        if sets[topic]?.isEmpty == true { sets[topic] = nil }
    }
}
