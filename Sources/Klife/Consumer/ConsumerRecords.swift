public import KlifeProtocol

/// The bytes of a fetched key or value: a view over the buffer the records were fetched (or
/// decompressed) into, not a copy. Indices start at 0. `Array(bytes)` copies them out; a view
/// keeps its whole fetch buffer alive, so copy what you keep for long.
public struct RecordBytes: RandomAccessCollection, Sendable, Hashable, ExpressibleByArrayLiteral, CustomStringConvertible {
    @usableFromInline let storage: ByteBlock
    @usableFromInline let start: Int
    /// Number of bytes.
    public let count: Int

    @inlinable init(storage: ByteBlock, start: Int, count: Int) {
        self.storage = storage
        self.start = start
        self.count = count
    }

    /// Bytes of an array of their own (tests, and records made by hand).
    public init(_ bytes: [UInt8]) { self.init(storage: ByteBlock(bytes, pool: nil), start: 0, count: bytes.count) }

    /// Bytes from an array literal (`[]` for an empty key or value).
    public init(arrayLiteral elements: UInt8...) { self.init(elements) }

    /// Always 0.
    @inlinable public var startIndex: Int { 0 }
    /// ``count``.
    @inlinable public var endIndex: Int { count }

    /// The byte at `position` (0 ..< ``count``).
    @inlinable public subscript(position: Int) -> UInt8 {
        precondition(position >= 0 && position < count, "RecordBytes index out of range")
        return storage[start &+ position]
    }

    /// Calls `body` with the bytes in place (valid only during the call).
    @inlinable public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try storage.withUnsafeBytes { (raw) throws(E) -> R in
            try body(UnsafeRawBufferPointer(rebasing: raw[start..<start &+ count]))
        }
    }

    /// The bytes as UTF-8 text, when they are valid UTF-8.
    public var string: String? { withUnsafeBytes { String(validating: $0, as: UTF8.self) } }

    /// Byte-wise equality.
    public static func == (a: RecordBytes, b: RecordBytes) -> Bool {
        a.count == b.count && a.withUnsafeBytes { x in b.withUnsafeBytes { y in x.elementsEqual(y) } }
    }

    /// Hashes the bytes.
    public func hash(into hasher: inout Hasher) { withUnsafeBytes { hasher.combine(bytes: $0) } }

    /// `[b0, b1, …]`, as an array prints.
    public var description: String { Array(self).description }

    /// Byte-wise equality with an array (`record.value == Array("v".utf8)`).
    public static func == (a: RecordBytes, b: [UInt8]) -> Bool { a.count == b.count && a.elementsEqual(b) }
    /// Byte-wise equality with an array.
    public static func == (a: [UInt8], b: RecordBytes) -> Bool { b == a }
}

/// Equality of an optional view and an optional array: both `nil`, or the same bytes
/// (`record.value == Array("v".utf8)`).
public func == (a: RecordBytes?, b: [UInt8]?) -> Bool {
    switch (a, b) {
    case (nil, nil): true
    case let (x?, y?): x == y
    default: false
    }
}

/// Inequality of an optional view and an optional array.
public func != (a: RecordBytes?, b: [UInt8]?) -> Bool { !(a == b) }

/// A record read from a partition: a view over the bytes it was fetched in. Key and value are
/// ``RecordBytes`` slices of that buffer and headers are decoded when asked for, so reading a
/// batch allocates nothing per record.
public struct ConsumerRecord: Sendable, Equatable {
    /// Topic read from.
    public let topic: String
    /// Partition read from.
    public let partition: Int32
    @usableFromInline let slot: RecordSlot
    @usableFromInline let storage: ByteBlock

    @inlinable init(topic: String, partition: Int32, slot: RecordSlot, storage: ByteBlock) {
        self.topic = topic
        self.partition = partition
        self.slot = slot
        self.storage = storage
    }

