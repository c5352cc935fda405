import KlifeIO
import KlifeProtocol
import Glibc

/// Producing: sync, callback, suspending and batch forms, bounded buffering, flush.
///
/// Buffer bounds: a record counts against `maxBufferedRecords` / `maxBufferedBytes` from
/// the moment it is accepted until it completes. When they are reached, the non-blocking
/// ``produce(_:onDelivery:)`` fails the record at once with ``KlifeError/Code/bufferFull``,
/// while ``produce(_:)``, ``enqueue(_:onDelivery:)`` and ``produceBatch(_:)`` suspend until
/// there is room.
extension KlifeClient {
    /// Produces one record and waits for the broker's acknowledgement (suspending first
    /// while the producer's buffer is full).
    /// - Returns: the partition, offset and timestamp the record got.
    /// - Throws: ``KlifeError`` — for example `recordTooLarge`, `unknownTopicOrPartition`,
    ///   `timedOut` (delivery timeout), or `brokerError` with the Kafka code.
    public func produce(_ record: consuming ProducerRecord) async throws(KlifeError) -> RecordMetadata {
        try await produce(consume record, session: defaultSession)
    }

    /// ``produce(_:)`` for a given producer session (the idempotent one or a transactional one).
    ///
    /// Takes the reactor's ring even when records are appended on the producing thread: a caller
    /// waiting for each acknowledgement sends one record at a time, and a block opened, announced
    /// and sealed for each costs the round trip more than it saves (sync p50 1.21× librdkafka's
    /// against Tansu that way, 1.13× through the ring).
    func produce(_ record: consuming ProducerRecord, session: ProducerSession) async throws(KlifeError) -> RecordMetadata {
        let (pending, target) = try prepare(consume record, completion: .none, reservingCompletion: true, session: session)
        try await admitOrWait(pending, counter: session.outstanding)
        let result: Result<RecordMetadata, KlifeError> = await withCheckedContinuation { continuation in
            pending.setCompletion(.continuation(continuation))
            if let error = push(pending, into: target) { continuation.resume(returning: .failure(error)) }
        }
        return try result.get()
    }

    /// Produces one record without waiting; `onDelivery` is called exactly once with the
    /// outcome — on a reactor thread, or on the calling thread when the record is refused
    /// before it is queued: too large, client closed, or the buffer full
    /// (``KlifeError/Code/bufferFull``: back off, or use ``enqueue(_:onDelivery:)``).
    public func produce(_ record: consuming ProducerRecord,
                        onDelivery: @escaping @Sendable (Result<RecordMetadata, KlifeError>) -> Void) {
        if appendsOnProducingThread(defaultSession) {
            let (partition, timestamp) = (record.partition, record.timestamp)
            let (topic, key, value, headers) = record.takeParts()
            key.withUnsafeBytesIfPresent { k in
                value.withUnsafeBytesIfPresent { v in
                    produceWithoutWaiting(topic: topic, partition: partition, timestamp: timestamp, key: k, value: v,
                                          headers: headers, onDelivery: onDelivery)
                }
            }
            return
        }
        let pending: PendingRecord, target: Unmanaged<ProducerService>
        do {
            (pending, target) = try prepare(consume record, completion: .callback(onDelivery), session: defaultSession)
        } catch {
            onDelivery(.failure(error))
            return
        }
        submit(pending, to: target, onDelivery: onDelivery)
    }

    /// The non-blocking forms' end: takes room for `pending` and hands it to its reactor, or
    /// reports a full buffer (giving its payload bytes back) or a refused push.
    func submit(_ pending: consuming PendingRecord, to target: Unmanaged<ProducerService>,
                onDelivery: @Sendable (Result<RecordMetadata, KlifeError>) -> Void) {
        guard admit(bytes: Int(pending.size), counter: outstanding) else {
            pending.releasePayload()
            onDelivery(.failure(.bufferFull(records: outstanding.value, bytes: outstanding.byteCount)))
            return
        }
        if let error = push(pending, into: target) { onDelivery(.failure(error)) }
    }

