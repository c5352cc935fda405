/// Where one record's fields lie in the bytes it was fetched in. Fixed size and free of
/// references, so an array of them costs one allocation however many records it holds and
/// copying one retains nothing.
public struct RecordSlot: Sendable, Equatable {
    /// `baseOffset + offsetDelta`.
    public var offset: Int64
    /// `baseTimestamp + timestampDelta`, or the batch's MaxTimestamp for log-append-time batches.
    public var timestamp: Int64
    /// Position of the key in its buffer.
    public var keyStart: Int32
    /// Key length in bytes, -1 for a null key.
    public var keyLength: Int32
    /// Position of the value in its buffer.
    public var valueStart: Int32
    /// Value length in bytes, -1 for a null value.
    public var valueLength: Int32
    /// Position of the first header (just after the header count) in its buffer.
    public var headersStart: Int32
    /// Number of headers, already checked to fit.
    public var headerCount: Int32
    /// The record lies in ``RecordIndex/inflated`` (its batch was compressed) rather than in
    /// ``RecordIndex/fetched``.
    public var isInflated: Bool
    /// The batch's timestamps are the broker's append time.
    public var isLogAppendTime: Bool

    /// Creates a slot from its fields.
    public init(offset: Int64, timestamp: Int64, keyStart: Int32, keyLength: Int32, valueStart: Int32, valueLength: Int32,
                headersStart: Int32, headerCount: Int32, isInflated: Bool, isLogAppendTime: Bool) {
        self.offset = offset
        self.timestamp = timestamp
        self.keyStart = keyStart
        self.keyLength = keyLength
        self.valueStart = valueStart
        self.valueLength = valueLength
        self.headersStart = headersStart
        self.headerCount = headerCount
        self.isInflated = isInflated
        self.isLogAppendTime = isLogAppendTime
    }

    /// Bytes of key and value (what a consumer counts against its prefetch bound).
    @inlinable public var payloadBytes: Int { Int(max(keyLength, 0)) &+ Int(max(valueLength, 0)) }
}

/// One batch of a ``RecordIndex``: its header and its records' slots.
public struct IndexedBatch: Sendable {
    /// The batch header.
    public var header: RecordBatchHeader
    /// Its records in ``RecordIndex/slots``, in offset order (control batches keep theirs).
    public var records: Range<Int>

    /// Creates an entry.
    public init(header: RecordBatchHeader, records: Range<Int>) {
        self.header = header
        self.records = records
    }
}

/// The records of a Fetch partition's bytes, located but not copied: the fetched bytes, one
/// buffer holding every compressed batch decompressed, and a slot per record saying where its
/// key, value and headers are. Readers slice keys and values out of the two buffers.
public struct RecordIndex: Sendable {
    /// The bytes as fetched (uncompressed batches' records are read in place).
    public var fetched: ByteBlock
    /// The records of every compressed batch, decompressed one after the other.
    public var inflated: ByteBlock
    /// Every complete batch, in order.
    public var batches: [IndexedBatch]
    /// Every record of every batch.
    public var slots: [RecordSlot]
    /// The bytes ended inside a batch (normal in Fetch: the broker cuts at its byte limit).
    public var truncatedTail: Bool

    /// Creates an index from its parts, copying the bytes into blocks.
    public init(fetched: [UInt8], inflated: [UInt8], batches: [IndexedBatch], slots: [RecordSlot], truncatedTail: Bool) {
        self.init(fetched: ByteBlock(fetched), inflated: ByteBlock(inflated), batches: batches, slots: slots,
                  truncatedTail: truncatedTail)
    }

    /// Creates an index from its parts.
    public init(fetched: ByteBlock, inflated: ByteBlock, batches: [IndexedBatch], slots: [RecordSlot], truncatedTail: Bool) {
        self.fetched = fetched
        self.inflated = inflated
        self.batches = batches
        self.slots = slots
        self.truncatedTail = truncatedTail
    }

    /// An index of nothing.
    public static let empty = RecordIndex(fetched: ByteBlock.empty, inflated: ByteBlock.empty, batches: [], slots: [],
                                          truncatedTail: false)

    /// The buffer a slot points into.
    @inlinable public func buffer(of slot: RecordSlot) -> ByteBlock { slot.isInflated ? inflated : fetched }

