import KlifeProtocol

/// Records buffered for one partition, oldest first.
///
/// With idempotence, batches that were already sent once (and so own sequence numbers)
/// wait in `sealed`, ordered by base sequence; they go out again with exactly the same
/// boundaries and before any record that was never sent.
struct PartitionBuffer {
    /// Records never sent are `storage[head...]`: taking a batch from the front only moves
    /// `head`, so a deep backlog is never shifted per batch (that was quadratic).
    private var storage: [PendingRecord] = []
    private var head = 0
    /// The records never sent, oldest first.
    var records: ArraySlice<PendingRecord> { storage[head...] }
    /// Whether any record was never sent.
    var hasUnsent: Bool { head < storage.count }
    /// Sequenced batches waiting to be resent, by base sequence.
    var sealed: [[PendingRecord]] = []
    /// Upper bound of the encoded size of `records` (deltas counted at their widest).
    var estimatedBytes = 0
    /// Monotonic time the oldest buffered record arrived (linger starts here).
    var firstAppendNanos: UInt64 = 0
    /// Retries wait until this monotonic time.
    var retryNotBefore: UInt64 = 0
    /// How many records at the front of the unsent ones were sent before under a producer
    /// identity that is gone (an epoch bump came while they waited elsewhere): records like
    /// them arriving later join after these, still in front of every record never sent.
    private var resentAtFront = 0
    /// How many of the records the last ``takePrefix(maxBytes:spare:)`` took were counted in
    /// `resentAtFront` (given back by ``putBack(_:)``).
    private var resentTaken = 0

    /// Worst-case encoded size of one record: its size with zero deltas (`PendingRecord.size`,
    /// computed once when it was produced) plus the widest timestamp-delta (10) and
    /// offset-delta (5) varints minus the one byte each already counted.
    @inline(__always)
    static func estimatedSize(_ r: PendingRecord) -> Int {
        Int(r.size) + 14
    }

    var recordCount: Int { (storage.count - head) + sealed.reduce(0) { $0 + $1.count } }

    /// Replaces the unsent records (slow paths: requeue, expiry, epoch bump).
    private mutating func setUnsent(_ records: [PendingRecord]) {
        storage = records
        head = 0
        resentAtFront = min(resentAtFront, records.count)
        estimatedBytes = records.reduce(0) { $0 + Self.estimatedSize($1) }
    }

    /// Adds a record: to its sealed batch when it carries a sequence of the current `epoch`,
    /// else to the records never sent (clearing a void sequence).
    /// - Returns: the earliest time this record may make the partition sendable: `now` for a
    ///   sealed batch or a full batch, `now + lingerNanos` for the first unsent record,
    ///   `.max` when it joins records already waiting (their time stands).
    mutating func append(_ record: consuming PendingRecord, now: UInt64, epoch: Int16,
                         lingerNanos: UInt64, maxBatchBytes: Int) -> UInt64 {
        var record = record
        if record.batchBase >= 0 || record.sequenceEpoch == PendingRecord.sentUnderVoidIdentity {
            if record.batchBase >= 0 && record.sequenceEpoch == epoch {
                addSealed(consume record)
                return now
            }
            // Sent before under an identity that is gone: it goes before every record never
            // sent (they are newer), after the ones like it that arrived earlier.
            record.batchBase = -1
            record.sequenceEpoch = -1
            if !hasUnsent { firstAppendNanos = now }
            estimatedBytes += Int(record.size) + 14
            storage.insert(consume record, at: head + resentAtFront)
            resentAtFront += 1
            return now
        }
        let first = !hasUnsent
        if first { firstAppendNanos = now }
        estimatedBytes += Int(record.size) + 14
        storage.append(consume record)
        if estimatedBytes >= maxBatchBytes { return now }
        return first ? now &+ lingerNanos : .max
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
        if !unsequenced.isEmpty {
            let front = unsequenced.count
            unsequenced.append(contentsOf: records)
            setUnsent(unsequenced)
            resentAtFront += front
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
        let front = merged.count
        merged.append(contentsOf: records)
        setUnsent(merged)
        resentAtFront += front
    }

    /// Puts back records taken for a batch that could not be sent after all.
    mutating func putBack(_ taken: [PendingRecord]) {
        var merged = taken
        merged.append(contentsOf: records)
        let front = resentAtFront + resentTaken
        setUnsent(merged)
        resentAtFront = min(front, merged.count)
        resentTaken = 0
    }

    /// Removes and returns the unsent records whose deadline passed.
    /// Deadlines grow from front to back (records are kept oldest first), so only a prefix
    /// can have expired: checking the front keeps the periodic sweep O(1) per partition.
    mutating func removeExpiredUnsent(now: UInt64) -> [PendingRecord] {
        guard let first = records.first, first.deadline <= now else { return [] }
        var end = head
        while end < storage.count && storage[end].deadline <= now { end += 1 }
        let expired = Array(storage[head..<end])
        for r in expired { estimatedBytes -= Self.estimatedSize(r) }
        resentAtFront = max(0, resentAtFront - expired.count)
        head = end
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        }
        return expired
    }

