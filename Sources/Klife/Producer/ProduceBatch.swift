import KlifeProtocol

/// How a Produce request's batches are encoded.
struct BatchEncodingOptions {
    var version: Int16
    var acks: Int16
    var timeoutMs: Int32
    var transactionalID: String? = nil
    /// Idempotence: the producer id and epoch from InitProducerId (-1 when not idempotent).
    var producerID: Int64 = -1
    var producerEpoch: Int16 = -1
    var isTransactional = false
    var compression: CompressionCodec = .none
    var compressionLevel: Int32? = nil
}

/// The records of one Produce request, grouped by topic then partition, kept until
/// the broker answers so each record can be completed with its offset.
final class ProduceBatch {
    struct Entry {
        var tp: TopicPartition
        var records: [PendingRecord]
        /// The first record's sequence number (idempotence), -1 when not idempotent.
        var baseSequence: Int32 = -1

        /// The block this entry sends, when it is one (a block always travels alone).
        var block: Unmanaged<ProducerBlock>? { records.count == 1 ? records[0].block : nil }
    }

    private(set) var partitions: [Entry] = []
    private var topicCount = 0

    var isEmpty: Bool { partitions.isEmpty }

    /// Adds a partition's records. Entries of one topic must be appended together.
    func append(topic: String, partition: Int32, records: [PendingRecord], baseSequence: Int32 = -1) {
        if partitions.last?.tp.topic != topic { topicCount += 1 }
        partitions.append(Entry(tp: TopicPartition(topic: topic, partition: partition), records: records,
                                baseSequence: baseSequence))
    }

    /// Writes the Produce request body: one RecordBatch per partition, encoded once,
    /// straight into the connection's outbound buffer. Compressed batches are built in
    /// `scratch` first, because the request needs their compressed size up front.
    func encode(into writer: inout ByteWriter, scratch: inout ByteWriter, options: BatchEncodingOptions) {
        var request = ProduceRequestWriter(writer: &writer, version: options.version, transactionalID: options.transactionalID,
                                           acks: options.acks, timeoutMs: options.timeoutMs, topicCount: topicCount)
        var i = 0
        while i < partitions.count {
            let topic = partitions[i].tp.topic
            var end = i
            while end < partitions.count && partitions[end].tp.topic == topic { end += 1 }
            request.beginTopic(into: &writer, name: topic, partitionCount: end - i)
            for entry in partitions[i..<end] {
                if let block = entry.block {
                    encodeBlock(block, entry: entry, request: &request, into: &writer, options: options)
                } else if options.compression == .none {
                    encodeUncompressed(entry, request: &request, into: &writer, options: options)
                } else {
                    encodeCompressed(entry, request: &request, into: &writer, scratch: &scratch, options: options)
                }
            }
            request.endTopic(into: &writer)
            i = end
        }
        request.finish(into: &writer)
    }

    /// One partition's batch written in place: its exact size is computed first from the
    /// records' zero-delta sizes (flexible versions prefix it with a varint; the records'
    /// bytes are not touched for it), then the records are encoded once, each one's chunk
    /// entry prefetched a few records ahead (written on another core, it is not in this one's
    /// cache).
    private func encodeUncompressed(_ entry: Entry, request: inout ProduceRequestWriter, into writer: inout ByteWriter,
                                    options: BatchEncodingOptions) {
        // Records are read where they lie (iterating the array would copy each ~100-byte record).
        entry.records.withUnsafeBufferPointer { records in
            let baseTimestamp = records[0].timestamp
            var size = RecordBatchLayout.headerSize
            for i in records.indices {
                size &+= RecordBatchLayout.recordSize(zeroDeltaSize: Int(records[i].size), offsetDelta: Int32(truncatingIfNeeded: i),
                                                      timestampDelta: records[i].timestamp - baseTimestamp)
            }
            request.beginPartition(into: &writer, index: entry.tp.partition, recordsByteCount: size)
            var batch = RecordBatchEncoder(writer: &writer, baseTimestamp: baseTimestamp, producerID: options.producerID,
                                           producerEpoch: options.producerEpoch, baseSequence: entry.baseSequence,
                                           isTransactional: options.isTransactional)
            Self.append(records, to: &batch, into: &writer)
            batch.finish(into: &writer)
        }
        request.endPartition(into: &writer)
    }

    /// A block's batch, framed in place with this request's identity and the entry's base
    /// sequence (compressed when that makes it smaller), then copied into the request.
    private func encodeBlock(_ block: Unmanaged<ProducerBlock>, entry: Entry, request: inout ProduceRequestWriter,
                             into writer: inout ByteWriter, options: BatchEncodingOptions) {
        block._withUnsafeGuaranteedRef { block in
            let codec = Self.effectiveCodec(options.compression, version: options.version)
            let bytes = block.framed(producerID: options.producerID, producerEpoch: options.producerEpoch,
                                     baseSequence: entry.baseSequence, isTransactional: options.isTransactional,
                                     codec: codec, level: options.compressionLevel)
            request.beginPartition(into: &writer, index: entry.tp.partition, recordsByteCount: bytes.count)
            writer.writeBytes(bytes)
        }
        request.endPartition(into: &writer)
    }

    /// Appends `records` in order, borrowed where they lie, each one's chunk entry prefetched
    /// ``PendingRecord/prefetchDistance`` records ahead.
    @inline(__always)
    static func append(_ records: UnsafeBufferPointer<PendingRecord>, to batch: inout RecordBatchEncoder,
                       into writer: inout ByteWriter) {
        PendingRecord.forEach(in: records, prefetching: { $0.pointee.prefetchPayload() }) { _, record in
            batch.append(into: &writer, record: record)
        }
    }

    /// Completes every record with offset -1 (acks = none: the broker sends no answer).
    func completeWithoutOffsets() {
        for entry in partitions {
            let topic = entry.tp.topic
            if entry.block != nil {
                entry.records[0].complete(.success(RecordMetadata(topic: topic, partition: entry.tp.partition, offset: -1,
                                                                  timestamp: -1)))
                continue
            }
            // Read where they lie (no copy of each record); one counter update.
            entry.records.withUnsafeBufferPointer { records in
                guard let base = records.baseAddress, let tracker = records.first?.tracker else { return }
                var bytes = 0
                for i in records.indices {
                    bytes += Int(records[i].size)
                    PendingRecord.deliver(at: base + i, .success(RecordMetadata(topic: topic, partition: entry.tp.partition,
                                                                                offset: -1, timestamp: records[i].timestamp)))
                }
                PendingRecord.releasePayloads(records)
                tracker.completed(count: records.count, bytes: bytes, success: true)
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
