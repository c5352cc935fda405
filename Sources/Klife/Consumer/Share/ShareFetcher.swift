import KlifeIO
import KlifeProtocol

/// A share group member's traffic with the partition leaders: one share session per broker
/// (``ShareSession``), ShareFetch to every leader of an assigned partition, acknowledgements
/// riding the next ShareFetch to the broker that delivered the records or, when no fetch to it
/// is due, a ShareAcknowledge; and the records of each answer cut to the member's acquisitions.
///
/// Requests go out on connections of the member's own (one per broker, `fetch` purpose): the
/// broker may hold a ShareFetch for `fetchMaxWait`, and a share session's requests must reach
/// the broker one at a time, in epoch order. Every exchange runs under one ``AsyncSerializer``,
/// so the sessions are only ever touched by one request round at a time.
final class ShareFetcher: Sendable {
    struct Counters: Sendable {
        var acknowledgementsSent = 0
        var acknowledgementErrors = 0
        var sessionsReset = 0
        var recordsDropped = 0
    }

    private struct State {
        var sessions: [Int32: ShareSession] = [:]
        var ledger = ShareAcknowledgementLedger()
        var lockTimeout: Duration?
        var metadataStale = false
        var consecutiveFailures = 0
        var counters = Counters()
    }

    private let client: KlifeClient
    let settings: ShareConsumerConfiguration
    private let memberID: String
    private let owner: UInt64
    private let hub: ReactorHub
    private let state = Locked(State())
    private let serializer = AsyncSerializer()

    init(client: KlifeClient, settings: ShareConsumerConfiguration, memberID: String) {
        self.client = client
        self.settings = settings
        self.memberID = memberID
        self.owner = ReactorHub.newConnectionOwner()
        self.hub = client.hubs[Int(owner % UInt64(client.hubs.count))]
    }

    /// The acquisition lock timeout of the last ShareFetch answer.
    var acquisitionLockTimeout: Duration? { state.withLock { $0.lockTimeout } }

    /// Counters of acknowledgements and sessions.
    var counters: Counters { state.withLock { $0.counters } }

    /// Whether a share session is open with some broker.
    var hasOpenSessions: Bool { state.withLock { $0.sessions.values.contains { $0.isOpen } } }

    /// Records held (acquired, not settled) now.
    var heldRecords: Int { state.withLock { $0.ledger.heldCount } }

    // MARK: Settling

    /// Settles one record; false when this consumer does not hold it.
    func settle(_ source: ShareSource, offset: Int64, as type: ShareAcknowledgeType) -> Bool {
        state.withLock { $0.ledger.settle(source, offset: offset, as: type) }
    }

    /// Records acquisitions of `source`: the offsets delivered are held, the gaps settled at
    /// once. Returns the delivered offsets that were not held already at the same count.
    func recordAcquired(_ source: ShareSource, delivered: [(offset: Int64, deliveryCount: Int16)],
                        gaps: [(offset: Int64, deliveryCount: Int16)]) -> Set<Int64> {
        state.withLock { s in
            let fresh = delivered.filter { !s.ledger.isHeld(source, offset: $0.offset, deliveryCount: $0.deliveryCount) }
            s.ledger.acquired(source, offsets: fresh)
            let newGaps = gaps.filter { !s.ledger.isHeld(source, offset: $0.offset, deliveryCount: $0.deliveryCount) }
            s.ledger.acquired(source, offsets: newGaps)
            for gap in newGaps { _ = s.ledger.settle(source, offset: gap.offset, as: .gap) }
            return Set(fresh.map(\.offset))
        }
    }

    /// Notes that the application was given `batch`.
    func handedOut(_ batch: ShareBatch) {
        let offsets = (0..<batch.count).map { batch.records.offset(at: $0) }
        state.withLock { $0.ledger.handedOut(batch.source, offsets: offsets) }
    }

    /// Accepts every record handed out and not settled yet (implicit acknowledgement); returns
    /// how many.
    func acceptHandedOut() -> Int {
        state.withLock { $0.ledger.acceptHandedOut() }
    }

    // MARK: Rounds

