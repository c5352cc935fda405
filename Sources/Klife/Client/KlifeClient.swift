public import KlifeProtocol
import KlifeIO
import Synchronization
import Glibc

/// A Kafka client: one connection per broker, reactors that own them, a batching
/// producer, fetch, offsets and admin calls.
///
/// ```swift
/// let client = try await KlifeClient.connect(KlifeConfiguration(bootstrapServers: ["127.0.0.1:9092"]))
/// let meta = try await client.produce(ProducerRecord(topic: "events", key: "k", value: "hello"))
/// print(meta.offset)
/// await client.close()
/// ```
///
/// All methods are safe to call from any thread or task. Delivery callbacks run on a
/// reactor thread: keep them short and never block in them.
public final class KlifeClient: Sendable {
    /// The configuration the client was created with.
    public let configuration: KlifeConfiguration
    /// One hub per reactor (index = reactor index): connections, metadata copy, services.
    let hubs: [ReactorHub]
    /// The producer's service on each reactor (same index).
    let producers: [ProducerService]
    /// `producers` lent without reference counting (`producers` keeps them): the per-record
    /// path hands records to them without a retain and release each.
    let unretainedProducers: [Unmanaged<ProducerService>]
    /// The fetch engine on each reactor (same index), shared by every consumer of the client.
    let fetchers: [FetchService]
    let metadataStore: MetadataStore
    let outstanding = OutstandingCounter()
    /// Producer sessions by slot: 0 is the idempotent producer used by `produce`, then one
    /// per member of the transactional pool.
    let sessions: [ProducerSession]
    /// Members of the transactional pool (empty without ``KlifeConfiguration/transactions``).
    let transactionPool: TransactionPool
    private let refreshState = Locked(RefreshState())
    /// Remembered coordinators of consumer groups (offset commits and fetches).
    let groupCoordinators = Locked<[String: CoordinatorCache]>([:])
    private let closed = Atomic<Bool>(false)
    /// Set when close starts: new records are refused while buffered ones drain.
    private let closing = Atomic<Bool>(false)
    /// Told once when the client closes: parts of its users that wait on it outside the
    /// reactors (a group member waits for events of its own, which a closed client never sends).
    private let closeHandlers = Locked(CloseHandlers())
    /// The producer's partitioners (also held by every reactor).
    let partitions: PartitionChooser
    let maxBlockNanos: UInt64
    /// `producer.linger` in nanoseconds: how long a pushed record may wait for its reactor to
    /// wake by itself (``Reactor/wakeup(unlessAwakeBy:)``) — it waits that long in its batch anyway.
    let lingerNanos: UInt64
    /// Records are appended to their partition's open block on the producing thread
    /// (`producer.appendOnProducingThread`, with one reactor).
    let appendOnProducingThread: Bool
    /// `producer.deliveryTimeout` in nanoseconds (a record left for its reactor's own wake
    /// carries its deadline from the push).
    let deliveryTimeoutNanos: UInt64
    let maxRecordBytes: Int
    /// `producer.maxBufferedRecords` and `producer.maxBufferedBytes`, read on every admission:
    /// copying `configuration.producer` for them retained its reference fields each time.
    let maxBufferedRecords: Int
    let maxBufferedBytes: Int
    /// Where producing threads copy records' keys and values (at most as many bytes as the
    /// producer may buffer).
    let payloadArena: PayloadArena

    private struct CloseHandlers {
        var next: UInt64 = 0
        var handlers: [UInt64: @Sendable () -> Void] = [:]
        var closed = false
    }

    private struct RefreshState {
        var wanted: Set<String> = []
        var wantAll = false
        var running = false
        var topicsOfInterest: Set<String> = []
        var periodic: Task<Void, Never>?
    }