    /// Creates a consumer record (tests, and records made by hand): the bytes are copied into a
    /// buffer of the record's own.
    public init(topic: String, partition: Int32, offset: Int64, timestamp: Int64, timestampType: TimestampType = .createTime,
                key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader]) {
        var buffer = key ?? []
        let valueStart = buffer.count
        buffer += value ?? []
        let headersStart = buffer.count
        buffer += RecordBatchEncoder.headerBytes(headers)
        self.init(topic: topic, partition: partition, slot: RecordSlot(
            offset: offset, timestamp: timestamp, keyStart: 0, keyLength: key.map { Int32($0.count) } ?? -1,
            valueStart: Int32(valueStart), valueLength: value.map { Int32($0.count) } ?? -1,
            headersStart: Int32(headersStart), headerCount: Int32(headers.count), isInflated: false,
            isLogAppendTime: timestampType == .logAppendTime), storage: ByteBlock(buffer, pool: nil))
    }

    /// The record's offset.
    @inlinable public var offset: Int64 { slot.offset }
    /// Milliseconds since the Unix epoch.
    @inlinable public var timestamp: Int64 { slot.timestamp }
    /// Whether ``timestamp`` is the producer's create time or the broker's append time.
    @inlinable public var timestampType: TimestampType { slot.isLogAppendTime ? .logAppendTime : .createTime }
    /// Key bytes (a view, not a copy), `nil` for a null key.
    @inlinable public var key: RecordBytes? {
        slot.keyLength < 0 ? nil : RecordBytes(storage: storage, start: Int(slot.keyStart), count: Int(slot.keyLength))
    }
    /// Value bytes (a view, not a copy), `nil` for a null value (a tombstone).
    @inlinable public var value: RecordBytes? {
        slot.valueLength < 0 ? nil : RecordBytes(storage: storage, start: Int(slot.valueStart), count: Int(slot.valueLength))
    }
    /// Headers in wire order, decoded from the fetched bytes on each call.
    public var headers: [RecordHeader] {
        RecordHeaderReader.headers(in: storage, start: slot.headersStart, count: slot.headerCount)
    }
    /// Bytes of key and value.
    @inlinable public var payloadBytes: Int { slot.payloadBytes }

    /// The value as UTF-8 text, when it is valid UTF-8.
    public var valueString: String? { value?.string }
    /// The key as UTF-8 text, when it is valid UTF-8.
    public var keyString: String? { key?.string }

    /// Same topic, partition, offset, timestamp, key, value and headers.
    public static func == (a: ConsumerRecord, b: ConsumerRecord) -> Bool {
        a.topic == b.topic && a.partition == b.partition && a.offset == b.offset && a.timestamp == b.timestamp
            && a.timestampType == b.timestampType && a.key == b.key && a.value == b.value && a.headers == b.headers
    }
}

/// The records of a batch, in offset order: views made on access from fixed-size slots over
/// the fetched bytes (a collection of ``ConsumerRecord``, indices from 0).
public struct ConsumerRecords: RandomAccessCollection, Sendable {
    /// Topic of every record.
    public let topic: String
    /// Partition of every record.
    public let partition: Int32
    @usableFromInline let fetched: ByteBlock
    @usableFromInline let inflated: ByteBlock
    @usableFromInline let slots: ArraySlice<RecordSlot>

    init(topic: String, partition: Int32, fetched: ByteBlock, inflated: ByteBlock, slots: ArraySlice<RecordSlot>) {
        self.topic = topic
        self.partition = partition
        self.fetched = fetched
        self.inflated = inflated
        self.slots = slots
    }

    /// Records made by hand (tests): their bytes are copied into one buffer.
    public init(topic: String, partition: Int32, _ records: [ConsumerRecord]) {
        var buffer: [UInt8] = []
        var slots: [RecordSlot] = []
        slots.reserveCapacity(records.count)
        for record in records {
            let shift = Int32(buffer.count)
            buffer += record.storage.bytes
            var slot = record.slot
            slot.keyStart += shift
            slot.valueStart += shift
            slot.headersStart += shift
            slot.isInflated = false
            slots.append(slot)
        }
        self.init(topic: topic, partition: partition, fetched: ByteBlock(buffer), inflated: .empty, slots: slots[...])
    }

    /// No records.
    static func empty(_ tp: TopicPartition) -> ConsumerRecords {
        ConsumerRecords(topic: tp.topic, partition: tp.partition, fetched: .empty, inflated: .empty, slots: [])
    }

    /// Always 0.
    @inlinable public var startIndex: Int { 0 }
    /// The number of records.
    @inlinable public var endIndex: Int { slots.count }

    /// The record at `position`.
    @inlinable public subscript(position: Int) -> ConsumerRecord {
        let slot = slots[slots.startIndex &+ position]
        return ConsumerRecord(topic: topic, partition: partition, slot: slot, storage: slot.isInflated ? inflated : fetched)
    }

    /// The first `maxLength` records (all when there are fewer), sharing the same buffers: to
    /// hand back part of a batch (see ``ConsumerBatch``).
    public func prefix(_ maxLength: Int) -> ConsumerRecords { records(0..<Swift.min(Swift.max(maxLength, 0), count)) }

    /// The records in `range` (positions of this collection), sharing the same buffers.
    func records(_ range: Range<Int>) -> ConsumerRecords {
        ConsumerRecords(topic: topic, partition: partition, fetched: fetched, inflated: inflated,
                        slots: slots[slots.startIndex + range.lowerBound..<slots.startIndex + range.upperBound])
    }

    /// The records whose positions `keep` accepts, sharing the same buffers (a new slot array).
    func filter(positions keep: (Int) -> Bool) -> ConsumerRecords {
        var kept: [RecordSlot] = []
        for position in 0..<count where keep(position) { kept.append(slots[slots.startIndex + position]) }
        return ConsumerRecords(topic: topic, partition: partition, fetched: fetched, inflated: inflated, slots: kept[...])
    }

    /// Offset of the record at `position`, without making the record.
    @inlinable func offset(at position: Int) -> Int64 { slots[slots.startIndex &+ position].offset }

    /// Bytes of key and value of the record at `position`.
    @inlinable func payloadBytes(at position: Int) -> Int { slots[slots.startIndex &+ position].payloadBytes }

    /// Bytes of keys and values of every record.
    var payloadBytes: Int { slots.reduce(0) { $0 &+ $1.payloadBytes } }
}
