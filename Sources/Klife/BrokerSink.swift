import KlifeProtocol

/// Records buffered for one partition, oldest first.
///
/// With idempotence, batches that were already sent once (and so own sequence numbers)
/// wait in `sealed`, ordered by base sequence; they go out again with exactly the same
/// boundaries and before any record that was never sent.
struct PartitionBuffer {
    var records: [PendingRecord] = []
    /// Sequenced batches waiting to be resent, by base sequence.
    var sealed: [[PendingRecord]] = []
    /// Upper bound of the encoded size of `records` (deltas counted at their widest).
    var estimatedBytes = 0
    /// Monotonic time the oldest buffered record arrived (linger starts here).
    var firstAppendNanos: UInt64 = 0
    /// Retries wait until this monotonic time.
    var retryNotBefore: UInt64 = 0

    /// Worst-case encoded size of one record: its size with zero deltas plus the widest
    /// timestamp-delta (10) and offset-delta (5) varints minus the one byte each already counted.
    static func estimatedSize(_ r: PendingRecord) -> Int {
        RecordBatchLayout.recordSize(offsetDelta: 0, timestampDelta: 0, keyCount: r.key?.count,
                                     valueCount: r.value?.count, headers: r.headers) + 14
    }

    var recordCount: Int { records.count + sealed.reduce(0) { $0 + $1.count } }

    /// Adds a record: to its sealed batch when it carries a sequence of the current `epoch`,
    /// else to the records never sent (clearing a void sequence).
    mutating func append(_ record: PendingRecord, now: UInt64, epoch: Int16) {
        var record = record
        if record.batchBase >= 0 {
            if record.sequenceEpoch == epoch {
                addSealed(record)
                return
            }
            record.batchBase = -1
            record.sequenceEpoch = -1
        }
        if records.isEmpty { firstAppendNanos = now }
        estimatedBytes += Self.estimatedSize(record)
        records.append(record)
    }

    private mutating func addSealed(_ record: PendingRecord) {
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
        if !unsequenced.isEmpty {
            unsequenced.append(contentsOf: records)
            records = unsequenced
            estimatedBytes = records.reduce(0) { $0 + Self.estimatedSize($1) }
        }
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
        merged.append(contentsOf: records)
        records = merged
        estimatedBytes = records.reduce(0) { $0 + Self.estimatedSize($1) }
    }

    /// Puts back records taken for a batch that could not be sent after all.
    mutating func putBack(_ taken: [PendingRecord]) {
        var merged = taken
        merged.append(contentsOf: records)
        records = merged
        estimatedBytes = records.reduce(0) { $0 + Self.estimatedSize($1) }
    }

    /// Removes and returns the longest prefix whose estimated size fits `limit` (at least one record).
    /// When everything fits, the whole array moves out (no copy) and `spare` takes its place.
    mutating func takePrefix(maxBytes limit: Int, spare: inout [PendingRecord]) -> [PendingRecord] {
        if estimatedBytes + RecordBatchLayout.headerSize <= limit {
            estimatedBytes = 0
            swap(&records, &spare)
            let all = spare
            spare = []
            return all
        }
        var size = RecordBatchLayout.headerSize
        var n = 0
        while n < records.count {
            let s = Self.estimatedSize(records[n])
            if n > 0 && size + s > limit { break }
            size += s
            n += 1
        }
        let prefix = Array(records[..<n])
        records.removeFirst(n)
        estimatedBytes -= size - RecordBatchLayout.headerSize
        return prefix
    }
}

/// Everything buffered for one broker: one Produce request drains every partition it leads.
final class BrokerSink {
    let nodeID: Int32
    /// Buffers by topic, then partition. Topic order is kept stable for request layout.
    var topics: [String: [Int32: PartitionBuffer]] = [:]
    var bufferedRecordCount = 0
    var inFlightRequests = 0
    /// Set while a connect is under way, so the flush loop does not start another.
    var awaitingConnection = false
    /// After a failed connect, wait until this monotonic time before trying again.
    var reconnectNotBefore: UInt64 = 0

    init(nodeID: Int32) { self.nodeID = nodeID }

    func append(_ record: PendingRecord, now: UInt64, epoch: Int16) {
        topics[record.topic, default: [:]][record.partition, default: PartitionBuffer()].append(record, now: now, epoch: epoch)
        bufferedRecordCount += 1
    }

    /// Removes every buffered record (to re-route or fail them), oldest first per partition.
    func removeAll() -> [PendingRecord] {
        var all: [PendingRecord] = []
        all.reserveCapacity(bufferedRecordCount)
        for (_, partitions) in topics {
            for (_, buffer) in partitions {
                for batch in buffer.sealed { all.append(contentsOf: batch) }
                all.append(contentsOf: buffer.records)
            }
        }
        topics.removeAll()
        bufferedRecordCount = 0
        return all
    }

    /// Removes the records of partitions whose leader is no longer this broker.
    func removeMisplaced(isLeader: (String, Int32) -> Bool) -> [PendingRecord] {
        var moved: [PendingRecord] = []
        for (topic, partitions) in topics {
            for (partition, buffer) in partitions where !isLeader(topic, partition) {
                for batch in buffer.sealed { moved.append(contentsOf: batch) }
                moved.append(contentsOf: buffer.records)
                bufferedRecordCount -= buffer.recordCount
                topics[topic]![partition] = nil
            }
            if topics[topic]!.isEmpty { topics[topic] = nil }
        }
        return moved
    }

    /// Fails and removes records whose delivery deadline passed.
    /// - Returns: whether a sequenced record expired (a sequence gap the epoch bump must heal).
    func expire(now: UInt64) -> Bool {
        var sequencedExpired = false
        for (topic, partitions) in topics {
            for (partition, var buffer) in partitions {
                let sealedExpired = buffer.sealed.contains { $0.contains { $0.deadline <= now } }
                guard sealedExpired || buffer.records.contains(where: { $0.deadline <= now }) else { continue }
                var expired = buffer.records.filter { $0.deadline <= now }
                buffer.records.removeAll { $0.deadline <= now }
                if sealedExpired {
                    // A sealed batch goes whole: resending part of it would break its boundaries.
                    let gone = buffer.sealed.filter { $0.contains { $0.deadline <= now } }
                    buffer.sealed.removeAll { $0.contains { $0.deadline <= now } }
                    for batch in gone { expired.append(contentsOf: batch) }
                    sequencedExpired = true
                }
                buffer.estimatedBytes = buffer.records.reduce(0) { $0 + PartitionBuffer.estimatedSize($1) }
                bufferedRecordCount -= expired.count
                topics[topic]![partition] = buffer.recordCount == 0 ? nil : buffer
                for r in expired { r.fail(.timedOut("delivery of record to \(topic)/\(partition)")) }
            }
            if topics[topic]!.isEmpty { topics[topic] = nil }
        }
        return sequencedExpired
    }

    /// After an epoch bump: every sealed batch loses its sequences.
    func unsealAll() {
        for (topic, partitions) in topics {
            for (partition, _) in partitions { topics[topic]![partition]!.unsealAll() }
        }
    }
}
