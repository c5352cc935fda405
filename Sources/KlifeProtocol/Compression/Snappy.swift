import CSnappy

/// Kafka codec 2: snappy, through libsnappy's C API.
///
/// Two layouts exist on the wire, and readers must take both:
///
///     raw block     varint uncompressed length | snappy elements         (librdkafka, Go clients)
///     xerial        "\x82SNAPPY\0" | version i32 BE | compatible i32 BE
///                   | { block length i32 BE | raw block }*                (Java: snappy-java SnappyOutputStream)
///
/// This library writes one raw block, like librdkafka: Java's `SnappyInputStream`
/// reads a raw block when the magic is absent, librdkafka checks for the magic,
/// and Tansu reads raw blocks (its xerial path only handles a single chunk).
/// ``compressXerial(_:blockSize:into:)`` writes the Java framing for tests.
enum Snappy {
    /// snappy-java's stream magic.
    static let xerialMagic: [UInt8] = [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0x00] // \x82 S N A P P Y \0
    /// Magic, version and compatible-version.
    static let xerialHeaderSize = 16
    /// snappy-java's default block size (`SnappyOutputStream`).
    static let xerialDefaultBlockSize = 32 << 10
    /// The raw format's length prefix is 32-bit.
    static let maxInput = Int(UInt32.max)

    static func maxCompressedSize(_ count: Int) throws(CompressionError) -> Int {
        guard count >= 0, count <= maxInput else { throw CompressionError(.snappy, .inputTooLarge, "\(count) bytes") }
        return snappy_max_compressed_length(count)
    }

    static func compress(_ input: UnsafeRawBufferPointer, to destination: UnsafeMutableRawBufferPointer) throws(CompressionError) -> Int {
        guard input.count <= maxInput else { throw CompressionError(.snappy, .inputTooLarge, "\(input.count) bytes") }
        var written = destination.count
        let status = withNonNull(input) { source in
            snappy_compress(source, input.count, destination.baseAddress!.assumingMemoryBound(to: CChar.self), &written)
        }
        guard status == SNAPPY_OK else { throw CompressionError(.snappy, .library, "snappy_compress status \(status.rawValue)") }
        return written
    }

    /// Writes `input` in snappy-java's framing, the way Java producers do.
    static func compressXerial(_ input: UnsafeRawBufferPointer, blockSize: Int = xerialDefaultBlockSize,
                               into output: inout ByteWriter) throws(CompressionError) {
        precondition(blockSize > 0, "block size must be positive")
        output.writeBytes(xerialMagic)
        output.writeInt32(1) // version
        output.writeInt32(1) // minimum compatible version
        var offset = 0
        while offset < input.count {
            let count = min(blockSize, input.count - offset)
            let block = UnsafeRawBufferPointer(rebasing: input[offset..<offset + count])
            let bound = try maxCompressedSize(count)
            let lengthAt = output.reserve(4)
            output.ensureCapacity(bound)
            let written = try compress(block, to: UnsafeMutableRawBufferPointer(start: output.base + output.count, count: bound))
            output._count &+= written
            output.patchInt32(Int32(written), at: lengthAt)
            offset += count
        }
    }

    /// snappy-java's framing of a byte array (tests and tools).
    static func compressXerial(_ input: [UInt8], blockSize: Int = xerialDefaultBlockSize) throws(CompressionError) -> [UInt8] {
        var output = ByteWriter(capacity: input.count / 2 + 64)
        let result = input.withUnsafeBytes { raw in
            Result { () throws(CompressionError) in try compressXerial(raw, blockSize: blockSize, into: &output) }
        }
        try result.get()
        return output.bytes
    }

    static func decompress(_ input: UnsafeRawBufferPointer, into output: inout ByteWriter, limit: Int) throws(CompressionError) {
        guard isXerial(input) else {
            try decompressBlock(input, into: &output, limit: limit, at: 0)
            return
        }
        let start = output.count
        var offset = xerialHeaderSize
        let base = input.baseAddress!
        while input.count - offset >= 4 {
            let length = Int(Int32(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
            offset += 4
            guard length >= 0, length <= input.count - offset else {
                throw CompressionError(.snappy, length < 0 ? .corrupt : .truncated,
                                       "xerial block length \(length) at byte \(offset - 4), \(input.count - offset) left")
            }
            let block = UnsafeRawBufferPointer(rebasing: input[offset..<offset + length])
            try decompressBlock(block, into: &output, limit: limit - (output.count - start), at: offset)
            offset += length
        }
        if offset != input.count {
            throw CompressionError(.snappy, .truncated, "\(input.count - offset) trailing bytes in xerial framing")
        }
    }

    /// Whether `input` starts with snappy-java's header (and is long enough to hold it).
    static func isXerial(_ input: UnsafeRawBufferPointer) -> Bool {
        guard input.count >= xerialHeaderSize else { return false }
        for i in 0..<xerialMagic.count where input[i] != xerialMagic[i] { return false }
        return true
    }

    /// Decompresses one raw block; its declared length is checked against `limit`
    /// before any memory is reserved.
    static func decompressBlock(_ block: UnsafeRawBufferPointer, into output: inout ByteWriter, limit: Int,
                                at offset: Int) throws(CompressionError) {
        guard block.count > 0 else { throw CompressionError(.snappy, .truncated, "empty block at byte \(offset)") }
        let source = block.baseAddress!.assumingMemoryBound(to: CChar.self)
        var length = 0
        guard snappy_uncompressed_length(source, block.count, &length) == SNAPPY_OK else {
            throw CompressionError(.snappy, .corrupt, "bad length header at byte \(offset)")
        }
        guard length <= limit else {
            throw CompressionError(.snappy, .outputLimitExceeded, "block of \(length) bytes, limit \(limit)")
        }
        guard length > 0 else {
            // Only the one-byte encoding of "0 bytes" is valid; snappy checks the rest.
            guard snappy_validate_compressed_buffer(source, block.count) == SNAPPY_OK else {
                throw CompressionError(.snappy, .corrupt, "bad empty block at byte \(offset)")
            }
            return
        }
        output.ensureCapacity(length)
        var written = length
        let status = snappy_uncompress(source, block.count, (output.base + output.count).assumingMemoryBound(to: CChar.self),
                                       &written)
        guard status == SNAPPY_OK, written == length else {
            throw CompressionError(.snappy, .corrupt, "block at byte \(offset) (status \(status.rawValue))")
        }
        output._count &+= written
    }

    /// Calls `body` with `bytes`' address, or a valid dummy one when it is empty.
    @inline(__always)
    static func withNonNull<R>(_ bytes: UnsafeRawBufferPointer, _ body: (UnsafePointer<CChar>) -> R) -> R {
        if let base = bytes.baseAddress { return body(base.assumingMemoryBound(to: CChar.self)) }
        var zero: CChar = 0
        return body(&zero)
    }
}