    /// Queues one record, suspending while the producer's buffer is full, and returns as
    /// soon as it is queued; `onDelivery` reports the outcome later, exactly once.
    /// - Throws: ``KlifeError`` when the record is refused before queuing (too large,
    ///   unknown partition, client closed); then `onDelivery` is not called.
    ///
    /// Runs on the caller's executor (`nonisolated(nonsending)`): when there is room it
    /// never suspends, so a loop of `enqueue` calls costs no executor hops.
    public nonisolated(nonsending) func enqueue(
        _ record: consuming ProducerRecord, onDelivery: @escaping @Sendable (Result<RecordMetadata, KlifeError>) -> Void
    ) async throws(KlifeError) {
        try await enqueue(consume record, session: defaultSession, onDelivery: onDelivery)
    }

    /// ``enqueue(_:onDelivery:)`` for a given producer session.
    nonisolated(nonsending) func enqueue(
        _ record: consuming ProducerRecord, session: ProducerSession,
        onDelivery: @escaping @Sendable (Result<RecordMetadata, KlifeError>) -> Void
    ) async throws(KlifeError) {
        if appendsOnProducingThread(session) {
            let (partition, timestamp) = (record.partition, record.timestamp)
            let (topic, key, value, headers) = record.takeParts()
            let size = try await admittedSize(topic: topic, partition: partition, keyCount: key?.count,
                                              valueCount: value?.count, headers: headers, session: session)
            if let error = appendOrPush(topic: topic, partition: partition, timestamp: timestamp, key: key, value: value,
                                        headers: headers, size: size, completion: .callback(onDelivery), session: session) {
                onDelivery(.failure(error))
            }
            return
        }
        let (pending, target) = try prepare(consume record, completion: .callback(onDelivery), session: session)
        if !tryAdmit(pending, session: session) { try await admitOrWait(pending, counter: session.outstanding) }
        if let error = push(pending, into: target) { onDelivery(.failure(error)) }
    }

    /// Produces many records, possibly to many topics and partitions, and waits for all.
    ///
    /// The records enter each reactor as one unit, so everything bound for one broker
    /// leaves in a single Produce request (subject to the size limits). Suspends first
    /// until the buffer has room for the whole batch (or is empty, for a batch larger than it).
    /// - Returns: one result per record, in the order given.
    public func produceBatch(_ records: [ProducerRecord]) async -> [Result<RecordMetadata, KlifeError>] {
        await produceBatch(records, session: defaultSession)
    }

    /// ``produceBatch(_:)`` for a given producer session.
    func produceBatch(_ records: [ProducerRecord], session: ProducerSession) async -> [Result<RecordMetadata, KlifeError>] {
        guard !records.isEmpty else { return [] }
        let collector = BatchCollector(count: records.count)
        // Every slot names the collector unretained; this reference goes with the last slot filled.
        let slots = collector.retainedUntilFilled
        var perContext: [[PendingRecord]] = Array(repeating: [], count: producers.count)
        var bytes = 0
        for (i, record) in records.enumerated() {
            do {
                var (pending, target) = try prepare(record, completion: .batch(slots, index: i), session: session)
                if appendOnProducingThread { pending.enterTransit() }
                bytes += Int(pending.size)
                perContext[target.takeUnretainedValue().index].append(pending)
            } catch {
                BatchCollector.fill(slots, slot: i, with: .failure(error))
            }
        }
        let count = perContext.reduce(0) { $0 + $1.count }
        // Closing or cancelled, it stops waiting for room: the batch goes in over the bound once.
        _ = await untilRoom(on: outstanding) {
            outstanding.value == 0 || (outstanding.value + count <= maxBufferedRecords
                                       && outstanding.byteCount + bytes <= maxBufferedBytes)
        }
        for (i, batch) in perContext.enumerated() where !batch.isEmpty {
            let producer = producers[i]
            for i in batch.indices { session.outstanding.reserve(bytes: Int(batch[i].size)) }
            if !producer.reactor.trySubmit({ producer.routeMany(batch) }) {
                producer.reactor.submit { producer.routeMany(batch) }
            }
        }
        return await collector.wait()
    }

