/// Why decoding stopped. Reported once, by the reader's sticky ``ByteReader/error``.
public struct DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Equatable, Sendable {
        /// Fewer bytes remained than the field needed.
        case truncated
        /// A length or count was negative (where not allowed) or larger than the bytes left.
        case invalidLength
        /// A varint ran past its maximum size.
        case invalidVarint
        /// Bytes that are not valid UTF-8 where a string was expected.
        case invalidString
        /// A checksum did not match.
        case crcMismatch
        /// A field held a value the protocol does not allow.
        case invalidValue
        /// A feature the codec does not implement (for example an unknown compression codec).
        case unsupported
    }

    /// What went wrong.
    public var kind: Kind
    /// Byte offset, within the buffer being decoded, where it went wrong.
    public var offset: Int
    /// A short note naming the field, when known.
    public var detail: String

    /// Creates a decode error.
    public init(_ kind: Kind, offset: Int, detail: String = "") {
        self.kind = kind
        self.offset = offset
        self.detail = detail
    }

    /// A one-line description.
    public var description: String {
        "decode error \(kind) at byte \(offset)" + (detail.isEmpty ? "" : ": \(detail)")
    }
}

/// A bounds-checked big-endian reader with a sticky error.
///
/// Once a read runs short or meets an impossible value, ``error`` is set and every
/// later read returns zero, an empty string or an empty array. Decoders read
/// field after field without a branch each, and check ``error`` once at the end:
/// hostile or truncated bytes can never trap or read out of bounds.
///
/// The reader borrows memory: it must not outlive the buffer it was made from.
public struct ByteReader {
    @usableFromInline internal let base: UnsafeRawPointer?
    /// Total number of bytes visible to this reader.
    public let count: Int
    /// Offset of the next byte to read.
    @inlinable public var offset: Int { _offset }
    /// The first error met, if any. Sticky.
    @inlinable public var error: DecodeError? { _error }
    @usableFromInline internal var _offset: Int
    @usableFromInline internal var _error: DecodeError?
    /// The block the bytes lie in, when they do: ``readNullableSizedBlock(flexible:pool:)`` then
    /// returns slices of it instead of copies. Unretained (a reader is copied freely and must
    /// not count references); whoever sets it keeps the block alive while the reader is used.
    public var backingBlock: Unmanaged<ByteBlock>?

