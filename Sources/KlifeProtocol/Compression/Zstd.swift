import CZstd

/// Kafka codec 4: Zstandard (KIP-110; Produce v7+ / Fetch v10+), through libzstd.
///
/// Writes one standard frame with its content size (`ZSTD_compress`), which Java
/// (zstd-jni's `ZstdInputStream`), librdkafka and Tansu all read. Reads with the
/// streaming decoder, so frames without a content size (librdkafka's streaming
/// writer omits it) and several frames in a row work. The decoder's window is
/// capped (see ``windowLogMax(limit:)``) so a hostile frame header cannot make it
/// reserve more than a few times the output bound.
enum Zstd {
    /// zstd's negative "fast" levels up to its maximum (22).
    static let levelRange: ClosedRange<Int32> = Int32(ZSTD_minCLevel())...Int32(ZSTD_maxCLevel())
    /// Output offered to `ZSTD_decompressStream` per call.
    static let chunk = 128 << 10

    static func maxCompressedSize(_ count: Int) throws(CompressionError) -> Int {
        guard count >= 0 else { throw CompressionError(.zstd, .inputTooLarge, "\(count) bytes") }
        let bound = ZSTD_compressBound(count)
        guard ZSTD_isError(bound) == 0 else { throw error(bound, .inputTooLarge) }
        return bound
    }

    static func compress(_ input: UnsafeRawBufferPointer, level: Int32?,
                         to destination: UnsafeMutableRawBufferPointer) throws(CompressionError) -> Int {
        let level = level ?? ZSTD_CLEVEL_DEFAULT
        let written = Snappy.withNonNull(input) { source in
            if let context = threadCompressionContext() {
                // Same result as ZSTD_compress (advanced parameters are ignored), without a new context.
                ZSTD_compressCCtx(context, destination.baseAddress, destination.count, source, input.count, level)
            } else {
                ZSTD_compress(destination.baseAddress, destination.count, source, input.count, level)
            }
        }
        guard ZSTD_isError(written) == 0 else { throw error(written, .library) }
        return written
    }

    /// Each thread's compression context, freed when the thread exits. It keeps the
    /// working memory of the largest batch and level it compressed (about 1-3 MiB at
    /// the default level for 1 MiB batches; zstd shrinks it when it stays oversized).
    static let compressionContexts = ThreadSlot { raw in
        if let raw { ZSTD_freeCCtx(OpaquePointer(raw)) }
    }

    /// This thread's compression context, created on first use (`nil` if zstd is out of memory).
    static func threadCompressionContext() -> OpaquePointer? {
        if let raw = compressionContexts.value { return OpaquePointer(raw) }
        guard let context = ZSTD_createCCtx() else { return nil }
        compressionContexts.value = UnsafeMutableRawPointer(context)
        return context
    }

    /// The largest window (log2) the decoder accepts for output bounded by `limit`:
    /// at least 2^23 (8 MiB, what levels 1-19 use on large inputs, so any
    /// ordinary producer's frame decodes), at most zstd's default 2^27.
    static func windowLogMax(limit: Int) -> Int32 {
        let needed = Int32(Int.bitWidth - max(limit, 1).leadingZeroBitCount)
        return min(max(needed, 23), 27)
    }

    static func decompress(_ input: UnsafeRawBufferPointer, into output: inout ByteWriter, limit: Int) throws(CompressionError) {
        guard let context = ZSTD_createDCtx() else { throw CompressionError(.zstd, .library, "ZSTD_createDCtx failed") }
        defer { ZSTD_freeDCtx(context) }
        let set = ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, windowLogMax(limit: limit))
        guard ZSTD_isError(set) == 0 else { throw error(set, .library) }
        guard input.count > 0 else { throw CompressionError(.zstd, .truncated, "empty input") }
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        let start = output.count
        while true {
            let room = Compression.nextChunk(&output, start: start, limit: limit, chunk: chunk)
            var destination = ZSTD_outBuffer(dst: output.base + output.count, size: room, pos: 0)
            let consumedBefore = source.pos
            let hint = ZSTD_decompressStream(context, &destination, &source)
            output._count &+= destination.pos
            guard ZSTD_isError(hint) == 0 else { throw error(hint, .corrupt) }
            if output.count - start > limit {
                throw CompressionError(.zstd, .outputLimitExceeded, "more than \(limit) bytes")
            }
            if hint == 0 {
                // A frame ended and is flushed; another may follow.
                if source.pos == source.size { return }
            } else if source.pos == source.size && destination.pos < room {
                throw CompressionError(.zstd, .truncated, "frame ends after \(input.count) bytes")
            } else if source.pos == consumedBefore && destination.pos == 0 {
                throw CompressionError(.zstd, .corrupt, "decoder made no progress at byte \(source.pos)")
            }
        }
    }

    static func error(_ code: Int, _ kind: CompressionError.Kind) -> CompressionError {
        let name = String(cString: ZSTD_getErrorName(code))
        return switch ZSTD_getErrorCode(code) {
        case ZSTD_error_memory_allocation: CompressionError(.zstd, .library, name)
        case ZSTD_error_frameParameter_windowTooLarge: CompressionError(.zstd, .outputLimitExceeded, name)
        default: CompressionError(.zstd, kind, name)
        }
    }
}
