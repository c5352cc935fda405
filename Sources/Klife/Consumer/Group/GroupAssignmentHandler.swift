import KlifeIO
import KlifeProtocol

/// Commits of one consumer: processed positions only, one commit at a time (a retried older
/// commit never lands after a newer one), as the group member the consumer is now.
final class OffsetCommitter: Sendable {
    let state: ConsumerState
    let client: KlifeClient
    private let serializer = AsyncSerializer()
    /// Asks the group membership which epoch a commit refused with STALE_MEMBER_EPOCH is sent
    /// once more with (the membership holds this committer through its listener: weakly).
    private let afterStaleEpoch = Locked<(@Sendable (GroupCommitIdentity) async -> GroupCommitIdentity?)?>(nil)

    init(state: ConsumerState, client: KlifeClient) {
        self.state = state
        self.client = client
    }

    /// Commits refused with STALE_MEMBER_EPOCH (KIP-848: a heartbeat answer moved the member
    /// epoch while the commit was on its way) are sent once more as `membership` says.
    func sendStaleCommitsAgain(as membership: any GroupMembership) {
        afterStaleEpoch.withLock { $0 = { [weak membership] stale in await membership?.identityAfterStaleEpoch(stale) } }
    }

    /// Commits `offsets` as `member`; a commit the coordinator refused as stale is sent once
    /// more with the member's current epoch.
    private func send(_ offsets: [TopicPartition: Int64], groupID: String,
                      member: GroupCommitIdentity?) async throws(KlifeError) {
        do {
            try await client.commitOffsets(offsets, groupID: groupID, member: member)
        } catch {
            guard error.kafkaErrorCode == .staleMemberEpoch, let member,
                  let ask = afterStaleEpoch.withLock({ $0 }),
                  let current = await ask(member) else { throw error }
            client.hubs[0].log(.info, "group '\(groupID)': commit refused with STALE_MEMBER_EPOCH at member epoch \(member.generationOrEpoch); sending it once more at epoch \(current.generationOrEpoch)")
            try await client.commitOffsets(offsets, groupID: groupID, member: current)
        }
    }

    /// Commits the processed positions of `partitions` (every assigned one when `nil`) that
    /// moved since the last commit.
    /// - Parameter member: the group member's identity; `nil` outside group membership.
    func commitProcessed(_ partitions: Set<TopicPartition>? = nil, member: GroupCommitIdentity?) async throws(KlifeError) {
        guard let groupID = state.configuration.groupID else {
            throw .invalidArgument("commit needs ConsumerConfiguration.groupID")
        }
        try await serializer.run { () async throws(KlifeError) in
            // Exactly-once mode: its transactions commit the offsets, nothing else does.
            if state.commitsInTransactions { return }
            let progress = state.uncommitted(partitions)
            guard !progress.isEmpty else { return }
            try await send(progress.mapValues(\.offset), groupID: groupID, member: member)
            state.noteCommitted(progress)
        }
    }

    /// Commits `offsets` as given (the application chose them).
    func commit(_ offsets: [TopicPartition: Int64], member: GroupCommitIdentity?) async throws(KlifeError) {
        guard let groupID = state.configuration.groupID else {
            throw .invalidArgument("commit needs ConsumerConfiguration.groupID")
        }
        if state.commitsInTransactions { throw ConsumerState.committedOnlyByTransactions }
        try await serializer.run { () async throws(KlifeError) in
            let ids = state.assignmentIDs(Set(offsets.keys))
            try await send(offsets, groupID: groupID, member: member)
            for (tp, offset) in offsets { state.noteCommitted(tp, offset: offset, assignmentID: ids[tp]) }
        }
    }
}

/// The consumer's side of group membership: starts reading assigned partitions from the
/// group's committed offsets, and on a revoke stops them, waits (bounded) for what is being
/// processed, commits it and lets them go.
final class GroupAssignmentHandler: AssignmentListener {
    let state: ConsumerState
    let client: KlifeClient
    let committer: OffsetCommitter

    init(state: ConsumerState, client: KlifeClient, committer: OffsetCommitter) {
        self.state = state
        self.client = client
        self.committer = committer
    }

    private var settings: ConsumerConfiguration { state.configuration }

    func assigned(_ partitions: Set<TopicPartition>) async {
        _ = state.assign(Array(partitions))
        if let hook = settings.onAssigned { await hook(partitions) }
        // Partitions the hook did not seek start at the group's committed offset.
        let starting = state.withoutPosition(partitions)
        guard !starting.isEmpty, let groupID = settings.groupID else { return }
        var committed: [TopicPartition: Int64] = [:]
        var attempt = 0
        while !client.isClosed && !state.isEnded {
            do {
                committed = try await client.committedOffsets(groupID: groupID, partitions: Array(starting.keys))
                break
            } catch {
                attempt += 1
                client.hubs[0].log(.warning, "group '\(groupID)': reading committed offsets failed: \(error)")
                try? await Task.sleep(for: min(settings.retryBackoff * attempt, settings.retryBackoffMax))
            }
        }
        let ids = state.assignmentIDs(Set(starting.keys))
        for (tp, epoch) in starting {
            if let offset = committed[tp] {
                state.noteCommitted(tp, offset: offset, assignmentID: ids[tp])
                state.setPosition(tp, offset, ifEpoch: epoch)
            } else {
                await PositionLookup.reset(tp, epoch: epoch, state: state, client: client,
                                           reason: "\(tp) has no committed offset in group '\(groupID)'")
            }
        }
    }

    func revoked(_ partitions: Set<TopicPartition>, identity: GroupCommitIdentity?) async {
        state.beginRevoke(partitions)
        let unfinished = await state.waitUntilFinished(partitions, timeout: settings.revokeTimeout)
        if !unfinished.isEmpty {
            client.hubs[0].log(.warning, "group '\(settings.groupID ?? "")': revoking \(unfinished.count) partitions whose batches were still being processed after \(settings.revokeTimeout); their next owner reads them again from the last commit")
        }
        if let hook = settings.onRevoked { await hook(partitions) }
        do {
            try await committer.commitProcessed(partitions, member: identity)
        } catch {
            client.hubs[0].log(.warning, "group '\(settings.groupID ?? "")': commit on revoke failed: \(error)")
        }
        state.unassign(Array(partitions))
    }

    func lost(_ partitions: Set<TopicPartition>) async {
        state.beginRevoke(partitions)
        if let hook = settings.onLost { await hook(partitions) }
        state.unassign(Array(partitions))
    }

    func failed(_ error: KlifeError) {
        state.fail(error)
    }
}

/// Looking up where a partition starts when its position is missing or out of range.
enum PositionLookup {
    /// The reset policy's offset (looked up, retried while it fails), or the consumer fails with
    /// ``OffsetResetPolicy/none``.
    static func reset(_ tp: TopicPartition, epoch: UInt64, state: ConsumerState, client: KlifeClient,
                      reason: String) async {
        let policy = state.configuration.offsetReset
        guard policy != .none else {
            state.fail(.broker(.offsetOutOfRange, "\(reason) and offsetReset is none"))
            return
        }
        var attempt = 0
        while !client.isClosed && !state.isEnded {
            do {
                let offset = try await client.listOffset(topic: tp.topic, partition: tp.partition,
                                                         policy == .earliest ? .earliest : .latest,
                                                         isolation: state.configuration.isolation)
                state.setPosition(tp, offset, ifEpoch: epoch)
                return
            } catch {
                attempt += 1
                try? await Task.sleep(for: min(state.configuration.retryBackoff * attempt, state.configuration.retryBackoffMax))
            }
        }
    }
}
