// Kafka's four record codecs, backed by the system C libraries (zlib, liblz4,
// libzstd, libsnappy). What each codec puts on the wire, and why:
//
//   gzip    RFC 1952 gzip stream (what Java's GZIPOutputStream and librdkafka
//           write). Reading accepts gzip or zlib wrappers and concatenated members.
//   snappy  Written as one raw snappy block, as librdkafka does. Read as either a
//           raw block or the xerial/snappy-java framing Java clients write:
//             "\x82SNAPPY\0" | version i32 BE | compatible i32 BE | { length i32 BE | raw block }*
//           Java's SnappyInputStream falls back to a raw block when the magic is
//           absent, librdkafka checks the magic, and Tansu reads a raw block (or a
//           single-chunk xerial stream), so a raw block is what every reader takes.
//   lz4     LZ4 frame format with independent blocks (Java's Lz4BlockInputStream
//           rejects linked blocks), 64 KiB blocks, no content size or checksum,
//           like librdkafka. The batch CRC-32C already covers the bytes.
//   zstd    Standard zstd frame (with content size). Reading streams, so frames
//           without a content size and concatenated frames work too.
//
// Decompression is always bounded by `maxOutputBytes`: hostile input produces a
// typed ``CompressionError``, never a trap or an allocation past the bound.
//
// Compression contexts of zstd and gzip are kept per thread and reused (creating
// them costs as much as compressing a 4-16 KiB batch); producers compress on their
// long-lived reactor threads. Decompression contexts are made per call, so a
// hostile frame's large window is never kept alive.

import Glibc

/// Why a compression or decompression failed.
public struct CompressionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public enum Kind: Equatable, Sendable {
        /// The compressed bytes are malformed (bad header, checksum, back-reference...).
        case corrupt
        /// The compressed bytes end before the stream does.
        case truncated
        /// Decompressing would produce more than the caller's `maxOutputBytes`.
        case outputLimitExceeded
        /// The input is larger than the codec's API can take in one call (4 GiB for zlib).
        case inputTooLarge
        /// The codec is `.none` or not one this library implements.
        case unsupportedCodec
        /// The C library failed for another reason (for example out of memory).
        case library
    }

    /// The codec that failed.
    public var codec: CompressionCodec
    /// What went wrong.
    public var kind: Kind
    /// The library's message or a short note.
    public var detail: String

    /// Creates an error.
    public init(_ codec: CompressionCodec, _ kind: Kind, _ detail: String = "") {
        self.codec = codec
        self.kind = kind
        self.detail = detail
    }

    /// A one-line description, e.g. `lz4 corrupt: ERROR_blockChecksum_invalid`.
    public var description: String {
        "\(codec) \(kind)" + (detail.isEmpty ? "" : ": \(detail)")
    }
}

/// Compresses and decompresses byte ranges with Kafka's record codecs.
///
/// Output is appended to a ``ByteWriter``; nothing else is allocated per call
/// except the codec library's own working state.
///
///     var out = ByteWriter()
///     try Compression.compress(.zstd, input, level: nil, into: &out)
///     var back = ByteWriter()
///     try out.withUnsafeBytes { try Compression.decompress(.zstd, $0, into: &back, maxOutputBytes: 1 << 20) }
public enum Compression {
    /// Appends `input` compressed with `codec` to `output`.
    ///
    /// - Parameters:
    ///   - codec: `.gzip`, `.snappy`, `.lz4` or `.zstd` (`.none` throws `.unsupportedCodec`).
    ///   - input: the bytes to compress. It must not point into `output`'s storage
    ///     unless `output` already has room for ``maxCompressedSize(_:_:)`` more bytes.
    ///   - level: the codec's level, `nil` for its default; out-of-range values are
    ///     clamped (see ``levelRange(_:)``). Snappy has no levels and ignores it.
    ///   - output: receives the compressed bytes after what it already holds.
    /// - Returns: the number of bytes appended.
    @discardableResult
    public static func compress(_ codec: CompressionCodec, _ input: UnsafeRawBufferPointer, level: Int32?,
                                into output: inout ByteWriter) throws(CompressionError) -> Int {
        let bound = try maxCompressedSize(codec, input.count)
        output.ensureCapacity(bound)
        let destination = UnsafeMutableRawBufferPointer(start: output.base + output.count, count: bound)
        let written = try compress(codec, input, level: level, to: destination)
        output._count &+= written
        return written
    }

