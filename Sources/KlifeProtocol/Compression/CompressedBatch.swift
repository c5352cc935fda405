import CKlifeShim

// Compressed RecordBatch v2: the 61-byte header stays plain, with the codec in
// attributes bits 0-2; everything after it (the records) is one compressed
// stream. Length and CRC-32C describe the bytes as written, i.e. compressed.
//
//   ┌──────────── 61-byte header ────────────┬───────────────────────────────┐
//   │ … Attrs = codec │ … RecordCount = n     │ codec( record₀ record₁ … )    │
//   └─────────────────────────────────────────┴───────────────────────────────┘
//
// The producer encodes records uncompressed with the ordinary (fast) append path,
// then compresses them once into the same writer. The request needs the batch's
// final size before its bytes (flexible Produce versions prefix it with a varint),
// so a compressed batch is always built in a scratch writer and copied.

extension RecordBatchEncoder {
    /// Compresses the records appended so far and appends the compressed batch to
    /// `writer`, right after the uncompressed batch this encoder has been writing:
    ///
    ///     writer: [ … | uncompressed batch (left unfinished) | compressed batch ]
    ///                   startOffset                           returned range
    ///
    /// The compressed batch is complete (Length, counts, timestamps and CRC patched,
    /// `codec` in its attributes). The uncompressed bytes before it are scratch the
    /// caller skips. `level` is the codec's level (`nil`: its default; clamped to
    /// ``Compression/levelRange(_:)``).
    ///
    /// On error `writer` ends where it did before the call and the uncompressed
    /// batch's attributes name no codec, so ``finish(into:)`` still turns it into a
    /// valid uncompressed batch: a producer never has to drop records because a
    /// codec failed.
    /// - Returns: the range of the compressed batch in `writer`.
    public func finishCompressed(into writer: inout ByteWriter, codec: CompressionCodec,
                                 level: Int32?) throws(CompressionError) -> Range<Int> {
        let end = writer.count
        let header = RecordBatchLayout.headerSize
        precondition(end - startOffset >= header, "batch writer was rewound")
        let recordBytes = end - startOffset - header
        let bound: Int
        do {
            bound = try Compression.maxCompressedSize(codec, recordBytes)
        } catch {
            clearCodec(in: &writer)
            throw error
        }
        // Reserve everything first: after this the buffer does not move, so the
        // records can be read from it while the compressed copy is written into it.
        writer.ensureCapacity(header + bound)
        let plain = writer.base + startOffset
        let out = writer.base + end
        let written: Int
        do {
            written = try Compression.compress(
                codec, UnsafeRawBufferPointer(start: plain + header, count: recordBytes), level: level,
                to: UnsafeMutableRawBufferPointer(start: out + header, count: bound))
        } catch {
            clearCodec(in: &writer)
            throw error
        }
        let size = header + written
        guard size - RecordBatchLayout.logOverhead <= Int(Int32.max) else {
            clearCodec(in: &writer)
            throw CompressionError(codec, .inputTooLarge, "compressed batch of \(size) bytes")
        }
        out.copyMemory(from: plain, byteCount: header)
        let attributesAt = out + RecordBatchLayout.attributesOffset
        let attributes = Int16(bigEndian: attributesAt.loadUnaligned(as: Int16.self))
        _ = RawWire.put((attributes & ~RecordBatchAttributes.compressionMask) | codec.rawValue, at: attributesAt)
        patchHeader(out, size: size)
        let crc = klife_crc32c(0, out + RecordBatchLayout.attributesOffset, size - RecordBatchLayout.attributesOffset)
        _ = RawWire.put(crc, at: out + RecordBatchLayout.crcOffset)
        writer._count = end + size
        return end..<end + size
    }

    /// Finishes the batch compressed with `codec` when that makes it smaller, and
    /// uncompressed otherwise: when the codec fails (the records matter more than the
    /// savings), or when compression does not shrink it (tiny or incompressible
    /// batches; librdkafka does the same, and consumers are spared a decompression).
    /// Never throws.
    ///
    /// Compressed, the batch is at the returned range after the unfinished uncompressed
    /// one, as with ``finishCompressed(into:codec:level:)``; uncompressed, it is the
    /// ordinary batch at ``startOffset`` and the writer ends with it.
    /// - Returns: the range of the finished batch in `writer`.
    public func finishCompressedIfSmaller(into writer: inout ByteWriter, codec: CompressionCodec,
                                          level: Int32?) -> Range<Int> {
        let plainSize = writer.count - startOffset
        if codec != .none, let range = try? finishCompressed(into: &writer, codec: codec, level: level) {
            if range.count < plainSize { return range }
            writer._count = range.lowerBound // drop the compressed copy, finish the plain batch
            clearCodec(in: &writer)
        }
        return startOffset..<startOffset + finish(into: &writer)
    }

