import CKlifeShim

/// The fixed 61-byte header of a RecordBatch v2, as read from the wire.
public struct RecordBatchHeader: Sendable, Equatable {
    /// Offset of the first record.
    public var baseOffset: Int64
    /// Bytes after the Length field (batch size - 12).
    public var length: Int32
    /// Leader epoch stamped by the broker; -1 from producers.
    public var partitionLeaderEpoch: Int32
    /// Always 2 for this format.
    public var magic: Int8
    /// CRC-32C of Attributes through the end of the batch.
    public var crc: UInt32
    /// Raw attribute bits (see ``RecordBatchAttributes``).
    public var attributes: Int16
    /// Offset delta of the last record (survives compaction).
    public var lastOffsetDelta: Int32
    /// Timestamp the record deltas are relative to (the delete horizon when bit 6 is set).
    public var baseTimestamp: Int64
    /// Largest record timestamp, or the broker's append time for log-append-time batches.
    public var maxTimestamp: Int64
    /// Idempotent/transactional producer id, -1 when none.
    public var producerID: Int64
    /// Producer epoch, -1 when none.
    public var producerEpoch: Int16
    /// Sequence number of the first record, -1 when none.
    public var baseSequence: Int32
    /// Number of records the batch declares.
    public var recordCount: Int32

    /// Creates a header from its fields.
    public init(
        baseOffset: Int64, length: Int32, partitionLeaderEpoch: Int32, magic: Int8, crc: UInt32, attributes: Int16,
        lastOffsetDelta: Int32, baseTimestamp: Int64, maxTimestamp: Int64, producerID: Int64, producerEpoch: Int16,
        baseSequence: Int32, recordCount: Int32
    ) {
        self.baseOffset = baseOffset
        self.length = length
        self.partitionLeaderEpoch = partitionLeaderEpoch
        self.magic = magic
        self.crc = crc
        self.attributes = attributes
        self.lastOffsetDelta = lastOffsetDelta
        self.baseTimestamp = baseTimestamp
        self.maxTimestamp = maxTimestamp
        self.producerID = producerID
        self.producerEpoch = producerEpoch
        self.baseSequence = baseSequence
        self.recordCount = recordCount
    }

    /// The codec in bits 0-2, or `nil` for an unknown one (5-7).
    @inlinable public var compression: CompressionCodec? {
        CompressionCodec(rawValue: attributes & RecordBatchAttributes.compressionMask)
    }
    /// Bit 3: whether timestamps are the broker's append time.
    @inlinable public var timestampType: TimestampType {
        attributes & RecordBatchAttributes.logAppendTime != 0 ? .logAppendTime : .createTime
    }
    /// Bit 4: the batch belongs to a transaction.
    @inlinable public var isTransactional: Bool { attributes & RecordBatchAttributes.transactional != 0 }
    /// Bit 5: the batch holds control records (commit/abort markers).
    @inlinable public var isControl: Bool { attributes & RecordBatchAttributes.control != 0 }
    /// Bit 6: ``baseTimestamp`` is the delete horizon of a compacted batch.
    @inlinable public var hasDeleteHorizon: Bool { attributes & RecordBatchAttributes.deleteHorizon != 0 }
    /// Offset of the last record: `baseOffset + lastOffsetDelta`. The next fetch offset is this + 1.
    @inlinable public var lastOffset: Int64 { baseOffset &+ Int64(lastOffsetDelta) }
    /// Total bytes of the batch on the wire.
    @inlinable public var byteCount: Int { RecordBatchLayout.logOverhead + Int(length) }
}

/// One record, with absolute offset and timestamp.
public struct DecodedRecord: Sendable, Equatable {
    /// `baseOffset + offsetDelta`.
    public var offset: Int64
    /// `baseTimestamp + timestampDelta`, or the batch's MaxTimestamp for log-append-time batches.
    public var timestamp: Int64
    /// The batch's timestamp type.
    public var timestampType: TimestampType
    /// The key, `nil` when null.
    public var key: [UInt8]?
    /// The value, `nil` when null (a tombstone on compacted topics).
    public var value: [UInt8]?
    /// The record headers, in wire order.
    public var headers: [RecordHeader]