    /// Moves `range` of `storage` into a new array without copying the records (a copy
    /// would retain and later release every reference each one holds); the vacated slots
    /// get ``PendingRecord/vacated``, which holds no references, until `head` passes them.
    private mutating func moveOut(_ range: Range<Int>) -> [PendingRecord] {
        let count = range.count
        guard count > 0 else { return [] }
        return storage.withUnsafeMutableBufferPointer { source in
            let start = source.baseAddress! + range.lowerBound
            return [PendingRecord](unsafeUninitializedCapacity: count) { target, initialized in
                target.baseAddress!.moveInitialize(from: start, count: count)
                start.initialize(repeating: .vacated, count: count)
                initialized = count
            }
        }
    }

    /// Empties the buffer, returning its records: sealed batches first (they are older),
    /// then the records never sent. Timing state is reset as for a new buffer.
    mutating func removeAll() -> [PendingRecord] {
        var all: [PendingRecord] = []
        for batch in sealed { all.append(contentsOf: batch) }
        all.append(contentsOf: records)
        self = PartitionBuffer()
        return all
    }

    /// Removes the records whose delivery deadline passed: an expired prefix of the unsent
    /// records, and whole sealed batches holding an expired record (resending part of a
    /// sealed batch would break its boundaries).
    /// - Returns: the removed records, and how many sealed batches they came from.
    mutating func removeExpired(now: UInt64) -> (records: [PendingRecord], sealedBatches: Int) {
        var expired = removeExpiredUnsent(now: now)
        guard sealed.contains(where: { $0.contains { $0.deadline <= now } }) else { return (expired, 0) }
        var batches = 0
        for batch in sealed where batch.contains(where: { $0.deadline <= now }) {
            expired.append(contentsOf: batch)
            batches += 1
        }
        sealed.removeAll { $0.contains { $0.deadline <= now } }
        return (expired, batches)
    }

    /// Removes and returns the longest prefix whose estimated size fits `limit` (at least one
    /// record), with that estimated size. When everything fits, the whole array moves out
    /// (no copy) and `spare` takes its place.
    mutating func takePrefix(maxBytes limit: Int, spare: inout [PendingRecord]) -> (records: [PendingRecord], estimatedBytes: Int) {
        if estimatedBytes + RecordBatchLayout.headerSize <= limit {
            resentTaken = resentAtFront
            resentAtFront = 0
            let bytes = estimatedBytes
            estimatedBytes = 0
            if head == 0 {
                swap(&storage, &spare)
                let all = spare
                spare = []
                return (all, bytes)
            }
            let all = moveOut(head..<storage.count)
            storage.removeAll(keepingCapacity: true)
            head = 0
            return (all, bytes)
        }
        var size = RecordBatchLayout.headerSize
        var end = head
        while end < storage.count {
            let s = Self.estimatedSize(storage[end])
            if end > head && size + s > limit { break }
            size += s
            end += 1
        }
        let prefix = moveOut(head..<end)
        resentTaken = min(resentAtFront, end - head)
        resentAtFront -= resentTaken
        let bytes = size - RecordBatchLayout.headerSize
        head = end
        estimatedBytes -= bytes
        // Compact once the consumed front outweighs the rest: amortized O(1) per record.
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return (prefix, bytes)
    }
}

/// One topic's partition buffers within a sink, indexed by partition number (grown on
/// demand). A class, so a buffer is changed in place through it and the sink can keep the
/// last topic's buffers at hand without hashing the topic name per record.
final class TopicBuffers {
    var partitions: [PartitionBuffer] = []

    /// Makes `partitions[index]` exist.
    @inline(__always)
    func ensure(_ index: Int) {
        if index >= partitions.count {
            partitions.append(contentsOf: repeatElement(PartitionBuffer(), count: index + 1 - partitions.count))
        }
    }
}

