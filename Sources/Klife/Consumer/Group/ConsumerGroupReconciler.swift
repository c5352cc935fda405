import KlifeProtocol

/// The reconciliation of one member of a KIP-848 consumer group, without any I/O: the
/// partitions the member owns, the assignment the coordinator asks for (partitions by topic
/// id), and the change that brings the first to the second.
///
/// The coordinator sends a new assignment whenever the member's changes; the member applies
/// it one change at a time: it gives up what it owns and is no longer assigned (revoke), then
/// takes what is assigned and not yet owned (assign), and its next heartbeat reports what it
/// owns, which tells the coordinator the change is done. A topic id that the member's metadata
/// does not know yet stays pending: its partitions are neither taken nor counted as owned
/// until a later change, once metadata names the topic.
///
/// ```swift
/// var reconciler = ConsumerGroupReconciler()
/// reconciler.setTarget(response.assignment!.topicPartitions)
/// let change = reconciler.nextChange(names: namesByID)   // revoked, then added
/// reconciler.didRevoke(change.revoked)
/// reconciler.didAssign(change.added)
/// reconciler.finishChange()                              // report owned on the next heartbeat
/// ```
struct ConsumerGroupReconciler: Sendable, Equatable {
    /// One step of reconciliation, computed from one target: partitions to revoke first, then
    /// partitions to assign.
    struct Change: Sendable, Equatable {
        /// Owned partitions the target no longer holds.
        var revoked: Set<TopicPartition> = []
        /// Partitions of the target not owned yet (only those whose topic is known).
        var added: Set<TopicPartition> = []

        /// Whether the step changes nothing.
        var isEmpty: Bool { revoked.isEmpty && added.isEmpty }
    }

    /// The partitions the member owns: handed to its listener and not taken back.
    private(set) var owned: Set<TopicPartition> = []
    /// The latest assignment from the coordinator, by topic id; `nil` until one arrived (after
    /// joining, or since the member lost its partitions).
    private(set) var target: [KafkaUUID: Set<Int32>]?
    /// Topic ids of the topics the member resolved (by name), so owned partitions are
    /// reported with the id the coordinator used, whatever metadata says later.
    private(set) var topicIDs: [String: KafkaUUID] = [:]
    /// Bumped when a change finished or owned partitions were lost: the coordinator must be
    /// told what the member owns until it answered a heartbeat that carried this version.
    private(set) var ownedVersion: UInt64 = 0

    /// Creates a reconciler that owns nothing and has no target.
    init() {}

    /// Installs a new assignment from the coordinator (it replaces the previous target whole).
    mutating func setTarget(_ topicPartitions: [ConsumerGroupHeartbeatRequest.TopicPartitions]) {
        var next: [KafkaUUID: Set<Int32>] = [:]
        for t in topicPartitions { next[t.topicID, default: []].formUnion(t.partitions) }
        target = next
    }

    /// Topic ids of the target that neither `names` nor an earlier resolution knows.
    func unresolved(names: [KafkaUUID: String]) -> Set<KafkaUUID> {
        guard let target else { return [] }
        return Set(target.keys.filter { name(of: $0, names: names) == nil })
    }

    /// The next step toward the target: everything owned that the target lacks is revoked and
    /// every target partition of a known topic that is not owned is added. Empty when owned
    /// partitions match the target's known topics, or before any target arrived.
    /// - Parameter names: topic names by id, from the member's metadata.
    mutating func nextChange(names: [KafkaUUID: String]) -> Change {
        guard let target else { return Change() }
        var wanted: Set<TopicPartition> = []
        for (id, partitions) in target {
            guard let topic = name(of: id, names: names) else { continue }
            topicIDs[topic] = id
            for p in partitions { wanted.insert(TopicPartition(topic: topic, partition: p)) }
        }
        return Change(revoked: owned.subtracting(wanted), added: wanted.subtracting(owned))
    }

    /// The listener gave up `partitions`.
    mutating func didRevoke(_ partitions: Set<TopicPartition>) {
        owned.subtract(partitions)
    }

    /// The listener took `partitions`.
    mutating func didAssign(_ partitions: Set<TopicPartition>) {
        owned.formUnion(partitions)
    }

    /// A change is complete: the next heartbeat reports the owned partitions.
    mutating func finishChange() {
        ownedVersion &+= 1
    }

    /// The member was removed from the group: everything owned is gone without a revoke and
    /// the target is dropped (the next join brings a new one). Returns what was owned.
    mutating func loseAll() -> Set<TopicPartition> {
        let lost = owned
        owned = []
        target = nil
        ownedVersion &+= 1
        return lost
    }

    /// The owned partitions as a heartbeat carries them: by topic id, topics and partitions
    /// sorted. An owned topic resolved from an assignment keeps that id; otherwise `lookup`
    /// (the client's metadata) gives it, and a topic without a known id is left out.
    func ownedTopicPartitions(lookup: (String) -> KafkaUUID?) -> [ConsumerGroupHeartbeatRequest.TopicPartitions] {
        var byTopic: [String: [Int32]] = [:]
        for tp in owned { byTopic[tp.topic, default: []].append(tp.partition) }
        return byTopic.sorted { $0.key < $1.key }.compactMap { topic, partitions in
            guard let id = topicIDs[topic] ?? lookup(topic), id != .zero else { return nil }
            return .init(topicID: id, partitions: partitions.sorted())
        }
    }

    private func name(of id: KafkaUUID, names: [KafkaUUID: String]) -> String? {
        if let name = names[id] { return name }
        return topicIDs.first { $0.value == id }?.key
    }
}
