import KlifeIO
import KlifeProtocol
import Synchronization

/// The fetch engine of one reactor: for every consumer registered with it, one Fetch request
/// per broker this reactor owns, carrying every assigned partition that broker leads and that
/// may be fetched now (see ``ConsumerState/claimFetchable(now:leader:owns:)``), on the
/// broker's fetch connection. Answers are decoded here (CRC, decompression, read_committed
/// filtering) and handed to the consumer's state; errors back the partition off, refresh
/// metadata when leadership moved, or ask the consumer to reset the position.
///
/// Each (consumer, broker) pair keeps a ``FetchSession`` (KIP-227): after a first full fetch,
/// requests carry only the partitions whose offset or limit changed and forget those not
/// claimed now. A session's requests must arrive in epoch order, so a broker with a fetch of a
/// consumer in flight gets no other fetch of that consumer until it answers (its partitions
/// are not claimed meanwhile; a broker answers one connection's requests in order anyway).
///
/// Runs only on its hub's reactor thread, except ``wake()``.
final class FetchService: ReactorService, @unchecked Sendable {
    /// What the engine asks of the consumer outside the reactor (position lookups).
    struct Consumer {
        let state: ConsumerState
        /// The position of `tp` is out of range: look it up by the reset policy (`epoch`: the
        /// partition's epoch after the loss, for ``ConsumerState/setPosition(_:_:ifEpoch:)``).
        let onPositionLost: @Sendable (TopicPartition, UInt64) -> Void
        /// read_committed answered nothing below the last stable offset: decide from the log.
        let onUndecided: @Sendable (ConsumerState.Claim) -> Void
    }

    /// A registered consumer and its fetch sessions, one per broker (reactor thread only).
    final class Registered {
        let consumer: Consumer
        var sessions: [Int32: FetchSession] = [:]

        init(_ consumer: Consumer) { self.consumer = consumer }
    }

    unowned let hub: ReactorHub
    private var consumers: [ObjectIdentifier: Registered] = [:]
    /// Set from any thread when fetching may resume; the next iteration looks.
    private let wanted = Atomic<Bool>(false)
    private var timer: TimerHandle?
    private var timerDeadline: UInt64 = .max
    private var refreshRequestedAt: UInt64 = 0

    init(hub: ReactorHub) {
        self.hub = hub
    }

    /// Asks for a look at every consumer on the next iteration (any thread).
    func wake() {
        wanted.store(true, ordering: .releasing)
        hub.reactor.wakeup()
    }

    /// Starts fetching for `consumer` (on the reactor thread).
    func add(_ consumer: Consumer) {
        consumers[ObjectIdentifier(consumer.state)] = Registered(consumer)
        wanted.store(true, ordering: .releasing)
    }

    /// Stops fetching for `state` (answers still on their way are dropped) and closes its fetch
    /// sessions on brokers whose connection is ready (one small Fetch with epoch -1 each; a
    /// broker it cannot reach now times the session out by itself).
    func remove(_ state: ConsumerState) {
        guard let registered = consumers.removeValue(forKey: ObjectIdentifier(state)) else { return }
        for (node, var session) in registered.sessions {
            if let id = session.close() { closeSession(id, node: node, state: state) }
        }
        registered.sessions.removeAll()
    }

    /// Sends the Fetch that ends session `id` on `node` (epoch -1) if the connection is ready;
    /// its answer is not awaited.
    private func closeSession(_ id: Int32, node: Int32, state: ConsumerState) {
        guard let connection = hub.connection(forNode: node, purpose: .fetch), connection.isReady else { return }
        let request = FetchRequest(maxWaitMs: 0, minBytes: 1, maxBytes: 1, isolationLevel: state.configuration.isolation.rawValue,
                                   sessionID: id, sessionEpoch: -1, topics: [])
        connection.send(request) { _ in }
    }

    /// The fetch session of `state` with `node`, for tests (reactor thread).
    func session(of state: ConsumerState, node: Int32) -> FetchSession? {
        consumers[ObjectIdentifier(state)]?.sessions[node]
    }

    // MARK: ReactorService

