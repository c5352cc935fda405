import KlifeIO
import KlifeProtocol

/// Records buffered for one partition, oldest first.
///
/// The records never sent are `resent` (sent before under a producer identity that is gone:
/// they are older than every record never sent, so they go first) followed by `fresh`, a
/// chunked queue that appending never moves and taking from the front moves out without
/// copying. With idempotence, batches that were already sent once (and so own sequence
/// numbers) wait in `sealed`, ordered by base sequence; they go out again with exactly the
/// same boundaries and before any record that was never sent.
///
/// Changed in place only (through ``TopicBuffers``): a copy would share `fresh`'s chunks.
struct PartitionBuffer {
    /// Records sent before under an identity that is gone, oldest first (rare: retries of
    /// unsequenced records, epoch bumps). A plain array: they come and go in small numbers.
    private var resent: [PendingRecord] = []
    /// Records never sent, oldest first.
    private var fresh = RecordQueue()
    /// Sequenced batches waiting to be resent, by base sequence.
    var sealed: [[PendingRecord]] = []
    /// Upper bound of the encoded size of the unsent records (deltas counted at their widest).
    var estimatedBytes = 0
    /// Monotonic time the oldest buffered record arrived (linger starts here).
    var firstAppendNanos: UInt64 = 0
    /// Retries wait until this monotonic time.
    var retryNotBefore: UInt64 = 0
    /// How many of the records the last ``takePrefix(maxBytes:spare:pool:)`` took came from
    /// `resent` (they go back there in ``putBack(_:pool:)``).
    private var resentTaken = 0
    /// Whether a block (``PendingRecord/block``) may be among the records never sent: set when
    /// one comes in, cleared when nothing unsent is left. Blocks are sent as they are, alone
    /// in their batch, and at once (their linger passed on the producing side).
    private(set) var hasBlocks = false

    /// Worst-case encoded size of one record: its size with zero deltas (`PendingRecord.size`,
    /// computed once when it was produced) plus the widest timestamp-delta (10) and
    /// offset-delta (5) varints minus the one byte each already counted.
    @inline(__always)
    static func estimatedSize(_ r: borrowing PendingRecord) -> Int {
        Int(r.size) + 14
    }

    /// Whether any record was never sent.
    var hasUnsent: Bool { !resent.isEmpty || !fresh.isEmpty }

    var unsentCount: Int { resent.count + fresh.count }

    var recordCount: Int { unsentCount + sealed.reduce(0) { $0 + $1.count } }

    /// A copy of the records never sent, oldest first (tests and diagnostics).
    var unsentRecords: [PendingRecord] {
        var all = resent
        fresh.forEachFromFront { all.append(copy $0); return true }
        return all
    }

    /// Adds a record: to its sealed batch when it carries a sequence of the current `epoch`,
    /// else to the records never sent (clearing a void sequence).
    /// - Returns: the earliest time this record may make the partition sendable: `now` for a
    ///   sealed batch or a full batch, `now + lingerNanos` for the first unsent record,
    ///   `.max` when it joins records already waiting (their time stands).
    @inline(__always)
    mutating func append(_ record: consuming PendingRecord, now: UInt64, epoch: Int16,
                         lingerNanos: UInt64, maxBatchBytes: Int, pool: RecordChunkPool) -> UInt64 {
        if record.batchBase >= 0 || record.sequenceEpoch == PendingRecord.sentUnderVoidIdentity {
            appendSentBefore(record, now: now, epoch: epoch)
            return now
        }
        let first = !hasUnsent
        if first { firstAppendNanos = now }
        estimatedBytes += Self.estimatedSize(record)
        if record.block != nil {
            hasBlocks = true
            fresh.append(record, pool: pool)
            return now
        }
        fresh.append(record, pool: pool)
        if estimatedBytes >= maxBatchBytes { return now }
        return first ? now &+ lingerNanos : .max
    }

    /// A record that was sent before: into its sealed batch when its sequence is of the
    /// current epoch, else (its identity is gone) behind the others like it, in front of
    /// every record never sent.
    @inline(never)
    private mutating func appendSentBefore(_ record: consuming PendingRecord, now: UInt64, epoch: Int16) {
        if record.batchBase >= 0 && record.sequenceEpoch == epoch {
            addSealed(record)
            return
        }
        record.batchBase = -1
        record.sequenceEpoch = -1
        if !hasUnsent { firstAppendNanos = now }
        estimatedBytes += Self.estimatedSize(record)
        if record.block != nil { hasBlocks = true }
        resent.append(record)
    }

    private mutating func addSealed(_ record: consuming PendingRecord) {
        if let i = sealed.lastIndex(where: { $0[0].batchBase == record.batchBase }) {
            sealed[i].append(record)
            return
        }
        let at = sealed.firstIndex { $0[0].batchBase > record.batchBase } ?? sealed.count
        sealed.insert([record], at: at)
    }

    /// Puts records that must be retried back: sequenced ones into their sealed batches,
    /// others in front of the records never sent, keeping their order.
    mutating func requeueFront(_ retried: [PendingRecord], notBefore: UInt64, epoch: Int16) {
        var unsequenced: [PendingRecord] = []
        for r in retried {
            if r.batchBase >= 0 && r.sequenceEpoch == epoch {
                addSealed(r)
            } else {
                var fresh = r
                fresh.batchBase = -1
                fresh.sequenceEpoch = -1
                unsequenced.append(fresh)
            }
        }
        putInFront(unsequenced)
        firstAppendNanos = 0
        retryNotBefore = notBefore
    }

