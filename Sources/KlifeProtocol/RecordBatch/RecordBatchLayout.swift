import CKlifeShim

// Shared vocabulary of RecordBatch v2: record headers, codecs, timestamp types,
// exact wire sizes, CRC-32C, and the unchecked varint stores the encoder uses
// after it has reserved room for a whole record.

/// One record header: a UTF-8 key and an optional byte value.
public struct RecordHeader: Sendable, Hashable {
    /// The header name, written as UTF-8.
    public var key: String
    /// The header value; `nil` is written as length -1.
    public var value: [UInt8]?

    /// Creates a header.
    @inlinable
    public init(key: String, value: [UInt8]?) {
        self.key = key
        self.value = value
    }
}

/// The compression codec in bits 0-2 of a batch's attributes.
public enum CompressionCodec: Int16, Sendable, CustomStringConvertible {
    /// No compression.
    case none = 0
    /// GZIP (RFC 1952).
    case gzip = 1
    /// Snappy: written as one raw block (as librdkafka does); read as a raw block or in
    /// the xerial/snappy-java framing Java clients write.
    case snappy = 2
    /// LZ4 frame format, independent blocks.
    case lz4 = 3
    /// Zstandard (Produce v7+).
    case zstd = 4

    /// The lowercase name Kafka uses in its configuration (`compression.type`).
    public var description: String {
        switch self {
        case .none: "none"
        case .gzip: "gzip"
        case .snappy: "snappy"
        case .lz4: "lz4"
        case .zstd: "zstd"
        }
    }
}

/// Which clock a batch's timestamps come from (attributes bit 3).
public enum TimestampType: Sendable {
    /// The producer's timestamp, per record.
    case createTime
    /// The broker's append time; every record carries the batch's MaxTimestamp.
    case logAppendTime
}

/// Attribute bits of a RecordBatch v2 header.
public enum RecordBatchAttributes {
    /// Bits 0-2: compression codec.
    public static let compressionMask: Int16 = 0x07
    /// Bit 3: timestamp type (1 = log append time).
    public static let logAppendTime: Int16 = 0x08
    /// Bit 4: the batch belongs to a transaction.
    public static let transactional: Int16 = 0x10
    /// Bit 5: the batch holds control records (transaction markers).
    public static let control: Int16 = 0x20
    /// Bit 6: BaseTimestamp holds the delete horizon (compacted topics, KIP-534).
    public static let deleteHorizon: Int16 = 0x40
}

/// Exact wire sizes, so a producer knows a batch's size before encoding it.
///
/// A batch is `headerSize + Σ recordSize(...)` bytes; a Produce partition's
/// `recordsByteCount` is the sum of its batches. Sizes are exact, not estimates:
/// ``ProduceRequestWriter`` checks them with a precondition.
public enum RecordBatchLayout {
    /// Bytes of the fixed batch header, BaseOffset through RecordCount.
    public static let headerSize = 61
    /// Bytes before the Length field's payload: BaseOffset + Length.
    public static let logOverhead = 12
    /// Offset of the CRC field; the CRC covers everything from ``attributesOffset`` on.
    public static let crcOffset = 17
    /// Offset of the Attributes field, where the CRC-covered bytes start.
    public static let attributesOffset = 21
    /// Smallest possible encoded record: length, attributes, and five one-byte varints.
    public static let minimumRecordSize = 7

    /// Size of one encoded record including its own length varint.
    ///
    /// - Parameters:
    ///   - offsetDelta: the record's index in its batch.
    ///   - timestampDelta: record timestamp minus the batch's base timestamp.
    ///   - keyCount: key length, `nil` for a null key.
    ///   - valueCount: value length, `nil` for a null value.
    ///   - headers: the record headers.
    @inlinable
    public static func recordSize(
        offsetDelta: Int32, timestampDelta: Int64, keyCount: Int?, valueCount: Int?, headers: [RecordHeader]
    ) -> Int {
        let body = bodySize(offsetDelta: offsetDelta, timestampDelta: timestampDelta,
                            keyCount: keyCount, valueCount: valueCount, headers: headers)
        return ByteWriter.varintSize(Int32(truncatingIfNeeded: body)) &+ body
    }