    /// Creates a record.
    public init(offset: Int64, timestamp: Int64, timestampType: TimestampType,
                key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader]) {
        self.offset = offset
        self.timestamp = timestamp
        self.timestampType = timestampType
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// A decoded batch: its header and records. Control batches keep their records;
/// filter with `header.isControl`.
public struct DecodedBatch: Sendable {
    /// The batch header.
    public var header: RecordBatchHeader
    /// The records, in offset order.
    public var records: [DecodedRecord]

    /// Creates a batch.
    public init(header: RecordBatchHeader, records: [DecodedRecord]) {
        self.header = header
        self.records = records
    }
}

/// Result of ``RecordBatchDecoder/decode(_:verifyCRC:maxUncompressedBytes:)-([UInt8],_,_)``.
public struct RecordBatchDecodeResult: Sendable {
    /// Every complete batch, in order.
    public var batches: [DecodedBatch]
    /// True when the bytes ended inside a batch (normal in Fetch: the broker cuts at
    /// the byte limit). The partial batch is dropped; fetch again from the offset after
    /// the last complete batch (or the same offset with a larger limit when `batches` is empty).
    public var truncatedTail: Bool

    /// Creates a result.
    public init(batches: [DecodedBatch], truncatedTail: Bool) {
        self.batches = batches
        self.truncatedTail = truncatedTail
    }
}

/// Decodes RecordBatch v2 sequences, as found in a Fetch partition's records field.
///
/// Hostile bytes never trap and never cause allocations larger than the input
/// (for compressed batches: than the decompression bound): every count is checked
/// against the bytes that remain before anything is reserved.
public enum RecordBatchDecoder {
    /// Decodes every complete batch in `bytes`.
    ///
    /// A truncated last batch is skipped and reported through
    /// ``RecordBatchDecodeResult/truncatedTail``. Everything else wrong throws:
    /// a batch length below the header size (`.invalidLength`), magic other than 2
    /// (`.unsupported`), a CRC mismatch (`.crcMismatch`), records that run past the
    /// batch or disagree with RecordCount (`.truncated` / `.invalidLength`), an
    /// unknown codec (`.unsupported`), compressed records that do not decompress
    /// (`.invalidValue`, detail "compression lz4 corrupt: …"), and decompressed
    /// output past `maxUncompressedBytes` (`.invalidLength`).
    ///
    /// Compressed batches (gzip, snappy raw or xerial-framed, lz4, zstd) are
    /// decompressed and their records decoded from the result; the CRC is checked
    /// on the compressed bytes, as written.
    /// - Parameters:
    ///   - bytes: Record batches as a Fetch answer carries them.
    ///   - verifyCRC: Whether each batch's CRC-32C is checked.
    ///   - maxUncompressedBytes: the most bytes decompression may produce in
    ///     this call, summed over all compressed batches (a bound against hostile or
    ///     "bomb" batches).
    public static func decode(_ bytes: UnsafeRawBufferPointer, verifyCRC: Bool = true,
                              maxUncompressedBytes: Int = defaultMaxUncompressedBytes) throws(DecodeError) -> RecordBatchDecodeResult {
        try decode([UInt8](bytes), verifyCRC: verifyCRC, maxUncompressedBytes: maxUncompressedBytes)
    }

    /// Decodes every complete batch in a byte array (tests and slow paths): ``index(_:verifyCRC:maxUncompressedBytes:)-([UInt8],_,_)``,
    /// then every key, value and header copied out.
    public static func decode(_ bytes: [UInt8], verifyCRC: Bool = true,
                              maxUncompressedBytes: Int = defaultMaxUncompressedBytes) throws(DecodeError) -> RecordBatchDecodeResult {
        let index = try index(bytes, verifyCRC: verifyCRC, maxUncompressedBytes: maxUncompressedBytes)
        let batches = index.batches.map { batch in
            DecodedBatch(header: batch.header, records: index.slots[batch.records].map { slot in
                DecodedRecord(offset: slot.offset, timestamp: slot.timestamp,
                              timestampType: slot.isLogAppendTime ? .logAppendTime : .createTime,
                              key: index.key(of: slot), value: index.value(of: slot),
                              headers: RecordHeaderReader.headers(in: index.buffer(of: slot), start: slot.headersStart,
                                                                  count: slot.headerCount))
            })
        }
        return RecordBatchDecodeResult(batches: batches, truncatedTail: index.truncatedTail)
    }

    /// Locates every record of every complete batch in `bytes` without copying one: CRC checked
    /// and compressed batches decompressed once, into one buffer. Errors as
    /// ``decode(_:verifyCRC:maxUncompressedBytes:)-([UInt8],_,_)``.
    public static func index(_ bytes: [UInt8], verifyCRC: Bool = true,
                             maxUncompressedBytes: Int = defaultMaxUncompressedBytes) throws(DecodeError) -> RecordIndex {
        try index(ByteBlock(bytes), verifyCRC: verifyCRC, maxUncompressedBytes: maxUncompressedBytes)
    }

    /// ``index(_:verifyCRC:maxUncompressedBytes:)-([UInt8],_,_)`` of the bytes of a block, which
    /// the index shares (records are read where they lie in it).
    public static func index(_ bytes: ByteBlock, verifyCRC: Bool = true,
                             maxUncompressedBytes: Int = defaultMaxUncompressedBytes) throws(DecodeError) -> RecordIndex {
        var batches: [IndexedBatch] = []
        var slots: [RecordSlot] = []
        // Positions are 32-bit: decompressed output stays below 2 GiB whatever the caller allows.
        var budget = min(maxUncompressedBytes, Int(Int32.max) - 1)
        var inflated: ByteWriter?
        var truncatedTail = false
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(DecodeError) in
                var offset = 0
                let total = raw.count
                while offset < total {
                    let left = total - offset
                    if left < RecordBatchLayout.logOverhead { truncatedTail = true; return }
                    let batchStart = raw.baseAddress! + offset
                    let length = Int(Int32(bigEndian: batchStart.loadUnaligned(fromByteOffset: 8, as: Int32.self)))
                    if length < RecordBatchLayout.headerSize - RecordBatchLayout.logOverhead {
                        throw DecodeError(.invalidLength, offset: offset + 8, detail: "batch length \(length)")
                    }
                    let size = RecordBatchLayout.logOverhead + length
                    if size > left { truncatedTail = true; return }
                    let batch = UnsafeRawBufferPointer(start: batchStart, count: size)
                    let header = try checkedHeader(batch, at: offset, verifyCRC: verifyCRC)
                    let first = slots.count
                    let records = UnsafeRawBufferPointer(rebasing: batch[RecordBatchLayout.headerSize...])
                    let recordsAt = offset + RecordBatchLayout.headerSize
                    let codec = header.compression!
                    if codec == .none {
                        try indexRecords(records, at: recordsAt, position: recordsAt, header: header, inflated: false, into: &slots)
                    } else {
                        if inflated == nil { inflated = ByteWriter(capacity: min(max(records.count &* 4, 256), max(budget, 0) &+ 1)) }
                        try indexCompressedRecords(codec, records, at: recordsAt, header: header, budget: &budget,
                                                   into: &inflated!, slots: &slots)
                    }
                    batches.append(IndexedBatch(header: header, records: first..<slots.count))
                    offset += size
                }
            }
        }
        try result.get()
        let inflatedBytes: ByteBlock
        switch consume inflated {
        case .some(let writer): inflatedBytes = writer.withUnsafeBytes { ByteBlock(copying: $0) }
        case .none: inflatedBytes = .empty
        }
        return RecordIndex(fetched: bytes, inflated: inflatedBytes, batches: batches, slots: slots, truncatedTail: truncatedTail)
    }

    /// Reads the 61-byte header of a complete batch. `batch` must hold at least 61 bytes.
    public static func readHeader(_ batch: UnsafeRawBufferPointer) -> RecordBatchHeader {
        var r = ByteReader(batch)
        return RecordBatchHeader(
            baseOffset: r.readInt64(), length: r.readInt32(), partitionLeaderEpoch: r.readInt32(),
            magic: r.readInt8(), crc: r.readUInt32(), attributes: r.readInt16(), lastOffsetDelta: r.readInt32(),
            baseTimestamp: r.readInt64(), maxTimestamp: r.readInt64(), producerID: r.readInt64(),
            producerEpoch: r.readInt16(), baseSequence: r.readInt32(), recordCount: r.readInt32())
    }

    /// Reads and checks the header of one complete batch (magic, CRC, codec); `at` is its
    /// offset in the caller's buffer, for error offsets.
    static func checkedHeader(_ batch: UnsafeRawBufferPointer, at base: Int, verifyCRC: Bool) throws(DecodeError) -> RecordBatchHeader {
        let header = readHeader(batch)
        if header.magic != 2 {
            throw DecodeError(.unsupported, offset: base + 16, detail: "magic \(header.magic)")
        }
        if verifyCRC {
            let covered = UnsafeRawBufferPointer(rebasing: batch[RecordBatchLayout.attributesOffset...])
            let crc = CRC32C.checksum(covered)
            if crc != header.crc {
                throw crcMismatch(base: base, stored: header.crc, computed: crc)
            }
        }
        if header.compression == nil {
            throw DecodeError(.unsupported, offset: base + 21, detail: "compression codec \(header.attributes & 7)")
        }
        return header
    }

    @inline(never)
    static func crcMismatch(base: Int, stored: UInt32, computed: UInt32) -> DecodeError {
        DecodeError(.crcMismatch, offset: base + RecordBatchLayout.crcOffset,
                     detail: "stored \(stored), computed \(computed)")
    }

    /// Locates exactly `header.recordCount` records filling all of `bytes`, appending a slot per
    /// record. `base` is where `bytes` start for error offsets, `position` where they start in the
    /// buffer the slots point into.
    static func indexRecords(_ bytes: UnsafeRawBufferPointer, at base: Int, position: Int, header: RecordBatchHeader,
                             inflated: Bool, into slots: inout [RecordSlot]) throws(DecodeError) {
        let count = Int(header.recordCount)
        if count < 0 || count > bytes.count / RecordBatchLayout.minimumRecordSize {
            throw DecodeError(.invalidLength, offset: base - 4, detail: "record count \(count) for \(bytes.count) bytes")
        }
        // Grown geometrically: reserving exactly `count` more per batch reallocates and copies
        // every slot indexed so far, once per batch of the response.
        if slots.capacity - slots.count < count { slots.reserveCapacity(Swift.max(slots.count + count, slots.capacity * 2)) }
        var r = ByteReader(bytes)
        let logAppend = header.timestampType == .logAppendTime
        for _ in 0..<count {
            let length = Int(r.readVarint())
            if r.error == nil && (length < RecordBatchLayout.minimumRecordSize - 1 || length > r.remaining) {
                r.fail(.invalidLength, "record length \(length)")
            }
            let bodyStart = r.offset
            if r.error == nil, let start = bytes.baseAddress,
               let slot = plainSlot(start + bodyStart, length: length, header: header, logAppend: logAppend,
                                    position: position + bodyStart, inflated: inflated) {
                r.skip(length)
                slots.append(slot)
                continue
            }
            var body = r.subReader(count: length)
            let slot = readSlot(&body, header: header, logAppend: logAppend, position: position + bodyStart, inflated: inflated)
            if let error = r.error { throw rebased(error, by: base) }
            if let error = body.error { throw rebased(error, by: base + bodyStart) }
            if !body.isAtEnd {
                throw DecodeError(.invalidLength, offset: base + bodyStart + body.offset,
                                  detail: "record has \(body.remaining) bytes past its fields")
            }
            slots.append(slot)
        }
        if !r.isAtEnd {
            throw DecodeError(.invalidLength, offset: base + r.offset,
                              detail: "\(r.remaining) bytes after \(count) records")
        }
    }

    /// Moves an error's offset from a sub-buffer into the caller's buffer.
    @inline(never)
    static func rebased(_ error: DecodeError, by base: Int) -> DecodeError {
        var e = error
        e.offset += base
        return e
    }

    /// The slot of a record body of `length` bytes at `body` (inside the caller's checked
    /// bounds) in its most common shape, read with raw loads: varints of up to three bytes, no
    /// headers, exactly `length` bytes. Any other shape (headers, longer varints, anything
    /// malformed) returns `nil`, and ``readSlot(_:header:logAppend:position:inflated:)`` reads
    /// the record instead, reporting errors as always.
    @inline(__always)
    static func plainSlot(_ body: UnsafeRawPointer, length: Int, header: RecordBatchHeader, logAppend: Bool,
                          position: Int, inflated: Bool) -> RecordSlot? {
        var at = 1  // attributes, unused
        /// A zig-zag varint of one to three bytes at `at` (up to ±2^19: deltas of batches of
        /// up to half a million records), or nil.
        @inline(__always) func shortVarint() -> Int32? {
            var raw: UInt32 = 0
            var shift: UInt32 = 0
            while shift < 21 {
                guard at < length else { return nil }
                let byte = body.load(fromByteOffset: at, as: UInt8.self)
                at &+= 1
                raw |= UInt32(byte & 0x7f) &<< shift
                if byte & 0x80 == 0 { return Int32(bitPattern: (raw &>> 1) ^ (0 &- (raw & 1))) }
                shift &+= 7
            }
            return nil
        }
        guard length >= RecordBatchLayout.minimumRecordSize - 1,
              let timestampDelta = shortVarint(), let offsetDelta = shortVarint(),
              let keyLength = shortVarint(), keyLength >= -1 else { return nil }
        let keyStart = at
        if keyLength > 0 { guard Int(keyLength) <= length &- at else { return nil }; at &+= Int(keyLength) }
        guard let valueLength = shortVarint(), valueLength >= -1 else { return nil }
        let valueStart = at
        if valueLength > 0 { guard Int(valueLength) <= length &- at else { return nil }; at &+= Int(valueLength) }
        guard let headerCount = shortVarint(), headerCount == 0, at == length else { return nil }
        let headersStart = at
        let origin = Int32(truncatingIfNeeded: position)
        return RecordSlot(
            offset: header.baseOffset &+ Int64(offsetDelta),
            timestamp: logAppend ? header.maxTimestamp : header.baseTimestamp &+ Int64(timestampDelta),
            keyStart: origin &+ Int32(truncatingIfNeeded: keyStart), keyLength: keyLength,
            valueStart: origin &+ Int32(truncatingIfNeeded: valueStart), valueLength: valueLength,
            headersStart: origin &+ Int32(truncatingIfNeeded: headersStart), headerCount: 0,
            isInflated: inflated, isLogAppendTime: logAppend)
    }

    /// Reads one record body (after its length varint) into a slot; `position` is where the
    /// body starts in the slot's buffer. Errors stay in `r`.
    static func readSlot(_ r: inout ByteReader, header: RecordBatchHeader, logAppend: Bool, position: Int,
                         inflated: Bool) -> RecordSlot {
        _ = r.readInt8() // attributes, unused
        let timestampDelta = r.readVarlong()
        let offsetDelta = r.readVarint()
        let (keyStart, keyLength) = skipNullableVarintBytes(&r)
        let (valueStart, valueLength) = skipNullableVarintBytes(&r)
        let headerCount = Int(r.readVarint())
        let headersStart = r.offset
        if headerCount != 0 && r.error == nil {
            if headerCount < 0 || headerCount > r.remaining / 2 {
                r.fail(.invalidLength, "header count \(headerCount)")
            } else {
                for _ in 0..<headerCount {
                    let keyLength = Int(r.readVarint())
                    if r.error == nil && keyLength < 0 { r.fail(.invalidLength, "header key length \(keyLength)") }
                    r.skip(max(keyLength, 0))
                    _ = skipNullableVarintBytes(&r)
                    if r.error != nil { break }
                }
            }
        }
        let at = Int32(truncatingIfNeeded: position)
        return RecordSlot(
            offset: header.baseOffset &+ Int64(offsetDelta),
            timestamp: logAppend ? header.maxTimestamp : header.baseTimestamp &+ timestampDelta,
            keyStart: at &+ Int32(truncatingIfNeeded: keyStart), keyLength: keyLength,
            valueStart: at &+ Int32(truncatingIfNeeded: valueStart), valueLength: valueLength,
            headersStart: at &+ Int32(truncatingIfNeeded: headersStart), headerCount: Int32(truncatingIfNeeded: max(headerCount, 0)),
            isInflated: inflated, isLogAppendTime: logAppend)
    }

    /// Varint length (-1 = null) then that many bytes, skipped: where they start and how many (-1 = null).
    @inline(__always)
    static func skipNullableVarintBytes(_ r: inout ByteReader) -> (start: Int, length: Int32) {
        let n = Int(r.readVarint())
        if n == -1 || r.error != nil { return (r.offset, -1) }
        if n < 0 || n > r.remaining { r.fail(.invalidLength, "length \(n)"); return (r.offset, -1) }
        let start = r.offset
        r.skip(n)
        return (start, Int32(n))
    }
}
