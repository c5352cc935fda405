import KlifeProtocol

/// What one fetch of one partition returned.
public struct FetchResult: Sendable {
    /// Records at or after the requested offset, in offset order (control records removed; with
    /// ``IsolationLevel/readCommitted`` also records of aborted transactions and any at or after
    /// ``lastStableOffset``).
    public var records: [ConsumerRecord]
    /// The partition's high watermark: the offset the next produced record will get
    /// (-1 when the broker left the partition out of an empty answer).
    public var highWatermark: Int64
    /// The first offset still in the log.
    public var logStartOffset: Int64
    /// The offset to ask for next: one past the last batch returned or skipped (control
    /// markers, aborted transactions), or the requested offset when there was none.
    /// With read committed it never goes beyond ``lastStableOffset``.
    public var nextOffset: Int64
    /// The partition's last stable offset: below it every transaction is decided (committed or
    /// aborted). Read committed sees nothing at or after it; equal to ``highWatermark`` when no
    /// transaction is open. -1 when the broker did not say.
    public var lastStableOffset: Int64 = -1
}

/// Reading records and offsets.
extension KlifeClient {
    /// Reads records of one partition starting at `offset`.
    ///
    /// Returns what the leader has now, waiting at most `maxWait` for at least one byte.
    /// - Parameters:
    ///   - topic: Topic to read.
    ///   - partition: Partition index.
    ///   - offset: First offset wanted.
    ///   - maxBytes: Soft size limit of the answer (the broker still returns at least one batch).
    ///   - maxWait: How long the broker may wait for data before answering empty.
    ///   - isolation: ``IsolationLevel/readUncommitted`` (default) returns every data record up to the
    ///     high watermark; ``IsolationLevel/readCommitted`` hides aborted transactions and stops at
    ///     the last stable offset.
    /// - Throws: ``KlifeError`` — `unknownTopicOrPartition`, `brokerError` (e.g. `OFFSET_OUT_OF_RANGE`),
    ///   `malformedResponse` when the records fail their CRC.
    public func fetch(topic: String, partition: Int32, offset: Int64, maxBytes: Int32 = 1 << 20,
                      maxWait: Duration = .milliseconds(100),
                      isolation: IsolationLevel = .readUncommitted) async throws(KlifeError) -> FetchResult {
        var maxBytes = maxBytes
        while true {
            let page = try await fetchOnce(topic: topic, partition: partition, offset: offset, maxBytes: maxBytes, maxWait: maxWait,
                                           isolation: isolation)
            // Only the first batch was there and it did not fit (brokers before KIP-74): ask for more.
            guard page.needsLargerLimit, maxBytes < Int32(clamping: configuration.maxResponseBytes / 2) else { return page.result }
            maxBytes = maxBytes * 2
        }
    }

    private func fetchOnce(topic: String, partition: Int32, offset: Int64, maxBytes: Int32,
                           maxWait: Duration, isolation: IsolationLevel) async throws(KlifeError) -> (result: FetchResult, needsLargerLimit: Bool) {
        let node = try await leader(topic: topic, partition: partition)
        let topicID = metadataStore.snapshot.metadata.topics[topic]?.topicID ?? .zero
        let request = FetchRequest(
            maxWaitMs: maxWait.int32Milliseconds, minBytes: 1, maxBytes: maxBytes, isolationLevel: isolation.rawValue,
            topics: [.init(name: topic, topicID: topicID,
                           partitions: [.init(partition: partition, fetchOffset: offset, partitionMaxBytes: maxBytes)])])
        let response = try await roundTrip(request, node: node)
        if response.errorCode != 0 {
            throw .broker(KafkaErrorCode(rawValue: response.errorCode), "fetch \(topic)/\(partition)")
        }
        for t in response.responses where t.name == topic || (t.topicID == topicID && topicID != .zero) {
            for p in t.partitions where p.partitionIndex == partition {
                let code = KafkaErrorCode(rawValue: p.errorCode)
                if code != .none {
                    if code == .notLeaderOrFollower || code == .unknownTopicOrPartition { requestMetadataRefresh(topic: topic) }
                    throw .broker(code, "fetch \(topic)/\(partition) at offset \(offset)")
                }
                let filter = TransactionFilter(isolation: isolation, lastStableOffset: p.lastStableOffset,
                                               abortedTransactions: p.abortedTransactions ?? [])
                let (records, nextOffset, truncatedOnly) = try decodeRecords(p.records, topic: topic, partition: partition,
                                                                             from: offset, filter: filter, broker: "node \(node)")
                let result = FetchResult(records: records, highWatermark: p.highWatermark, logStartOffset: p.logStartOffset,
                                         nextOffset: nextOffset, lastStableOffset: p.lastStableOffset)
                return (result, truncatedOnly)
            }
        }
        // Some brokers leave out a partition that has nothing to return (seen with maxWait 0):
        // that is an empty page, not a protocol error.
        return (FetchResult(records: [], highWatermark: -1, logStartOffset: -1, nextOffset: offset), false)
    }

