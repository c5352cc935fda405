import Glibc
import KlifeProtocol

/// The records every partition holds for Fetch, encoded once at start-up as RecordBatch v2
/// bytes with valid CRC-32C: offsets `0..<recordCount` in batches of `batchRecords` records.
///
/// All partitions hold the same offsets, so one log serves them all. Every full batch is
/// the same template (the CRC does not cover BaseOffset), copied with its own BaseOffset;
/// batch `i` starts at byte `i * fullBatchBytes`, so finding an offset is arithmetic.
/// The bytes are written once and then only read, from any connection thread.
final class PreparedRecordSet: @unchecked Sendable {
    /// Records per partition.
    let recordCount: Int64
    /// Records per batch (the last batch may hold fewer).
    let batchRecords: Int64
    /// Size of one full batch in bytes.
    let fullBatchBytes: Int
    /// The whole log; never freed (it lives as long as the process).
    private let log: UnsafeRawBufferPointer

    /// Uncompressed size the default batch aims for: about the 1 MiB batch limit both
    /// producers use in `compare.sh`, so consumers see batches like those of a filled topic.
    static let defaultBatchBytes = 1_000_000
    /// Bytes a record takes besides its value (length, attributes, deltas, null key, no headers).
    static let recordOverhead = 10

    /// Encodes `recordCount` records of `valueSize`-byte values (no key, no headers),
    /// compressed with `compression` batch by batch; `batchRecords` records per batch, or
    /// about ``defaultBatchBytes`` of records when `nil`.
    init(recordCount: Int64, valueSize: Int, compression: CompressionCodec, batchRecords: Int?) throws(CompressionError) {
        let perBatch = Int64(max(1, batchRecords ?? Self.defaultBatchBytes / (valueSize + Self.recordOverhead)))
        self.recordCount = recordCount
        self.batchRecords = perBatch
        guard recordCount > 0 else {
            fullBatchBytes = 0
            log = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let timestamp = Self.nowMilliseconds()
        let fullCount = recordCount / perBatch
        let tailCount = recordCount % perBatch
        let full = fullCount > 0
            ? try Self.encodeBatch(records: Int(perBatch), valueSize: valueSize, compression: compression, timestamp: timestamp)
            : []
        let tail = tailCount > 0
            ? try Self.encodeBatch(records: Int(tailCount), valueSize: valueSize, compression: compression, timestamp: timestamp)
            : []
        fullBatchBytes = full.count
        let total = Int(fullCount) * full.count + tail.count
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 8)
        var position = 0
        func place(_ batch: [UInt8], baseOffset: Int64) {
            batch.withUnsafeBytes { bytes.baseAddress!.advanced(by: position).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            // BaseOffset is the batch's first 8 bytes, big-endian; the CRC does not cover it.
            bytes.baseAddress!.advanced(by: position).storeBytes(of: baseOffset.bigEndian, as: Int64.self)
            position += batch.count
        }
        for index in 0..<fullCount { place(full, baseOffset: index * perBatch) }
        if tailCount > 0 { place(tail, baseOffset: fullCount * perBatch) }
        log = UnsafeRawBufferPointer(bytes)
    }

    /// Total bytes of the log (one partition).
    var byteCount: Int { log.count }

    /// Whole batches starting with the one that holds `offset`: as many as fit in `maxBytes`,
    /// or exactly one when none fits and `atLeastOne` (Kafka returns a first batch larger than
    /// the limit so that a consumer can always advance). Empty when `offset` is past the set.
    func batches(from offset: Int64, maxBytes: Int, atLeastOne: Bool) -> UnsafeRawBufferPointer {
        guard offset >= 0, offset < recordCount, fullBatchBytes > 0 || log.count > 0 else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        let batchIndex = offset / batchRecords
        let start = Int(batchIndex) * fullBatchBytes
        let stride = fullBatchBytes > 0 ? fullBatchBytes : log.count
        var wanted = max(maxBytes, 0) / stride
        if wanted == 0 {
            guard atLeastOne else { return UnsafeRawBufferPointer(start: nil, count: 0) }
            wanted = 1
        }
        let end = min(start + wanted * stride, log.count)
        return UnsafeRawBufferPointer(rebasing: log[start..<end])
    }

    /// One batch of `records` records with values like `klife bench produce` writes: the
    /// record's index in the first 8 bytes, then a printable a–z filler.
    private static func encodeBatch(records: Int, valueSize: Int, compression: CompressionCodec,
                                    timestamp: Int64) throws(CompressionError) -> [UInt8] {
        var value = (0..<valueSize).map { UInt8(ascii: "a") + UInt8($0 % 26) }
        var writer = ByteWriter(capacity: records * (valueSize + 16) + 128)
        var encoder = RecordBatchEncoder(writer: &writer, partitionLeaderEpoch: 0, baseTimestamp: timestamp)
        for index in 0..<records {
            let prefix = min(8, valueSize)
            withUnsafeBytes(of: UInt64(index).littleEndian) { indexBytes in
                for i in 0..<prefix { value[i] = indexBytes[i] }
            }
            value.withUnsafeBytes { encoder.append(into: &writer, timestamp: timestamp, key: nil, value: $0, headers: []) }
        }
        guard compression != .none else {
            _ = encoder.finish(into: &writer)
            return writer.bytes
        }
        let range = try encoder.finishCompressed(into: &writer, codec: compression, level: nil)
        return writer.withUnsafeBytes { [UInt8]($0[range]) }
    }

    private static func nowMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