    /// Waits until every record produced before this call has been acknowledged or failed.
    /// Returns early (records still pending) when the calling task is cancelled.
    public func flush() async {
        while outstanding.value > 0 && !isClosed {
            do { try await Task.sleep(for: .milliseconds(1)) } catch { return }
        }
    }

    /// Records accepted and not yet completed.
    public var pendingRecordCount: Int { outstanding.value }

    // MARK: Admission

    func admit(bytes: Int, counter: OutstandingCounter) -> Bool {
        counter.tryReserve(bytes: bytes, maxRecords: maxBufferedRecords, maxBytes: maxBufferedBytes)
    }

    /// Takes room for `pending` if there is some, without suspending: called before
    /// ``admitOrWait(_:counter:)`` because passing the counter to an `async` function retains it.
    @inline(__always)
    func tryAdmit(_ pending: borrowing PendingRecord, session: ProducerSession) -> Bool {
        admit(bytes: Int(pending.size), counter: session.outstanding)
    }

    /// Takes room for `pending`, suspending while there is none (without a suspension when
    /// there is room). A record refused here gives its payload bytes back.
    nonisolated(nonsending) func admitOrWait(_ pending: borrowing PendingRecord, counter: OutstandingCounter) async throws(KlifeError) {
        if admit(bytes: Int(pending.size), counter: counter) { return }
        do {
            try await waitForRoom(bytes: Int(pending.size), counter: counter)
        } catch {
            pending.releasePayload()
            throw error
        }
    }

    /// Suspends until the buffer has room for a record of `bytes`, then takes it: woken by the
    /// release of room (a batch acknowledged or failed), not by polling.
    func waitForRoom(bytes: Int, counter: OutstandingCounter) async throws(KlifeError) {
        if let error = await untilRoom(on: counter, { admit(bytes: bytes, counter: counter) }) { throw error }
    }

    /// Suspends until `hasRoom` holds (it may take the room), woken by releases of room on the
    /// root of `counter` (the client's), and waking the reactors so they stop lingering.
    /// - Returns: `nil` once there is room; why it stopped waiting otherwise (the client is
    ///   closing, the task was cancelled).
    private func untilRoom(on counter: OutstandingCounter, _ hasRoom: () -> Bool) async -> KlifeError? {
        let root = counter.root
        while true {
            let seen = root.releaseCount
            if hasRoom() { return nil }
            if isClosing { return .clientClosed }
            if Task.isCancelled { return .cancelled }
            await root.waitForRelease(after: seen, registered: wakeProducerReactors)
        }
    }

    /// Wakes every reactor's producer: one that sees producers waiting for room sends its
    /// lingering batches now.
    private func wakeProducerReactors() {
        for producer in unretainedProducers { producer._withUnsafeGuaranteedRef { $0.reactor.wakeup() } }
    }

    /// Hands an admitted record to its reactor's ring. Returns
    /// the error when it cannot.
    ///
    /// The service is lent unretained (the client's `producers` keep it).
    func push(_ pending: consuming PendingRecord, into target: Unmanaged<ProducerService>) -> KlifeError? {
        if configuration.reactorCount > 1 { return pushChecked(consume pending, into: target) }
        let refused: PendingRecord? = target._withUnsafeGuaranteedRef { service in
            var record = pending
            if appendOnProducingThread { record.enterTransit() }
            let lingerEnd = lingerEnd(of: &record, waitingOn: service)
            guard let back = service.records.offer(record) else {
                Self.wake(service.reactor, unlessAwakeBy: lingerEnd)
                return nil
            }
            return back
        }
        guard let refused else { return nil }
        return pushWaiting(refused, into: target.takeUnretainedValue())
    }

