import KlifeProtocol

/// The reconciliation of one member of a KIP-848 consumer group, without any I/O: the
/// partitions the member owns, the assignment the coordinator asks for (partitions by topic
/// id), the change that brings the first to the second, and the owned partitions its
/// heartbeats report.
///
/// The coordinator sends a new assignment whenever the member's changes; the member applies
/// it one change at a time: it gives up what it owns and is no longer assigned (revoke), then
/// takes what is assigned and not yet owned (assign). A topic id that the member's metadata
/// does not know yet stays pending: its partitions are not taken until a later change, once
/// metadata names the topic.
///
/// What heartbeats report as owned is ``reported``: the partitions the member holds (those
/// being started included) plus the target, from the moment the target arrives. The
/// coordinator gave the target to this member and to nobody else, and saying so at once means
/// no heartbeat ever reports less, not even one sent before the listener started the new
/// partitions; a coordinator that takes the report as the member's ownership (librdkafka's
/// mock) would otherwise hand them to a second member. Only a finished revocation shrinks the
/// report, and that is the acknowledgement that lets the coordinator move a partition.
///
/// ```swift
/// var reconciler = ConsumerGroupReconciler()
/// reconciler.setTarget(response.assignment!.topicPartitions)   // reported from now on
/// let change = reconciler.nextChange(names: namesByID)          // revoked, then added
/// reconciler.didRevoke(change.revoked)                          // the report shrinks
/// reconciler.willAssign(change.added)                           // then the listener starts them
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

    /// The partitions the member owns: handed to its listener (or being handed) and not taken back.
    private(set) var owned: Set<TopicPartition> = []
    /// The latest assignment from the coordinator, by topic id; `nil` until one arrived (after
    /// joining, or since the member lost its partitions).
    private(set) var target: [KafkaUUID: Set<Int32>]?
    /// Topic ids of the topics the member resolved (by name), so owned partitions are
    /// reported with the id the coordinator used, whatever metadata says later.
    private(set) var topicIDs: [String: KafkaUUID] = [:]
    /// Bumped whenever what ``reported(lookup:)`` gives changes: the coordinator must be told
    /// the owned partitions until it answered a heartbeat that carried this version.
    private(set) var reportedVersion: UInt64 = 0
    /// The version the coordinator answered last; `nil` when it may not know any (joining).
    private(set) var acknowledgedVersion: UInt64?

    /// Creates a reconciler that owns nothing and has no target.
    init() {}

    /// Installs a new assignment from the coordinator (it replaces the previous target whole).
    /// Its partitions are reported as owned from now on.
    mutating func setTarget(_ topicPartitions: [ConsumerGroupHeartbeatRequest.TopicPartitions]) {
        var next: [KafkaUUID: Set<Int32>] = [:]
        for t in topicPartitions where !t.partitions.isEmpty { next[t.topicID, default: []].formUnion(t.partitions) }
        changingReport { $0.target = next }
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

    /// The listener gave up `partitions`: the report shrinks.
    mutating func didRevoke(_ partitions: Set<TopicPartition>) {
        changingReport { $0.owned.subtract(partitions) }
    }

    /// The listener is about to take `partitions`: they are owned from now on (before the
    /// listener starts them, so a revocation planned meanwhile covers them and the report
    /// holds them even if a newer target dropped them).
    mutating func willAssign(_ partitions: Set<TopicPartition>) {
        changingReport { $0.owned.formUnion(partitions) }
    }

    /// The member was removed from the group: everything owned is gone without a revoke and
    /// the target is dropped (the next join brings a new one). Returns what was owned. The
    /// coordinator no longer knows any report: the join reports an empty set.
    mutating func loseAll() -> Set<TopicPartition> {
        let lost = owned
        owned = []
        target = nil
        reportedVersion &+= 1
        acknowledgedVersion = nil
        return lost
    }

    /// Whether the next heartbeat must carry the owned partitions (the coordinator has not
    /// answered one that carried ``reportedVersion``).
    var reportPending: Bool { acknowledgedVersion != reportedVersion }

    /// The coordinator answered a heartbeat that reported `version`.
    mutating func acknowledge(_ version: UInt64) {
        acknowledgedVersion = version
    }

    /// The owned partitions a heartbeat reports, by topic id (topics and partitions sorted):
    /// the partitions held plus the target's. An owned topic resolved from an assignment keeps
    /// that id; otherwise `lookup` (the client's metadata) gives it, and a topic without a
    /// known id is left out.
    func reported(lookup: (String) -> KafkaUUID?) -> [ConsumerGroupHeartbeatRequest.TopicPartitions] {
        var byID = target ?? [:]
        for tp in owned {
            guard let id = topicIDs[tp.topic] ?? lookup(tp.topic), id != .zero else { continue }
            byID[id, default: []].insert(tp.partition)
        }
        return byID.filter { !$0.value.isEmpty }
            .sorted { ($0.key.high, $0.key.low) < ($1.key.high, $1.key.low) }
            .map { .init(topicID: $0.key, partitions: $0.value.sorted()) }
    }

    /// Applies `change`, bumping ``reportedVersion`` when the report changed.
    private mutating func changingReport(_ change: (inout Self) -> Void) {
        let before = reported { _ in nil }
        change(&self)
        if reported(lookup: { _ in nil }) != before { reportedVersion &+= 1 }
    }

    private func name(of id: KafkaUUID, names: [KafkaUUID: String]) -> String? {
        if let name = names[id] { return name }
        return topicIDs.first { $0.value == id }?.key
    }
}