    func iterate() {
        guard !consumers.isEmpty, wanted.exchange(false, ordering: .acquiringAndReleasing) else { return }
        let now = Reactor.monotonicNanoseconds()
        let snapshot = hub.snapshot
        let reactorCount = hub.configuration.reactorCount
        let index = hub.index
        var nextDue = UInt64.max
        var leaderless = false
        for registered in consumers.values {
            // A broker with this consumer's fetch in flight waits for its answer (session epochs
            // go in order): its partitions stay unclaimed, the answer wakes the engine.
            let claimed = registered.consumer.state.claimFetchable(
                now: now,
                leader: { snapshot.metadata.leader(topic: $0.topic, partition: $0.partition) },
                owns: { ReactorHub.index(forNode: $0, reactorCount: reactorCount) == index && registered.sessions[$0]?.inFlight != true })
            nextDue = min(nextDue, claimed.nextDue)
            leaderless = leaderless || claimed.leaderless
            for (node, claims) in claimed.byLeader {
                send(claims, to: node, budget: claimed.budget, for: registered, snapshot: snapshot)
            }
        }
        if leaderless {
            // Partitions without a known leader: ask for metadata (at most every backoff) and look again.
            let backoff = consumers.values.first?.consumer.state.configuration.retryBackoff.nanoseconds ?? 100_000_000
            if now &- refreshRequestedAt >= backoff {
                refreshRequestedAt = now
                hub.requestMetadataRefresh(topic: nil)
            }
            nextDue = min(nextDue, now &+ backoff)
        }
        if nextDue != .max { armTimer(at: nextDue) }
    }

    func metadataChanged(from previousVersion: UInt64, unknownTopics: [String]) {
        wanted.store(true, ordering: .releasing)
    }

    func topicsUnknown(_ topics: [String]) {}

    func failAll(_ error: KlifeError) {
        for registered in consumers.values { registered.consumer.state.fail(error) }
        consumers.removeAll()
        if let timer { hub.reactor.cancelTimer(timer) }
        timer = nil
    }

    // MARK: Requests

    /// Sends one Fetch for `claims` to `node`, its answer limited to `budget` bytes (the room
    /// reserved under the prefetch bound, given back when it is handled). Inside the consumer's
    /// session with `node` the request carries only what the session needs (see ``FetchSession``);
    /// it is built once the connection is ready, when the negotiated version is known.
    private func send(_ claims: [ConsumerState.Claim], to node: Int32, budget: Int, for registered: Registered,
                      snapshot: MetadataSnapshot) {
        let state = registered.consumer.state
        guard let connection = hub.connection(forNode: node, purpose: .fetch) else {
            state.unreserve(budget)
            for c in claims { state.fetchFailed(c.tp, epoch: c.epoch, now: Reactor.monotonicNanoseconds()) }
            hub.requestMetadataRefresh(topic: nil)
            wakeLater()
            state.wakeFetchers()
            return
        }
        let settings = state.configuration
        let partitionMaxBytes = min(settings.partitionMaxBytes, Int32(clamping: budget))
        var wanted: [TopicPartition: FetchSession.Partition] = [:]
        for c in claims {
            wanted[c.tp] = .init(topicID: snapshot.metadata.topics[c.tp.topic]?.topicID ?? .zero, fetchOffset: c.position,
                                 maxBytes: partitionMaxBytes)
        }
        let topicNames = Dictionary(wanted.map { ($0.value.topicID, $0.key.topic) }, uniquingKeysWith: { first, _ in first })
        registered.sessions[node, default: FetchSession()].inFlight = true
        let broker = connection.address.description
        connection.whenReady { [weak self] ready in
            guard let self else { return }
            switch ready {
            case .failure:
                registered.sessions[node]?.inFlight = false
                registered.sessions[node]?.failed(nil)
                state.unreserve(budget)
                let now = Reactor.monotonicNanoseconds()
                for c in claims { state.fetchFailed(c.tp, epoch: c.epoch, now: now) }
                hub.requestMetadataRefresh(topic: nil)
                wakeLater()
                state.wakeFetchers()
            case .success(let ready):
                // The consumer was removed (closed) while the connection got ready: its sessions
                // were closed then, and this request would open one that nobody closes.
                guard consumers[ObjectIdentifier(state)] === registered else {
                    state.unreserve(budget)
                    return
                }
                let version = (try? ready.negotiatedVersion(FetchRequest.self)) ?? FetchRequest.supportedVersions.lowerBound
                let plan = registered.sessions[node, default: FetchSession()].request(for: wanted, sessions: version >= 7)
                let request = FetchRequest(
                    maxWaitMs: settings.fetchMaxWait.int32Milliseconds, minBytes: settings.fetchMinBytes,
                    maxBytes: Int32(clamping: budget), isolationLevel: settings.isolation.rawValue,
                    sessionID: plan.sessionID, sessionEpoch: plan.epoch,
                    topics: Self.topics(plan.fetch), forgottenTopics: Self.forgotten(plan.forget))
                ready.send(request) { [weak self] result in
                    state.unreserve(budget)
                    self?.handle(result, plan: plan, claims: claims, topicNames: topicNames, node: node,
                                 registered: registered, broker: broker)
                }
            }
        }
    }

