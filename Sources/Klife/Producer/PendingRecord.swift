import KlifeIO
import KlifeProtocol
import Synchronization

/// How a record's outcome reaches its producer: one optional closure, or a slot of a batch.
///
/// A struct rather than an enum of the ways to wait (callback, continuation, batch slot):
/// copying or moving a record holding a multi-payload enum goes through the runtime's enum
/// witnesses on every hop of its path. A suspended `produce` wraps its continuation in a
/// closure (one small allocation: that form suspends a task anyway); the callback forms pass
/// the caller's closure as it is; a `produceBatch` record names its collector (unretained:
/// the collector keeps itself alive until its last slot is filled) and its slot, so a batch of
/// N records allocates no closure per record.
struct DeliveryCompletion: Sendable {
    let body: (@Sendable (Result<RecordMetadata, KlifeError>) -> Void)?
    /// The `produceBatch` collector this record reports to (then `body` is `nil`).
    let collector: Unmanaged<BatchCollector>?
    /// The record's slot in ``collector``.
    let slot: Int32

    private init(body: (@Sendable (Result<RecordMetadata, KlifeError>) -> Void)?,
                 collector: Unmanaged<BatchCollector>? = nil, slot: Int32 = 0) {
        self.body = body
        self.collector = collector
        self.slot = slot
    }

    /// Nobody waits (fire and forget).
    static var none: DeliveryCompletion { DeliveryCompletion(body: nil) }

    /// An asynchronous-produce callback; runs on the reactor thread.
    static func callback(_ body: @escaping @Sendable (Result<RecordMetadata, KlifeError>) -> Void) -> DeliveryCompletion {
        DeliveryCompletion(body: body)
    }

    /// A suspended `produce` call.
    static func continuation(_ continuation: CheckedContinuation<Result<RecordMetadata, KlifeError>, Never>) -> DeliveryCompletion {
        DeliveryCompletion { continuation.resume(returning: $0) }
    }

    /// Slot `index` of a batch produce; `collector` is held by ``BatchCollector/retainedUntilFilled``.
    static func batch(_ collector: Unmanaged<BatchCollector>, index: Int) -> DeliveryCompletion {
        DeliveryCompletion(body: nil, collector: collector, slot: Int32(truncatingIfNeeded: index))
    }

    /// Whether nobody waits for this outcome.
    var isNone: Bool { body == nil && collector == nil }

    func complete(_ result: Result<RecordMetadata, KlifeError>) {
        if let collector {
            BatchCollector.fill(collector, slot: Int(slot), with: result)
        } else {
            body?(result)
        }
    }
}

/// Collects the outcomes of one `produceBatch` call, resuming its caller when all arrived.
///
/// Records name it unretained (``DeliveryCompletion/batch(_:index:)``); it keeps one reference
/// to itself from ``retainedUntilFilled`` until its last slot is filled, because the reactor
/// filling that slot may still be inside ``fill(_:slot:with:)`` when the resumed caller drops it.
final class BatchCollector: Sendable {
    private struct State {
        var results: [Result<RecordMetadata, KlifeError>?]
        var remaining: Int
        var continuation: CheckedContinuation<[Result<RecordMetadata, KlifeError>], Never>?
    }

    private let state: Locked<State>

    init(count: Int) {
        state = Locked(State(results: Array(repeating: nil, count: count), remaining: count, continuation: nil))
    }

    /// The collector, retained once on behalf of its slots: released when the last is filled.
    /// Needs at least one slot.
    var retainedUntilFilled: Unmanaged<BatchCollector> { Unmanaged.passRetained(self) }

    /// Fills `slot` of `collector` (taken from ``retainedUntilFilled``), giving up the slots'
    /// reference once the last one is filled.
    static func fill(_ collector: Unmanaged<BatchCollector>, slot: Int, with result: Result<RecordMetadata, KlifeError>) {
        let last = collector._withUnsafeGuaranteedRef { $0.complete(slot, result) }
        if last { collector.release() }
    }