    /// Size of one encoded record at `offsetDelta` and `timestampDelta`, from its size with
    /// both deltas 0 (``recordSize(offsetDelta:timestampDelta:keyCount:valueCount:headers:)-(_,_,_,_,EncodedHeaders)``
    /// at 0 and 0): a batch's size follows from the sizes a producer computed once per record,
    /// without reading the records' bytes again.
    @inlinable @inline(__always)
    public static func recordSize(zeroDeltaSize: Int, offsetDelta: Int32, timestampDelta: Int64) -> Int {
        // Both zero deltas took one byte each; the length varint is found from the total.
        var prefix = 1
        while ByteWriter.varintSize(Int32(truncatingIfNeeded: zeroDeltaSize &- prefix)) != prefix && prefix < 5 { prefix &+= 1 }
        let body = zeroDeltaSize &- prefix &- 2 &+ ByteWriter.varintSize(offsetDelta) &+ ByteWriter.varlongSize(timestampDelta)
        return ByteWriter.varintSize(Int32(truncatingIfNeeded: body)) &+ body
    }

    /// Size of a record without its leading length varint (the value that varint holds).
    @inlinable
    public static func bodySize(
        offsetDelta: Int32, timestampDelta: Int64, keyCount: Int?, valueCount: Int?, headers: [RecordHeader]
    ) -> Int {
        bodySize(offsetDelta: offsetDelta, timestampDelta: timestampDelta, keyCount: keyCount, valueCount: valueCount,
                 headerCount: headers.count, headerBytes: headers.isEmpty ? 0 : headerBytes(headers))
    }

    /// The body size from the headers' count and their bytes in wire form.
    @inlinable @inline(__always)
    static func bodySize(
        offsetDelta: Int32, timestampDelta: Int64, keyCount: Int?, valueCount: Int?, headerCount: Int, headerBytes: Int
    ) -> Int {
        var size = 1 // attributes
        size &+= ByteWriter.varlongSize(timestampDelta)
        size &+= ByteWriter.varintSize(offsetDelta)
        size &+= nullableBytesSize(keyCount)
        size &+= nullableBytesSize(valueCount)
        size &+= ByteWriter.varintSize(Int32(truncatingIfNeeded: headerCount))
        return size &+ headerBytes
    }

    /// Size of one encoded record including its own length varint, its headers already
    /// encoded (``EncodedHeaders``).
    @inlinable
    public static func recordSize(
        offsetDelta: Int32, timestampDelta: Int64, keyCount: Int?, valueCount: Int?, headers: EncodedHeaders
    ) -> Int {
        let body = bodySize(offsetDelta: offsetDelta, timestampDelta: timestampDelta,
                            keyCount: keyCount, valueCount: valueCount, headers: headers)
        return ByteWriter.varintSize(Int32(truncatingIfNeeded: body)) &+ body
    }

    /// ``bodySize(offsetDelta:timestampDelta:keyCount:valueCount:headers:)-(_,_,_,_,[RecordHeader])`` with the headers
    /// already encoded.
    @inlinable @inline(__always)
    public static func bodySize(
        offsetDelta: Int32, timestampDelta: Int64, keyCount: Int?, valueCount: Int?, headers: EncodedHeaders
    ) -> Int {
        bodySize(offsetDelta: offsetDelta, timestampDelta: timestampDelta, keyCount: keyCount, valueCount: valueCount,
                 headerCount: headers.count, headerBytes: headers.bytes.count)
    }

    /// Bytes of `headers` in a record's wire form, without their count.
    @inlinable
    public static func headerBytes(_ headers: [RecordHeader]) -> Int {
        var size = 0
        for header in headers {
            let keyCount = header.key.utf8.count
            size &+= ByteWriter.varintSize(Int32(truncatingIfNeeded: keyCount)) &+ keyCount
            size &+= nullableBytesSize(header.value?.count)
        }
        return size
    }