    /// Records at most left in a sleeping reactor's ring for its own wake: past them the
    /// producing thread wakes it, so that a fast producer does not fill its buffer while the
    /// reactor sleeps and then wait while the reactor works through all of it (with records
    /// of 100 B: 6.7 → 5.0 M records/s and twice the p50 with 20,000 records buffered, before
    /// this bound). At moderate rates a linger's worth of records stays below it.
    static let maxLeftForOwnWake = 1024

    /// When `record`, about to be pushed to `service`'s ring, may wait there for the reactor's
    /// own wake: the end of its linger — its delivery deadline stamped from now if it had
    /// none, so the reactor counts its linger (and its CreateTime) from the push, not from
    /// when it woke. `nil` when the reactor has to be woken as usual (no linger, a wakeup
    /// already pending, or ``maxLeftForOwnWake`` records waiting). The clock is read only when
    /// the reactor may be asleep, in place of the wakeup it may save.
    @inline(__always)
    private func lingerEnd(of record: inout PendingRecord, waitingOn service: ProducerService) -> UInt64? {
        guard lingerNanos > 0 && service.reactor.mayBeAsleep && service.records.approximateCount < Self.maxLeftForOwnWake
        else { return nil }
        if record.deadline == 0 { record.deadline = Reactor.monotonicNanoseconds() &+ deliveryTimeoutNanos }
        return record.deadline &- deliveryTimeoutNanos &+ lingerNanos
    }

    /// Wakes `reactor` after a push, unless the pushed record may wait until `lingerEnd` for
    /// a wake the reactor has planned (``lingerEnd(of:waitingOn:)``).
    @inline(__always)
    private static func wake(_ reactor: Reactor, unlessAwakeBy lingerEnd: UInt64?) {
        if let lingerEnd { reactor.wakeup(unlessAwakeBy: lingerEnd) } else { reactor.wakeup() }
    }

    /// With several reactors: the ring was chosen with the snapshot of version
    /// `record.routedAt`; if a newer one was published before the slot was claimed, the slot
    /// gets a placeholder and the record chooses again (a reactor handing a partition over
    /// counts on every record chosen with the old snapshot being below the claims it saw).
    @inline(never)
    private func pushChecked(_ pending: consuming PendingRecord, into chosen: Unmanaged<ProducerService>) -> KlifeError? {
        var record = pending
        // Lent, not retained (the client's `producers` keep every service), like the store.
        var target = chosen
        unowned(unsafe) let store = metadataStore
        var wait = RingSpaceWait(maxBlockNanos: maxBlockNanos)
        while !isClosed {
            let version = record.routedAt
            let outcome = target._withUnsafeGuaranteedRef { service -> (record: PendingRecord, stale: Bool)? in
                let lingerEnd = lingerEnd(of: &record, waitingOn: service)
                guard let (back, stale) = service.records.offer(
                    record, placeholder: PendingRecord.vacated,
                    stillValid: { store.publishedVersion.load(ordering: .sequentiallyConsistent) == version }) else {
                    Self.wake(service.reactor, unlessAwakeBy: lingerEnd)
                    return nil
                }
                service.reactor.wakeup()
                return (back, stale)
            }
            guard let (back, stale) = outcome else { return nil }
            record = back
            if stale {
                let (owner, now) = reactor(forTopic: record.topic.name, partition: record.partition)
                target = unretainedProducers[owner]
                record.routedAt = now
                continue
            }
            if !wait.pause() { break }
        }
        return refuse(record)
    }

