import KlifeIO
import KlifeProtocol

/// The producer's part of one reactor: the ring producing threads hand records to, one
/// ``ProducerEngine`` per producer session that sent records here, and the hand-over of
/// partitions between reactors (`ProducerService+Handoff.swift`). Registered on its
/// ``ReactorHub``, which owns the connections and the metadata snapshot.
final class ProducerService: ReactorService, @unchecked Sendable {
    // Safe to share: `hub`, `records` and `partitions` are immutable references to thread-safe
    // objects, and `sessions`, `siblings`, `metadataStore` and the callbacks are set before the
    // reactor starts. Everything else is touched only on the hub's reactor thread.

    // unowned(unsafe): the hub registers this service and outlives it (the client and the
    // reactor loop keep the hub); a checked `unowned` costs two atomic operations per use.
    unowned(unsafe) let hub: ReactorHub
    /// Records submitted by application threads, drained once per reactor iteration.
    let records: MPSCRing<PendingRecord>
    /// The producer's partitioners.
    let partitions: PartitionChooser
    /// Asks the client for an epoch bump of the idempotent producer (sequence state lost).
    var onEpochBumpNeeded: (@Sendable () -> Void)?
    /// The client's producer sessions (index = slot): the idempotent producer, then the
    /// transactional pool. Shared by all reactors; set before the reactor starts.
    var sessions: [ProducerSession] = []
    /// The producer service of every reactor, this one included (index = reactor index), for
    /// forwarding records. Emptied at close to break the cycle.
    var siblings: [ProducerService] = [] {
        didSet {
            handoff = siblings.count > 1 ? HandoffState(reactorCount: siblings.count) : nil
            handsOff = handoff != nil
        }
    }
    /// `handoff != nil`, as a plain flag for the per-record paths.
    private(set) var handsOff = false
    /// The client's metadata, for catching up with a newer snapshot before routing.
    var metadataStore: MetadataStore?
    /// Ordering of records across reactors when partitions change owner (several reactors only).
    var handoff: HandoffState?

    /// One engine per producer session that sent records through this reactor (index = slot).
    // `@exclusivity(unchecked)` here and below: one thread owns this object, and the runtime's
    // access checks cost more than the per-record work (docs/DESIGN.md, performance rules).
    @exclusivity(unchecked) private(set) var engines: [ProducerEngine?] = []
    private let deliveryTimeoutNanos: UInt64
    @exclusivity(unchecked) private var cachedWallClockMs: Int64 = 0
    @exclusivity(unchecked) private var wallClockReadAt: UInt64 = 0

    init(hub: ReactorHub) {
        self.hub = hub
        self.reactor = hub.reactor
        let producer = hub.configuration.producer
        self.records = MPSCRing(capacity: producer.queueCapacity)
        self.partitions = PartitionChooser(producer)
        self.deliveryTimeoutNanos = producer.deliveryTimeout.nanoseconds
    }

    // MARK: What the engines use of the hub

    var index: Int { hub.index }
    /// The hub's reactor, kept here too: a stored constant is read without reference counting
    /// (producing threads wake it once per record).
    let reactor: Reactor
    var configuration: KlifeConfiguration { hub.configuration }
    var snapshot: MetadataSnapshot { hub.snapshot }

    func connection(forNode node: Int32) -> BrokerConnection? { hub.connection(forNode: node, purpose: .produce) }

    func log(_ level: LogLevel, _ message: @autoclosure () -> String, broker: String? = nil) {
        hub.log(level, message(), broker: broker)
    }

    func requestMetadataRefresh(topic: String?) { hub.requestMetadataRefresh(topic: topic) }

    func requestEpochBump() { onEpochBumpNeeded?() }

    // MARK: Producer engines

    /// The engine of session `slot`, created on first use.
    func engine(slot: UInt8) -> ProducerEngine {
        let index = Int(slot)
        if let engine = existingEngine(slot: index) { return engine }
        if engines.count <= index { engines += Array(repeating: nil, count: index + 1 - engines.count) }
        let engine = ProducerEngine(service: self, session: sessions[index])
        engines[index] = engine
        return engine
    }

    /// The engine of session `slot` if this reactor has one (never creates it).
    func existingEngine(slot: Int) -> ProducerEngine? {
        slot < engines.count ? engines[slot] : nil
    }

    /// Engines that exist, in slot order.
    var activeEngines: [ProducerEngine] { engines.compactMap { $0 } }

    /// The idempotent producer's engine (slot 0), lent without a retain on the per-record
    /// path; `engines` keeps it alive.
    @exclusivity(unchecked) private var defaultEngine: Unmanaged<ProducerEngine>?

