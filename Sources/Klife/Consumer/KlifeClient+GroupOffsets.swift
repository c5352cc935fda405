import KlifeProtocol
import Synchronization

/// Committed offsets of a consumer group, read and written at the group's coordinator.
///
/// Outside group membership (generation -1, no member id) a commit is accepted while the group
/// has no active members; a group with members refuses it (`UNKNOWN_MEMBER_ID` or
/// `ILLEGAL_GENERATION`), as Kafka does.
extension KlifeClient {
    /// Commits `offsets` (the next offset to read, per partition) for `groupID`.
    /// - Throws: ``KlifeError`` — the first partition error the coordinator reports, or
    ///   `malformedResponse` when it leaves a partition out.
    public func commitOffsets(_ offsets: [TopicPartition: Int64], groupID: String) async throws(KlifeError) {
        try await commitOffsets(offsets, groupID: groupID, member: nil)
    }

    /// Commits `offsets` for `groupID`, as `member` of it when given (its generation or member
    /// epoch and ids; the coordinator refuses a commit of a stale generation).
    func commitOffsets(_ offsets: [TopicPartition: Int64], groupID: String,
                       member: GroupCommitIdentity?) async throws(KlifeError) {
        guard !offsets.isEmpty else { return }
        var byTopic: [String: [OffsetCommitRequest.Partition]] = [:]
        for (tp, offset) in offsets {
            byTopic[tp.topic, default: []].append(.init(partitionIndex: tp.partition, committedOffset: offset))
        }
        let request = OffsetCommitRequest(
            groupID: groupID, generationIDOrMemberEpoch: member?.generationOrEpoch ?? -1, memberID: member?.memberID ?? "",
            groupInstanceID: member?.instanceID,
            topics: byTopic.sorted { $0.key < $1.key }.map { name, partitions in
                .init(name: name, partitions: partitions.sorted { $0.partitionIndex < $1.partitionIndex })
            })
        let response = try await coordinatorCall(
            request, name: "OffsetCommit", subject: groupID, cache: groupCoordinator(groupID), key: groupID,
            keyType: FindCoordinatorRequest.groupKeyType,
            errorCode: { response in
                for t in response.topics {
                    for p in t.partitions where p.errorCode != 0 { return (KafkaErrorCode(rawValue: p.errorCode), "\(t.name)/\(p.partitionIndex)") }
                }
                return (.none, nil)
            })
        let answered = Set(response.topics.flatMap { t in t.partitions.map { TopicPartition(topic: t.name, partition: $0.partitionIndex) } })
        if let missing = offsets.keys.first(where: { !answered.contains($0) }) {
            throw .malformed(DecodeError(.invalidValue, offset: 0, detail: "OffsetCommit answer lacks partition \(missing)"),
                             broker: "group coordinator")
        }
    }

    /// The committed offsets of `groupID` for `partitions` (every partition with a commit when
    /// `nil`); partitions without a committed offset are left out.
    public func committedOffsets(groupID: String,
                                 partitions: [TopicPartition]? = nil) async throws(KlifeError) -> [TopicPartition: Int64] {
        var topics: [OffsetFetchRequest.Topic]?
        if let partitions {
            var byTopic: [String: [Int32]] = [:]
            for tp in partitions { byTopic[tp.topic, default: []].append(tp.partition) }
            topics = byTopic.sorted { $0.key < $1.key }.map { .init(name: $0.key, partitionIndexes: $0.value.sorted()) }
        }
        // require_stable: offsets committed in a transaction still open are waited out
        // (UNSTABLE_OFFSET_COMMIT is retriable), so a reader never starts before them.
        let request = OffsetFetchRequest(groups: [.init(groupID: groupID, topics: topics)], requireStable: true)
        let response = try await coordinatorCall(
            request, name: "OffsetFetch", subject: groupID, cache: groupCoordinator(groupID), key: groupID,
            keyType: FindCoordinatorRequest.groupKeyType,
            errorCode: { response in
                for g in response.groups {
                    if g.errorCode != 0 { return (KafkaErrorCode(rawValue: g.errorCode), nil) }
                    for t in g.topics {
                        for p in t.partitions where p.errorCode != 0 { return (KafkaErrorCode(rawValue: p.errorCode), "\(t.name)/\(p.partitionIndex)") }
                    }
                }
                return (.none, nil)
            })
        var committed: [TopicPartition: Int64] = [:]
        for group in response.groups {
            for t in group.topics {
                for p in t.partitions where p.committedOffset >= 0 {
                    committed[TopicPartition(topic: t.name, partition: p.partitionIndex)] = p.committedOffset
                }
            }
        }
        return committed
    }

    /// The remembered coordinator of `groupID`.
    func groupCoordinator(_ groupID: String) -> CoordinatorCache {
        groupCoordinators.withLock { caches in
            if let cache = caches[groupID] { return cache }
            let cache = CoordinatorCache()
            caches[groupID] = cache
            return cache
        }
    }
}
