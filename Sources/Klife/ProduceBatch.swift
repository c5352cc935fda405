import KlifeProtocol

/// The records of one Produce request, grouped by topic then partition, kept until
/// the broker answers so each record can be completed with its offset.
final class ProduceBatch {
    struct Entry {
        var tp: TopicPartition
        var records: [PendingRecord]
    }

    private(set) var partitions: [Entry] = []
    private var topicCount = 0

    var isEmpty: Bool { partitions.isEmpty }

    /// Adds a partition's records. Entries of one topic must be appended together.
    func append(topic: String, partition: Int32, records: [PendingRecord]) {
        if partitions.last?.tp.topic != topic { topicCount += 1 }
        partitions.append(Entry(tp: TopicPartition(topic: topic, partition: partition), records: records))
    }

    /// Writes the Produce request body: one RecordBatch per partition, encoded once,
    /// straight into the connection's outbound buffer.
    func encode(into writer: inout ByteWriter, version: Int16, acks: Int16, timeoutMs: Int32) {
        var request = ProduceRequestWriter(writer: &writer, version: version, transactionalID: nil, acks: acks,
                                           timeoutMs: timeoutMs, topicCount: topicCount)
        var i = 0
        while i < partitions.count {
            let topic = partitions[i].tp.topic
            var end = i
            while end < partitions.count && partitions[end].tp.topic == topic { end += 1 }
            request.beginTopic(into: &writer, name: topic, partitionCount: end - i)
            for entry in partitions[i..<end] {
                let records = entry.records
                let baseTimestamp = records[0].timestamp
                var size = RecordBatchLayout.headerSize
                for (delta, r) in records.enumerated() {
                    size += RecordBatchLayout.recordSize(offsetDelta: Int32(delta), timestampDelta: r.timestamp - baseTimestamp,
                                                         keyCount: r.key?.count, valueCount: r.value?.count, headers: r.headers)
                }
                request.beginPartition(into: &writer, index: entry.tp.partition, recordsByteCount: size)
                var batch = RecordBatchEncoder(writer: &writer, baseTimestamp: baseTimestamp)
                for r in records {
                    batch.append(into: &writer, timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers)
                }
                batch.finish(into: &writer)
                request.endPartition(into: &writer)
            }
            request.endTopic(into: &writer)
            i = end
        }
        request.finish(into: &writer)
    }

    /// Completes every record with offset -1 (acks = none: the broker sends no answer).
    func completeWithoutOffsets() {
        for entry in partitions {
            for r in entry.records {
                r.complete(.success(RecordMetadata(topic: r.topic, partition: r.partition, offset: -1, timestamp: r.timestamp)))
            }
        }
    }

    /// Empties the record arrays (keeping their memory) and hands them to `pool`, so the
    /// next batches reuse them instead of allocating and faulting in fresh pages.
    func recycle(into pool: inout [[PendingRecord]], maxPooled: Int, maxCapacity: Int) {
        for i in partitions.indices {
            var records: [PendingRecord] = []
            swap(&records, &partitions[i].records)
            guard pool.count < maxPooled, records.capacity <= maxCapacity else { continue }
            records.removeAll(keepingCapacity: true)
            pool.append(records)
        }
    }

    /// Fails every record with `error`.
    func failAll(_ error: KlifeError) {
        for entry in partitions { for r in entry.records { r.fail(error) } }
    }
}
