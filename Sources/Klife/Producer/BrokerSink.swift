import KlifeIO
import KlifeProtocol

/// One topic's partition buffers within a sink, indexed by partition number (grown on
/// demand). A class, so a buffer is changed in place through it and the sink can keep the
/// last topic's buffers at hand without hashing the topic name per record.
final class TopicBuffers {
    // `@exclusivity(unchecked)` here and below: one thread owns this object, and the runtime's
    // access checks cost more than the per-record work (docs/DESIGN.md, performance rules).
    @exclusivity(unchecked) var partitions: [PartitionBuffer] = []

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
    @exclusivity(unchecked) private(set) var topics: [String: TopicBuffers] = [:]
    /// Topic names in request order (sorted), kept as topics are added.
    private(set) var topicOrder: [String] = []
    @exclusivity(unchecked) private var lastTopic = ""
    /// `topics[lastTopic]`, lent without a retain on the per-record path.
    @exclusivity(unchecked) private var lastBuffers: Unmanaged<TopicBuffers>?
    /// The handle of `lastTopic` when a record's append set it (`.empty` when `lastBuffers`
    /// was set through a name): records compare their handle, one pointer, with it.
    @exclusivity(unchecked) private var lastHandle = TopicHandle.empty
    @exclusivity(unchecked) var bufferedRecordCount = 0
    @exclusivity(unchecked) var inFlightRequests = 0
    /// Set while a connect is under way, so the flush loop does not start another.
    var awaitingConnection = false
    /// No partition can become sendable before this monotonic time, so flushing skips the
    /// walk over every buffer until then (with linger, most reactor iterations have nothing
    /// due). Lowered by every change that can make a partition sendable sooner; 0 = look now.
    @exclusivity(unchecked) var nothingDueBefore: UInt64 = 0
    private let lingerNanos: UInt64
    private let maxBatchBytes: Int
    /// After a failed connect, wait until this monotonic time before trying again.
    var reconnectNotBefore: UInt64 = 0
    /// The engine's recycled record chunks, which every partition buffer grows from.
    let pool: RecordChunkPool

    init(nodeID: Int32, lingerNanos: UInt64, maxBatchBytes: Int, pool: RecordChunkPool) {
        self.nodeID = nodeID
        self.lingerNanos = lingerNanos
        self.maxBatchBytes = maxBatchBytes
        self.pool = pool
    }

    /// The buffers of `topic`, created on first use. Records usually come in runs of one
    /// topic, so the last topic's buffers are kept (comparing the name is far cheaper than
    /// hashing it).
    func buffers(for topic: String) -> TopicBuffers {
        if topic == lastTopic, let cached = lastBuffers { return cached.takeUnretainedValue() }
        let found: TopicBuffers
        if let existing = topics[topic] {
            found = existing
        } else {
            found = TopicBuffers()
            topics[topic] = found
            topicOrder.insert(topic, at: topicOrder.firstIndex { $0 > topic } ?? topicOrder.count)
        }
        lastTopic = topic
        lastBuffers = Unmanaged.passUnretained(found)
        lastHandle = .empty
        return found
    }

    /// Adds a record to its partition's buffer.
    func append(_ record: PendingRecord, now: UInt64, epoch: Int16) {
        let buffers: Unmanaged<TopicBuffers>
        if record.topic == lastHandle, let cached = lastBuffers {
            buffers = cached
        } else {
            buffers = Unmanaged.passUnretained(self.buffers(for: record.topic.name))
            lastHandle = record.topic
        }
        let index = Int(record.partition)
        let due = buffers._withUnsafeGuaranteedRef { buffers in
            buffers.ensure(index)
            return buffers.partitions[index].append(record, now: now, epoch: epoch,
                                                    lingerNanos: lingerNanos, maxBatchBytes: maxBatchBytes, pool: pool)
        }
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
                all.append(contentsOf: buffers.partitions[index].removeAll(pool: pool))
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
                let records = buffers.partitions[index].removeAll(pool: pool)
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
                let (expired, sealedBatches) = buffers.partitions[index].removeExpired(now: now, pool: pool)
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