    private init(_ configuration: KlifeConfiguration) throws(KlifeError) {
        self.configuration = configuration
        self.metadataStore = MetadataStore(reactorCount: configuration.reactorCount)
        let tls = try configuration.tls?.makeContext()
        var hubs: [ReactorHub] = []
        for i in 0..<configuration.reactorCount {
            hubs.append(try ReactorHub(index: i, configuration: configuration, tls: tls))
        }
        self.hubs = hubs
        self.producers = hubs.map { ProducerService(hub: $0) }
        self.unretainedProducers = producers.map { Unmanaged.passUnretained($0) }
        self.fetchers = hubs.map { FetchService(hub: $0) }
        let blockBytes = configuration.producer.maxBatchBytes
        var sessions = [ProducerSession(defaultWith: outstanding, idempotent: configuration.producer.idempotent,
                                        blockBytes: blockBytes)]
        if let transactions = configuration.transactions {
            for member in 0..<transactions.poolSize {
                sessions.append(ProducerSession(slot: UInt8(member + 1), transactionalID: transactions.transactionalID(member: member),
                                                idempotent: true, clientCounter: outstanding, blockBytes: blockBytes))
            }
        }
        self.sessions = sessions
        self.defaultSession = sessions[0]
        self.transactionPool = TransactionPool(sessions: Array(sessions.dropFirst()),
                                               timeout: configuration.transactions?.timeout ?? .seconds(60))
        self.partitions = PartitionChooser(configuration.producer)
        self.maxBlockNanos = configuration.producer.maxBlock.nanoseconds
        self.lingerNanos = configuration.producer.linger.nanoseconds
        self.appendOnProducingThread = configuration.producer.appendOnProducingThread && configuration.reactorCount == 1
        self.deliveryTimeoutNanos = configuration.producer.deliveryTimeout.nanoseconds
        self.maxRecordBytes = configuration.producer.maxRecordBytes
        self.maxBufferedRecords = configuration.producer.maxBufferedRecords
        self.maxBufferedBytes = configuration.producer.maxBufferedBytes
        self.payloadArena = PayloadArena(maxChunks: max(16, configuration.producer.maxBufferedBytes / PayloadArena.chunkBytes))
        let metadataStore = self.metadataStore
        for (hub, producer) in zip(hubs, producers) {
            producer.metadataStore = metadataStore
            producer.siblings = producers
            producer.sessions = sessions
            hub.register(producer)
        }
        for (hub, fetcher) in zip(hubs, fetchers) { hub.register(fetcher) }
    }

    /// Connects the reactors' requests for the client (metadata refreshes, epoch bumps) to it,
    /// weakly: reactors must not keep a dropped client alive.
    private func wireCallbacks() {
        for hub in hubs {
            hub.onMetadataRefreshNeeded = { [weak self] topic in self?.requestMetadataRefresh(topic: topic) }
        }
        for producer in producers {
            producer.onEpochBumpNeeded = { [weak self] in self?.requestEpochBump() }
        }
    }

    /// Validates `configuration`, starts the reactors and loads cluster metadata from the
    /// first bootstrap server that answers.
    /// - Throws: ``KlifeError`` — `invalidConfiguration` naming the bad field (TLS files
    ///   are read here), `bootstrapUnreachable` when no bootstrap server answers, or as they
    ///   are: `tlsHandshakeFailed` and SASL `authenticationFailed` (another bootstrap server
    ///   would say the same).
    public static func connect(_ configuration: KlifeConfiguration) async throws(KlifeError) -> KlifeClient {
        try configuration.validate()
        let client = try KlifeClient(configuration)
        client.wireCallbacks()
        for hub in client.hubs { hub.start() }
        do {
            try await client.bootstrap()
            if configuration.producer.idempotent { try await client.initProducerIdentity() }
            try await client.initTransactionalProducers()
        } catch {
            await client.close()
            throw error
        }
        client.startPeriodicRefresh()
        return client
    }