    /// The index of the reactor whose ring takes records of `topic`/`partition` under the
    /// current snapshot, and that snapshot's version (reactor 0 while the leader is unknown).
    private func reactor(forTopic topic: String, partition: Int32) -> (Int, UInt64) {
        let snapshot = metadataStore.snapshot
        var owner = TopicRoute.leaderlessOwner
        if let route = snapshot.routes[topic], partition >= 0, partition < route.partitionCount {
            owner = TopicRoute.owner(ofLeader: route.leaders[Int(partition)], reactorCount: producers.count)
        }
        return (owner, snapshot.version)
    }

    /// The slow path when a ring is full: wait for space (backpressure), at most `maxBlock`.
    @inline(never)
    func pushWaiting(_ refused: consuming PendingRecord, into target: ProducerService) -> KlifeError? {
        var pending = refused
        var wait = RingSpaceWait(maxBlockNanos: maxBlockNanos)
        while !isClosed {
            target.reactor.wakeup()
            guard let again = target.records.offer(pending) else {
                target.reactor.wakeup()
                return nil
            }
            pending = again
            if !wait.pause() { break }
        }
        return refuse(pending)
    }

    /// Gives up on a record no ring took (client closed, or `maxBlock` passed): its payload
    /// and its room in the buffer go back. A block's descriptor is left to its caller, which
    /// fails the block's records with the error.
    private func refuse(_ refused: PendingRecord) -> KlifeError {
        var record = refused
        record.leftTransit()
        if record.block == nil {
            record.releasePayload()
            record.tracker.decrement(bytes: Int(record.size))
        }
        return isClosed ? .clientClosed : .queueFull
    }

    /// Turns a user record into a pending one and picks the reactor that will own it.
    ///
    /// The record's references move into the pending record at once (taking its parts first:
    /// reading fields of the record before moving it would make the compiler copy it, a
    /// retain and release of each reference).
    func prepare(_ record: consuming ProducerRecord, completion: consuming DeliveryCompletion,
                 reservingCompletion: Bool = false,
                 session: ProducerSession) throws(KlifeError) -> (PendingRecord, Unmanaged<ProducerService>) {
        let partitionGiven = record.partition
        let timestamp = record.timestamp ?? PendingRecord.unsetTimestamp
        let (topic, key, value, headers) = record.takeParts()
        let prepared = key.withUnsafeBytesIfPresent { k in
            value.withUnsafeBytesIfPresent { v in
                Result { () throws(KlifeError) in
                    try prepare(topic: topic, partition: partitionGiven, timestamp: timestamp, headers: headers,
                                key: k, value: v, completion: copy completion, reservingCompletion: reservingCompletion,
                                session: session)
                }
            }
        }
        // Switched over, not `get()`: that returns a copy of the record.
        switch consume prepared {
        case .success(let prepared): return prepared
        case .failure(let error): throw error
        }
    }