    /// One ShareFetch to every leader of `assignment` (carrying what each is owed), and a
    /// ShareAcknowledge or a session close to every other broker owed settlements or holding a
    /// session. Returns the batches delivered, at most `maxRecords` records each.
    /// - Throws: the first error that is not retriable (an unsupported API, an authorization
    ///   failure); retriable ones only reset what they concern.
    func round(_ assignment: [TopicPartition: KafkaUUID]) async throws(KlifeError) -> [ShareBatch] {
        try await serializer.run { () async throws(KlifeError) -> [ShareBatch] in
            if state.withLock({ s in defer { s.metadataStale = false }; return s.metadataStale }) {
                _ = try? await client.refreshMetadata(topics: settings.topics)
            }
            let metadata = client.metadataStore.snapshot.metadata
            var wanted: [Int32: Set<SharePartitionKey>] = [:]
            var names: [SharePartitionKey: TopicPartition] = [:]
            for (tp, id) in assignment {
                let key = SharePartitionKey(topicID: id, partition: tp.partition)
                names[key] = tp
                if let node = metadata.leader(topic: tp.topic, partition: tp.partition) {
                    wanted[node, default: []].insert(key)
                } else {
                    state.withLock { $0.metadataStale = true }
                }
            }
            let others = state.withLock { s in
                Set(s.sessions.filter { $0.value.isOpen }.keys).union(s.ledger.nodesWithPending)
            }
            let nodes = Set(wanted.keys).union(others)
            let partitionNames = names
            let results = await withTaskGroup(of: Result<[ShareBatch], KlifeError>.self) { group in
                for node in nodes {
                    let want = wanted[node] ?? []
                    group.addTask { [self] in
                        if want.isEmpty { return await finish(node: node, close: true).map { [] } }
                        return await fetch(node: node, wanted: want, names: partitionNames)
                    }
                }
                var all: [Result<[ShareBatch], KlifeError>] = []
                for await result in group { all.append(result) }
                return all
            }
            var batches: [ShareBatch] = []
            var failed = false
            for result in results {
                switch result {
                case .success(let delivered): batches += delivered
                case .failure(let error) where !error.isRetriable: throw error
                case .failure: failed = true
                }
            }
            // A round that only failed (brokers down, sessions refused) waits before the next
            // one: 100 ms doubling up to 1 s, so an unreachable leader is not hammered.
            let failures = state.withLock { s -> Int in
                if failed { s.metadataStale = true }
                s.consecutiveFailures = failed && batches.isEmpty ? s.consecutiveFailures + 1 : 0
                return s.consecutiveFailures
            }
            if failures > 0 {
                try? await Task.sleep(for: min(.milliseconds(100) * (1 << min(failures - 1, 4)), .seconds(1)))
            }
            return batches
        }
    }

    /// Sends every owed settlement now (ShareAcknowledge to each broker with an open session).
    func flush() async throws(KlifeError) {
        try await serializer.run { () async throws(KlifeError) in
            let nodes = state.withLock { $0.ledger.nodesWithPending }
            for node in nodes {
                if case .failure(let error) = await finish(node: node, close: false), !error.isRetriable { throw error }
            }
        }
    }

    /// Settles what is owed and closes every share session (epoch -1: the brokers release
    /// whatever this member still holds), then closes the member's connections.
    func close() async {
        try? await serializer.run { () async throws(KlifeError) in
            let nodes = state.withLock { s in Set(s.sessions.filter { $0.value.isOpen }.keys) }
            await withTaskGroup(of: Void.self) { group in
                for node in nodes { group.addTask { [self] in _ = await finish(node: node, close: true) } }
            }
        }
        let owner = owner
        hub.reactor.submit { [hub] in hub.closeDedicatedConnections(owner: owner) }
    }

    // MARK: One broker