    /// Shuts the client down gracefully: waits up to `timeout` for every buffered record to
    /// be acknowledged (new records are refused meanwhile), then fails whatever is left
    /// with `clientClosed`, closes all connections and stops the reactors.
    /// - Parameter timeout: How long buffered records may take; `.zero` fails them at once.
    public func close(timeout: Duration = .seconds(30)) async {
        guard !closing.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // Producers waiting for room give up now (they check `isClosing` when they wake).
        outstanding.wakeAll()
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while outstanding.value > 0 && clock.now < deadline {
            do { try await Task.sleep(for: .milliseconds(1)) } catch { break }
        }
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        refreshState.withLock { $0.periodic?.cancel() }
        // Before the connections fail: a group member learns it is over, not that its
        // coordinator went away (it would look for it again).
        let handlers = closeHandlers.withLock { h -> [@Sendable () -> Void] in
            h.closed = true
            defer { h.handlers = [:] }
            return h.handlers.sorted { $0.key < $1.key }.map(\.value)
        }
        for handler in handlers { handler() }
        for hub in hubs {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                hub.reactor.submit {
                    hub.closeAll(.clientClosed)
                    done.resume()
                }
            }
        }
        for hub in hubs { hub.reactor.shutdown() }
    }

    /// The idempotent producer's session (slot 0); stored, so reading it per record is a
    /// borrow (an element read from `sessions` is retained and released).
    let defaultSession: ProducerSession

    /// Calls `handler` once when the client closes (at once when it is closed already), unless
    /// ``removeCloseHandler(_:)`` removed it first. The client holds `handler` until then: it
    /// must not keep its owner alive (capture the owner weakly).
    /// - Returns: the id for ``removeCloseHandler(_:)``.
    @discardableResult
    func onClose(_ handler: @escaping @Sendable () -> Void) -> UInt64 {
        let id = closeHandlers.withLock { h -> UInt64? in
            guard !h.closed else { return nil }
            h.next &+= 1
            h.handlers[h.next] = handler
            return h.next
        }
        guard let id else {
            handler()
            return 0
        }
        return id
    }

    /// Forgets a handler of ``onClose(_:)`` (its owner ended first).
    func removeCloseHandler(_ id: UInt64) {
        closeHandlers.withLock { _ = $0.handlers.removeValue(forKey: id) }
    }

    var isClosed: Bool { closed.load(ordering: .acquiring) }
    /// True from the start of ``close(timeout:)``: new records are refused.
    var isClosing: Bool { closing.load(ordering: .acquiring) }

    deinit {
        // Dropped without close(): the reactor threads must not outlive the hubs they call into.
        refreshState.withLock { $0.periodic?.cancel() }
        if !closed.exchange(true, ordering: .acquiringAndReleasing) {
            for hub in hubs { hub.reactor.shutdown() }
        }
    }

    /// The hub owning broker `node`'s connections.
    func hub(forNode node: Int32) -> ReactorHub {
        hubs[ReactorHub.index(forNode: node, reactorCount: hubs.count)]
    }

    // MARK: Statistics

    /// A snapshot of the client's counters, for monitoring and tests.
    public struct Statistics: Sendable {
        /// Requests sent, by API, over all connections since the client started.
        public var requestsSent: [ApiKey: Int]
        /// Records accepted and not yet completed (buffer usage, records).
        public var pendingRecords: Int
        /// Encoded bytes of those records (buffer usage, bytes).
        public var pendingBytes: Int
        /// Records acknowledged by a broker.
        public var recordsDelivered: Int
        /// Records completed with an error.
        public var recordsFailed: Int
        /// Produce requests sent.
        public var produceRequests: Int
        /// Record batches sent (one per partition per request).
        public var batchesSent: Int
        /// Bytes of Produce requests written to sockets.
        public var bytesSent: Int
        /// Batches put back for another attempt.
        public var retries: Int
        /// Failed Produce requests and partition errors, by broker node id.
        public var errorsByBroker: [Int32: Int]
        /// Produce round-trip latency (request written to response handled), microseconds.
        public var produceLatency: LatencySummary
        /// Times another thread woke a reactor (an `eventfd` write: a system call on that
        /// thread and a wakeup of the reactor's), over all reactors.
        public var reactorWakeups: Int
        /// Records left in a sleeping reactor's ring for the wake it had planned within their
        /// linger, instead of waking it (see ``ProducerConfiguration/linger``).
        public var wakeupsSaved: Int
    }

    /// Current counters, gathered from every reactor.
    public func statistics() async -> Statistics {
        var total: [ApiKey: Int] = [:]
        var counters = ProducerCounters()
        for (hub, service) in zip(hubs, producers) {
            let (requests, producer): ([ApiKey: Int], ProducerCounters) = await withCheckedContinuation { done in
                if !hub.reactor.trySubmit({ done.resume(returning: (hub.requestCounts(), service.producerCounters)) }) {
                    done.resume(returning: ([:], ProducerCounters()))
                }
            }
            total.merge(requests, uniquingKeysWith: +)
            counters.merge(producer)
        }
        return Statistics(requestsSent: total, pendingRecords: outstanding.value, pendingBytes: outstanding.byteCount,
                          recordsDelivered: outstanding.deliveredCount, recordsFailed: outstanding.failedCount,
                          produceRequests: counters.produceRequests, batchesSent: counters.batchesSent,
                          bytesSent: counters.bytesSent, retries: counters.retries, errorsByBroker: counters.errorsByBroker,
                          produceLatency: counters.latency.summary,
                          reactorWakeups: hubs.reduce(0) { $0 + $1.reactor.wakeupCount },
                          wakeupsSaved: hubs.reduce(0) { $0 + $1.reactor.deferredWakeupCount })
    }

    // MARK: Metadata refresh (control plane)

    func noteTopicOfInterest(_ topic: String) {
        refreshState.withLock { _ = $0.topicsOfInterest.insert(topic) }
    }

    /// Asks for a metadata refresh; concurrent requests coalesce into one in-flight refresh.
    func requestMetadataRefresh(topic: String?) {
        let start = refreshState.withLock { s -> Bool in
            if let topic { s.wanted.insert(topic); s.topicsOfInterest.insert(topic) } else { s.wantAll = true }
            if s.running { return false }
            s.running = true
            return true
        }
        if start { Task { await self.runRefreshLoop() } }
    }

    private func runRefreshLoop() async {
        while !isClosed {
            let topics: [String]? = refreshState.withLock { s in
                if s.wanted.isEmpty && !s.wantAll { s.running = false; return nil }
                let topics = Array(s.topicsOfInterest.union(s.wanted))
                s.wanted.removeAll()
                s.wantAll = false
                return topics
            }
            guard let topics else { return }
            do {
                _ = try await refreshMetadata(topics: topics)
            } catch {
                hubs[0].log(.warning, "metadata refresh failed: \(error)")
            }
            // Spaces refreshes so a burst of misrouted records costs one request, not hundreds.
            try? await Task.sleep(for: .milliseconds(50))
        }
        refreshState.withLock { $0.running = false }
    }

    private func startPeriodicRefresh() {
        let interval = configuration.metadataMaxAge
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard let self, !self.isClosed else { return }
                self.requestMetadataRefresh(topic: nil)
            }
        }
        refreshState.withLock { $0.periodic = task }
    }

    /// Fetches metadata for `topics` (all topics when `nil`), installs it and tells every reactor.
    @discardableResult
    func refreshMetadata(topics: [String]?) async throws(KlifeError) -> ClusterMetadata {
        let response = try await roundTripAnyBroker(
            MetadataRequest(topics: topics, allowAutoTopicCreation: configuration.allowAutoTopicCreation))
        return publish(response)
    }

    private func publish(_ response: MetadataResponse) -> ClusterMetadata {
        let (merged, unknown) = ClusterMetadata.merging(response, into: metadataStore.snapshot.metadata)
        if !unknown.isEmpty { refreshState.withLock { $0.topicsOfInterest.subtract(unknown) } }
        install(merged, unknownTopics: unknown)
        return merged
    }

    /// Test hook: while paused, no refresh starts (metadata installed with
    /// ``install(_:unknownTopics:)`` stays; a refresh already under way finishes); resuming
    /// refreshes everything.
    func pauseMetadataRefreshes(_ paused: Bool) {
        refreshState.withLock { $0.running = paused }
        if !paused { requestMetadataRefresh(topic: nil) }
    }

    /// Publishes `metadata` as the current snapshot and hands it to every reactor.
    func install(_ metadata: ClusterMetadata, unknownTopics: [String] = []) {
        let snapshot = metadataStore.publish(metadata)
        for hub in hubs { hub.reactor.submit { hub.apply(snapshot, unknownTopics: unknownTopics) } }
    }

    private func bootstrap() async throws(KlifeError) {
        var lastError = "no server tried"
        let hub = hubs[0]
        for server in configuration.bootstrapServers {
            guard let address = BrokerAddress(parsing: server) else { continue }
            do {
                let response = try await roundTrip(MetadataRequest(topics: [], allowAutoTopicCreation: false), via: hub) {
                    $0.bootstrapConnection(address)
                }
                _ = publish(response)
                hub.reactor.submit { hub.closeBootstrapConnections() }
                return
            } catch {
                // Rejected credentials, mechanism or certificate: another bootstrap server would say the same.
                if error.code == .authenticationFailed || error.code == .tlsHandshakeFailed
                    || error.kafkaErrorCode == .unsupportedSaslMechanism { throw error }
                lastError = error.description
            }
        }
        throw .bootstrapUnreachable(configuration.bootstrapServers, lastError: lastError)
    }
}
