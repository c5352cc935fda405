/// A growable, uniquely owned output buffer that Kafka frames are encoded into.
///
///     base
///     ├──────────────── count ───────────────┤
///     [ encoded bytes ....................... | free ............ ]
///     ├──────────────────────── capacity ─────────────────────────┤
///
/// Integers are written big-endian, as Kafka requires. Lengths and CRCs that are
/// only known at the end are written as placeholders (``reserve(_:)`` returns
/// their offset) and patched afterwards with ``patchInt32(_:at:)``.
///
/// The type is `~Copyable`: one owner, no reference counting, freed on `deinit`.
/// ``removeAll()`` keeps the memory so a connection reuses one buffer for life.
public struct ByteWriter: ~Copyable {
    @usableFromInline internal var base: UnsafeMutableRawPointer
    @usableFromInline internal var capacity: Int
    /// Number of bytes written so far.
    @inlinable public var count: Int { _count }
    @usableFromInline internal var _count: Int

    /// Creates an empty writer with room for `capacity` bytes before it grows.
    public init(capacity: Int = 1024) {
        let capacity = max(capacity, 16)
        self.base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        self.capacity = capacity
        self._count = 0
    }

    deinit { base.deallocate() }

    /// Forgets the written bytes but keeps the allocated memory.
    @inlinable
    public mutating func removeAll() { _count = 0 }

    /// Drops the first `n` written bytes, moving the rest to the front.
    public mutating func removeFirst(_ n: Int) {
        precondition(n >= 0 && n <= count, "removeFirst out of range")
        if n == count { _count = 0; return }
        (base + 0).copyMemory(from: base + n, byteCount: count - n)
        _count -= n
    }

    /// Makes sure `n` more bytes fit without another allocation.
    @inlinable
    public mutating func ensureCapacity(_ n: Int) {
        if _slowPath(capacity &- count < n) { grow(minimumFree: n) }
    }

    @usableFromInline @inline(never)
    internal mutating func grow(minimumFree n: Int) {
        var newCapacity = capacity &* 2
        while newCapacity &- count < n { newCapacity &*= 2 }
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        newBase.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    /// Writes `n` zero bytes to be patched later and returns their offset.
    @inlinable
    public mutating func reserve(_ n: Int) -> Int {
        ensureCapacity(n)
        let offset = count
        (base + offset).initializeMemory(as: UInt8.self, repeating: 0, count: n)
        _count &+= n
        return offset
    }

    // MARK: Fixed-width integers (big-endian)

    @inlinable
    internal mutating func writeBigEndian<T: FixedWidthInteger>(_ value: T) {
        let size = MemoryLayout<T>.size
        ensureCapacity(size)
        (base + count).storeBytes(of: value.bigEndian, as: T.self)
        _count &+= size
    }

    /// Writes an INT8.
    @inlinable public mutating func writeInt8(_ v: Int8) { writeBigEndian(v) }
    /// Writes a UINT8 (also used for BOOLEAN).
    @inlinable public mutating func writeUInt8(_ v: UInt8) { writeBigEndian(v) }
    /// Writes a BOOLEAN as one byte, 1 or 0.
    @inlinable public mutating func writeBool(_ v: Bool) { writeBigEndian(UInt8(v ? 1 : 0)) }
    /// Writes an INT16.
    @inlinable public mutating func writeInt16(_ v: Int16) { writeBigEndian(v) }
    /// Writes a UINT16.
    @inlinable public mutating func writeUInt16(_ v: UInt16) { writeBigEndian(v) }
    /// Writes an INT32.
    @inlinable public mutating func writeInt32(_ v: Int32) { writeBigEndian(v) }
    /// Writes a UINT32.
    @inlinable public mutating func writeUInt32(_ v: UInt32) { writeBigEndian(v) }
    /// Writes an INT64.
    @inlinable public mutating func writeInt64(_ v: Int64) { writeBigEndian(v) }
    /// Writes a FLOAT64.
    @inlinable public mutating func writeFloat64(_ v: Double) { writeBigEndian(v.bitPattern) }

    /// Overwrites four bytes at `offset` (a placeholder from ``reserve(_:)``).
    @inlinable
    public mutating func patchInt32(_ v: Int32, at offset: Int) {
        precondition(offset >= 0 && offset &+ 4 <= count, "patch outside written bytes")
        (base + offset).storeBytes(of: v.bigEndian, as: Int32.self)
    }

    /// Overwrites four bytes at `offset` with an unsigned value.
    @inlinable
    public mutating func patchUInt32(_ v: UInt32, at offset: Int) {
        patchInt32(Int32(bitPattern: v), at: offset)
    }

    /// Overwrites two bytes at `offset`.
    @inlinable
    public mutating func patchInt16(_ v: Int16, at offset: Int) {
        precondition(offset >= 0 && offset &+ 2 <= count, "patch outside written bytes")
        (base + offset).storeBytes(of: v.bigEndian, as: Int16.self)
    }

    // MARK: Variable-length integers

    /// Writes an unsigned varint (7 bits per byte, least significant group first).
    @inlinable
    public mutating func writeUnsignedVarint(_ value: UInt32) { writeUnsignedVarlong(UInt64(value)) }

    /// Writes an unsigned varlong (up to 10 bytes).
    @inlinable
    public mutating func writeUnsignedVarlong(_ value: UInt64) {
        ensureCapacity(10)
        var v = value
        var p = base + count
        while v >= 0x80 {
            p.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, as: UInt8.self)
            p += 1
            v >>= 7
        }
        p.storeBytes(of: UInt8(truncatingIfNeeded: v), as: UInt8.self)
        _count = p - base + 1
    }

