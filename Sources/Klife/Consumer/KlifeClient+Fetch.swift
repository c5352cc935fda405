import KlifeProtocol

/// What one fetch of one partition returned.
public struct FetchResult: Sendable {
    /// Records at or after the requested offset, in offset order (control records removed; with
    /// ``IsolationLevel/readCommitted`` also records of aborted transactions and any at or after
    /// ``lastStableOffset``).
    public var records: ConsumerRecords
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
    ///   - maxWait: How long the broker may wait for data before answering empty. An empty answer
    ///     although records exist before the end (some brokers answer so when the wait runs out
    ///     while they read) is asked again with a longer wait, up to a second.
    ///   - isolation: ``IsolationLevel/readUncommitted`` (default) returns every data record up to the
    ///     high watermark; ``IsolationLevel/readCommitted`` hides aborted transactions and stops at
    ///     the last stable offset.
    /// - Throws: ``KlifeError`` — `unknownTopicOrPartition`, `brokerError` (e.g. `OFFSET_OUT_OF_RANGE`),
    ///   `malformedResponse` when the records fail their CRC.
    public func fetch(topic: String, partition: Int32, offset: Int64, maxBytes: Int32 = 1 << 20,
                      maxWait: Duration = .milliseconds(100),
                      isolation: IsolationLevel = .readUncommitted) async throws(KlifeError) -> FetchResult {
        var maxBytes = maxBytes
        var wait = maxWait
        var longerWaits = 0
        while true {
            let page = try await fetchOnce(topic: topic, partition: partition, offset: offset, maxBytes: maxBytes, maxWait: wait,
                                           isolation: isolation)
            if page.needsLargerLimit {
                // Only the first batch was there and it did not fit (brokers before KIP-74): ask for more.
                guard maxBytes < Int32(clamping: configuration.maxResponseBytes / 2) else { return page.result }
                maxBytes = maxBytes * 2
                continue
            }
            // Nothing moved although there is data to read before the end: some brokers (Tansu)
            // answer empty when `maxWait` runs out while they read a long log. Ask again with a
            // longer wait (at most three times, up to a second) so a reader always progresses.
            let result = page.result
            let end = isolation == .readCommitted && result.lastStableOffset >= 0 ? result.lastStableOffset : result.highWatermark
            guard result.records.isEmpty, result.nextOffset == offset, offset < end, longerWaits < 3 else { return result }
            longerWaits += 1
            wait = min(max(wait * 4, .milliseconds(50)), .seconds(1))
        }
    }

    private func fetchOnce(topic: String, partition: Int32, offset: Int64, maxBytes: Int32,
                           maxWait: Duration, isolation: IsolationLevel) async throws(KlifeError) -> (result: FetchResult, needsLargerLimit: Bool) {
        guard let answer = try await fetchPartition(topic: topic, partition: partition, offset: offset, maxBytes: maxBytes,
                                                     maxWait: maxWait, isolation: isolation) else {
            // Some brokers leave out a partition that has nothing to return (seen with maxWait 0):
            // that is an empty page, not a protocol error.
            return (FetchResult(records: .empty(TopicPartition(topic: topic, partition: partition)), highWatermark: -1, logStartOffset: -1, nextOffset: offset), false)
        }
        let (p, node) = answer
        let filter = TransactionFilter(isolation: isolation, lastStableOffset: p.lastStableOffset,
                                       abortedTransactions: p.abortedTransactions ?? [])
        let decoded = try FetchDecoding.index(p.recordBlock, broker: "node \(node)", maxUncompressedBytes: configuration.maxResponseBytes)
        let output = filter.apply(decoded, from: offset)
        let result = FetchResult(records: FetchDecoding.visibleRecords(decoded, output, topic: topic, partition: partition),
                                 highWatermark: p.highWatermark, logStartOffset: p.logStartOffset,
                                 nextOffset: output.nextOffset, lastStableOffset: p.lastStableOffset)
        if isolation == .readCommitted && result.nextOffset == offset && offset < p.lastStableOffset
            && (output.undecidedAt != nil || decoded.batches.isEmpty && !decoded.truncatedTail) {
            // Below the last stable offset every transaction is decided, yet the answer moved
            // nothing: its first transaction's marker is not in it and the broker sent no
            // aborted-transaction list, or (seen from Tansu) it held no bytes at all. Decide
            // from the log rather than wait for the broker forever.
            let scanned = try await readCommittedFromLog(topic: topic, partition: partition, offset: offset, maxBytes: maxBytes,
                                                         maxWait: maxWait, stable: p.lastStableOffset)
            return (scanned, false)
        }
        return (result, decoded.batches.isEmpty && decoded.truncatedTail)
    }