    /// Drains the record ring into the engines, then flushes them (once per reactor iteration).
    func iterate() {
        let now = Reactor.monotonicNanoseconds()
        if handsOff {
            catchUpWithMetadata()
            while records.drain(maxCount: 4096, { record in self.routeFromRing(record, now: now) }) == 4096 {}
            progressHandoff()
        } else {
            drainRing(now: now)
        }
        for engine in engines {
            engine?.sealDueBlocks(now: now)
            engine?.flushAll(now: now)
        }
    }

    /// Hands a record to its session's engine, first stamping what `produce` left for the
    /// reactor: the delivery deadline and, unless the user set one, the CreateTime
    /// timestamp (two clock reads per record saved on the producing thread; the wall clock
    /// is read at most once per millisecond here).
    ///
    /// A record that already has its deadline was pushed earlier than `now`: left in the ring
    /// for this reactor's own wake (it lingers anyway: `Reactor.wakeup(unlessAwakeBy:)`), or
    /// handed over by another reactor. Its linger and CreateTime count from then, so it
    /// waits no longer than its linger in all.
    func route(_ record: consuming PendingRecord, now: UInt64) {
        let arrived: UInt64
        if record.deadline == 0 {
            record.deadline = now &+ deliveryTimeoutNanos
            arrived = now
        } else {
            arrived = min(now, record.deadline &- deliveryTimeoutNanos)
        }
        if record.timestamp == PendingRecord.unsetTimestamp { record.timestamp = wallClockMilliseconds(at: arrived, now: now) }
        let slot = record.slot
        if slot == 0 {
            let engine = defaultEngine ?? makeDefaultEngine()
            engine._withUnsafeGuaranteedRef { $0.route(record, now: now, lingerFrom: arrived) }
        } else {
            engine(slot: slot).route(consume record, now: now, lingerFrom: arrived)
        }
    }

    @inline(never)
    private func makeDefaultEngine() -> Unmanaged<ProducerEngine> {
        let engine = Unmanaged.passUnretained(engine(slot: 0))
        defaultEngine = engine
        return engine
    }

    /// The wall clock in milliseconds at monotonic time `instant` (at most `now`), from a
    /// reading re-taken when `now` moved by 1 ms or more since the last.
    private func wallClockMilliseconds(at instant: UInt64, now: UInt64) -> Int64 {
        if now &- wallClockReadAt >= 1_000_000 || wallClockReadAt == 0 {
            cachedWallClockMs = currentTimeMilliseconds()
            wallClockReadAt = now
        }
        if instant >= wallClockReadAt { return cachedWallClockMs }
        return cachedWallClockMs &- Int64((wallClockReadAt &- instant) / 1_000_000)
    }

    /// Routes records submitted as one batch (they are flushed together by the next iteration).
    func routeMany(_ records: [PendingRecord]) {
        if handsOff { catchUpWithMetadata() }
        let now = Reactor.monotonicNanoseconds()
        // What the ring holds was handed over before these records: block notices among it
        // tell which blocks go in front of them.
        if !handsOff { drainRing(now: now) }
        for r in records { route(r, now: now) }
    }

    /// Routes everything in the ring, in order (one reactor: no hand-over checks).
    private func drainRing(now: UInt64) {
        while records.drain(maxCount: 4096, { record in self.route(record, now: now) }) == 4096 {}
    }

    /// Producer counters summed over this reactor's engines.
    var producerCounters: ProducerCounters {
        var total = ProducerCounters()
        for engine in engines { if let engine { total.merge(engine.counters) } }
        return total
    }

    // MARK: Metadata

    func metadataChanged(from previousVersion: UInt64, unknownTopics: [String]) {
        if handoff != nil { noteOwnershipChanges(since: previousVersion) }
        for engine in activeEngines {
            for topic in unknownTopics { engine.failUnknownTopic(topic) }
            engine.metadataChanged()
        }
        if handoff != nil {
            rerouteHeld()
            progressHandoff()
        }
    }

    func topicsUnknown(_ topics: [String]) {
        for engine in activeEngines { for topic in topics { engine.failUnknownTopic(topic) } }
    }

    // MARK: Routing helpers

    /// Whether this reactor owns broker `node`'s connection (no reference taken).
    @inline(__always)
    func ownsConnection(toNode node: Int32) -> Bool {
        siblings.count <= 1 || ReactorHub.index(forNode: node, reactorCount: siblings.count) == index
    }

    // MARK: Shutdown

    func failAll(_ error: KlifeError) {
        failHandoffRecords(error)
        siblings = []
        while let r = records.pop() { if !r.topic.isEmpty && r.noticeOf == 0 { r.fail(error) } }
        for engine in activeEngines { engine.failAll(error) }
        // Blocks still open on producing threads, of sessions this reactor has no engine for yet.
        for session in sessions { session.failOpenBlocks(error) }
    }
}