/// Everything buffered for one broker: one Produce request drains every partition it leads.
final class BrokerSink {
    let nodeID: Int32
    /// Buffers by topic. Entries are never removed (an emptied buffer stays, empty), so the
    /// one-entry cache below stays valid.
    private(set) var topics: [String: TopicBuffers] = [:]
    /// Topic names in request order (sorted), kept as topics are added.
    private(set) var topicOrder: [String] = []
    private var lastTopic = ""
    private var lastBuffers: TopicBuffers?
    var bufferedRecordCount = 0
    var inFlightRequests = 0
    /// Set while a connect is under way, so the flush loop does not start another.
    var awaitingConnection = false
    /// No partition can become sendable before this monotonic time, so flushing skips the
    /// walk over every buffer until then (with linger, most reactor iterations have nothing
    /// due). Lowered by every change that can make a partition sendable sooner; 0 = look now.
    var nothingDueBefore: UInt64 = 0
    private let lingerNanos: UInt64
    private let maxBatchBytes: Int
    /// After a failed connect, wait until this monotonic time before trying again.
    var reconnectNotBefore: UInt64 = 0

    init(nodeID: Int32, lingerNanos: UInt64, maxBatchBytes: Int) {
        self.nodeID = nodeID
        self.lingerNanos = lingerNanos
        self.maxBatchBytes = maxBatchBytes
    }

    /// The buffers of `topic`, created on first use. Records usually come in runs of one
    /// topic, so the last topic's buffers are kept (comparing the name is far cheaper than
    /// hashing it).
    @inline(__always)
    func buffers(for topic: String) -> TopicBuffers {
        if topic == lastTopic, let cached = lastBuffers { return cached }
        let found: TopicBuffers
        if let existing = topics[topic] {
            found = existing
        } else {
            found = TopicBuffers()
            topics[topic] = found
            topicOrder.insert(topic, at: topicOrder.firstIndex { $0 > topic } ?? topicOrder.count)
        }
        lastTopic = topic
        lastBuffers = found
        return found
    }

    func append(_ record: consuming PendingRecord, now: UInt64, epoch: Int16) {
        let buffers = buffers(for: record.topic)
        let index = Int(record.partition)
        buffers.ensure(index)
        let due = buffers.partitions[index].append(consume record, now: now, epoch: epoch, lingerNanos: lingerNanos,
                                                   maxBatchBytes: maxBatchBytes)
        if due < nothingDueBefore { nothingDueBefore = due }
        bufferedRecordCount += 1
    }

    /// Puts retried records back in front of their partition's buffer (see
    /// ``PartitionBuffer/requeueFront(_:notBefore:epoch:)``).
    func requeueFront(_ records: [PendingRecord], tp: TopicPartition, notBefore: UInt64, epoch: Int16) {
        let buffers = buffers(for: tp.topic)
        let index = Int(tp.partition)
        buffers.ensure(index)
        buffers.partitions[index].requeueFront(records, notBefore: notBefore, epoch: epoch)
        bufferedRecordCount += records.count
        nothingDueBefore = min(nothingDueBefore, notBefore)
    }

    /// Removes every buffered record (to re-route or fail them), oldest first per partition.
    func removeAll() -> [PendingRecord] {
        var all: [PendingRecord] = []
        all.reserveCapacity(bufferedRecordCount)
        for buffers in topics.values {
            for index in buffers.partitions.indices where buffers.partitions[index].recordCount > 0 {
                all.append(contentsOf: buffers.partitions[index].removeAll())
            }
        }
        bufferedRecordCount = 0
        return all
    }

    /// Removes the records of partitions whose leader is no longer this broker.
    func removeMisplaced(isLeader: (String, Int32) -> Bool) -> [PendingRecord] {
        var moved: [PendingRecord] = []
        for (topic, buffers) in topics {
            for index in buffers.partitions.indices where buffers.partitions[index].recordCount > 0 {
                guard !isLeader(topic, Int32(index)) else { continue }
                let records = buffers.partitions[index].removeAll()
                bufferedRecordCount -= records.count
                moved.append(contentsOf: records)
            }
        }
        return moved
    }

    /// Fails and removes records whose delivery deadline passed.
    /// - Returns: the sealed (sequenced) batches dropped, per partition: each leaves a sequence
    ///   gap the epoch bump must heal, and no longer waits to be resent.
    func expire(now: UInt64) -> [TopicPartition: Int] {
        var dropped: [TopicPartition: Int] = [:]
        for (topic, buffers) in topics {
            for index in buffers.partitions.indices where buffers.partitions[index].recordCount > 0 {
                let (expired, sealedBatches) = buffers.partitions[index].removeExpired(now: now)
                if sealedBatches > 0 { dropped[TopicPartition(topic: topic, partition: Int32(index)), default: 0] += sealedBatches }
                bufferedRecordCount -= expired.count
                for r in expired { r.fail(.timedOut("delivery of record to \(topic)/\(index)")) }
            }
        }
        return dropped
    }

    /// After an epoch bump: every sealed batch loses its sequences.
    func unsealAll() {
        nothingDueBefore = 0
        for buffers in topics.values {
            for index in buffers.partitions.indices { buffers.partitions[index].unsealAll() }
        }
    }
}
