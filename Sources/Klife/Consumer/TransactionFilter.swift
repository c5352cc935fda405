import KlifeProtocol

/// Which records a fetch may see when producers write in transactions.
public enum IsolationLevel: Int8, Sendable {
    /// Every record in the log up to the high watermark, including those of open and aborted
    /// transactions (control records, the commit/abort markers, are still dropped).
    case readUncommitted = 0
    /// Only records of committed transactions and non-transactional records, and nothing at or
    /// after the last stable offset (the first offset of the oldest still-open transaction).
    case readCommitted = 1
}

/// The type of a transaction control record (the marker a coordinator writes at commit/abort).
enum ControlRecordType: Int16 {
    case abort = 0
    case commit = 1

    /// Reads the control record key: version INT16, type INT16 (big-endian). `nil` when the key is
    /// too short or the type is unknown.
    init?<Key: Collection<UInt8>>(key: Key?) {
        guard let key, key.count >= 4 else { return nil }
        let bytes = key.prefix(4).map { $0 }
        let type = Int16(bitPattern: UInt16(bytes[2]) << 8 | UInt16(bytes[3]))
        self.init(rawValue: type)
    }
}

/// Applies Kafka's visibility rules (the Java consumer's `CompletedFetch` logic) to the batches
/// of one partition's fetch answer: with read committed, batches of aborted transactions are
/// skipped (from the broker's aborted-transaction list, or from an ABORT marker of the same
/// producer later in the answer), control batches are always dropped, and nothing at or after
/// the last stable offset is returned.
///
/// When the aborted-transaction list is empty, a transactional batch whose marker is not in
/// the answer is *undecided*: some brokers (Tansu 0.6) never fill the list, so "not listed"
/// cannot be read as "committed". The filter stops before such a batch (``Output/undecidedAt``)
/// and the reader decides it from the log (the marker comes later), never guessing.
struct TransactionFilter {
    /// Where the visible records are, and the offset to fetch next.
    struct Output {
        /// The records visible at the isolation level, at or after the requested offset, in
        /// order: for each batch index, the range of its records. Positions rather than
        /// records, so the caller can move them out of the batches instead of copying.
        var visible: [(batch: Int, records: Range<Int>)]
        /// One past the last batch examined (returned or skipped), never below the requested
        /// offset and, for read committed, never beyond the last stable offset.
        var nextOffset: Int64
        /// The base offset of the first transactional batch left undecided (its marker was not
        /// in the answer and the broker sent no aborted-transaction list); the output ends before it.
        var undecidedAt: Int64?

        /// The visible records of `batches` (the batches given to `apply`), copied.
        func records(in batches: [DecodedBatch]) -> [DecodedRecord] {
            visible.flatMap { batches[$0.batch].records[$0.records] }
        }
    }

    let isolation: IsolationLevel
    /// The broker's last stable offset; negative when the broker did not say.
    let lastStableOffset: Int64
    /// Aborted transactions overlapping the answer (only sent for read committed).
    let abortedTransactions: [FetchResponse.AbortedTransaction]

