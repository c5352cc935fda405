import CLZ4

/// Kafka codec 3: the LZ4 frame format (magic 0x184D2204), through liblz4's `lz4frame` API.
///
/// Frames are written as Java's `Lz4BlockOutputStream` and librdkafka write them:
/// independent blocks (Java's reader rejects linked blocks: "Dependent block
/// stream is unsupported"), 64 KiB maximum block size, no content size and no
/// content checksum. The header checksum is the correct one (Kafka ≥ 0.10,
/// RecordBatch v2 never uses the old broken one). Reading accepts any valid frame,
/// and several frames in a row decode as their concatenation.
enum LZ4 {
    /// Output offered to `LZ4F_decompress` per call.
    static let chunk = 64 << 10

    /// The preferences every frame is written with; `level` 0 is lz4's fast mode.
    static func preferences(level: Int32) -> LZ4F_preferences_t {
        var prefs = LZ4F_preferences_t()
        prefs.frameInfo.blockSizeID = LZ4F_max64KB
        prefs.frameInfo.blockMode = LZ4F_blockIndependent
        prefs.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum
        prefs.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum
        prefs.frameInfo.contentSize = 0
        prefs.compressionLevel = level
        return prefs
    }

    static func maxCompressedSize(_ count: Int) throws(CompressionError) -> Int {
        guard count >= 0 else { throw CompressionError(.lz4, .inputTooLarge, "\(count) bytes") }
        var prefs = preferences(level: 0)
        let bound = LZ4F_compressFrameBound(count, &prefs)
        guard LZ4F_isError(bound) == 0 else { throw error(bound, .inputTooLarge) }
        return bound
    }

    static func compress(_ input: UnsafeRawBufferPointer, level: Int32?,
                         to destination: UnsafeMutableRawBufferPointer) throws(CompressionError) -> Int {
        var prefs = preferences(level: level ?? 0)
        let written = Snappy.withNonNull(input) { source in
            LZ4F_compressFrame(destination.baseAddress, destination.count, source, input.count, &prefs)
        }
        guard LZ4F_isError(written) == 0 else { throw error(written, .library) }
        return written
    }

    static func decompress(_ input: UnsafeRawBufferPointer, into output: inout ByteWriter, limit: Int) throws(CompressionError) {
        var context: OpaquePointer?
        let created = LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))
        guard LZ4F_isError(created) == 0, let context else { throw error(created, .library) }
        defer { _ = LZ4F_freeDecompressionContext(context) }
        let start = output.count
        var offset = 0
        while true {
            let room = Compression.nextChunk(&output, start: start, limit: limit, chunk: chunk)
            var produced = room
            var consumed = input.count - offset
            let hint = Snappy.withNonNull(input) { base in
                LZ4F_decompress(context, output.base + output.count, &produced, UnsafeRawPointer(base) + offset,
                                &consumed, nil)
            }
            guard LZ4F_isError(hint) == 0 else { throw error(hint, .corrupt) }
            offset += consumed
            output._count &+= produced
            if output.count - start > limit {
                throw CompressionError(.lz4, .outputLimitExceeded, "more than \(limit) bytes")
            }
            if hint == 0 {
                // A frame ended; another may follow (lz4's own tools concatenate them).
                if offset == input.count { return }
            } else if offset == input.count && produced < room {
                throw CompressionError(.lz4, .truncated, "frame ends after \(input.count) bytes")
            } else if consumed == 0 && produced == 0 {
                throw CompressionError(.lz4, .corrupt, "decoder made no progress at byte \(offset)")
            }
        }
    }

    static func error(_ code: Int, _ kind: CompressionError.Kind) -> CompressionError {
        CompressionError(.lz4, kind, String(cString: LZ4F_getErrorName(code)))
    }
}