    /// The request's topics, sorted by name, partitions by number (a stable request for a stable claim).
    private static func topics(_ fetch: [TopicPartition: FetchSession.Partition]) -> [FetchRequest.Topic] {
        var byTopic: [String: [FetchRequest.Partition]] = [:]
        var ids: [String: KafkaUUID] = [:]
        for (tp, p) in fetch {
            byTopic[tp.topic, default: []].append(.init(partition: tp.partition, fetchOffset: p.fetchOffset,
                                                        partitionMaxBytes: p.maxBytes))
            ids[tp.topic] = p.topicID
        }
        return byTopic.sorted { $0.key < $1.key }.map { name, partitions in
            .init(name: name, topicID: ids[name] ?? .zero, partitions: partitions.sorted { $0.partition < $1.partition })
        }
    }

    /// The request's forgotten topics (v13+ names them by id, older versions by name).
    private static func forgotten(_ forget: [TopicPartition: KafkaUUID]) -> [FetchRequest.ForgottenTopic] {
        var byTopic: [String: (id: KafkaUUID, partitions: [Int32])] = [:]
        for (tp, id) in forget {
            byTopic[tp.topic, default: (id, [])].partitions.append(tp.partition)
        }
        return byTopic.sorted { $0.key < $1.key }.map { .init(name: $0.key, topicID: $0.value.id, partitions: $0.value.partitions.sorted()) }
    }

    /// - Parameter topicNames: the names of the claimed topics by the ids the request used (a
    ///   v13+ answer names topics by id only).
    private func handle(_ result: Result<FetchResponse, KlifeError>, plan: FetchSession.Request, claims: [ConsumerState.Claim],
                        topicNames: [KafkaUUID: String], node: Int32, registered: Registered, broker: String) {
        let consumer = registered.consumer
        let state = consumer.state
        let now = Reactor.monotonicNanoseconds()
        registered.sessions[node]?.inFlight = false
        // Every engine looks again, not only this one: a leader that moved to another reactor's
        // broker while this fetch was in flight makes that reactor the partition's fetcher, and
        // it skipped the partition (in flight) when it learned the move.
        defer { state.wakeFetchers() }
        let response: FetchResponse
        switch result {
        case .failure(let error):
            // No answer: the broker may or may not have moved the session on. Start it again.
            registered.sessions[node]?.failed(nil)
            for c in claims { state.fetchFailed(c.tp, epoch: c.epoch, now: now) }
            hub.log(.warning, "fetch from \(broker) failed: \(error)", broker: broker)
            return
        case .success(let answer):
            response = answer
        }
        if consumers[ObjectIdentifier(state)] !== registered && plan.epoch == 0 && response.errorCode == 0
            && response.sessionID != 0 && response.sessionID != plan.sessionID {
            // A full fetch in flight when the consumer closed opened a session then unknown:
            // closed now.
            closeSession(response.sessionID, node: node, state: state)
        }
        if response.errorCode != 0 {
            let code = KafkaErrorCode(rawValue: response.errorCode)
            registered.sessions[node]?.failed(code)
            if FetchSession.isSessionError(code) && !plan.isFull {
                // The broker lost or doubts the session: a full fetch follows at once, from the
                // positions claimed (nothing was delivered, nothing moved).
                for c in claims { state.release(c.tp, epoch: c.epoch) }
                // A topic id the session holds no longer matches the broker's: learn the new one.
                if code == .fetchSessionTopicIDError { hub.requestMetadataRefresh(topic: nil) }
                hub.log(.info, "fetch session \(plan.sessionID) at \(broker): \(code); fetching in full", broker: broker)
            } else {
                for c in claims { state.fetchFailed(c.tp, epoch: c.epoch, now: now) }
                hub.log(.warning, "fetch from \(broker): \(code)", broker: broker)
            }
            return
        }
        var answers: [TopicPartition: FetchResponse.Partition] = [:]
        for topic in response.responses {
            let name = topic.name.isEmpty ? (topicNames[topic.topicID] ?? "") : topic.name
            for p in topic.partitions { answers[TopicPartition(topic: name, partition: p.partitionIndex)] = p }
        }
        if registered.sessions[node]?.answered(plan, sessionID: response.sessionID, named: answers.keys) == false {
            // Records for a partition not asked for: the broker's session is not ours, and the
            // offsets it read from may not be the claimed positions. Nothing is used; a full
            // fetch follows (at once after an incremental one, after a backoff after a full one).
            for c in claims {
                if plan.isFull { state.fetchFailed(c.tp, epoch: c.epoch, now: now) } else { state.release(c.tp, epoch: c.epoch) }
            }
            hub.log(.warning, "fetch from \(broker): the answer names partitions not asked for; fetching in full", broker: broker)
            return
        }
        for claim in claims {
            guard let answer = answers[claim.tp] else {
                // Left out of the answer (nothing to return; an incremental answer leaves out
                // every partition without news): fetch it again.
                state.release(claim.tp, epoch: claim.epoch)
                continue
            }
            handlePartition(answer, claim: claim, consumer: consumer, broker: broker, now: now)
        }
    }