    /// Filters `batches` (in offset order) for a fetch that started at `offset`.
    func apply<Batches: FetchedBatches>(_ batches: Batches, from offset: Int64) -> Output {
        var visible: [(batch: Int, records: Range<Int>)] = []
        var next = offset
        // Aborted transactions not yet reached, oldest first; producers whose aborted
        // transaction has started and whose ABORT marker has not been seen yet.
        var pending = abortedTransactions.sorted { $0.firstOffset < $1.firstOffset }[...]
        var abortedProducers: Set<Int64> = []
        let committedOnly = isolation == .readCommitted
        let stable = committedOnly && lastStableOffset >= 0 ? lastStableOffset : Int64.max

        // For each batch, the outcome of the next marker its producer wrote later in this answer
        // (a marker closes the producer's transaction, so it decides every batch before it).
        var decided: [ControlRecordType?] = Array(repeating: nil, count: batches.batchCount)
        if committedOnly {
            var nextMarker: [Int64: ControlRecordType] = [:]
            for i in (0..<batches.batchCount).reversed() {
                let header = batches.header(at: i)
                guard header.producerID >= 0 else { continue }
                if header.isControl {
                    if let type = batches.controlType(at: i) { nextMarker[header.producerID] = type }
                } else {
                    decided[i] = nextMarker[header.producerID]
                }
            }
        }

        // Without the broker's list, only a marker decides a transaction.
        let markersOnly = committedOnly && abortedTransactions.isEmpty
        var undecidedAt: Int64?
        for i in 0..<batches.batchCount {
            let header = batches.header(at: i)
            // Past the last stable offset: not decided yet, so neither returned nor skipped.
            if header.baseOffset >= stable { break }
            if markersOnly && header.producerID >= 0 && header.isTransactional && !header.isControl && decided[i] == nil
                && header.lastOffset >= offset {
                undecidedAt = header.baseOffset
                break
            }
            next = max(next, header.lastOffset &+ 1)
            if committedOnly && header.producerID >= 0 {
                while let first = pending.first, first.firstOffset <= header.lastOffset {
                    abortedProducers.insert(first.producerID)
                    pending.removeFirst()
                }
                if header.isControl {
                    if batches.controlType(at: i) == .abort {
                        abortedProducers.remove(header.producerID)
                    }
                } else if header.isTransactional {
                    // Kafka's rule uses the broker's aborted-transaction list; the marker seen later
                    // in the same answer, when there is one, is the same fact read from the log
                    // (and covers brokers that leave the list empty, e.g. Tansu 0.6).
                    switch decided[i] {
                    case .abort?: continue
                    case .commit?: break
                    case nil: if abortedProducers.contains(header.producerID) { continue }
                    }
                }
            }
            if header.isControl { continue }
            let count = batches.recordCount(at: i)
            var start = 0
            while start < count && batches.recordOffset(batch: i, record: start) < offset { start += 1 }
            var end = start
            while end < count && batches.recordOffset(batch: i, record: end) < stable { end += 1 }
            if start < end { visible.append((i, start..<end)) }
        }
        return Output(visible: visible, nextOffset: min(next, max(stable, offset)), undecidedAt: undecidedAt)
    }
}

/// What ``TransactionFilter`` reads of fetched batches: headers, record offsets and the type of
/// a control batch's marker.
protocol FetchedBatches {
    /// Number of batches.
    var batchCount: Int { get }
    /// Header of batch `i`.
    func header(at i: Int) -> RecordBatchHeader
    /// Records in batch `i`.
    func recordCount(at i: Int) -> Int
    /// Offset of a batch's record.
    func recordOffset(batch: Int, record: Int) -> Int64
    /// COMMIT or ABORT, read from the key of a control batch's first record.
    func controlType(at i: Int) -> ControlRecordType?
}

extension RecordIndex: FetchedBatches {
    var batchCount: Int { batches.count }
    func header(at i: Int) -> RecordBatchHeader { batches[i].header }
    func recordCount(at i: Int) -> Int { batches[i].records.count }
    func recordOffset(batch: Int, record: Int) -> Int64 { slots[batches[batch].records.lowerBound + record].offset }
    func controlType(at i: Int) -> ControlRecordType? {
        let records = batches[i].records
        return records.isEmpty ? nil : ControlRecordType(key: key(of: slots[records.lowerBound]))
    }
}

extension Array: FetchedBatches where Element == DecodedBatch {
    var batchCount: Int { count }
    func header(at i: Int) -> RecordBatchHeader { self[i].header }
    func recordCount(at i: Int) -> Int { self[i].records.count }
    func recordOffset(batch: Int, record: Int) -> Int64 { self[batch].records[record].offset }
    func controlType(at i: Int) -> ControlRecordType? { ControlRecordType(key: self[i].records.first?.key) }
}