    /// ``prepare(_:completion:session:)`` from a record's parts: `key` and `value` are read in place
    /// during the call. They are copied, with the headers in their wire form, into the payload
    /// arena (or a standalone chunk when the arena does not take them): the caller's arrays are
    /// released on this thread, the one that made them, and the record holds no reference to
    /// the caller's data.
    func prepare(topic: String, partition partitionGiven: Int32?, timestamp: Int64, headers: [RecordHeader],
                 key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?,
                 completion: consuming DeliveryCompletion, reservingCompletion: Bool = false,
                 session: ProducerSession) throws(KlifeError) -> (PendingRecord, Unmanaged<ProducerService>) {
        let size = try checkedSize(topic: topic, partition: partitionGiven, keyCount: key?.count, valueCount: value?.count,
                                   headers: headers)
        var partition = partitionGiven ?? -1
        var owner = TopicRoute.leaderlessOwner
        var routedAt: UInt64 = 0
        // With one reactor there is no owner to find: that reactor runs the partitioner when
        // it routes the record, and the producing thread skips the metadata lookup.
        if producers.count > 1 {
            let snapshot = metadataStore.snapshot
            routedAt = snapshot.version
            if let route = snapshot.routes[topic] {
                let count = route.partitionCount
                // A partition past the known count may be new: the reactor waits for metadata
                // (up to unknownTopicTimeout) before failing it.
                if partition < 0 {
                    partition = partitions.choose(topic: topic, keyBytes: key, valueBytes: value, partitionCount: count)
                    if partition < 0 || partition >= count {
                        throw .invalidArgument("the partitioner for \(topic) chose partition \(partition) of \(count)")
                    }
                }
                if partition < count {
                    owner = TopicRoute.owner(ofLeader: route.leaders[Int(partition)], reactorCount: producers.count)
                }
            } else {
                noteTopicOfInterest(topic)
            }
        }
        let awaited = reservingCompletion || !completion.isNone
        // No entry only when there is nothing to keep: no bytes, and nobody waits.
        let copied = key == nil && value == nil && headers.isEmpty && !awaited ? nil
            : payloadArena.copy(key: key, value: value, headers: headers,
                                headerBytes: headers.isEmpty ? 0 : RecordBatchLayout.headerBytes(headers),
                                completion: completion)
        // Built in the return: a record bound to a variable first is copied out of it.
        return (PendingRecord(
            topic: TopicTable.shared.handle(for: topic), partition: partition,
            keyLength: Int32(truncatingIfNeeded: key?.count ?? -1), payloadChunk: copied?.0, payloadOffset: copied?.1 ?? 0,
            valueLength: Int32(truncatingIfNeeded: value?.count ?? -1),
            // The reactor stamps the CreateTime and the delivery deadline when it takes the record.
            timestamp: timestamp, deadline: 0, size: Int32(size), awaited: awaited, slot: session.slot,
            routedAt: routedAt, tracker: session.outstanding), unretainedProducers[owner])
    }
}

extension KlifeClient {
    /// A record's size with both deltas 0 (what it counts against the buffer), once the
    /// client is open, the topic named, the size within `maxRecordBytes` and a given
    /// partition not negative.
    func checkedSize(topic: String, partition: Int32?, keyCount: Int?, valueCount: Int?,
                     headers: [RecordHeader]) throws(KlifeError) -> Int {
        if isClosing { throw .clientClosed }
        if topic.isEmpty { throw .invalidArgument("record topic is empty") }
        let size = RecordBatchLayout.recordSize(offsetDelta: 0, timestampDelta: 0, keyCount: keyCount,
                                                valueCount: valueCount, headers: headers)
        if size > maxRecordBytes {
            throw .recordTooLarge(size: size, limit: maxRecordBytes, limitName: "producer.maxRecordBytes")
        }
        if let partition, partition < 0 { throw .unknownTopicOrPartition(topic, partition: partition) }
        return size
    }

    /// A record's size (``checkedSize(topic:partition:keyCount:valueCount:headers:)``) once room
    /// for it is taken, suspending while there is none (without a suspension when there is).
    nonisolated(nonsending) func admittedSize(topic: String, partition: Int32?, keyCount: Int?, valueCount: Int?,
                                              headers: [RecordHeader], session: ProducerSession) async throws(KlifeError) -> Int {
        let size = try checkedSize(topic: topic, partition: partition, keyCount: keyCount, valueCount: valueCount,
                                   headers: headers)
        if !admit(bytes: size, counter: session.outstanding) { try await waitForRoom(bytes: size, counter: session.outstanding) }
        return size
    }

