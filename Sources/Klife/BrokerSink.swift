import KlifeProtocol

/// Records buffered for one partition, oldest first.
struct PartitionBuffer {
    var records: [PendingRecord] = []
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

    mutating func append(_ record: PendingRecord, now: UInt64) {
        if records.isEmpty { firstAppendNanos = now }
        estimatedBytes += Self.estimatedSize(record)
        records.append(record)
    }

    /// Puts records that must be retried back in front, keeping their order.
    mutating func requeueFront(_ retried: [PendingRecord], notBefore: UInt64) {
        var merged = retried
        merged.append(contentsOf: records)
        records = merged
        estimatedBytes = records.reduce(0) { $0 + Self.estimatedSize($1) }
        firstAppendNanos = 0
        retryNotBefore = notBefore
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

    func append(_ record: PendingRecord, now: UInt64) {
        topics[record.topic, default: [:]][record.partition, default: PartitionBuffer()].append(record, now: now)
        bufferedRecordCount += 1
    }

    /// Removes every buffered record (to re-route or fail them), oldest first per partition.
    func removeAll() -> [PendingRecord] {
        var all: [PendingRecord] = []
        all.reserveCapacity(bufferedRecordCount)
        for (_, partitions) in topics {
            for (_, buffer) in partitions { all.append(contentsOf: buffer.records) }
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
                moved.append(contentsOf: buffer.records)
                bufferedRecordCount -= buffer.records.count
                topics[topic]![partition] = nil
            }
            if topics[topic]!.isEmpty { topics[topic] = nil }
        }
        return moved
    }

    /// Fails and removes records whose delivery deadline passed.
    func expire(now: UInt64) {
        for (topic, partitions) in topics {
            for (partition, var buffer) in partitions {
                guard buffer.records.contains(where: { $0.deadline <= now }) else { continue }
                let expired = buffer.records.filter { $0.deadline <= now }
                buffer.records.removeAll { $0.deadline <= now }
                buffer.estimatedBytes = buffer.records.reduce(0) { $0 + PartitionBuffer.estimatedSize($1) }
                bufferedRecordCount -= expired.count
                topics[topic]![partition] = buffer.records.isEmpty ? nil : buffer
                for r in expired { r.fail(.timedOut("delivery of record to \(topic)/\(partition)")) }
            }
            if topics[topic]!.isEmpty { topics[topic] = nil }
        }
    }
}