    private func handlePartition(_ p: FetchResponse.Partition, claim: ConsumerState.Claim, consumer: Consumer,
                                 broker: String, now: UInt64) {
        let state = consumer.state
        let code = KafkaErrorCode(rawValue: p.errorCode)
        // A position past the high watermark or before the log start is out of range even when
        // the broker (Tansu) answers it with no error and no records.
        let outOfRange = code == .none && claim.position >= 0
            && (p.highWatermark >= 0 && claim.position > p.highWatermark || p.logStartOffset > claim.position)
        switch outOfRange ? .offsetOutOfRange : code {
        case .none:
            break
        case .offsetOutOfRange:
            if let epoch = state.positionLost(claim.tp, epoch: claim.epoch) { consumer.onPositionLost(claim.tp, epoch) }
            return
        case .notLeaderOrFollower, .fencedLeaderEpoch, .unknownLeaderEpoch, .leaderNotAvailable, .unknownTopicOrPartition,
             .replicaNotAvailable, .kafkaStorageError, .offsetNotAvailable:
            hub.requestMetadataRefresh(topic: claim.tp.topic)
            state.fetchFailed(claim.tp, epoch: claim.epoch, now: now)
            return
        default:
            if code.isRetriable {
                state.fetchFailed(claim.tp, epoch: claim.epoch, now: now)
            } else {
                state.fail(.broker(code, "fetch \(claim.tp) at offset \(claim.position)"))
            }
            return
        }
        let settings = state.configuration
        let decoded: RecordIndex
        do {
            decoded = try FetchDecoding.index(p.recordBlock, broker: broker,
                                                      maxUncompressedBytes: hub.configuration.maxResponseBytes)
        } catch {
            // Bytes that fail their CRC or do not decode: the connection's data is suspect, the
            // position stays, the partition is fetched again after a backoff.
            hub.log(.warning, "fetch \(claim.tp) at \(claim.position): \(error)", broker: broker)
            state.fetchFailed(claim.tp, epoch: claim.epoch, now: now)
            return
        }
        let filter = TransactionFilter(isolation: settings.isolation, lastStableOffset: p.lastStableOffset,
                                       abortedTransactions: p.abortedTransactions ?? [])
        let output = filter.apply(decoded, from: claim.position)
        if settings.isolation == .readCommitted && output.nextOffset == claim.position && claim.position < p.lastStableOffset
            && (output.undecidedAt != nil || decoded.batches.isEmpty && !decoded.truncatedTail) {
            // Below the last stable offset everything is decided, yet nothing moved (no marker
            // in the answer and no aborted-transaction list): decided from the log instead.
            consumer.onUndecided(claim)
            return
        }
        if decoded.batches.isEmpty && decoded.truncatedTail {
            // Only a batch larger than the per-partition limit was there: the broker should have
            // sent it whole (KIP-74); fetch again after a backoff rather than spin.
            state.fetchFailed(claim.tp, epoch: claim.epoch, now: now)
            return
        }
        let records = FetchDecoding.visibleRecords(decoded, output, topic: claim.tp.topic, partition: claim.tp.partition)
        state.deliver(records, tp: claim.tp, epoch: claim.epoch, nextOffset: output.nextOffset, highWatermark: p.highWatermark,
                      lastStableOffset: p.lastStableOffset)
    }

    // MARK: Timers

    /// Looks again after the shortest backoff (a request could not be sent).
    private func wakeLater() {
        armTimer(at: Reactor.monotonicNanoseconds() &+ 100_000_000)
    }

    private func armTimer(at deadline: UInt64) {
        if timer != nil && timerDeadline <= deadline { return }
        if let timer { hub.reactor.cancelTimer(timer) }
        let now = Reactor.monotonicNanoseconds()
        timerDeadline = deadline
        timer = hub.reactor.scheduleTimer(afterNanoseconds: deadline > now ? deadline - now : 0) { [unowned self] in
            timer = nil
            timerDeadline = .max
            wanted.store(true, ordering: .releasing)
        }
    }
}
