public import KlifeProtocol

/// A fetched record's fields borrowed from the bytes it was fetched (or decompressed) in,
/// valid only inside the closure of ``ConsumerRecords/forEachView(_:)`` that received it.
///
/// Where a ``ConsumerRecord`` holds its buffer (a reference counted on every record made and
/// every key or value taken), a view holds raw pointers: reading a batch through views costs
/// no reference counting and no allocation per record. Copy what must outlive the call
/// (`Array(view.value!)`), or use ``ConsumerRecords``' records for that.
public struct ConsumerRecordView {
    @usableFromInline let slot: RecordSlot
    @usableFromInline let buffer: UnsafeRawBufferPointer

    @inlinable init(slot: RecordSlot, buffer: UnsafeRawBufferPointer) {
        self.slot = slot
        self.buffer = buffer
    }

    /// The record's offset.
    @inlinable public var offset: Int64 { slot.offset }
    /// Milliseconds since the Unix epoch.
    @inlinable public var timestamp: Int64 { slot.timestamp }
    /// Whether ``timestamp`` is the producer's create time or the broker's append time.
    @inlinable public var timestampType: TimestampType { slot.isLogAppendTime ? .logAppendTime : .createTime }
    /// Key bytes in place, `nil` for a null key. Valid only during the call.
    @inlinable public var key: UnsafeRawBufferPointer? {
        slot.keyLength < 0 ? nil : UnsafeRawBufferPointer(rebasing: buffer[Int(slot.keyStart)..<Int(slot.keyStart) &+ Int(slot.keyLength)])
    }
    /// Value bytes in place, `nil` for a null value (a tombstone). Valid only during the call.
    @inlinable public var value: UnsafeRawBufferPointer? {
        slot.valueLength < 0 ? nil : UnsafeRawBufferPointer(rebasing: buffer[Int(slot.valueStart)..<Int(slot.valueStart) &+ Int(slot.valueLength)])
    }
    /// Number of headers (without decoding them).
    @inlinable public var headerCount: Int { Int(slot.headerCount) }
    /// Headers in wire order, decoded (and copied) on each call.
    public var headers: [RecordHeader] {
        RecordHeaderReader.headers(in: buffer, start: slot.headersStart, count: slot.headerCount)
    }
    /// The value as UTF-8 text, when it is valid UTF-8 (a copy).
    public var valueString: String? { value.flatMap { String(validating: $0, as: UTF8.self) } }
    /// The key as UTF-8 text, when it is valid UTF-8 (a copy).
    public var keyString: String? { key.flatMap { String(validating: $0, as: UTF8.self) } }
}

extension ConsumerRecords {
    /// Calls `body` with a view of each record, in offset order: the fastest way to read a
    /// batch, with no reference counting or allocation per record.
    ///
    /// ```swift
    /// var total = 0
    /// batch.records.forEachView { record in
    ///     total += record.value?.count ?? 0        // bytes in place, valid during the call
    /// }
    /// ```
    ///
    /// The views point into the batch's buffers, which this call keeps alive: never let a
    /// view, or a pointer taken from it, escape `body`.
    @inlinable
    public func forEachView<E: Error>(_ body: (ConsumerRecordView) throws(E) -> Void) throws(E) {
        let result = fetched.withUnsafeBytes { fetchedBytes in
            inflated.withUnsafeBytes { inflatedBytes in
                slots.withUnsafeBufferPointer { slots in
                    Result { () throws(E) in
                        for slot in slots {
                            try body(ConsumerRecordView(slot: slot, buffer: slot.isInflated ? inflatedBytes : fetchedBytes))
                        }
                    }
                }
            }
        }
        try result.get()
    }
}