    /// Appends `input` decompressed with `codec` to `output`, producing at most
    /// `maxOutputBytes` bytes.
    ///
    /// Accepts what Kafka producers write: gzip or zlib streams (concatenated
    /// members too); raw snappy blocks and the xerial/snappy-java framing; LZ4
    /// frames; zstd frames with or without a content size. Anything malformed, or
    /// output that would pass the bound, throws; `output` then holds an unspecified
    /// prefix past its previous count, so callers discard it.
    /// - Returns: the number of bytes appended.
    @discardableResult
    public static func decompress(_ codec: CompressionCodec, _ input: UnsafeRawBufferPointer,
                                  into output: inout ByteWriter, maxOutputBytes: Int) throws(CompressionError) -> Int {
        let start = output.count
        let limit = max(0, maxOutputBytes)
        switch codec {
        case .gzip: try Gzip.decompress(input, into: &output, limit: limit)
        case .snappy: try Snappy.decompress(input, into: &output, limit: limit)
        case .lz4: try LZ4.decompress(input, into: &output, limit: limit)
        case .zstd: try Zstd.decompress(input, into: &output, limit: limit)
        case .none: throw CompressionError(.none, .unsupportedCodec)
        }
        return output.count - start
    }

    /// Compresses a byte array (tests and slow paths).
    public static func compress(_ codec: CompressionCodec, _ input: [UInt8], level: Int32? = nil) throws(CompressionError) -> [UInt8] {
        var output = ByteWriter(capacity: input.count / 2 + 64)
        let result = input.withUnsafeBytes { raw in
            Result { () throws(CompressionError) in try compress(codec, raw, level: level, into: &output) }
        }
        _ = try result.get()
        return output.bytes
    }

    /// Decompresses a byte array (tests and slow paths).
    public static func decompress(_ codec: CompressionCodec, _ input: [UInt8], maxOutputBytes: Int) throws(CompressionError) -> [UInt8] {
        var output = ByteWriter(capacity: min(max(input.count * 4, 64), max(maxOutputBytes, 16)))
        let result = input.withUnsafeBytes { raw in
            Result { () throws(CompressionError) in try decompress(codec, raw, into: &output, maxOutputBytes: maxOutputBytes) }
        }
        _ = try result.get()
        return output.bytes
    }

    /// The most bytes ``compress(_:_:level:into:)`` can append for `count` input bytes.
    public static func maxCompressedSize(_ codec: CompressionCodec, _ count: Int) throws(CompressionError) -> Int {
        switch codec {
        case .gzip: try Gzip.maxCompressedSize(count)
        case .snappy: try Snappy.maxCompressedSize(count)
        case .lz4: try LZ4.maxCompressedSize(count)
        case .zstd: try Zstd.maxCompressedSize(count)
        case .none: throw CompressionError(.none, .unsupportedCodec)
        }
    }

    /// The levels `codec` accepts; ``compress(_:_:level:into:)`` clamps to this range.
    ///
    /// gzip 0...9 (default 6), lz4 0...12 (0 = fast default, 3+ = LZ4 HC), zstd from
    /// its negative "fast" levels up to 22 (default 3). Snappy has no levels: `0...0`.
    public static func levelRange(_ codec: CompressionCodec) -> ClosedRange<Int32> {
        switch codec {
        case .gzip: 0...9
        case .lz4: 0...12
        case .zstd: Zstd.levelRange
        case .snappy, .none: 0...0
        }
    }

    /// Compresses into memory the caller has reserved, at least
    /// ``maxCompressedSize(_:_:)`` bytes. `input` and `destination` may lie in the
    /// same buffer as long as they do not overlap.
    /// - Returns: the number of bytes written at the start of `destination`.
    static func compress(_ codec: CompressionCodec, _ input: UnsafeRawBufferPointer, level: Int32?,
                         to destination: UnsafeMutableRawBufferPointer) throws(CompressionError) -> Int {
        let level = level.map { min(max($0, levelRange(codec).lowerBound), levelRange(codec).upperBound) }
        return switch codec {
        case .gzip: try Gzip.compress(input, level: level, to: destination)
        case .snappy: try Snappy.compress(input, to: destination)
        case .lz4: try LZ4.compress(input, level: level, to: destination)
        case .zstd: try Zstd.compress(input, level: level, to: destination)
        case .none: throw CompressionError(.none, .unsupportedCodec)
        }
    }

    /// Room to offer a streaming decompressor next: up to `chunk` bytes, never past
    /// `limit + 1` in total, so one byte beyond the bound is enough to detect a bomb.
    @inline(__always)
    static func nextChunk(_ output: inout ByteWriter, start: Int, limit: Int, chunk: Int) -> Int {
        let produced = output.count - start
        let room = min(chunk, limit - produced + 1)
        output.ensureCapacity(room)
        return room
    }
}

/// A pthread-specific slot: each thread sees its own pointer, and `destructor` runs on
/// a thread's non-nil pointer when that thread exits. Used to keep one codec context
/// per thread.
struct ThreadSlot: Sendable {
    let key: pthread_key_t

    init(destructor: @convention(c) (UnsafeMutableRawPointer?) -> Void) {
        var key = pthread_key_t()
        let status = pthread_key_create(&key, destructor)
        precondition(status == 0, "pthread_key_create failed: \(status)")
        self.key = key
    }

    /// This thread's pointer, `nil` until set.
    var value: UnsafeMutableRawPointer? {
        get { pthread_getspecific(key) }
        nonmutating set { _ = pthread_setspecific(key, newValue) }
    }
}
