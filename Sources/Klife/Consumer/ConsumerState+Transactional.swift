import KlifeIO

/// The consumer's state in exactly-once mode (``KlifeConsumer/run(transactional:_:)-(_,(ConsumerBatch,Transaction)->Void)``): the
/// batches go to handlers, and a partition's committed position moves only when a
/// transaction carrying its offset committed.
extension ConsumerState {
    /// Switches to handler mode with commits by transactions only; fails when the batches
    /// are already read another way.
    func enterTransactionalHandlerMode() -> Bool {
        state.withLock { s in
            if s.handlerMode || s.outstanding != nil || s.waiter != nil { return false }
            s.handlerMode = true
            s.transactionalCommits = true
            return true
        }
    }

    /// Whether offsets are committed only by transactions (the auto-commit, the commits on
    /// revoke and on close do nothing; ``KlifeConsumer/commit()`` throws).
    var commitsInTransactions: Bool { state.withLock { $0.transactionalCommits } }

    /// What ``KlifeConsumer/commit()`` and ``KlifeConsumer/commit(_:)`` throw in exactly-once mode.
    static let committedOnlyByTransactions = KlifeError.invalidArgument(
        "run(transactional:) commits offsets in its transactions only; commit() would commit outside them")

    /// A transaction that carried `batch`'s next offset committed: the offset is the group's
    /// committed position of its partition (while the partition stays in the same
    /// assignment), and the batch is processed. The committed position is noted first: no
    /// commit outside transactions runs in this mode, so nothing reads the two in between.
    func markCommittedInTransaction(_ batch: ConsumerBatch) {
        noteCommitted(batch.topicPartition, offset: batch.nextOffset, assignmentID: batch.assignmentID)
        markProcessed(batch)
    }
}