    /// The key of a slot, copied out of its buffer.
    public func key(of slot: RecordSlot) -> [UInt8]? {
        slot.keyLength < 0 ? nil : copy(of: slot, start: slot.keyStart, count: slot.keyLength)
    }

    /// The value of a slot, copied out of its buffer.
    public func value(of slot: RecordSlot) -> [UInt8]? {
        slot.valueLength < 0 ? nil : copy(of: slot, start: slot.valueStart, count: slot.valueLength)
    }

    private func copy(of slot: RecordSlot, start: Int32, count: Int32) -> [UInt8] {
        buffer(of: slot).withUnsafeBytes { [UInt8](UnsafeRawBufferPointer(rebasing: $0[Int(start)..<Int(start) + Int(count)])) }
    }

    /// Appends another index's batches after this one's (the buffers are concatenated: a slow
    /// path that reads on to decide transactions, never the fetch loop).
    public mutating func append(_ other: RecordIndex) {
        let fetchedShift = Int32(clamping: fetched.count)
        let inflatedShift = Int32(clamping: inflated.count)
        let slotShift = slots.count
        fetched = ByteBlock(concatenating: fetched, other.fetched)
        inflated = ByteBlock(concatenating: inflated, other.inflated)
        slots.reserveCapacity(slots.count + other.slots.count)
        for var slot in other.slots {
            let shift = slot.isInflated ? inflatedShift : fetchedShift
            slot.keyStart &+= shift
            slot.valueStart &+= shift
            slot.headersStart &+= shift
            slots.append(slot)
        }
        for batch in other.batches {
            batches.append(IndexedBatch(header: batch.header,
                                        records: batch.records.lowerBound + slotShift..<batch.records.upperBound + slotShift))
        }
        truncatedTail = other.truncatedTail
    }
}

extension RecordBatchEncoder {
    /// Headers as a record holds them after its header count, in a new array (records made by
    /// hand; ``RecordHeaderReader`` reads them back).
    public static func headerBytes(_ headers: [RecordHeader]) -> [UInt8] {
        let size = headers.reduce(0) {
            $0 &+ RecordBatchLayout.nullableBytesSize($1.key.utf8.count) &+ RecordBatchLayout.nullableBytesSize($1.value?.count)
        }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            guard let base = buffer.baseAddress, size > 0 else { count = 0; return }
            let start = UnsafeMutableRawPointer(base)
            count = start.distance(to: putHeaders(headers, at: start))
        }
    }
}

/// Reading the headers a slot points at, when a caller asks for them.
public enum RecordHeaderReader {
    /// The `count` headers starting at `start` in `buffer` (positions checked when indexed;
    /// anything out of place reads as no more headers, never a trap).
    public static func headers(in buffer: [UInt8], start: Int32, count: Int32) -> [RecordHeader] {
        buffer.withUnsafeBytes { headers(in: $0, start: start, count: count) }
    }

    /// The `count` headers starting at `start` in `block` (as ``headers(in:start:count:)-([UInt8],_,_)``).
    public static func headers(in block: ByteBlock, start: Int32, count: Int32) -> [RecordHeader] {
        block.withUnsafeBytes { headers(in: $0, start: start, count: count) }
    }

    /// The `count` headers starting at `start` in `raw` (as ``headers(in:start:count:)-([UInt8],_,_)``).
    public static func headers(in raw: UnsafeRawBufferPointer, start: Int32, count: Int32) -> [RecordHeader] {
        guard count > 0, start >= 0, Int(start) <= raw.count else { return [] }
        var r = ByteReader(UnsafeRawBufferPointer(rebasing: raw[Int(start)...]))
        var headers: [RecordHeader] = []
        headers.reserveCapacity(Int(count))
        for _ in 0..<count {
            let keyLength = Int(r.readVarint())
            if r.error == nil && keyLength < 0 { break }
            let keyBytes = r.readRawBytes(count: keyLength)
            let valueLength = Int(r.readVarint())
            var value: [UInt8]?
            if valueLength >= 0 { value = r.readBytes(count: valueLength) }
            guard r.error == nil, let keyBytes else { break }
            // Lenient like Kafka's Java client: malformed UTF-8 is repaired, not rejected.
            headers.append(RecordHeader(key: String(decoding: keyBytes, as: UTF8.self), value: value))
        }
        return headers
    }
}