    /// The non-blocking forms' path when records are appended on the producing thread: room
    /// taken without waiting (a full buffer refuses the record: ``KlifeError/Code/bufferFull``),
    /// then the record appended or handed over; any refusal is reported to `onDelivery`.
    func produceWithoutWaiting(topic: String, partition: Int32?, timestamp: Int64?, key: UnsafeRawBufferPointer?,
                               value: UnsafeRawBufferPointer?, headers: [RecordHeader],
                               onDelivery: @escaping @Sendable (Result<RecordMetadata, KlifeError>) -> Void) {
        let size: Int
        do {
            size = try checkedSize(topic: topic, partition: partition, keyCount: key?.count, valueCount: value?.count,
                                   headers: headers)
        } catch {
            onDelivery(.failure(error))
            return
        }
        guard admit(bytes: size, counter: outstanding) else {
            onDelivery(.failure(.bufferFull(records: outstanding.value, bytes: outstanding.byteCount)))
            return
        }
        if let error = appendOrPush(topic: topic, partition: partition, timestamp: timestamp, key: key, value: value,
                                    headers: headers, size: size, completion: .callback(onDelivery), session: defaultSession) {
            onDelivery(.failure(error))
        }
    }

    /// An admitted record (`size` bytes of room taken) appended on the producing thread, or,
    /// when it cannot be, handed to its reactor by the ring. Its bytes are read during the call.
    /// - Returns: why it was refused (its room given back; `completion` not called).
    func appendOrPush(topic: String, partition: Int32?, timestamp: Int64?, key: UnsafeRawBufferPointer?,
                      value: UnsafeRawBufferPointer?, headers: [RecordHeader], size: Int,
                      completion: consuming DeliveryCompletion, session: ProducerSession) -> KlifeError? {
        var completion = completion
        if appendOnProducingThread(topic: topic, partition: partition, timestamp: timestamp, key: key, value: value,
                                   headers: headers, size: size, completion: &completion, session: session) {
            return nil
        }
        let pending: PendingRecord, target: Unmanaged<ProducerService>
        do {
            (pending, target) = try prepare(topic: topic, partition: partition,
                                            timestamp: timestamp ?? PendingRecord.unsetTimestamp, headers: headers,
                                            key: key, value: value, completion: completion, session: session)
        } catch {
            session.outstanding.decrement(bytes: size)
            return error
        }
        return push(pending, into: target)
    }

    /// ``appendOrPush(topic:partition:timestamp:key:value:headers:size:completion:session:)`` of arrays.
    func appendOrPush(topic: String, partition: Int32?, timestamp: Int64?, key: [UInt8]?, value: [UInt8]?,
                      headers: [RecordHeader], size: Int, completion: consuming DeliveryCompletion,
                      session: ProducerSession) -> KlifeError? {
        key.withUnsafeBytesIfPresent { k in
            value.withUnsafeBytesIfPresent { v in
                appendOrPush(topic: topic, partition: partition, timestamp: timestamp, key: k, value: v, headers: headers,
                             size: size, completion: copy completion, session: session)
            }
        }
    }
}

extension Optional where Wrapped == [UInt8] {
    /// Calls `body` with the array's bytes in place, or with `nil` when there is no array.
    @inline(__always)
    func withUnsafeBytesIfPresent<R>(_ body: (UnsafeRawBufferPointer?) -> R) -> R {
        guard self != nil else { return body(nil) }
        return self!.withUnsafeBytes { body($0) }
    }
}

/// A producing thread waiting for room in a full ring: at most `maxBlock` from its first pause,
/// yielding the CPU at first, then sleeping 50 µs at a time. The clock is read only once a
/// ring was found full.
private struct RingSpaceWait {
    let maxBlockNanos: UInt64
    private var deadline: UInt64 = 0
    private var pauses = 0

    init(maxBlockNanos: UInt64) {
        self.maxBlockNanos = maxBlockNanos
    }

    /// Pauses before the next attempt; `false` once `maxBlock` has passed (give up).
    mutating func pause() -> Bool {
        let now = Reactor.monotonicNanoseconds()
        if deadline == 0 {
            deadline = now &+ maxBlockNanos
        } else if now >= deadline {
            return false
        }
        pauses += 1
        if pauses < 16 { sched_yield() } else { usleep(50) }
        return true
    }
}