    /// Writes a zig-zag encoded signed varint (VARINT).
    @inlinable
    public mutating func writeVarint(_ value: Int32) {
        writeUnsignedVarlong(UInt64(UInt32(bitPattern: (value << 1) ^ (value >> 31))))
    }

    /// Writes a zig-zag encoded signed varlong (VARLONG).
    @inlinable
    public mutating func writeVarlong(_ value: Int64) {
        writeUnsignedVarlong(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// Number of bytes ``writeVarint(_:)`` uses for `value`, so sizes can be known before encoding.
    @inlinable
    public static func varintSize(_ value: Int32) -> Int {
        unsignedVarlongSize(UInt64(UInt32(bitPattern: (value << 1) ^ (value >> 31))))
    }

    /// Number of bytes ``writeVarlong(_:)`` uses for `value`.
    @inlinable
    public static func varlongSize(_ value: Int64) -> Int {
        unsignedVarlongSize(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// Number of bytes ``writeUnsignedVarlong(_:)`` uses for `value`.
    @inlinable
    public static func unsignedVarlongSize(_ value: UInt64) -> Int {
        let bits = 64 &- value.leadingZeroBitCount
        return bits == 0 ? 1 : (bits &+ 6) / 7
    }

    // MARK: Raw bytes

    /// Appends raw bytes.
    @inlinable
    public mutating func writeBytes(_ bytes: UnsafeRawBufferPointer) {
        guard let src = bytes.baseAddress, bytes.count > 0 else { return }
        ensureCapacity(bytes.count)
        (base + count).copyMemory(from: src, byteCount: bytes.count)
        _count &+= bytes.count
    }

    /// Appends raw bytes.
    @inlinable
    public mutating func writeBytes(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { writeBytes($0) }
    }

    // MARK: Strings and byte strings (Kafka types)

    /// Writes a STRING: INT16 length then UTF-8 bytes.
    @inlinable
    public mutating func writeString(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            writeInt16(Int16(truncatingIfNeeded: utf8.count))
            writeBytes(UnsafeRawBufferPointer(utf8))
        }
    }

    /// Writes a NULLABLE_STRING: length -1 for `nil`.
    @inlinable
    public mutating func writeNullableString(_ s: String?) {
        if let s { writeString(s) } else { writeInt16(-1) }
    }

    /// Writes a COMPACT_STRING: unsigned varint length+1 then UTF-8 bytes.
    @inlinable
    public mutating func writeCompactString(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            writeUnsignedVarint(UInt32(utf8.count + 1))
            writeBytes(UnsafeRawBufferPointer(utf8))
        }
    }

    /// Writes a COMPACT_NULLABLE_STRING: 0 for `nil`.
    @inlinable
    public mutating func writeCompactNullableString(_ s: String?) {
        if let s { writeCompactString(s) } else { writeUnsignedVarint(0) }
    }

    /// Writes a STRING or COMPACT_STRING depending on `flexible`.
    @inlinable
    public mutating func writeString(_ s: String, flexible: Bool) {
        if flexible { writeCompactString(s) } else { writeString(s) }
    }

    /// Writes a NULLABLE_STRING or COMPACT_NULLABLE_STRING depending on `flexible`.
    @inlinable
    public mutating func writeNullableString(_ s: String?, flexible: Bool) {
        if flexible { writeCompactNullableString(s) } else { writeNullableString(s) }
    }

    /// Writes BYTES: INT32 length then the bytes.
    @inlinable
    public mutating func writeSizedBytes(_ b: [UInt8]) {
        writeInt32(Int32(truncatingIfNeeded: b.count))
        writeBytes(b)
    }

    /// Writes NULLABLE_BYTES: length -1 for `nil`.
    @inlinable
    public mutating func writeNullableSizedBytes(_ b: [UInt8]?) {
        if let b { writeSizedBytes(b) } else { writeInt32(-1) }
    }

    /// Writes COMPACT_BYTES: unsigned varint length+1 then the bytes.
    @inlinable
    public mutating func writeCompactBytes(_ b: [UInt8]) {
        writeUnsignedVarint(UInt32(b.count + 1))
        writeBytes(b)
    }

    /// Writes BYTES or COMPACT_BYTES depending on `flexible`.
    @inlinable
    public mutating func writeSizedBytes(_ b: [UInt8], flexible: Bool) {
        if flexible { writeCompactBytes(b) } else { writeSizedBytes(b) }
    }

    /// Writes NULLABLE_BYTES or COMPACT_NULLABLE_BYTES depending on `flexible`.
    @inlinable
    public mutating func writeNullableSizedBytes(_ b: [UInt8]?, flexible: Bool) {
        if flexible {
            if let b { writeCompactBytes(b) } else { writeUnsignedVarint(0) }
        } else {
            writeNullableSizedBytes(b)
        }
    }

    // MARK: Arrays, tagged fields, UUID

    /// Writes an ARRAY length (INT32) or COMPACT_ARRAY length (varint N+1).
    @inlinable
    public mutating func writeArrayCount(_ n: Int, flexible: Bool) {
        if flexible { writeUnsignedVarint(UInt32(n + 1)) } else { writeInt32(Int32(n)) }
    }

    /// Writes a nullable array length: -1 (or 0 when compact) for `nil`.
    @inlinable
    public mutating func writeNullableArrayCount(_ n: Int?, flexible: Bool) {
        if let n { writeArrayCount(n, flexible: flexible) } else if flexible { writeUnsignedVarint(0) } else { writeInt32(-1) }
    }

    /// Writes an empty tagged-field section (KIP-482) when `flexible`.
    @inlinable
    public mutating func writeEmptyTaggedFields(flexible: Bool = true) {
        if flexible { writeUInt8(0) }
    }

    /// Writes a UUID as 16 raw bytes.
    @inlinable
    public mutating func writeUUID(_ id: KafkaUUID) {
        writeInt64(Int64(bitPattern: id.high))
        writeInt64(Int64(bitPattern: id.low))
    }

    // MARK: Reading back

    /// Calls `body` with the written bytes.
    @inlinable
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Calls `body` with a mutable view of bytes `range` (for CRC or in-place patching).
    @inlinable
    public mutating func withUnsafeMutableBytes<R>(_ range: Range<Int>, _ body: (UnsafeMutableRawBufferPointer) -> R) -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "range outside written bytes")
        return body(UnsafeMutableRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }

    /// A copy of the written bytes (tests and slow paths only).
    public var bytes: [UInt8] {
        [UInt8](UnsafeRawBufferPointer(start: base, count: count))
    }
}

/// A Kafka UUID (topic ids): 128 bits, written as two big-endian 64-bit halves.
public struct KafkaUUID: Hashable, Sendable, CustomStringConvertible {
    /// The first eight bytes.
    public var high: UInt64
    /// The last eight bytes.
    public var low: UInt64

    /// The all-zero UUID Kafka uses for "no topic id".
    public static let zero = KafkaUUID(high: 0, low: 0)

    /// Creates a UUID from its two halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Hex text, 32 digits.
    public var description: String {
        let h = String(high, radix: 16), l = String(low, radix: 16)
        return String(repeating: "0", count: 16 - h.count) + h + String(repeating: "0", count: 16 - l.count) + l
    }
}
