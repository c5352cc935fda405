import KlifeProtocol

/// Producing from bytes the caller owns: no `[UInt8]` per record.
///
/// Key and value are read in place and copied once, during the call, into the producer's payload
/// arena (see `PayloadArena`): the record then holds no reference to the caller's memory, which
/// only has to stay valid until the call returns. A record the arena cannot take (key, value and
/// headers over 16 KiB, or every chunk in use by records still waiting) gets a chunk of its own
/// instead — the only allocation of these forms.
extension KlifeClient {
    /// Produces one record whose key and value are borrowed bytes, without waiting: as
    /// ``produce(_:onDelivery:)`` (fails with ``KlifeError/Code/bufferFull`` when the buffer is
    /// full), for callers whose bytes are not in arrays.
    ///
    ///     buffer.withUnsafeBytes { value in
    ///         client.produce(topic: "events", value: value) { result in … }
    ///     }
    ///
    /// - Parameters:
    ///   - topic: The topic to write to.
    ///   - key: The key (`nil` for none), read during the call only.
    ///   - value: The value (`nil` for a tombstone), read during the call only.
    ///   - headers: The record's headers, in order.
    ///   - partition: A partition, or `nil` to let the partitioner choose.
    ///   - timestamp: CreateTime in ms since the epoch, or `nil` for the time the record is sent.
    ///   - onDelivery: Called exactly once with the outcome.
    public func produce(topic: String, key: UnsafeRawBufferPointer? = nil, value: UnsafeRawBufferPointer?,
                        headers: [RecordHeader] = [], partition: Int32? = nil, timestamp: Int64? = nil,
                        onDelivery: @escaping @Sendable (Result<RecordMetadata, KlifeError>) -> Void) {
        if appendsOnProducingThread(defaultSession) {
            produceWithoutWaiting(topic: topic, partition: partition, timestamp: timestamp, key: key, value: value,
                                  headers: headers, onDelivery: onDelivery)
            return
        }
        let pending: PendingRecord, target: Unmanaged<ProducerService>
        do {
            (pending, target) = try prepare(topic: topic, partition: partition, timestamp: timestamp ?? PendingRecord.unsetTimestamp,
                                            headers: headers, key: key, value: value,
                                            completion: .callback(onDelivery), session: defaultSession)
        } catch {
            onDelivery(.failure(error))
            return
        }
        submit(pending, to: target, onDelivery: onDelivery)
    }

    /// Queues one record whose key and value are borrowed bytes, suspending while the producer's
    /// buffer is full: as ``enqueue(_:onDelivery:)``. The bytes are copied before the first
    /// suspension, but must stay valid until the call returns.
    /// - Throws: ``KlifeError`` when the record is refused before queuing (too large, client
    ///   closed, cancelled while waiting for room); then `onDelivery` is not called.
    public nonisolated(nonsending) func enqueue(
        topic: String, key: UnsafeRawBufferPointer? = nil, value: UnsafeRawBufferPointer?, headers: [RecordHeader] = [],
        partition: Int32? = nil, timestamp: Int64? = nil,
        onDelivery: @escaping @Sendable (Result<RecordMetadata, KlifeError>) -> Void
    ) async throws(KlifeError) {
        if appendsOnProducingThread(defaultSession) {
            let size = try await admittedSize(topic: topic, partition: partition, keyCount: key?.count, valueCount: value?.count,
                                              headers: headers, session: defaultSession)
            if let error = appendOrPush(topic: topic, partition: partition, timestamp: timestamp, key: key, value: value,
                                        headers: headers, size: size, completion: .callback(onDelivery),
                                        session: defaultSession) {
                onDelivery(.failure(error))
            }
            return
        }
        let (pending, target) = try prepare(topic: topic, partition: partition,
                                            timestamp: timestamp ?? PendingRecord.unsetTimestamp, headers: headers,
                                            key: key, value: value,
                                            completion: .callback(onDelivery), session: defaultSession)
        if !tryAdmit(pending, session: defaultSession) { try await admitOrWait(pending, counter: defaultSession.outstanding) }
        if let error = push(pending, into: target) { onDelivery(.failure(error)) }
    }

    /// Queues one record whose key and value are borrowed bytes, with nobody waiting for its
    /// outcome: as ``enqueue(topic:key:value:headers:partition:timestamp:onDelivery:)`` without
    /// the callback. Outcomes are only counted (``KlifeClient/Statistics/recordsDelivered``,
    /// ``KlifeClient/Statistics/recordsFailed``), so nothing is kept or called per record: the
    /// cheapest form, for streams where an aggregate is enough (metrics, logs). ``flush()``
    /// still waits for these records.
    ///
    ///     let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 512, alignment: 8)
    ///     defer { buffer.deallocate() }
    ///     for sample in samples {
    ///         let count = sample.encode(into: buffer)        // your serializer
    ///         try await client.enqueue(topic: "metrics", value: UnsafeRawBufferPointer(rebasing: buffer[..<count]))
    ///     }
    ///
    /// - Throws: ``KlifeError`` when the record is refused before queuing (too large, client
    ///   closed, cancelled while waiting for room).
    public nonisolated(nonsending) func enqueue(
        topic: String, key: UnsafeRawBufferPointer? = nil, value: UnsafeRawBufferPointer?, headers: [RecordHeader] = [],
        partition: Int32? = nil, timestamp: Int64? = nil
    ) async throws(KlifeError) {
        if appendsOnProducingThread(defaultSession) {
            let size = try await admittedSize(topic: topic, partition: partition, keyCount: key?.count, valueCount: value?.count,
                                              headers: headers, session: defaultSession)
            if let error = appendOrPush(topic: topic, partition: partition, timestamp: timestamp, key: key, value: value,
                                        headers: headers, size: size, completion: .none, session: defaultSession) {
                throw error
            }
            return
        }
        let (pending, target) = try prepare(topic: topic, partition: partition,
                                            timestamp: timestamp ?? PendingRecord.unsetTimestamp, headers: headers,
                                            key: key, value: value, completion: .none, session: defaultSession)
        if !tryAdmit(pending, session: defaultSession) { try await admitOrWait(pending, counter: defaultSession.outstanding) }
        if let error = push(pending, into: target) { throw error }
    }
}