    /// After an epoch bump: sealed batches lose their sequences and rejoin, in order, the
    /// front of the records never sent.
    mutating func unsealAll() {
        guard !sealed.isEmpty else { return }
        var merged: [PendingRecord] = []
        for batch in sealed {
            for var r in batch {
                r.batchBase = -1
                r.sequenceEpoch = -1
                merged.append(r)
            }
        }
        sealed.removeAll()
        putInFront(merged)
    }

    /// `records` (sent before, now without sequences) go in front of everything unsent.
    private mutating func putInFront(_ records: [PendingRecord]) {
        guard !records.isEmpty else { return }
        estimatedBytes += records.reduce(0) { $0 + Self.estimatedSize($1) }
        if records.contains(where: { $0.block != nil }) { hasBlocks = true }
        resent.insert(contentsOf: records, at: 0)
    }

    /// Puts back records taken for a batch that could not be sent after all: where they
    /// came from, in front.
    mutating func putBack(_ taken: [PendingRecord], pool: RecordChunkPool) {
        let fromResent = min(resentTaken, taken.count)
        estimatedBytes += taken.reduce(0) { $0 + Self.estimatedSize($1) }
        if taken.contains(where: { $0.block != nil }) { hasBlocks = true }
        resent.insert(contentsOf: taken[..<fromResent], at: 0)
        fresh.prepend(Array(taken[fromResent...]), pool: pool)
        resentTaken = 0
    }

    /// Removes and returns the unsent records whose deadline passed.
    /// Deadlines grow from front to back (records are kept oldest first), so only a prefix
    /// can have expired: checking the front keeps the periodic sweep O(1) per partition.
    mutating func removeExpiredUnsent(now: UInt64, pool: RecordChunkPool) -> [PendingRecord] {
        var expired: [PendingRecord] = []
        let fromResent = resent.prefix { $0.deadline <= now }.count
        if fromResent > 0 {
            expired.append(contentsOf: resent[..<fromResent])
            resent.removeFirst(fromResent)
        }
        if resent.isEmpty, let deadline = fresh.withFirst({ $0.deadline }), deadline <= now {
            var n = 0
            fresh.forEachFromFront { r in
                guard r.deadline <= now else { return false }
                n += 1
                return true
            }
            fresh.moveFront(n, appendingTo: &expired, pool: pool)
        }
        for r in expired { estimatedBytes -= Self.estimatedSize(r) }
        if !hasUnsent { hasBlocks = false }
        return expired
    }

    /// Empties the buffer, returning its records: sealed batches first (they are older),
    /// then the records never sent. Timing state is reset as for a new buffer.
    mutating func removeAll(pool: RecordChunkPool) -> [PendingRecord] {
        var all: [PendingRecord] = []
        for batch in sealed { all.append(contentsOf: batch) }
        all.append(contentsOf: resent)
        fresh.removeAll(appendingTo: &all, pool: pool)
        self = PartitionBuffer()
        return all
    }

    /// Removes the records whose delivery deadline passed: an expired prefix of the unsent
    /// records, and whole sealed batches holding an expired record (resending part of a
    /// sealed batch would break its boundaries).
    /// - Returns: the removed records, and how many sealed batches they came from.
    mutating func removeExpired(now: UInt64, pool: RecordChunkPool) -> (records: [PendingRecord], sealedBatches: Int) {
        var expired = removeExpiredUnsent(now: now, pool: pool)
        guard sealed.contains(where: { $0.contains { $0.deadline <= now } }) else { return (expired, 0) }
        var batches = 0
        for batch in sealed where batch.contains(where: { $0.deadline <= now }) {
            expired.append(contentsOf: batch)
            batches += 1
        }
        sealed.removeAll { $0.contains { $0.deadline <= now } }
        return (expired, batches)
    }

    /// Removes and returns the longest prefix of the unsent records whose estimated size fits
    /// `limit` (at least one record), with that estimated size. The records are moved into
    /// `spare`'s storage (emptied first; reusing a pooled array keeps large batches from
    /// allocating and faulting in fresh pages), which is returned; `spare` is left empty.
    mutating func takePrefix(maxBytes limit: Int, spare: inout [PendingRecord],
                             pool: RecordChunkPool) -> (records: [PendingRecord], estimatedBytes: Int) {
        var taken: [PendingRecord] = []
        swap(&taken, &spare)
        taken.removeAll(keepingCapacity: true)
        var count = unsentCount
        var bytes = estimatedBytes
        if estimatedBytes + RecordBatchLayout.headerSize > limit || hasBlocks {
            (count, bytes) = prefixFitting(limit)
        }
        resentTaken = min(count, resent.count)
        if resentTaken > 0 {
            taken.append(contentsOf: resent[..<resentTaken])
            resent.removeFirst(resentTaken)
        }
        fresh.moveFront(count - resentTaken, appendingTo: &taken, pool: pool)
        estimatedBytes -= bytes
        if !hasUnsent { hasBlocks = false }
        return (taken, bytes)
    }

    /// How many unsent records from the front fit `limit` with a batch header (at least one),
    /// and their estimated size. A block is taken only alone: the records before it, or it.
    private func prefixFitting(_ limit: Int) -> (count: Int, bytes: Int) {
        var size = RecordBatchLayout.headerSize
        var count = 0
        func fits(_ r: borrowing PendingRecord) -> Bool {
            if r.block != nil {
                guard count == 0 else { return false }
                size += Self.estimatedSize(r)
                count = 1
                return false
            }
            let s = Self.estimatedSize(r)
            if count > 0 && size + s > limit { return false }
            size += s
            count += 1
            return true
        }
        var open = true
        for i in resent.indices where open { open = fits(resent[i]) }
        if open { fresh.forEachFromFront(fits) }
        return (count, size - RecordBatchLayout.headerSize)
    }
}
