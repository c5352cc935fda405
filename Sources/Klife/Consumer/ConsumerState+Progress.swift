import KlifeIO

/// What the application finished, what was committed, and taking partitions away: the part of
/// the consumer's state that commits and rebalances work on.
///
/// Per partition, three positions only move forward between seeks:
/// `deliveredPosition` (handed out) ≥ `processedPosition` (finished) ≥ what a commit sends.
/// A commit never sends more than `processedPosition`, so the committed offset never passes a
/// record the application has not finished.
extension ConsumerState {
    /// Marks `batch` processed: its partition's processed position moves to the batch's end
    /// (unless a seek or a new assignment made the batch stale), and its partition may hand out
    /// its next batch again.
    func markProcessed(_ batch: ConsumerBatch) {
        let handOff = state.withLock { s -> (Waiter, ConsumerBatch)? in
            finishHandlerBatch(&s, batch.topicPartition, assignmentID: batch.assignmentID, processed: true)
            Self.markProcessed(&s, batch.topicPartition, assignmentID: batch.assignmentID, epoch: batch.epoch,
                               nextOffset: batch.nextOffset)
            if let done = s.outstanding, done.tp == batch.topicPartition, done.assignmentID == batch.assignmentID,
               done.nextOffset <= batch.nextOffset {
                finishOutstanding(&s, processed: true)
            }
            return takeWaiter(&s)
        }
        releasePermit(of: batch)
        if let (waiter, next) = handOff { waiter.resume(returning: .success(next)) }
    }

    static func markProcessed(_ s: inout State, _ tp: TopicPartition, assignmentID: UInt64, epoch: UInt64, nextOffset: Int64) {
        guard var p = s.partitions[tp], p.assignmentID == assignmentID else { return }
        p.busy = false
        if p.epoch == epoch && nextOffset > p.processedPosition { p.processedPosition = nextOffset }
        s.partitions[tp] = p
    }

    /// Everything handed out counts as processed (``KlifeConsumer/commit()`` from a reader that
    /// processes batches in its loop).
    func markDeliveredProcessed() {
        state.withLock { s in
            if s.outstanding != nil { finishOutstanding(&s, processed: true) }
            for (tp, p) in s.partitions where !p.busy && p.deliveredPosition > p.processedPosition {
                s.partitions[tp]!.processedPosition = p.deliveredPosition
            }
        }
    }

    /// The batch last returned by ``next()`` counts as processed (closing with
    /// ``BatchAcknowledgement/onNextBatch``: as Kafka's poll loop, what was handed out is done).
    func markOutstandingProcessed() {
        state.withLock { s in
            if s.outstanding != nil { finishOutstanding(&s, processed: true) }
        }
    }

    /// Whether ``KlifeConsumer/run(_:)-((ConsumerBatch)->Void)`` hands the batches to handlers (then only handlers
    /// mark them processed).
    var handlerMode: Bool { state.withLock { $0.handlerMode } }

    /// Switches to handler mode; fails when batches are already read another way.
    func enterHandlerMode() -> Bool {
        state.withLock { s in
            if s.handlerMode || s.outstanding != nil || s.waiter != nil { return false }
            s.handlerMode = true
            return true
        }
    }

    /// A position that may be committed, and the assignment it belongs to.
    struct Progress: Sendable {
        var offset: Int64
        var assignmentID: UInt64
    }

    /// Processed positions not committed yet, of `partitions` (every assigned one when `nil`).
    func uncommitted(_ partitions: Set<TopicPartition>? = nil) -> [TopicPartition: Progress] {
        state.withLock { s in
            var found: [TopicPartition: Progress] = [:]
            for (tp, p) in s.partitions {
                let position = Self.commitPosition(p)
                guard position >= 0 && position != p.committedPosition else { continue }
                if let partitions, !partitions.contains(tp) { continue }
                found[tp] = Progress(offset: position, assignmentID: p.assignmentID)
            }
            return found
        }
    }

    /// Remembers what a commit wrote (for partitions still in the same assignment).
    func noteCommitted(_ committed: [TopicPartition: Progress]) {
        state.withLock { s in
            for (tp, progress) in committed where s.partitions[tp]?.assignmentID == progress.assignmentID {
                s.partitions[tp]!.committedPosition = progress.offset
            }
        }
    }

    /// Remembers the offset the group had committed for `tp` when it was assigned.
    func noteCommitted(_ tp: TopicPartition, offset: Int64, assignmentID: UInt64? = nil) {
        state.withLock { s in
            guard let p = s.partitions[tp], assignmentID == nil || p.assignmentID == assignmentID else { return }
            s.partitions[tp]!.committedPosition = offset
        }
    }

    /// Stops fetching `partitions` and handing out their batches (what was fetched stays until
    /// ``unassign(_:)``): the first step of a revoke.
    func beginRevoke(_ partitions: Set<TopicPartition>) {
        state.withLock { s in
            for tp in partitions where s.partitions[tp] != nil { s.partitions[tp]!.revoking = true }
        }
    }

    /// Those of `partitions` whose batch is still being processed: a handler runs, or (with
    /// ``BatchAcknowledgement/explicit``) a batch handed out is not marked processed.
    func unfinished(_ partitions: Set<TopicPartition>) -> Set<TopicPartition> {
        state.withLock { s in
            var busy: Set<TopicPartition> = []
            for tp in partitions {
                guard let p = s.partitions[tp] else { continue }
                let handedOut = configuration.acknowledgement == .explicit && p.deliveredPosition > p.processedPosition
                if p.busy || handedOut { busy.insert(tp) }
            }
            return busy
        }
    }

    /// Waits (polling every few milliseconds) until no batch of `partitions` is being
    /// processed, or `timeout` passed.
    /// - Returns: the partitions still unfinished at the end.
    func waitUntilFinished(_ partitions: Set<TopicPartition>, timeout: Duration) async -> Set<TopicPartition> {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var left = unfinished(partitions)
        while !left.isEmpty && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
            left = unfinished(left)
        }
        return left
    }

    /// Which of `partitions` are assigned and have no position yet (to look up).
    func withoutPosition(_ partitions: Set<TopicPartition>) -> [TopicPartition: UInt64] {
        state.withLock { s in
            var found: [TopicPartition: UInt64] = [:]
            for tp in partitions {
                if let p = s.partitions[tp], p.fetchPosition < 0, p.deliveredPosition < 0 { found[tp] = p.epoch }
            }
            return found
        }
    }

    /// The assignment ids of `partitions` that are assigned.
    func assignmentIDs(_ partitions: Set<TopicPartition>) -> [TopicPartition: UInt64] {
        state.withLock { s in
            var ids: [TopicPartition: UInt64] = [:]
            for tp in partitions { if let p = s.partitions[tp] { ids[tp] = p.assignmentID } }
            return ids
        }
    }
}