    /// Writes `headers` in a record's wire form (without their count) at `start`, which has
    /// room for ``headerBytes(_:)`` bytes. - Returns: the end of what was written.
    @inlinable
    public static func writeHeaders(_ headers: [RecordHeader], at start: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        RecordBatchEncoder.putHeaders(headers, at: start)
    }

    /// Size of a varint length prefix plus the bytes, or one byte for null (-1).
    @inlinable @inline(__always)
    public static func nullableBytesSize(_ count: Int?) -> Int {
        guard let count else { return 1 }
        return ByteWriter.varintSize(Int32(truncatingIfNeeded: count)) &+ count
    }
}

/// CRC-32C (Castagnoli), the checksum of RecordBatch v2.
///
/// Backed by the C shim: SSE4.2 `crc32` instructions when the CPU has them,
/// a slicing-by-8 table otherwise.
public enum CRC32C {
    /// The CRC-32C of `bytes` (initial value 0, final inversion applied).
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        update(0, bytes)
    }

    /// Continues `crc` (a previous result, or 0) over `bytes`.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return klife_crc32c(crc, base, bytes.count)
    }

    /// The CRC-32C of a byte array (tests and slow paths).
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// Whether the SSE4.2 hardware path is in use.
    public static var isHardwareAccelerated: Bool { klife_crc32c_is_hardware() != 0 }
}

/// Unchecked big-endian and varint stores into memory already reserved by the caller.
///
/// Each store returns the pointer just past what it wrote. Callers must have made
/// room with ``ByteWriter/ensureCapacity(_:)`` for the exact size first.
@usableFromInline
internal enum RawWire {
    @inlinable @inline(__always)
    static func putUnsignedVarint(_ value: UInt64, at p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        if _fastPath(value < 0x80) {
            p.storeBytes(of: UInt8(truncatingIfNeeded: value), as: UInt8.self)
            return p + 1
        }
        var v = value
        var q = p
        while v >= 0x80 {
            q.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, as: UInt8.self)
            q += 1
            v >>= 7
        }
        q.storeBytes(of: UInt8(truncatingIfNeeded: v), as: UInt8.self)
        return q + 1
    }

    @inlinable @inline(__always)
    static func putVarint(_ value: Int32, at p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        putUnsignedVarint(UInt64(UInt32(bitPattern: (value << 1) ^ (value >> 31))), at: p)
    }

    @inlinable @inline(__always)
    static func putVarlong(_ value: Int64, at p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        putUnsignedVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)), at: p)
    }

    /// Varint length then the bytes; `nil` writes length -1.
    @inlinable @inline(__always)
    static func putNullableBytes(_ bytes: UnsafeRawBufferPointer?, at p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        guard let bytes else { return putVarint(-1, at: p) }
        let q = putVarint(Int32(truncatingIfNeeded: bytes.count), at: p)
        if let src = bytes.baseAddress, bytes.count > 0 { q.copyMemory(from: src, byteCount: bytes.count) }
        return q + bytes.count
    }

    @inlinable @inline(__always)
    static func put<T: FixedWidthInteger>(_ value: T, at p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        p.storeBytes(of: value.bigEndian, as: T.self)
        return p + MemoryLayout<T>.size
    }
}

/// A record's headers already in wire form (``RecordBatchLayout/writeHeaders(_:at:)``): how
/// many there are and their bytes, without the count. A borrowed view: the bytes must outlive
/// its use.
public struct EncodedHeaders {
    /// Number of headers.
    public let count: Int
    /// Their bytes in wire form.
    public let bytes: UnsafeRawBufferPointer

    /// Headers `bytes` in wire form, `count` of them.
    @inlinable
    public init(count: Int, bytes: UnsafeRawBufferPointer) {
        self.count = count
        self.bytes = bytes
    }

    /// No headers.
    @inlinable
    public static var none: EncodedHeaders { EncodedHeaders(count: 0, bytes: UnsafeRawBufferPointer(start: nil, count: 0)) }
}