    /// Clears the codec bits of the uncompressed batch's attributes (after a failed compression).
    private func clearCodec(in writer: inout ByteWriter) {
        let at = startOffset + RecordBatchLayout.attributesOffset
        writer.withUnsafeMutableBytes(at..<at + 2) { bytes in
            let p = bytes.baseAddress!
            let attributes = Int16(bigEndian: p.loadUnaligned(as: Int16.self))
            _ = RawWire.put(attributes & ~RecordBatchAttributes.compressionMask, at: p)
        }
    }

    /// Encodes a whole batch compressed with `compression` into a new array (tests and slow paths).
    /// `.none` gives the same bytes as the uncompressed ``encode(baseTimestamp:records:producerID:producerEpoch:baseSequence:isTransactional:)``.
    public static func encode(
        baseTimestamp: Int64, records: [(timestamp: Int64, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader])],
        producerID: Int64 = -1, producerEpoch: Int16 = -1, baseSequence: Int32 = -1,
        isTransactional: Bool = false, compression: CompressionCodec, level: Int32? = nil
    ) throws(CompressionError) -> [UInt8] {
        if compression == .none {
            return encode(baseTimestamp: baseTimestamp, records: records, producerID: producerID,
                          producerEpoch: producerEpoch, baseSequence: baseSequence, isTransactional: isTransactional)
        }
        var writer = ByteWriter(capacity: 256)
        var batch = RecordBatchEncoder(writer: &writer, baseTimestamp: baseTimestamp, producerID: producerID,
                                       producerEpoch: producerEpoch, baseSequence: baseSequence,
                                       isTransactional: isTransactional)
        for r in records {
            batch.append(into: &writer, timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers)
        }
        let range = try batch.finishCompressed(into: &writer, codec: compression, level: level)
        return writer.withUnsafeBytes { Array($0[range]) }
    }
}

extension RecordBatchDecoder {
    /// Default bound on the bytes that decompressing one ``decode(_:verifyCRC:maxUncompressedBytes:)-([UInt8],_,_)``
    /// call may produce, summed over its batches: 256 MiB, the client's default
    /// `maxResponseBytes`. Past it decoding fails instead of allocating more.
    public static let defaultMaxUncompressedBytes = 256 << 20

    /// Decompresses a batch's records section onto the end of `inflated` and locates its
    /// records there, spending the decompressed size from `budget`. Errors inside the
    /// decompressed records are reported at the section's start, with their offset in the
    /// decompressed bytes.
    @inline(never)
    static func indexCompressedRecords(_ codec: CompressionCodec, _ bytes: UnsafeRawBufferPointer, at base: Int,
                                       header: RecordBatchHeader, budget: inout Int, into inflated: inout ByteWriter,
                                       slots: inout [RecordSlot]) throws(DecodeError) {
        let start = inflated.count
        try decompressRecords(codec, bytes, at: base, budget: budget, into: &inflated)
        budget -= inflated.count - start
        let located = inflated.withUnsafeBytes { raw in
            Result { () throws(DecodeError) in
                do throws(DecodeError) {
                    try indexRecords(UnsafeRawBufferPointer(rebasing: raw[start...]), at: 0, position: start, header: header,
                                     inflated: true, into: &slots)
                } catch {
                    throw DecodeError(error.kind, offset: base,
                                      detail: "in \(codec)-decompressed records at byte \(error.offset): \(error.detail)")
                }
            }
        }
        try located.get()
    }

    /// Decompresses a batch's records section onto the end of `scratch`, within
    /// `budget` bytes. Errors are reported at the section's start.
    static func decompressRecords(_ codec: CompressionCodec, _ bytes: UnsafeRawBufferPointer, at base: Int,
                                  budget: Int, into scratch: inout ByteWriter) throws(DecodeError) {
        do {
            try Compression.decompress(codec, bytes, into: &scratch, maxOutputBytes: budget)
        } catch {
            let kind: DecodeError.Kind = switch error.kind {
            case .outputLimitExceeded: .invalidLength
            case .unsupportedCodec: .unsupported
            // A short stream inside a complete batch is corruption, not a cut-off response.
            case .corrupt, .truncated, .inputTooLarge, .library: .invalidValue
            }
            throw DecodeError(kind, offset: base, detail: "compression \(error)")
        }
    }
}
