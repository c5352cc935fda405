import KlifeIO
import KlifeProtocol

/// The state one reactor owns: its broker connections, its producer engine and its
/// copy of the metadata snapshot.
///
/// Each broker connection belongs to exactly one reactor for its whole life
/// (`nodeID mod reactorCount`), so no connection is ever touched by two threads.
final class ReactorContext: @unchecked Sendable {
    // Safe to share: `index`, `reactor`, `configuration`, `tls`, `records` and `client` are
    // immutable references to thread-safe objects. Every other property is read and
    // written only on `reactor`'s thread (inside tasks, hooks, timers and channel
    // callbacks it runs), which `assertOnReactor()` checks in debug builds.

    let index: Int
    let reactor: Reactor
    let configuration: KlifeConfiguration
    /// The client's TLS context (shared by all reactors), `nil` for plain TCP.
    let tls: TLSContext?
    /// Records submitted by application threads, drained once per reactor iteration.
    let records: MPSCRing<PendingRecord>
    /// The producer's partitioners.
    let partitions: PartitionChooser
    weak var client: KlifeClient?
    /// The client's producer sessions (index = slot): the idempotent producer, then the
    /// transactional pool. Shared by all reactors; set before the reactor starts.
    var sessions: [ProducerSession] = []
    /// Every context of the client, this one included (index = reactor index), for
    /// forwarding records without touching the client. Emptied at close to break the cycle.
    var siblings: [ReactorContext] = [] {
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

    private(set) var snapshot = MetadataSnapshot(.empty, version: 0)
    private var connections: [Int32: BrokerConnection] = [:]
    private var bootstrapConnections: [BrokerAddress: BrokerConnection] = [:]
    /// One engine per producer session that sent records through this reactor (index = slot).
    private(set) var engines: [ProducerEngine?] = []
    private let deliveryTimeoutNanos: UInt64
    private var cachedWallClockMs: Int64 = 0
    private var wallClockReadAt: UInt64 = 0

    init(index: Int, configuration: KlifeConfiguration, tls: TLSContext?) throws(KlifeError) {
        self.index = index
        self.configuration = configuration
        self.tls = tls
        self.records = MPSCRing(capacity: configuration.producer.queueCapacity)
        self.partitions = PartitionChooser(configuration.producer)
        self.deliveryTimeoutNanos = configuration.producer.deliveryTimeout.nanoseconds
        do {
            self.reactor = try Reactor(name: "klife-reactor-\(index)",
                                       cpuAffinity: configuration.reactorCPUAffinity?[index])
        } catch {
            throw .invalidConfiguration("reactorCPUAffinity", "reactor \(index) could not start: \(error)")
        }
    }

    func start() {
        reactor.start()
        reactor.submit { [self] in
            // A strong capture on purpose: the loop keeps its context (and everything that
            // refers to it unowned) alive until shutdown removes the hook.
            reactor.addIterationHook { [self] in runProducerIteration() }
        }
    }

    func assertOnReactor() {
        assert(reactor.isInReactorThread, "ReactorContext used off its reactor thread")
    }

    // MARK: Producer engines

    /// The engine of session `slot`, created on first use.
    func engine(slot: UInt8) -> ProducerEngine {
        let index = Int(slot)
        if let engine = existingEngine(slot: index) { return engine }
        if engines.count <= index { engines += Array(repeating: nil, count: index + 1 - engines.count) }
        let engine = ProducerEngine(context: self, session: sessions[index])
        engines[index] = engine
        return engine
    }

    /// The engine of session `slot` if this reactor has one (never creates it).
    func existingEngine(slot: Int) -> ProducerEngine? {
        slot < engines.count ? engines[slot] : nil
    }

    /// Engines that exist, in slot order.
    var activeEngines: [ProducerEngine] { engines.compactMap { $0 } }

    /// Drains the record ring into the engines, then flushes them. Runs once per reactor iteration.
    private func runProducerIteration() {
        let now = Reactor.monotonicNanoseconds()
        if handsOff {
            catchUpWithMetadata()
            while records.drain(maxCount: 4096, { record in self.routeFromRing(consume record, now: now) }) == 4096 {}
            progressHandoff()
        } else {
            while records.drain(maxCount: 4096, { record in self.route(consume record, now: now) }) == 4096 {}
        }
        for engine in engines { engine?.flushAll(now: now) }
    }

    /// Hands a record to its session's engine, first stamping what `produce` left for the
    /// reactor: the delivery deadline and, unless the user set one, the CreateTime
    /// timestamp (two clock reads per record saved on the producing thread; the wall clock
    /// is read at most once per millisecond here).
    func route(_ record: consuming PendingRecord, now: UInt64) {
        var record = record
        if record.deadline == 0 { record.deadline = now &+ deliveryTimeoutNanos }
        if record.timestamp == PendingRecord.unsetTimestamp { record.timestamp = wallClockMilliseconds(now: now) }
        let slot = record.slot
        engine(slot: slot).route(consume record, now: now)
    }

    /// The wall clock in milliseconds, re-read when `now` (monotonic) moved by 1 ms or more.
    private func wallClockMilliseconds(now: UInt64) -> Int64 {
        if now &- wallClockReadAt >= 1_000_000 || wallClockReadAt == 0 {
            cachedWallClockMs = currentTimeMilliseconds()
            wallClockReadAt = now
        }
        return cachedWallClockMs
    }

    /// Routes records submitted as one batch (they are flushed together by the next iteration).
    func routeMany(_ records: [PendingRecord]) {
        if handsOff { catchUpWithMetadata() }
        let now = Reactor.monotonicNanoseconds()
        for r in records { route(r, now: now) }
    }

    /// Producer counters summed over this reactor's engines.
    var producerCounters: ProducerCounters {
        var total = ProducerCounters()
        for engine in engines { if let engine { total.merge(engine.counters) } }
        return total
    }

    // MARK: Records from other threads

    // MARK: Connections

    /// The connection to `node`, created on first use; `nil` if the broker is not in metadata.
    func connection(forNode node: Int32) -> BrokerConnection? {
        assertOnReactor()
        guard let broker = snapshot.metadata.brokers[node] else { return connections[node] }
        if let existing = connections[node] {
            if existing.address == broker.address { return existing }
            existing.close()
        }
        let connection = BrokerConnection(nodeID: node, address: broker.address, context: self)
        connections[node] = connection
        return connection
    }

    /// A connection to a bootstrap address (node id unknown), reused until ``closeBootstrapConnections()``.
    func bootstrapConnection(_ address: BrokerAddress) -> BrokerConnection {
        assertOnReactor()
        if let existing = bootstrapConnections[address] { return existing }
        let connection = BrokerConnection(nodeID: -1, address: address, context: self)
        bootstrapConnections[address] = connection
        return connection
    }

    /// Drops bootstrap connections once real broker connections exist (one connection per broker).
    func closeBootstrapConnections() {
        for c in bootstrapConnections.values { c.close() }
        bootstrapConnections.removeAll()
    }

    /// Requests sent per API over every connection of this reactor.
    func requestCounts() -> [ApiKey: Int] {
        var total: [ApiKey: Int] = [:]
        for c in connections.values { total.merge(c.requestCounts, uniquingKeysWith: +) }
        for c in bootstrapConnections.values { total.merge(c.requestCounts, uniquingKeysWith: +) }
        return total
    }

    // MARK: Metadata

    func apply(_ snapshot: MetadataSnapshot, unknownTopics: [String]) {
        guard snapshot.version > self.snapshot.version else {
            for engine in activeEngines { for topic in unknownTopics { engine.failUnknownTopic(topic) } }
            return
        }
        let previous = self.snapshot.version
        self.snapshot = snapshot
        if handoff != nil { noteOwnershipChanges(since: previous) }
        for engine in activeEngines {
            for topic in unknownTopics { engine.failUnknownTopic(topic) }
            engine.metadataChanged()
        }
        if handoff != nil {
            rerouteHeld()
            progressHandoff()
        }
    }

    /// Sends an event to the configured log handler.
    func log(_ level: LogLevel, _ message: @autoclosure () -> String, broker: String? = nil) {
        guard let handler = configuration.logHandler, level >= configuration.logLevel else { return }
        handler(LogEvent(level: level, message: message(), broker: broker))
    }

    func requestMetadataRefresh(topic: String?) {
        client?.requestMetadataRefresh(topic: topic)
    }

    /// Whether this reactor owns broker `node`'s connection (no reference taken).
    @inline(__always)
    func ownsConnection(toNode node: Int32) -> Bool {
        siblings.count <= 1 || Self.index(forNode: node, reactorCount: siblings.count) == index
    }


    /// The reactor that owns broker `node`'s connection: the one rule every router uses.
    static func index(forNode node: Int32, reactorCount: Int) -> Int {
        Int(UInt32(bitPattern: node) % UInt32(reactorCount))
    }

    /// The configured partitioner's choice (the topic's own, else the client-wide one).
    @inline(__always)
    func choosePartition(topic: String, key: [UInt8]?, value: [UInt8]?, partitionCount: Int32) -> Int32 {
        partitions.choose(topic: topic, key: key, value: value, partitionCount: partitionCount)
    }

    // MARK: Shutdown

    func closeAll(_ error: KlifeError) {
        failHandoffRecords(error)
        siblings = []
        while let r = records.pop() { if !r.topic.isEmpty { r.fail(error) } }
        for engine in activeEngines { engine.failAll(error) }
        for c in connections.values { c.close() }
        connections.removeAll()
        closeBootstrapConnections()
    }
}