    /// A ShareFetch to `node` for `wanted`, with the settlements owed to it.
    private func fetch(node: Int32, wanted: Set<SharePartitionKey>,
                       names: [SharePartitionKey: TopicPartition]) async -> Result<[ShareBatch], KlifeError> {
        let request = state.withLock { s -> ShareFetchRequest in
            let session = s.sessions[node] ?? ShareSession()
            if !session.isOpen { s.counters.recordsDropped += s.ledger.forget(node: node) }
            let owed = session.isOpen ? s.ledger.takePending(for: node) : [:]
            s.counters.acknowledgementsSent += owed.values.reduce(0) { $0 + $1.count }
            return session.fetchRequest(wanted: wanted, acknowledgements: owed) { epoch, topics, forgotten in
                ShareFetchRequest(
                    groupID: settings.groupID, memberID: memberID, shareSessionEpoch: epoch,
                    maxWaitMs: Int32(clamping: settings.fetchMaxWait.nanoseconds / 1_000_000), minBytes: 1,
                    maxBytes: settings.fetchMaxBytes, maxRecords: Int32(clamping: settings.maxRecords),
                    batchSize: Int32(clamping: settings.maxRecords), topics: topics, forgottenTopics: forgotten)
            }
        }
        let response: ShareFetchResponse
        do {
            response = try await send(request, to: node, extraTimeout: settings.fetchMaxWait)
        } catch {
            lose(node: node)
            return .failure(error)
        }
        let receivedAt = ContinuousClock.now
        if let error = sessionFailure(response.errorCode, response.errorMessage, node: node, api: "ShareFetch") {
            return .failure(error)
        }
        let lockTimeout = Duration.milliseconds(Int(max(response.acquisitionLockTimeoutMs, 0)))
        state.withLock { s in
            s.sessions[node, default: ShareSession()].fetched(wanted: wanted)
            s.lockTimeout = lockTimeout
        }
        var batches: [ShareBatch] = []
        for topic in response.responses {
            for partition in topic.partitions {
                let key = SharePartitionKey(topicID: topic.topicID, partition: partition.partitionIndex)
                if partition.acknowledgeErrorCode != 0 { state.withLock { $0.counters.acknowledgementErrors += 1 } }
                if partition.errorCode != 0 {
                    state.withLock { $0.metadataStale = true }
                    continue
                }
                guard let tp = names[key], !partition.acquiredRecords.isEmpty else { continue }
                let source = ShareSource(node: node, topicID: topic.topicID, partition: partition.partitionIndex)
                do {
                    batches += try deliveries(partition, tp: tp, source: source, lockTimeout: lockTimeout,
                                              receivedAt: receivedAt, broker: "\(node)")
                } catch {
                    // Bytes that do not decode: give the acquisitions back rather than hold them.
                    release(partition.acquiredRecords, source: source)
                }
            }
        }
        state.withLock { $0.ledger.answered(node: node) }
        return .success(batches)
    }

    /// A ShareAcknowledge to `node` with what it is owed; with `close`, at epoch -1, ending the
    /// session. Nothing is sent when the node has no open session (what it was owed is dropped:
    /// the broker no longer takes it).
    private func finish(node: Int32, close: Bool) async -> Result<Void, KlifeError> {
        let request = state.withLock { s -> ShareAcknowledgeRequest? in
            guard let session = s.sessions[node], session.isOpen else {
                s.counters.recordsDropped += s.ledger.forget(node: node)
                return nil
            }
            let owed = s.ledger.takePending(for: node)
            if owed.isEmpty && !close { return nil }
            s.counters.acknowledgementsSent += owed.values.reduce(0) { $0 + $1.count }
            return ShareAcknowledgeRequest(groupID: settings.groupID, memberID: memberID,
                                           shareSessionEpoch: close ? ShareFetchRequest.closeEpoch : session.epoch,
                                           topics: ShareSession.topics(owed))
        }
        guard let request else { return .success(()) }
        let response: ShareAcknowledgeResponse
        do {
            response = try await send(request, to: node, extraTimeout: .zero)
        } catch {
            lose(node: node)
            return .failure(error)
        }
        if close { lose(node: node) }
        if let error = sessionFailure(response.errorCode, response.errorMessage, node: node, api: "ShareAcknowledge") {
            return .failure(error)
        }
        state.withLock { s in
            s.ledger.answered(node: node)
            if !close { s.sessions[node]?.acknowledged() }
            for topic in response.responses {
                for partition in topic.partitions where partition.errorCode != 0 { s.counters.acknowledgementErrors += 1 }
            }
        }
        return .success(())
    }

    /// Handles a top-level error: the session is reset (the broker dropped it, or will not
    /// take its next epoch) and the error returned as the exchange's failure (retriable ones,
    /// such as SHARE_SESSION_NOT_FOUND, are then ignored by the round). `nil` when there is none.
    private func sessionFailure(_ errorCode: Int16, _ message: String?, node: Int32, api: String) -> KlifeError? {
        guard errorCode != 0 else { return nil }
        lose(node: node)
        return .broker(KafkaErrorCode(rawValue: errorCode), "\(api) to broker \(node) for share group '\(settings.groupID)'",
                       message: message)
    }

    /// The session with `node` is gone: reset it and drop what was held through it.
    private func lose(node: Int32) {
        state.withLock { s in
            if s.sessions[node]?.isOpen == true { s.counters.sessionsReset += 1 }
            s.sessions[node]?.reset()
            s.counters.recordsDropped += s.ledger.forget(node: node)
        }
    }

