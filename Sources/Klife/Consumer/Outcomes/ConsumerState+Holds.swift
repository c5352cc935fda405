import KlifeIO

/// Records handed out and not finished — retrying in the process, or being moved to a retry
/// topic — and partitions stopped by a record that failed for good. A record held keeps every
/// commit of its partition below it while later batches go on being handed out; a stopped
/// partition is neither fetched nor handed out until a seek.
extension ConsumerState {
    /// Where a commit of `p` may go: its processed position, or its first held record.
    static func commitPosition(_ p: Partition) -> Int64 {
        guard let first = p.holds.first else { return p.processedPosition }
        return min(first, p.processedPosition)
    }

    /// Marks `batch` processed except for the records at `held` offsets, which keep the
    /// partition's commits below them until ``releaseHold(_:offset:)``. One step under the lock,
    /// so no commit can see the batch finished without its holds.
    func markProcessed(_ batch: ConsumerBatch, holding held: [Int64]) {
        guard !held.isEmpty else { return markProcessed(batch) }
        let handOff = state.withLock { s -> (Waiter, ConsumerBatch)? in
            Self.addHolds(&s, batch, offsets: held)
            finishHandlerBatch(&s, batch.topicPartition, assignmentID: batch.assignmentID, processed: true)
            Self.markProcessed(&s, batch.topicPartition, assignmentID: batch.assignmentID, epoch: batch.epoch,
                               nextOffset: batch.nextOffset)
            return takeWaiter(&s)
        }
        releasePermit(of: batch)
        if let (waiter, next) = handOff { waiter.resume(returning: .success(next)) }
    }

    /// Holds the records at `offsets` of `batch` (handed out, not finished) before the batch is.
    func addHolds(_ batch: ConsumerBatch, offsets: [Int64]) {
        guard !offsets.isEmpty else { return }
        state.withLock { s in Self.addHolds(&s, batch, offsets: offsets) }
    }

    private static func addHolds(_ s: inout State, _ batch: ConsumerBatch, offsets: [Int64]) {
        guard var p = s.partitions[batch.topicPartition], p.assignmentID == batch.assignmentID,
              p.epoch == batch.epoch else { return }
        p.holds.append(contentsOf: offsets)
        p.holds.sort()
        s.partitions[batch.topicPartition] = p
    }

    /// The held record at `offset` of `batch`'s partition is finished (done, or moved on).
    func releaseHold(_ batch: ConsumerBatch, offset: Int64) {
        state.withLock { s in
            guard var p = s.partitions[batch.topicPartition], p.assignmentID == batch.assignmentID,
                  p.epoch == batch.epoch, let index = p.holds.firstIndex(of: offset) else { return }
            p.holds.remove(at: index)
            s.partitions[batch.topicPartition] = p
        }
    }

    /// Whether `batch` still belongs to its partition's current assignment and position (no
    /// revoke, seek or reset since), and the consumer is open: retries on its behalf may go on.
    func isCurrentPosition(_ batch: ConsumerBatch) -> Bool {
        state.withLock { s in
            guard let p = s.partitions[batch.topicPartition] else { return false }
            return p.assignmentID == batch.assignmentID && p.epoch == batch.epoch && !p.revoking && !s.closed
                && s.failure == nil
        }
    }

    /// Stops `batch`'s partition with `error`: the record stays held (commits stay below it),
    /// nothing more of the partition is fetched or handed out, and the partition is free.
    func stop(_ batch: ConsumerBatch, error: KlifeError) {
        state.withLock { s in
            guard var p = s.partitions[batch.topicPartition], p.assignmentID == batch.assignmentID,
                  p.epoch == batch.epoch else { return }
            if p.stopped == nil { p.stopped = error }
            p.busy = false
            s.bufferedBytes -= p.ready.reduce(0) { $0 + $1.bytes }
            p.ready.removeAll()
            p.fetchPosition = p.deliveredPosition
            p.inFlight = false
            p.epoch &+= 1  // answers to fetches in flight are dropped
            s.order.removeAll { $0 == batch.topicPartition }
            s.partitions[batch.topicPartition] = p
        }
        wakeFetchers()
    }

    /// Partitions stopped by a record that failed for good, with the error.
    var stoppedPartitions: [TopicPartition: KlifeError] {
        state.withLock { s in
            var stopped: [TopicPartition: KlifeError] = [:]
            for (tp, p) in s.partitions { if let error = p.stopped { stopped[tp] = error } }
            return stopped
        }
    }

    /// Records held now, over every partition.
    var heldRecords: Int { state.withLock { $0.partitions.values.reduce(0) { $0 + $1.holds.count } } }

    /// Marks the partitions of `topics` as retry partitions, whose records wait until due.
    func markDelayed(_ topics: Set<String>, in tps: [TopicPartition]) {
        guard !topics.isEmpty else { return }
        state.withLock { s in
            for tp in tps where topics.contains(tp.topic) { s.partitions[tp]?.delayed = true }
        }
    }

    /// Splits the head batch of a retry partition at its first record not yet due: the due
    /// prefix may go now. - Returns: nanoseconds until the head record is due (0: some may go).
    static func waitForDue(_ p: inout Partition, now: Int64) -> UInt64 {
        let head = p.ready[0]
        var dueCount = 0
        var firstDue: Int64 = 0
        while dueCount < head.records.count {
            let due = RetryHeaders.dueTime(of: head.records[dueCount])
            if due > now {
                firstDue = due
                break
            }
            dueCount += 1
        }
        if dueCount == head.records.count { return 0 }
        if dueCount > 0 {
            let (now, later) = head.split(at: dueCount)
            p.ready[0] = later
            p.ready.insert(now, at: 0)
            return 0
        }
        p.dueAt = firstDue
        return UInt64(firstDue - now) * 1_000_000
    }
}

extension ConsumerBatch {
    /// The records before `index` and the ones from it, as two batches of the same partition.
    func split(at index: Int) -> (ConsumerBatch, ConsumerBatch) {
        var first = self, second = self
        first.records = records.records(0..<index)
        first.nextOffset = records[index].offset
        second.records = records.records(index..<records.count)
        return (first, second)
    }

    /// The records in `range` (by position) as a batch of the same partition.
    func subBatch(_ range: Range<Int>) -> ConsumerBatch {
        var part = self
        part.records = records.records(range)
        part.nextOffset = range.upperBound < records.count ? records[range.upperBound].offset : nextOffset
        return part
    }
}