    /// Creates a reader over `bytes`, which must stay alive while the reader is used.
    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer) {
        self.base = bytes.baseAddress
        self.count = bytes.count
        self._offset = 0
        self._error = nil
        self.backingBlock = nil
    }

    /// Bytes left to read (0 once an error is set).
    @inlinable public var remaining: Int { error == nil ? count &- offset : 0 }

    /// True when every byte was consumed and no error occurred.
    @inlinable public var isAtEnd: Bool { error == nil && offset == count }

    /// Records `kind` at the current offset unless an error is already set.
    @inlinable
    public mutating func fail(_ kind: DecodeError.Kind, _ detail: @autoclosure () -> String = "") {
        if _error == nil { _error = DecodeError(kind, offset: offset, detail: detail()) }
    }

    /// Returns a pointer to the next `n` bytes and advances, or `nil` (setting the error).
    @inlinable
    internal mutating func take(_ n: Int) -> UnsafeRawPointer? {
        guard error == nil else { return nil }
        guard n >= 0, n <= count &- offset, let base else {
            if n == 0 && error == nil { return UnsafeRawPointer(bitPattern: 1) }
            fail(n < 0 ? .invalidLength : .truncated)
            return nil
        }
        let p = base + offset
        _offset &+= n
        return p
    }

    @inlinable
    internal mutating func readBigEndian<T: FixedWidthInteger>(_: T.Type) -> T {
        guard let p = take(MemoryLayout<T>.size) else { return 0 }
        return T(bigEndian: p.loadUnaligned(as: T.self))
    }

    /// Reads an INT8.
    @inlinable public mutating func readInt8() -> Int8 { readBigEndian(Int8.self) }
    /// Reads a UINT8.
    @inlinable public mutating func readUInt8() -> UInt8 { readBigEndian(UInt8.self) }
    /// Reads a BOOLEAN (any non-zero byte is true).
    @inlinable public mutating func readBool() -> Bool { readBigEndian(UInt8.self) != 0 }
    /// Reads an INT16.
    @inlinable public mutating func readInt16() -> Int16 { readBigEndian(Int16.self) }
    /// Reads a UINT16.
    @inlinable public mutating func readUInt16() -> UInt16 { readBigEndian(UInt16.self) }
    /// Reads an INT32.
    @inlinable public mutating func readInt32() -> Int32 { readBigEndian(Int32.self) }
    /// Reads a UINT32.
    @inlinable public mutating func readUInt32() -> UInt32 { readBigEndian(UInt32.self) }
    /// Reads an INT64.
    @inlinable public mutating func readInt64() -> Int64 { readBigEndian(Int64.self) }
    /// Reads a FLOAT64.
    @inlinable public mutating func readFloat64() -> Double { Double(bitPattern: readBigEndian(UInt64.self)) }

    /// Reads an unsigned varlong of at most `maxBytes` bytes.
    ///
    /// Values of one or two bytes (the lengths, deltas and counts of records up to 8 KiB)
    /// take the inlined path; longer ones the loop.
    @inlinable @inline(__always)
    public mutating func readUnsignedVarlong(maxBytes: Int = 10) -> UInt64 {
        if _error == nil, _offset &+ 2 <= count, let base {
            let first = base.load(fromByteOffset: _offset, as: UInt8.self)
            if first & 0x80 == 0 {
                _offset &+= 1
                return UInt64(first)
            }
            let second = base.load(fromByteOffset: _offset &+ 1, as: UInt8.self)
            if second & 0x80 == 0 {
                _offset &+= 2
                return UInt64(first & 0x7f) | UInt64(second) &<< 7
            }
        }
        return readMultiByteUnsignedVarlong(maxBytes: maxBytes)
    }

    @usableFromInline
    mutating func readMultiByteUnsignedVarlong(maxBytes: Int) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        for _ in 0..<maxBytes {
            guard let p = take(1) else { return 0 }
            let byte = p.load(as: UInt8.self)
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return result }
            shift &+= 7
        }
        fail(.invalidVarint)
        return 0
    }

    /// Reads an unsigned varint (at most 5 bytes).
    @inlinable @inline(__always)
    public mutating func readUnsignedVarint() -> UInt32 {
        let v = readUnsignedVarlong(maxBytes: 5)
        guard v <= UInt64(UInt32.max) else { fail(.invalidVarint); return 0 }
        return UInt32(v)
    }

    /// Reads a zig-zag VARINT.
    @inlinable @inline(__always)
    public mutating func readVarint() -> Int32 {
        let u = readUnsignedVarint()
        return Int32(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    /// Reads a zig-zag VARLONG.
    @inlinable @inline(__always)
    public mutating func readVarlong() -> Int64 {
        let u = readUnsignedVarlong()
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    /// Skips `n` bytes.
    @inlinable
    public mutating func skip(_ n: Int) { _ = take(n) }

    /// Reads `n` raw bytes into a new array.
    @inlinable
    public mutating func readBytes(count n: Int) -> [UInt8] {
        guard let p = take(n) else { return [] }
        if n == 0 { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: p, count: n))
    }

    /// Borrows the next `n` bytes without copying, or `nil` (setting the error).
    @inlinable
    public mutating func readRawBytes(count n: Int) -> UnsafeRawBufferPointer? {
        guard let p = take(n) else { return nil }
        return UnsafeRawBufferPointer(start: n == 0 ? nil : p, count: n)
    }

    /// A reader over the next `n` bytes; this reader advances past them.
    @inlinable
    public mutating func subReader(count n: Int) -> ByteReader {
        guard let p = take(n) else { return ByteReader(failed: error ?? DecodeError(.truncated, offset: offset)) }
        var sub = ByteReader(UnsafeRawBufferPointer(start: n == 0 ? nil : p, count: n))
        sub.backingBlock = backingBlock
        return sub
    }

    @usableFromInline
    internal init(failed: DecodeError) {
        self.base = nil
        self.count = 0
        self._offset = 0
        self._error = failed
        self.backingBlock = nil
    }

    // MARK: Lengths

    /// Validates a length read from the wire: -1 means null when `nullable`.
    @inlinable
    internal mutating func checkedLength(_ n: Int, nullable: Bool) -> Int? {
        if n == -1 && nullable { return nil }
        if n < 0 || n > remaining { fail(.invalidLength, "length \(n)"); return nil }
        return n
    }

    @inlinable
    internal mutating func stringOfLength(_ n: Int) -> String {
        guard let p = take(n) else { return "" }
        if n == 0 { return "" }
        let bytes = UnsafeRawBufferPointer(start: p, count: n).bindMemory(to: UInt8.self)
        guard let s = String(validating: bytes, as: UTF8.self) else { fail(.invalidString); return "" }
        return s
    }

    /// Reads a STRING (INT16 length).
    @inlinable
    public mutating func readString() -> String {
        guard let n = checkedLength(Int(readInt16()), nullable: false) else { return "" }
        return stringOfLength(n)
    }

    /// Reads a NULLABLE_STRING.
    @inlinable
    public mutating func readNullableString() -> String? {
        let raw = Int(readInt16())
        guard error == nil, let n = checkedLength(raw, nullable: true) else { return nil }
        return stringOfLength(n)
    }

    /// Reads a COMPACT_STRING.
    @inlinable
    public mutating func readCompactString() -> String {
        guard let n = checkedLength(Int(readUnsignedVarint()) - 1, nullable: false) else { return "" }
        return stringOfLength(n)
    }

    /// Reads a COMPACT_NULLABLE_STRING.
    @inlinable
    public mutating func readCompactNullableString() -> String? {
        let raw = Int(readUnsignedVarint()) - 1
        guard error == nil, let n = checkedLength(raw, nullable: true) else { return nil }
        return stringOfLength(n)
    }

    /// Reads STRING or COMPACT_STRING depending on `flexible`.
    @inlinable
    public mutating func readString(flexible: Bool) -> String {
        flexible ? readCompactString() : readString()
    }

    /// Reads NULLABLE_STRING or COMPACT_NULLABLE_STRING depending on `flexible`.
    @inlinable
    public mutating func readNullableString(flexible: Bool) -> String? {
        flexible ? readCompactNullableString() : readNullableString()
    }

    /// Reads BYTES (INT32 length).
    @inlinable
    public mutating func readSizedBytes() -> [UInt8] {
        guard let n = checkedLength(Int(readInt32()), nullable: false) else { return [] }
        return readBytes(count: n)
    }

    /// Reads NULLABLE_BYTES.
    @inlinable
    public mutating func readNullableSizedBytes() -> [UInt8]? {
        let raw = Int(readInt32())
        guard error == nil, let n = checkedLength(raw, nullable: true) else { return nil }
        return readBytes(count: n)
    }

    /// Reads COMPACT_BYTES or BYTES depending on `flexible`.
    @inlinable
    public mutating func readSizedBytes(flexible: Bool) -> [UInt8] {
        guard flexible else { return readSizedBytes() }
        guard let n = checkedLength(Int(readUnsignedVarint()) - 1, nullable: false) else { return [] }
        return readBytes(count: n)
    }

    /// Reads COMPACT_NULLABLE_BYTES or NULLABLE_BYTES depending on `flexible`.
    @inlinable
    public mutating func readNullableSizedBytes(flexible: Bool) -> [UInt8]? {
        guard flexible else { return readNullableSizedBytes() }
        let raw = Int(readUnsignedVarint()) - 1
        guard error == nil, let n = checkedLength(raw, nullable: true) else { return nil }
        return readBytes(count: n)
    }

    /// Reads COMPACT_NULLABLE_BYTES or NULLABLE_BYTES into a ``ByteBlock``; `nil` for null. A
    /// slice of ``backingBlock`` when the bytes lie in it, else a copy (memory from `pool` when
    /// large).
    public mutating func readNullableSizedBlock(flexible: Bool, pool: ByteBlockPool? = .shared) -> ByteBlock? {
        guard let n = readNullableBytesLength(flexible: flexible), let p = take(n) else { return nil }
        if n == 0 { return .empty }
        if let backing = backingBlock?.takeUnretainedValue(), backing.contains(p, count: n) {
            return ByteBlock(slicing: backing, offset: p - UnsafeRawPointer(backing.base), count: n)
        }
        return ByteBlock(copying: UnsafeRawBufferPointer(start: p, count: n), pool: pool)
    }

    /// Reads the length of a (nullable) byte field without copying it; `nil` for null.
    @inlinable
    public mutating func readNullableBytesLength(flexible: Bool) -> Int? {
        let raw = flexible ? Int(readUnsignedVarint()) - 1 : Int(readInt32())
        guard error == nil else { return nil }
        return checkedLength(raw, nullable: true)
    }

    /// Reads an ARRAY / COMPACT_ARRAY element count.
    ///
    /// Each element takes at least `minimumElementSize` bytes, so a count larger than
    /// the bytes left is rejected here; ``readArray(count:_:)`` then reserves memory in
    /// proportion to the bytes left, so a hostile count can never cause a huge allocation.
    @inlinable
    public mutating func readArrayCount(flexible: Bool, minimumElementSize: Int = 1) -> Int {
        readNullableArrayCount(flexible: flexible, minimumElementSize: minimumElementSize) ?? 0
    }

    /// Reads a nullable array count; `nil` for a null array.
    @inlinable
    public mutating func readNullableArrayCount(flexible: Bool, minimumElementSize: Int = 1) -> Int? {
        let raw = flexible ? Int(readUnsignedVarint()) - 1 : Int(readInt32())
        guard error == nil else { return nil }
        if raw == -1 { return nil }
        if raw < 0 || raw > remaining / max(minimumElementSize, 1) {
            fail(.invalidLength, "array count \(raw)")
            return nil
        }
        return raw
    }

    /// Reads `count` elements with `element`, stopping early once an error is set.
    ///
    /// Room is reserved up front for at most four bytes of memory per byte left. A count may
    /// allow as little as one wire byte per element while each element is a struct of 24 bytes
    /// or more, so reserving the whole count could ask for many times the input before one
    /// element decoded; past the bound the array grows as elements do decode.
    @inlinable
    public mutating func readArray<T>(count: Int, _ element: (inout ByteReader) -> T) -> [T] {
        var result: [T] = []
        result.reserveCapacity(Swift.min(count, remaining / Swift.max(MemoryLayout<T>.stride, 1) * 4 + 1))
        for _ in 0..<count {
            let e = element(&self)
            if error != nil { return [] }
            result.append(e)
        }
        return result
    }

    /// Reads an ARRAY / COMPACT_ARRAY of elements.
    @inlinable
    public mutating func readArray<T>(flexible: Bool, _ element: (inout ByteReader) -> T) -> [T] {
        readArray(count: readArrayCount(flexible: flexible), element)
    }

    /// Reads a nullable array of elements.
    @inlinable
    public mutating func readNullableArray<T>(flexible: Bool, _ element: (inout ByteReader) -> T) -> [T]? {
        guard let n = readNullableArrayCount(flexible: flexible) else { return nil }
        return readArray(count: n, element)
    }

    /// Skips a tagged-field section (KIP-482) when `flexible`; unknown tags are ignored.
    @inlinable
    public mutating func skipTaggedFields(flexible: Bool = true) {
        guard flexible else { return }
        let n = Int(readUnsignedVarint())
        if n > remaining { fail(.invalidLength, "tagged field count \(n)"); return }
        for _ in 0..<n {
            _ = readUnsignedVarint()
            let size = Int(readUnsignedVarint())
            guard error == nil else { return }
            skip(size)
        }
    }

    /// Reads a UUID (16 bytes).
    @inlinable
    public mutating func readUUID() -> KafkaUUID {
        let high = UInt64(bitPattern: readInt64())
        let low = UInt64(bitPattern: readInt64())
        return KafkaUUID(high: high, low: low)
    }
}