    /// Fills slot `index` once (a second outcome for it is ignored).
    /// - Returns: whether this filled the last slot.
    @discardableResult
    func complete(_ index: Int, _ result: Result<RecordMetadata, KlifeError>) -> Bool {
        let (last, finished): (Bool, (CheckedContinuation<[Result<RecordMetadata, KlifeError>], Never>, [Result<RecordMetadata, KlifeError>])?) =
            state.withLock { s in
                guard s.results[index] == nil else { return (false, nil) }
                s.results[index] = result
                s.remaining -= 1
                guard s.remaining == 0 else { return (false, nil) }
                guard let c = s.continuation else { return (true, nil) }
                s.continuation = nil
                return (true, (c, s.results.map { $0! }))
            }
        if let (continuation, results) = finished { continuation.resume(returning: results) }
        return last
    }

    /// Suspends until every slot completed.
    func wait() async -> [Result<RecordMetadata, KlifeError>] {
        await withCheckedContinuation { continuation in
            let ready: [Result<RecordMetadata, KlifeError>]? = state.withLock { s in
                if s.remaining == 0 { return s.results.map { $0! } }
                s.continuation = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// A record on its way from `produce` to a broker acknowledgement.
///
/// Travels through the reactor's ring, then sits in a partition buffer, then in an
/// in-flight request, and is completed exactly once (success, or a typed error).
///
/// A fixed-size descriptor with no references (`BitwiseCopyable`, checked by the compiler):
/// its topic is an interned handle, and its completion, key, value and headers lie in its
/// payload chunk. Moving, copying or destroying one is a plain memory copy, with no reference
/// counting and no value witness.
struct PendingRecord: Sendable, BitwiseCopyable {
    /// The topic, interned (``TopicHandle``): a record holds no reference at all.
    var topic: TopicHandle
    /// -1 until the partitioner ran (it needs the topic's partition count).
    var partition: Int32
    /// The key's length (-1: null key), as in the chunk entry: with ``valueLength`` it locates
    /// key and value without reading the entry (the partitioner runs before the entry is
    /// prefetched). Declared here to fill the padding after `partition`.
    var keyLength: Int32 = -1
    /// The chunk holding the record's completion, key, value and headers (in wire form),
    /// written there on the producing thread: a ``PayloadArena`` chunk (unretained: the arena
    /// owns its chunks) or a standalone one (retained for the record). `nil` when the record
    /// has none of them (nobody waits, no key, value or headers). Released exactly once, when
    /// the record completes or is refused (``releasePayload()``, which also destroys the
    /// completion). The record holds no reference: moving, copying or destroying it touches
    /// no reference count.
    var payloadChunk: Unmanaged<PayloadChunk>? = nil
    /// Where the record's bytes lie in ``payloadChunk``.
    var payloadOffset: Int32 = 0
    /// The value's length (-1: null value), as in the chunk entry.
    var valueLength: Int32 = -1
    /// CreateTime in ms; ``unsetTimestamp`` until the reactor stamps it.
    var timestamp: Int64
    /// Monotonic deadline (ns) for delivery, retries included; 0 until the reactor sets it
    /// (when it takes the record from its ring).
    var deadline: UInt64
    /// Idempotence: the base sequence of the batch this record was first sent in (-1 when
    /// never sent). Records sharing it form one sealed batch, resent with the same boundaries.
    var batchBase: Int32 = -1
    /// The producer epoch `batchBase` was assigned under; sequences of an older epoch are void.
    var sequenceEpoch: Int16 = -1
    /// Encoded size with zero deltas (`RecordBatchLayout.recordSize`), computed once in
    /// `prepare`: counted against `maxBufferedBytes` and used for batch size estimates.
    var size: Int32 = 0
    /// Whether someone waits for the outcome (a completion other than `.none` is, or will
    /// be, stored in the chunk): records nobody waits for are settled without reading their
    /// chunk entry again.
    var awaited: Bool = false
    /// The ``ProducerSession`` (and so the engine) the record belongs to: 0 for the
    /// idempotent producer, 1... for members of the transactional pool.
    var slot: UInt8 = 0
    /// Counted in its tracker's ``OutstandingCounter/inTransit`` until it reaches a partition
    /// buffer or completes (``leftTransit()``).
    var inTransit = false
    /// With several reactors, the metadata version the producing thread chose its reactor
    /// with; the owning reactor holds the record back while records chosen with an older
    /// version may still be on their way to it (see `ProducerService+Handoff.swift`).
    var routedAt: UInt64 = 0
    /// Counts records not yet completed, for `flush()`. Unowned: the client outlives its records.
    unowned(unsafe) let tracker: OutstandingCounter
    /// Set when this descriptor stands for a whole ``ProducerBlock`` (records of ``partition``
    /// already in their wire form, appended on producing threads) rather than one record:
    /// retained by the descriptor until the block is settled. A block has no payload chunk;
    /// its ``size`` is its framed size, its ``deadline`` its first record's, and it is sent,
    /// retried, resent and expired whole.
    var block: Unmanaged<ProducerBlock>? = nil
    /// Non-zero for the *notice* that a producing thread opened ``block`` (not retained: its
    /// partition log holds it while it is open): the block's ``ProducerBlock/generation`` at
    /// that opening. A notice is not buffered; it tells the reactor which block it may seal.
    var noticeOf: UInt32 = 0

    /// Records this descriptor stands for: a block's, or 1.
    @inline(__always)
    var recordCount: Int {
        guard let block else { return 1 }
        return block._withUnsafeGuaranteedRef { $0.recordCount }
    }

    /// Records the descriptors of `records` stand for (the sequence numbers a batch of them takes).
    static func recordCount(of records: [PendingRecord]) -> Int {
        records.count == 1 ? records[0].recordCount : records.reduce(0) { $0 + $1.recordCount }
    }

    /// Settles a block descriptor's records as written from `baseOffset` (-1: unknown), each
    /// with its CreateTime unless the broker gave a LogAppendTime (-1: none), and lets the
    /// block go.
    func completeBlock(topic: String, partition: Int32, baseOffset: Int64, logAppendTime: Int64) {
        guard let block else { preconditionFailure("not a block") }
        block._withUnsafeGuaranteedRef {
            $0.complete(topic: topic, partition: partition, baseOffset: baseOffset, logAppendTime: logAppendTime)
        }
        block.release()
    }

    /// Counts the record in transit to its reactor (``inTransit``), before it is handed over.
    @inline(__always)
    mutating func enterTransit() {
        inTransit = true
        tracker.inTransit.add(1, ordering: .relaxed)
    }

    /// Uncounts a record in transit (``inTransit``): it reached a partition buffer, or is
    /// completed on its way there.
    @inline(__always)
    mutating func leftTransit() {
        guard inTransit else { return }
        inTransit = false
        tracker.inTransit.subtract(1, ordering: .releasing)
    }

    /// Completes the record exactly once (callers guarantee a single call); a block's records
    /// all alike (on success, as written from the offset given).
    func complete(_ result: Result<RecordMetadata, KlifeError>) {
        precondition(noticeOf == 0, "a notice is not completed")
        if inTransit { tracker.inTransit.subtract(1, ordering: .releasing) }
        if let block {
            switch result {
            case .success(let metadata):
                completeBlock(topic: metadata.topic, partition: metadata.partition, baseOffset: metadata.offset,
                              logAppendTime: -1)
            case .failure(let error):
                block._withUnsafeGuaranteedRef { $0.fail(error) }
                block.release()
            }
            return
        }
        notify(result)
        let success = if case .success = result { true } else { false }
        releasePayload()
        tracker.completed(bytes: Int(size), success: success)
    }

    /// Destroys the record's completion (without calling it) and gives its chunk entry back:
    /// once it completed, or when it is refused after `prepare`.
    @inline(__always)
    func releasePayload() {
        guard let chunk = payloadChunk else { return }
        destroyCompletion(in: chunk)
        PayloadChunk.release(chunk, 1)
    }

    /// Calls the record's completion (not awaited: nobody waits), taking it out of its chunk:
    /// the closure is moved out and `.none` left in its place, so calling it copies no
    /// reference (reading it through `pointee` retained the closure's context for the call
    /// and released it after) and the release that follows finds nothing to destroy.
    @inline(__always)
    private func notify(_ result: Result<RecordMetadata, KlifeError>) {
        guard awaited, let chunk = payloadChunk else { return }
        let slot = PayloadArena.completion(in: chunk, at: payloadOffset)
        let completion = slot.move()
        slot.initialize(to: .none)
        completion.complete(result)
    }

    /// Deinitializes the record's completion in `chunk` (nothing to do when nobody waits or it
    /// holds no reference).
    @inline(__always)
    private func destroyCompletion(in chunk: Unmanaged<PayloadChunk>) {
        guard awaited else { return }
        let completion = PayloadArena.completion(in: chunk, at: payloadOffset)
        if !completion.pointee.isNone { completion.deinitialize(count: 1) }
    }

    /// Starts loading the record's completion into the cache when someone waits for it, a few
    /// records before the batch's acknowledgement reaches it.
    @inline(__always)
    func prefetchCompletion() {
        guard awaited, let chunk = payloadChunk else { return }
        PayloadArena.prefetch(in: chunk, at: payloadOffset, payloadBytes: 0)
    }

    /// Replaces the record's completion (`.none` until then: `prepare` reserved it with
    /// `reservingCompletion`), before the record is handed to its reactor.
    func setCompletion(_ completion: consuming DeliveryCompletion) {
        guard let chunk = payloadChunk else { preconditionFailure("no completion reserved") }
        PayloadArena.completion(in: chunk, at: payloadOffset).pointee = completion
    }

    /// The record's key, value (`nil` when null) and headers, read where they lie; valid
    /// until the record's payload is released.
    @inline(__always)
    var payload: (key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, headers: EncodedHeaders) {
        guard let chunk = payloadChunk else { return (nil, nil, .none) }
        return PayloadArena.bytes(in: chunk, at: payloadOffset)
    }

    /// Starts loading the record's chunk entry into the cache, a few records before it is
    /// encoded (its bytes were written on the producing thread's core).
    @inline(__always)
    func prefetchPayload() {
        guard let chunk = payloadChunk else { return }
        PayloadArena.prefetch(in: chunk, at: payloadOffset, payloadBytes: Int(size))
    }

    /// The record's key and value (`nil` when null), located from the descriptor's lengths
    /// without reading the chunk entry; valid until the record's payload is released.
    @inline(__always)
    var keyAndValue: (key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?) {
        guard let chunk = payloadChunk else { return (nil, nil) }
        let (key, value, _) = PayloadArena.keyAndValue(in: chunk, at: payloadOffset, keyCount: Int(keyLength),
                                                      valueCount: Int(valueLength))
        return (key, value)
    }

    /// How many records ahead of the one being read its chunk entry is prefetched (the
    /// producing thread wrote it on another core).
    static let prefetchDistance = 8

    /// Calls `body` with each record of `records` in order, where it lies, after starting
    /// `prefetch` on the record ``prefetchDistance`` ahead of it.
    @inline(__always)
    static func forEach(in records: UnsafeBufferPointer<PendingRecord>,
                        prefetching prefetch: (UnsafePointer<PendingRecord>) -> Void,
                        _ body: (_ index: Int, _ record: UnsafePointer<PendingRecord>) -> Void) {
        guard let base = records.baseAddress else { return }
        for i in 0..<min(records.count, prefetchDistance) { prefetch(base + i) }
        for i in records.indices {
            if i &+ prefetchDistance < records.count { prefetch(base + (i &+ prefetchDistance)) }
            body(i, base + i)
        }
    }

    /// Gives the arena bytes of `records` back after ``deliver(at:_:)`` completed each: one
    /// release per run of records sharing a chunk.
    static func releasePayloads(_ records: UnsafeBufferPointer<PendingRecord>) {
        precondition(records.isEmpty || records[0].block == nil, "a block is settled, not released")
        var run: Unmanaged<PayloadChunk>?
        var count = 0
        for i in records.indices {
            let chunk = records[i].payloadChunk
            if let chunk { records[i].destroyCompletion(in: chunk) }
            if chunk?.toOpaque() != run?.toOpaque() {
                if let run { PayloadChunk.release(run, count) }
                run = chunk
                count = 0
            }
            count &+= 1
        }
        if let run { PayloadChunk.release(run, count) }
    }

    /// Completes the record stored at `record` without copying it (its completion is called
    /// where it lies in the record's chunk).
    /// The caller accounts the record in its tracker afterwards (batched: see
    /// ``OutstandingCounter/completed(count:bytes:success:)``).
    @inline(__always)
    static func deliver(at record: UnsafePointer<PendingRecord>, _ result: Result<RecordMetadata, KlifeError>) {
        record.pointee.notify(result)
    }

    func fail(_ error: KlifeError) { complete(.failure(error)) }

    /// `sequenceEpoch` (with `batchBase` -1) of a record that was sent before under a producer
    /// identity that is gone: it is resent first, in front of records never sent.
    static let sentUnderVoidIdentity: Int16 = -2

    /// `timestamp` of a record the reactor has not stamped yet (the user gave none).
    static let unsetTimestamp = Int64.min

    /// The placeholder a ring slot gets when its record is withdrawn (its topic is empty);
    /// holds no chunk and is never completed.
    static let vacated = PendingRecord(topic: .empty, partition: -1, timestamp: 0, deadline: 0,
                                       tracker: OutstandingCounter.vacated)

    /// A record whose completion, key, value and headers are written into a standalone chunk (tests and
    /// tools; `prepare` copies into the client's arena). Its size is computed as `prepare` does.
    static func withPayload(topic: String, partition: Int32, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader] = [],
                            timestamp: Int64, deadline: UInt64, completion: DeliveryCompletion,
                            size: Int32? = nil, tracker: OutstandingCounter) -> PendingRecord {
        let headerBytes = RecordBatchLayout.headerBytes(headers)
        let (chunk, offset) = key.withUnsafeBytesIfPresent { k in
            value.withUnsafeBytesIfPresent { v in
                PayloadArena.standalone(key: k, value: v, headers: headers, headerBytes: headerBytes, completion: completion)
            }
        }
        let awaited = !completion.isNone
        let computed = RecordBatchLayout.recordSize(offsetDelta: 0, timestampDelta: 0, keyCount: key?.count,
                                                    valueCount: value?.count, headers: headers)
        return PendingRecord(topic: TopicTable.shared.handle(for: topic), partition: partition,
                             keyLength: Int32(truncatingIfNeeded: key?.count ?? -1), payloadChunk: chunk, payloadOffset: offset,
                             valueLength: Int32(truncatingIfNeeded: value?.count ?? -1),
                             timestamp: timestamp, deadline: deadline, size: size ?? Int32(computed), awaited: awaited,
                             tracker: tracker)
    }
}

extension RecordBatchEncoder {
    /// Appends the record at `record`, its key, value and headers read where they lie (in its
    /// payload chunk) and the record itself borrowed, not copied.
    @inline(__always)
    mutating func append(into writer: inout ByteWriter, record: UnsafePointer<PendingRecord>) {
        let (key, value, headers) = record.pointee.payload
        append(into: &writer, timestamp: record.pointee.timestamp, key: key, value: value, headers: headers)
    }
}
