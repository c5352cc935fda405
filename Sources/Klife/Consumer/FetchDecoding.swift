import KlifeProtocol

/// Turning a Fetch answer's record bytes into records, shared by ``KlifeClient/fetch(topic:partition:offset:maxBytes:maxWait:isolation:)``
/// and the fetch engine.
enum FetchDecoding {
    /// Decodes a partition's record bytes (CRC checked, decompressed at most
    /// `maxUncompressedBytes`). A batch cut off at the end of the answer is reported, not an error.
    static func decodeBatches(_ bytes: [UInt8], broker: String, maxUncompressedBytes: Int) throws(KlifeError) -> RecordBatchDecodeResult {
        guard !bytes.isEmpty else { return RecordBatchDecodeResult(batches: [], truncatedTail: false) }
        do {
            return try RecordBatchDecoder.decode(bytes, maxUncompressedBytes: maxUncompressedBytes)
        } catch {
            throw .malformed(error, broker: broker)
        }
    }

    /// The records `output` says are visible, moved out of `batches` (which are dropped next)
    /// instead of copied: a copy would retain and then release the key, value and headers of
    /// every record.
    static func visibleRecords(_ batches: [DecodedBatch], _ output: TransactionFilter.Output, topic: String,
                               partition: Int32) -> [ConsumerRecord] {
        var batches = batches
        var records: [ConsumerRecord] = []
        records.reserveCapacity(output.visible.reduce(0) { $0 + $1.records.count })
        for (batch, range) in output.visible {
            batches[batch].records.withUnsafeMutableBufferPointer { decoded in
                for i in range {
                    let r = (decoded.baseAddress! + i).move()
                    (decoded.baseAddress! + i).initialize(to: .vacated)
                    records.append(ConsumerRecord(topic: topic, partition: partition, offset: r.offset, timestamp: r.timestamp,
                                                  timestampType: r.timestampType, key: r.key, value: r.value,
                                                  headers: r.headers))
                }
            }
        }
        return records
    }
}

private extension DecodedRecord {
    /// Fills the slot of a record moved out of a decoded batch; holds no references.
    static let vacated = DecodedRecord(offset: -1, timestamp: 0, timestampType: .createTime, key: nil, value: nil, headers: [])
}
