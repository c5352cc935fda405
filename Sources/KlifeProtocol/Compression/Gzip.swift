import CZlib

/// Kafka codec 1: an RFC 1952 gzip stream, through zlib.
///
/// Written like Java's `GZIPOutputStream` and librdkafka (deflate, windowBits 15+16).
/// Read with windowBits 15+32, which takes a gzip or a zlib wrapper; several gzip
/// members in a row decode as their concatenation, as in Java's `GZIPInputStream`.
enum Gzip {
    /// zlib's `avail_in`/`avail_out` are 32-bit.
    static let maxInput = Int(UInt32.max)
    /// Output offered to `inflate` per call.
    static let chunk = 64 << 10

    static func maxCompressedSize(_ count: Int) throws(CompressionError) -> Int {
        guard count >= 0, count <= maxInput else { throw CompressionError(.gzip, .inputTooLarge, "\(count) bytes") }
        // compressBound covers a zlib wrapper (6 bytes); gzip's is 18 bytes.
        return Int(compressBound(uLong(count))) + 18
    }

    static func compress(_ input: UnsafeRawBufferPointer, level: Int32?,
                         to destination: UnsafeMutableRawBufferPointer) throws(CompressionError) -> Int {
        guard input.count <= maxInput, destination.count <= maxInput else {
            throw CompressionError(.gzip, .inputTooLarge, "\(input.count) bytes")
        }
        let stream = try threadDeflater(level: level ?? Z_DEFAULT_COMPRESSION)
        // zlib never writes through next_in; the pointer is only non-const in its API.
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        stream.pointee.next_out = destination.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(destination.count)
        let status = deflate(stream, Z_FINISH)
        let written = Int(stream.pointee.total_out)
        stream.pointee.next_in = nil // drop the caller's pointers; the next call resets the stream
        stream.pointee.next_out = nil
        guard status == Z_STREAM_END else { throw failure(status, stream.pointee, .library) }
        return written
    }

    /// A deflate stream and the level it was set up with, kept per thread.
    struct Deflater {
        var stream = z_stream()
        var level: Int32
    }

    /// Each thread's deflate stream (about 256 KiB at the default memLevel), freed when
    /// the thread exits. zlib's state points back at the `z_stream`, so it lives on the heap.
    static let deflaters = ThreadSlot { raw in
        guard let raw else { return }
        let deflater = raw.assumingMemoryBound(to: Deflater.self)
        deflateEnd(deflater.pointer(to: \.stream)!)
        deflater.deinitialize(count: 1)
        deflater.deallocate()
    }

    /// This thread's deflate stream, reset and set to `level`, created on first use.
    static func threadDeflater(level: Int32) throws(CompressionError) -> UnsafeMutablePointer<z_stream> {
        if let raw = deflaters.value {
            let deflater = raw.assumingMemoryBound(to: Deflater.self)
            let stream = deflater.pointer(to: \.stream)!
            var status = deflateReset(stream)
            if status == Z_OK && deflater.pointee.level != level {
                status = deflateParams(stream, level, Z_DEFAULT_STRATEGY)
                if status == Z_OK { deflater.pointee.level = level }
            }
            if status == Z_OK { return stream }
            throw failure(status, stream.pointee, .library)
        }
        let deflater = UnsafeMutablePointer<Deflater>.allocate(capacity: 1)
        deflater.initialize(to: Deflater(level: level))
        let stream = deflater.pointer(to: \.stream)!
        let initialized = klife_deflate_init_gzip(stream, level)
        guard initialized == Z_OK else {
            let error = failure(initialized, stream.pointee, .library)
            deflater.deinitialize(count: 1)
            deflater.deallocate()
            throw error
        }
        deflaters.value = UnsafeMutableRawPointer(deflater)
        return stream
    }

    static func decompress(_ input: UnsafeRawBufferPointer, into output: inout ByteWriter,
                           limit: Int) throws(CompressionError) {
        guard input.count <= maxInput else { throw CompressionError(.gzip, .inputTooLarge, "\(input.count) bytes") }
        guard input.count > 0 else { throw CompressionError(.gzip, .truncated, "empty input") }
        var stream = z_stream()
        let initialized = klife_inflate_init_auto(&stream)
        guard initialized == Z_OK else { throw failure(initialized, stream, .library) }
        defer { inflateEnd(&stream) }
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        let start = output.count
        while true {
            let room = Compression.nextChunk(&output, start: start, limit: limit, chunk: chunk)
            stream.next_out = (output.base + output.count).assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(room)
            let status = inflate(&stream, Z_NO_FLUSH)
            output._count &+= room &- Int(stream.avail_out)
            if output.count - start > limit {
                throw CompressionError(.gzip, .outputLimitExceeded, "more than \(limit) bytes")
            }
            switch status {
            case Z_STREAM_END:
                // Another member may follow (Java's GZIPInputStream reads them all).
                if stream.avail_in == 0 { return }
                let reset = inflateReset(&stream)
                guard reset == Z_OK else { throw failure(reset, stream, .library) }
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                // No progress possible: output had room, so the input ran out mid-stream.
                if stream.avail_out == 0 { continue }
                throw CompressionError(.gzip, .truncated, "stream ends after \(input.count) bytes")
            case Z_MEM_ERROR:
                throw failure(status, stream, .library)
            default: // Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR
                throw failure(status, stream, .corrupt)
            }
        }
    }

    /// An error carrying zlib's message (`msg`) when it set one.
    static func failure(_ status: Int32, _ stream: z_stream, _ kind: CompressionError.Kind) -> CompressionError {
        let message = stream.msg.map { String(cString: $0) } ?? "zlib status \(status)"
        return CompressionError(.gzip, kind, message)
    }
}