    /// Looks up an offset of one partition: the earliest, the latest (high watermark), or the
    /// first at or after a timestamp.
    ///
    /// With `isolation: .readCommitted`, `.latest` is the last stable offset (the end of what a
    /// read-committed reader can see) instead of the high watermark (ListOffsets v2+).
    /// - Returns: the offset, or -1 when no record has a timestamp at or after the one asked.
    public func listOffset(topic: String, partition: Int32, _ spec: OffsetSpec,
                           isolation: IsolationLevel = .readUncommitted) async throws(KlifeError) -> Int64 {
        let node = try await leader(topic: topic, partition: partition)
        let request = ListOffsetsRequest(isolationLevel: isolation.rawValue, topics: [.init(name: topic, partitions: [
            .init(partitionIndex: partition, timestamp: spec.wireTimestamp),
        ])])
        let response = try await roundTrip(request, node: node)
        for t in response.topics where t.name == topic {
            for p in t.partitions where p.partitionIndex == partition {
                let code = KafkaErrorCode(rawValue: p.errorCode)
                if code != .none { throw .broker(code, "list offsets \(topic)/\(partition)") }
                return p.offset
            }
        }
        throw .malformed(DecodeError(.invalidValue, offset: 0, detail: "partition missing from ListOffsets response"),
                         broker: "node \(node)")
    }

    /// Decodes a partition's record bytes and applies the isolation level's visibility rules.
    /// `truncatedOnly` is true when the bytes held only the start of a batch that did not fit the size limit.
    private func decodeRecords(_ bytes: [UInt8], topic: String, partition: Int32, from offset: Int64,
                               filter: TransactionFilter, broker: String) throws(KlifeError)
        -> (records: [ConsumerRecord], nextOffset: Int64, truncatedOnly: Bool) {
        guard !bytes.isEmpty else { return ([], offset, false) }
        let decoded: RecordBatchDecodeResult
        do {
            decoded = try RecordBatchDecoder.decode(bytes, maxUncompressedBytes: configuration.maxResponseBytes)
        } catch {
            throw .malformed(error, broker: broker)
        }
        let output = filter.apply(decoded.batches, from: offset)
        var batches = decoded.batches
        var records: [ConsumerRecord] = []
        records.reserveCapacity(output.visible.reduce(0) { $0 + $1.records.count })
        for (batch, range) in output.visible {
            // Moved out of the decoded batch (which is dropped next), not copied: a copy would
            // retain and then release the key, value and headers of every record.
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
        return (records, output.nextOffset, decoded.batches.isEmpty && decoded.truncatedTail)
    }
}

private extension DecodedRecord {
    /// Fills the slot of a record moved out of a decoded batch; holds no references.
    static let vacated = DecodedRecord(offset: -1, timestamp: 0, timestampType: .createTime, key: nil, value: nil, headers: [])
}