    /// Settles `ranges` as released (a partition whose records could not be decoded).
    private func release(_ ranges: [ShareFetchResponse.AcquiredRecords], source: ShareSource) {
        state.withLock { s in
            for range in ranges where ShareFetcher.isSettleable(range) {
                let offsets = range.firstOffset...range.lastOffset
                s.ledger.acquired(source, offsets: offsets.map { ($0, range.deliveryCount) })
                for offset in offsets { _ = s.ledger.settle(source, offset: offset, as: .release) }
            }
        }
    }

    private func send<R: KafkaRequest>(_ request: R, to node: Int32,
                                       extraTimeout: Duration) async throws(KlifeError) -> R.Response {
        let owner = owner
        return try await client.roundTrip(request, via: hub, extraTimeout: extraTimeout) { hub in
            hub.dedicatedConnection(forNode: node, purpose: .fetch, owner: owner)
        }
    }
}

// MARK: - Answers to batches

extension ShareFetcher {
    /// The longest acquired range whose offsets are settled one by one (gaps, undecodable
    /// data); a longer one, which no broker sends for real data, is left to its lock timeout.
    static let largestRangeSettled: Int64 = 100_000

    /// Whether `range` is ordered and short enough to settle offset by offset (a hostile one,
    /// reversed or spanning most of the offset space, is not; and never overflows).
    static func isSettleable(_ range: ShareFetchResponse.AcquiredRecords) -> Bool {
        let (span, overflow) = range.lastOffset.subtractingReportingOverflow(range.firstOffset)
        return !overflow && span >= 0 && span < largestRangeSettled
    }

    /// The records of one partition's answer that this member acquired, cut into batches of at
    /// most `maxRecords`, each record with its delivery count. Records of the answer outside
    /// the acquired ranges (held by other members, or settled) and control records are left
    /// out, and so are records this member holds already at the same delivery count (librdkafka's
    /// mock reports every record a member holds in each answer); acquired offsets with no
    /// record (compacted away, transaction markers) are settled as gaps at once.
    func deliveries(_ partition: ShareFetchResponse.Partition, tp: TopicPartition, source: ShareSource,
                    lockTimeout: Duration, receivedAt: ContinuousClock.Instant,
                    broker: String) throws(KlifeError) -> [ShareBatch] {
        let index = try FetchDecoding.index(partition.recordBlock, broker: broker,
                                            maxUncompressedBytes: settings.maxUncompressedBytes)
        let ranges = partition.acquiredRecords.filter { $0.lastOffset >= $0.firstOffset }
            .sorted { $0.firstOffset < $1.firstOffset }
        var slots: [RecordSlot] = []
        var counts: [Int16] = []
        var seen = Set<Int64>()
        for batch in index.batches where !batch.header.isControl {
            for slot in index.slots[batch.records] {
                guard let count = Self.deliveryCount(of: slot.offset, in: ranges), seen.insert(slot.offset).inserted
                else { continue }
                slots.append(slot)
                counts.append(count)
            }
        }
        var gaps: [(offset: Int64, deliveryCount: Int16)] = []
        for range in ranges where Self.isSettleable(range) {
            for offset in range.firstOffset...range.lastOffset where !seen.contains(offset) {
                gaps.append((offset, range.deliveryCount))
            }
        }
        let fresh = recordAcquired(source, delivered: zip(slots.map(\.offset), counts).map { ($0, $1) }, gaps: gaps)
        if fresh.count < slots.count {
            let keep = zip(slots, counts).filter { fresh.contains($0.0.offset) }
            slots = keep.map(\.0)
            counts = keep.map(\.1)
        }
        let records = ConsumerRecords(topic: tp.topic, partition: tp.partition, fetched: index.fetched,
                                      inflated: index.inflated, slots: slots[...])
        var batches: [ShareBatch] = []
        var start = 0
        while start < slots.count {
            let end = min(start + settings.maxRecords, slots.count)
            batches.append(ShareBatch(records: records.records(start..<end), deliveryCounts: Array(counts[start..<end]),
                                      source: source, acquisitionLockTimeout: lockTimeout, receivedAt: receivedAt))
            start = end
        }
        return batches
    }

    /// The delivery count of the range holding `offset`, `nil` when none does (`ranges` sorted).
    static func deliveryCount(of offset: Int64, in ranges: [ShareFetchResponse.AcquiredRecords]) -> Int16? {
        var low = 0, high = ranges.count
        while low < high {
            let mid = (low + high) / 2
            if ranges[mid].lastOffset < offset { low = mid + 1 } else { high = mid }
        }
        guard low < ranges.count, ranges[low].firstOffset <= offset else { return nil }
        return ranges[low].deliveryCount
    }
}