    /// One Fetch round trip for one partition at its leader; `nil` when the answer left the
    /// partition out. Partition errors throw (and refresh metadata when leadership moved).
    private func fetchPartition(topic: String, partition: Int32, offset: Int64, maxBytes: Int32, maxWait: Duration,
                                isolation: IsolationLevel) async throws(KlifeError) -> (FetchResponse.Partition, node: Int32)? {
        let node = try await leader(topic: topic, partition: partition)
        let topicID = metadataStore.snapshot.metadata.topics[topic]?.topicID ?? .zero
        let request = FetchRequest(
            maxWaitMs: maxWait.int32Milliseconds, minBytes: 1, maxBytes: maxBytes, isolationLevel: isolation.rawValue,
            topics: [.init(name: topic, topicID: topicID,
                           partitions: [.init(partition: partition, fetchOffset: offset, partitionMaxBytes: maxBytes)])])
        // On the fetch connection: a broker may hold a fetch up to maxWait, and a produce
        // connection answers in order.
        let response = try await roundTrip(request, node: node, purpose: .fetch)
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
                return (p, node)
            }
        }
        return nil
    }

    /// Read committed, decided on the client: reads the log from `offset` at read_uncommitted
    /// and reads on (at most 1,024 answers, never past the high watermark) until the COMMIT or
    /// ABORT marker of every transaction with records in the first answer was seen, then keeps
    /// what the markers say is visible below the last stable offset `stable`. Used when a
    /// broker's read_committed answer moves nothing below its own last stable offset, so a
    /// reader always makes progress whatever the broker returns per fetch.
    private func readCommittedFromLog(topic: String, partition: Int32, offset: Int64, maxBytes: Int32, maxWait: Duration,
                                      stable: Int64) async throws(KlifeError) -> FetchResult {
        var read = RecordIndex.empty
        var position = offset
        var highWatermark: Int64 = -1
        var logStart: Int64 = -1
        var firstAnswerEnd = 0
        for round in 0..<1024 {
            guard let answer = try await fetchPartition(topic: topic, partition: partition, offset: position, maxBytes: maxBytes,
                                                            maxWait: maxWait, isolation: .readUncommitted) else { break }
            let (p, node) = answer
            highWatermark = p.highWatermark
            logStart = p.logStartOffset
            let decoded = try FetchDecoding.index(p.recordBlock, broker: "node \(node)", maxUncompressedBytes: configuration.maxResponseBytes)
            guard let last = decoded.batches.last else { break }
            read.append(decoded)
            if round == 0 { firstAnswerEnd = read.batches.count }
            position = last.header.lastOffset &+ 1
            if position >= highWatermark || Self.firstUndecided(read.batches[..<firstAnswerEnd], markersIn: read.batches) == nil { break }
        }
        let batches = read.batches
        // Only the first answer's batches are returned; what was read beyond them served to decide them.
        var returned = Array(batches[..<firstAnswerEnd])
        // A transaction whose marker was not found even so stays invisible, and the page ends before it.
        if let undecided = Self.firstUndecided(returned[...], markersIn: batches) { returned.removeSubrange(undecided...) }
        let markers = batches[firstAnswerEnd...].filter(\.header.isControl)
        let filter = TransactionFilter(isolation: .readCommitted, lastStableOffset: stable, abortedTransactions: [])
        read.batches = returned + markers
        var output = filter.apply(read, from: offset)
        // The markers appended after the returned batches only decide them: the position stays
        // at the end of what is returned.
        output.nextOffset = min(output.nextOffset, returned.last.map { $0.header.lastOffset &+ 1 } ?? offset)
        return FetchResult(records: FetchDecoding.visibleRecords(read, output, topic: topic, partition: partition),
                           highWatermark: highWatermark, logStartOffset: logStart, nextOffset: max(output.nextOffset, offset),
                           lastStableOffset: stable)
    }

    /// The index of the first transactional data batch of `batches` with no COMMIT/ABORT marker of
    /// its producer after it in `all` (a marker after it exists exactly when the producer's last
    /// marker is after it).
    private static func firstUndecided(_ batches: ArraySlice<IndexedBatch>, markersIn all: [IndexedBatch]) -> Int? {
        var lastMarker: [Int64: Int64] = [:]
        for b in all where b.header.isControl && b.header.producerID >= 0 {
            lastMarker[b.header.producerID] = max(lastMarker[b.header.producerID] ?? -1, b.header.baseOffset)
        }
        return batches.firstIndex { b in
            b.header.isTransactional && !b.header.isControl && b.header.producerID >= 0
                && (lastMarker[b.header.producerID] ?? -1) < b.header.baseOffset
        }
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
}

