import KlifeIO

/// Records in flight (handed out, not yet finished) and the adaptive limit's samples: a
/// handler's batch is in flight from hand-out until ``markProcessed(_:)``, ``markAbandoned(_:)``
/// or its partition going away; a reader's batch (``next()``) until the reader asks for the
/// next one or marks it processed. Finishing a batch wakes a reader waiting for room.
extension ConsumerState {
    /// The handler's batch of `tp` finished (`processed`: successfully, a latency sample).
    func finishHandlerBatch(_ s: inout State, _ tp: TopicPartition, assignmentID: UInt64, processed: Bool) {
        guard var p = s.partitions[tp], p.assignmentID == assignmentID, p.busy, p.busyRecords > 0 else { return }
        let records = p.busyRecords
        let inFlight = s.inFlightRecords
        s.handlerRecords -= records
        p.busyRecords = 0
        s.partitions[tp] = p
        if processed { noteFinished(&s, records: records, handedOutAt: p.handedOutAt, inFlight: inFlight) }
    }

    /// The reader's batch is finished: marked processed (`processed`, a latency sample) or
    /// only no longer in flight (``BatchAcknowledgement/explicit``: the reader asked again).
    func finishOutstanding(_ s: inout State, processed: Bool) {
        guard let done = s.outstanding else { return }
        let inFlight = s.inFlightRecords
        s.outstanding = nil
        guard processed else { return }
        Self.markProcessed(&s, done.tp, assignmentID: done.assignmentID, epoch: done.epoch, nextOffset: done.nextOffset)
        noteFinished(&s, records: done.records, handedOutAt: done.handedOutAt, inFlight: inFlight)
    }

    private func noteFinished(_ s: inout State, records: Int, handedOutAt: UInt64, inFlight: Int) {
        let now = limiterClock.now()
        s.recentLatencies.record(now &- min(now, handedOutAt))
        s.adaptive?.recordSuccess(records: records, handedOutAt: handedOutAt, now: now, inFlight: inFlight)
    }

    /// A handler failed for `batch` (it will be retried or given up): congestion for the
    /// adaptive limit.
    func noteHandlerFailure(_ batch: ConsumerBatch) {
        state.withLock { s in
            guard s.adaptive != nil, let p = s.partitions[batch.topicPartition], p.assignmentID == batch.assignmentID,
                  p.busy else { return }
            s.adaptive?.recordFailure(handedOutAt: p.handedOutAt, now: limiterClock.now())
        }
    }

    /// Puts `limit` in force now (`nil` removes it) and wakes the reader to look at it.
    func setAdaptiveLimit(_ limit: AdaptiveLimit?) {
        state.withLock { s in
            guard let limit else {
                s.adaptive = nil
                return
            }
            if s.adaptive == nil { s.adaptive = AdaptiveLimiter(limit) } else { s.adaptive?.change(limit) }
        }
        recheckLimits()
    }

    /// The adaptive limit's settings in force.
    var adaptiveLimit: AdaptiveLimit? { state.withLock { $0.adaptive?.settings } }
}

extension KlifeConsumer {
    /// Changes the adaptive limit at run time (`nil` removes it). The limit reached so far is
    /// kept within the new bounds, and a learned baseline is kept; a reader waiting for room
    /// looks at the new limit at once.
    /// - Throws: ``KlifeError/Code/invalidConfiguration`` naming the bad field.
    public func setAdaptiveLimit(_ limit: AdaptiveLimit?) throws(KlifeError) {
        try limit?.validate()
        state.setAdaptiveLimit(limit)
    }

    /// The adaptive limit's settings in force (``ConsumerConfiguration/adaptiveLimit`` until
    /// ``setAdaptiveLimit(_:)``).
    public var adaptiveLimit: AdaptiveLimit? { state.adaptiveLimit }
}
