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
    let contexts: [ReactorContext]
    let metadataStore = MetadataStore()
    let outstanding = OutstandingCounter()
    let identity = ProducerIdentity()
    let sequences = SequenceRegistry()
    private let refreshState = Mutex(RefreshState())
    private let closed = Atomic<Bool>(false)
    private let maxBlockNanos: UInt64
    private let deliveryTimeoutNanos: UInt64
    private let maxRecordBytes: Int

    private struct RefreshState {
        var wanted: Set<String> = []
        var wantAll = false
        var running = false
        var topicsOfInterest: Set<String> = []
        var periodic: Task<Void, Never>?
    }

    private init(_ configuration: KlifeConfiguration) throws(KlifeError) {
        self.configuration = configuration
        var contexts: [ReactorContext] = []
        for i in 0..<configuration.reactorCount {
            contexts.append(try ReactorContext(index: i, configuration: configuration))
        }
        self.contexts = contexts
        self.maxBlockNanos = configuration.producer.maxBlock.nanoseconds
        self.deliveryTimeoutNanos = configuration.producer.deliveryTimeout.nanoseconds
        self.maxRecordBytes = configuration.producer.maxRecordBytes
        for c in contexts {
            c.client = self
            c.siblings = contexts
            c.identity = identity
            c.sequences = sequences
        }
    }

    /// Validates `configuration`, starts the reactors and loads cluster metadata from the
    /// first bootstrap server that answers.
    /// - Throws: ``KlifeError`` — `invalidConfiguration` naming the bad field, or
    ///   `bootstrapUnreachable` when no bootstrap server answers.
    public static func connect(_ configuration: KlifeConfiguration) async throws(KlifeError) -> KlifeClient {
        try configuration.validate()
        let client = try KlifeClient(configuration)
        for c in client.contexts { c.start() }
        do {
            try await client.bootstrap()
            if configuration.producer.idempotent { try await client.initProducerIdentity() }
        } catch {
            await client.close()
            throw error
        }
        client.startPeriodicRefresh()
        return client
    }

    /// Fails every record not yet delivered with `clientClosed`, closes all connections and
    /// stops the reactors. Call ``flush()`` first to deliver what is buffered.
    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        refreshState.withLock { $0.periodic?.cancel() }
        for c in contexts {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                c.reactor.submit {
                    c.closeAll(.clientClosed)
                    done.resume()
                }
            }
        }
        for c in contexts { c.reactor.shutdown() }
    }

    var isClosed: Bool { closed.load(ordering: .acquiring) }

    deinit {
        // Dropped without close(): the reactor threads must not outlive the contexts they call into.
        refreshState.withLock { $0.periodic?.cancel() }
        if !closed.exchange(true, ordering: .acquiringAndReleasing) {
            for c in contexts { c.reactor.shutdown() }
        }
    }

    // MARK: Produce

    /// Produces one record and waits for the broker's acknowledgement.
    /// - Returns: the partition, offset and timestamp the record got.
    /// - Throws: ``KlifeError`` — for example `recordTooLarge`, `unknownTopicOrPartition`,
    ///   `timedOut` (delivery timeout), or `brokerError` with the Kafka code.
    public func produce(_ record: ProducerRecord) async throws(KlifeError) -> RecordMetadata {
        let result: Result<RecordMetadata, KlifeError> = await withCheckedContinuation { continuation in
            if let error = enqueue(record, completion: .continuation(continuation)) {
                continuation.resume(returning: .failure(error))
            }
        }
        return try result.get()
    }

    /// Produces one record without waiting; `onDelivery` is called exactly once with the
    /// outcome — on a reactor thread, or on the calling thread when the record is
    /// rejected before it is queued (too large, client closed, queue full after `maxBlock`).
    public func produce(_ record: ProducerRecord,
                        onDelivery: @escaping @Sendable (Result<RecordMetadata, KlifeError>) -> Void) {
        if let error = enqueue(record, completion: .callback(onDelivery)) { onDelivery(.failure(error)) }
    }

    /// Produces many records, possibly to many topics and partitions, and waits for all.
    ///
    /// The records enter each reactor as one unit, so everything bound for one broker
    /// leaves in a single Produce request (subject to the size limits).
    /// - Returns: one result per record, in the order given.
    public func produceBatch(_ records: [ProducerRecord]) async -> [Result<RecordMetadata, KlifeError>] {
        guard !records.isEmpty else { return [] }
        let collector = BatchCollector(count: records.count)
        var perContext: [[PendingRecord]] = Array(repeating: [], count: contexts.count)
        for (i, record) in records.enumerated() {
            switch prepare(record, completion: .batch(collector, index: i)) {
            case .failure(let error): collector.complete(i, .failure(error))
            case .success(let (pending, target)): perContext[target.index].append(pending)
            }
        }
        for (i, batch) in perContext.enumerated() where !batch.isEmpty {
            let context = contexts[i]
            for _ in batch { outstanding.increment() }
            context.reactor.submit { context.producer.routeMany(batch) }
        }
        return await collector.wait()
    }

    /// Waits until every record produced before this call has been acknowledged or failed.
    public func flush() async {
        while outstanding.value > 0 && !isClosed {
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Records accepted and not yet completed.
    public var pendingRecordCount: Int { outstanding.value }

    /// Validates and queues one record. Returns the error instead of queuing when it cannot.
    private func enqueue(_ record: ProducerRecord, completion: DeliveryCompletion) -> KlifeError? {
        let (pending, target): (PendingRecord, ReactorContext)
        switch prepare(record, completion: completion) {
        case .failure(let error): return error
        case .success(let prepared): (pending, target) = prepared
        }
        outstanding.increment()
        if target.records.tryPush(pending) {
            target.reactor.wakeup()
            return nil
        }
        return pushWaiting(pending, into: target)
    }

    /// The slow path when a ring is full: wait for space (backpressure), at most `maxBlock`.
    @inline(never)
    private func pushWaiting(_ pending: PendingRecord, into target: ReactorContext) -> KlifeError? {
        let deadline = Reactor.monotonicNanoseconds() &+ maxBlockNanos
        var spins = 0
        while !isClosed {
            target.reactor.wakeup()
            if target.records.tryPush(pending) {
                target.reactor.wakeup()
                return nil
            }
            if Reactor.monotonicNanoseconds() >= deadline { break }
            spins += 1
            if spins < 64 { sched_yield() } else { usleep(100) }
        }
        outstanding.decrement()
        return isClosed ? .clientClosed : .queueFull
    }

    /// Turns a user record into a pending one and picks the reactor that will own it.
    private func prepare(_ record: ProducerRecord, completion: DeliveryCompletion)
        -> Result<(PendingRecord, ReactorContext), KlifeError> {
        if isClosed { return .failure(.clientClosed) }
        if record.topic.isEmpty { return .failure(.invalidArgument("record topic is empty")) }
        let size = record.encodedSize
        if size > maxRecordBytes {
            return .failure(.recordTooLarge(size: size, limit: maxRecordBytes, limitName: "producer.maxRecordBytes"))
        }
        var partition = record.partition ?? -1
        if let p = record.partition, p < 0 { return .failure(.unknownTopicOrPartition(record.topic, partition: p)) }
        var target = contexts[0]
        if let route = metadataStore.snapshot.routes[record.topic] {
            let count = route.partitionCount
            if partition >= count { return .failure(.unknownTopicOrPartition(record.topic, partition: partition)) }
            if partition < 0 {
                partition = contexts[0].choosePartition(topic: record.topic, key: record.key, value: record.value,
                                                        partitionCount: count)
                if partition < 0 || partition >= count {
                    return .failure(.invalidArgument("the partitioner for \(record.topic) chose partition \(partition) of \(count)"))
                }
            }
            if let leader = route.leader(partition) { target = context(forNode: leader) }
        } else {
            noteTopicOfInterest(record.topic)
        }
        let pending = PendingRecord(
            topic: record.topic, partition: partition, key: record.key, value: record.value, headers: record.headers,
            timestamp: record.timestamp ?? currentTimeMilliseconds(),
            deadline: Reactor.monotonicNanoseconds() &+ deliveryTimeoutNanos,
            completion: completion, tracker: outstanding)
        return .success((pending, target))
    }


    func context(forNode node: Int32) -> ReactorContext {
        contexts[Int(UInt32(bitPattern: node) % UInt32(contexts.count))]
    }

    // MARK: Statistics

    /// Counters useful for tests and monitoring.
    public struct Statistics: Sendable {
        /// Requests sent, by API, over all connections since the client started.
        public var requestsSent: [ApiKey: Int]
        /// Records accepted and not yet completed.
        public var pendingRecords: Int
    }

    /// Current counters, gathered from every reactor.
    public func statistics() async -> Statistics {
        var total: [ApiKey: Int] = [:]
        for c in contexts {
            let counts: [ApiKey: Int] = await withCheckedContinuation { done in
                c.reactor.submit { done.resume(returning: c.requestCounts()) }
            }
            total.merge(counts, uniquingKeysWith: +)
        }
        return Statistics(requestsSent: total, pendingRecords: outstanding.value)
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
            _ = try? await refreshMetadata(topics: topics)
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
        let response = try await roundTripAnyBroker(MetadataRequest(topics: topics, allowAutoTopicCreation: false))
        return publish(response)
    }

    private func publish(_ response: MetadataResponse) -> ClusterMetadata {
        let (merged, unknown) = ClusterMetadata.merging(response, into: metadataStore.snapshot.metadata)
        if !unknown.isEmpty { refreshState.withLock { $0.topicsOfInterest.subtract(unknown) } }
        let snapshot = metadataStore.publish(merged)
        for c in contexts { c.reactor.submit { c.apply(snapshot, unknownTopics: unknown) } }
        return merged
    }

    private func bootstrap() async throws(KlifeError) {
        var lastError = "no server tried"
        let context = contexts[0]
        for server in configuration.bootstrapServers {
            guard let address = BrokerAddress(parsing: server) else { continue }
            do {
                let response = try await roundTrip(MetadataRequest(topics: [], allowAutoTopicCreation: false), via: context) {
                    $0.bootstrapConnection(address)
                }
                _ = publish(response)
                context.reactor.submit { context.closeBootstrapConnections() }
                return
            } catch {
                lastError = error.description
            }
        }
        throw .bootstrapUnreachable(configuration.bootstrapServers, lastError: lastError)
    }
}
