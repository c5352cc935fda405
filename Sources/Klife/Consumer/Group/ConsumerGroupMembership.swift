import KlifeIO
import KlifeProtocol

/// A member of a consumer group that speaks the consumer group protocol (KIP-848): a single
/// call, ConsumerGroupHeartbeat, by which the member joins, stays, learns its assignment
/// (computed by the coordinator) and leaves.
///
/// Two halves, as in ``ClassicMembership``:
/// - heartbeats are timers on the member's reactor, at the interval the coordinator asks for,
///   sent on the member's own connection, one at a time. The first (member epoch 0) carries
///   the member id generated here, the subscription, the server assignor, the rebalance
///   timeout and the instance id; later ones carry only what changed, and the owned
///   partitions whenever their report changed (``ConsumerGroupReconciler/reported(lookup:)``:
///   held plus assigned, from the moment an assignment arrives; a finished revocation
///   shrinks it, which acknowledges the revocation). An answer updates the member epoch and
///   stores a new assignment at once: heartbeats never wait for a reconciliation;
/// - a driver task reconciles one change at a time (revoke, then assign, through the
///   ``AssignmentListener``, see ``ConsumerGroupReconciler``), and heartbeats at once when a
///   revocation finished. It also
///   handles what heartbeat answers ask for: partitions lost and a rejoin (FENCED_MEMBER_EPOCH,
///   UNKNOWN_MEMBER_ID), the coordinator found again (NOT_COORDINATOR, a failed connection),
///   a failure for good. Those arrive as events tagged with the membership session, which
///   every rejoin bumps, so an answer about an earlier session is ignored.
final class ConsumerGroupMembership: GroupMembership {
    private enum Event: Sendable {
        /// A new assignment arrived (or metadata may now name its topics).
        case reconcile(session: UInt64)
        /// The coordinator removed the member: its partitions are lost, it joins again.
        case fenced(session: UInt64, KafkaErrorCode)
        /// The coordinator moved or its connection failed: find it, keep the membership.
        case coordinatorLost(session: UInt64)
        /// The membership cannot go on.
        case failed(session: UInt64, KlifeError)
        case stop
    }

    private struct State {
        /// Generated here (KIP-1082), kept until the coordinator no longer knows it.
        var memberID: String
        /// 0 while joining, then the epoch of the coordinator's last answer; -1 once the
        /// member is out of the group (fenced, failed, left).
        var epoch: Int32 = 0
        /// Bumped by every rejoin: events and answers of an earlier session are dropped.
        var session: UInt64 = 0
        var reconciler = ConsumerGroupReconciler()
        var heartbeatIntervalNanos: UInt64
        /// Heartbeats run; a timer or an answer whose token is not the current one ends.
        var beating = false
        var token: UInt64 = 0
        var inFlight = false
        /// A heartbeat is wanted as soon as the one in flight is answered.
        var sendSoon = false
        var joinSent = false
        var stopping = false
        var left = false
        /// When the assignment being reconciled arrived (for the statistics).
        var targetReceivedAt: UInt64?
        var refreshingMetadata = false
        /// Rejoins and coordinator searches since the last answer without error: from the
        /// second on, each waits a backoff so a coordinator that keeps refusing is not flooded.
        var recoveries = 0
        var metadataAttempts = 0
        var statistics = GroupStatistics()
        /// Commits waiting for the next heartbeat answer (see ``identityAfterStaleEpoch(_:)``), by id.
        var answerWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// The id of the last waiter.
        var nextWaiterID: UInt64 = 0
    }

    private let channel: GroupChannel
    private let settings: ConsumerConfiguration
    private let groupID: String
    private let listener: any AssignmentListener
    private let state: Locked<State>
    private let events: AsyncStream<Event>
    private let mailbox: AsyncStream<Event>.Continuation
    private let driver = Locked<Task<Void, Never>?>(nil)

    init(client: KlifeClient, settings: ConsumerConfiguration, listener: any AssignmentListener) {
        self.settings = settings
        self.groupID = settings.groupID ?? ""
        self.channel = GroupChannel(client: client, groupID: groupID)
        self.listener = listener
        self.state = Locked(State(memberID: Self.newMemberID(), heartbeatIntervalNanos: settings.heartbeatInterval.nanoseconds))
        (events, mailbox) = AsyncStream.makeStream(of: Event.self)
    }

    /// A random (version 4) UUID in its usual text form: the member id a member generates for
    /// itself from ConsumerGroupHeartbeat v1.
    static func newMemberID() -> String {
        var random = SystemRandomNumberGenerator()
        let high = (random.next() as UInt64) & ~0xF000 | 0x4000
        let low = (random.next() as UInt64) & ~(0xC000 << 48) | (0x8000 << 48)
        let hex = KafkaUUID(high: high, low: low).description
        let cuts = [8, 12, 16, 20]
        var text = ""
        for (i, c) in hex.enumerated() {
            if cuts.contains(i) { text.append("-") }
            text.append(c)
        }
        return text
    }

    func start() {
        let task = Task { [self] in await run() }
        driver.withLock { $0 = task }
    }

    var commitIdentity: GroupCommitIdentity? {
        state.withLock { identityLocked($0) }
    }

    var owned: Set<TopicPartition> { state.withLock { $0.reconciler.owned } }

    /// A member epoch may move ahead in a heartbeat answer while a transaction is under way,
    /// so a refusal alone does not prove the member is out: it heartbeats at once, and the
    /// answer (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID) says whether its partitions are lost.
    func transactionalOffsetsRefused(as identity: GroupCommitIdentity, code: KafkaErrorCode) {
        heartbeatNow()
    }

    var statistics: GroupStatistics {
        state.withLock { s in
            var stats = s.statistics
            stats.generation = s.epoch
            stats.memberID = s.memberID
            return stats
        }
    }

    /// The coordinator refused a commit sent at epoch `stale.generationOrEpoch` with
    /// STALE_MEMBER_EPOCH: it moved the member's epoch in a heartbeat whose answer has arrived
    /// (the current epoch is the new one) or is on its way. In the second case this waits for
    /// the next heartbeat answer (asking for a heartbeat now when none is in flight), at most
    /// the request timeout. Returns the identity then, `nil` out of the group.
    func identityAfterStaleEpoch(_ stale: GroupCommitIdentity) async -> GroupCommitIdentity? {
        if let now = commitIdentity, now.generationOrEpoch != stale.generationOrEpoch { return now }
        let timeout = channel.client.configuration.requestTimeout
        let id = state.withLock { s -> UInt64 in
            s.nextWaiterID &+= 1
            return s.nextWaiterID
        }
        let timer = Task { [weak self] in
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            self?.resumeAnswerWaiter(id)
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            // nil: no heartbeat to wait for; true: none in flight, one is sent now.
            let waiting = state.withLock { s -> Bool? in
                guard s.beating, !s.left else { return nil }
                s.answerWaiters[id] = continuation
                return !s.inFlight
            }
            switch waiting {
            case nil: continuation.resume()
            case true?: heartbeatNow()
            case false?: break
            }
        }
        timer.cancel()
        return commitIdentity
    }

    private func resumeAnswerWaiter(_ id: UInt64) {
        state.withLock { $0.answerWaiters.removeValue(forKey: id) }?.resume()
    }

    /// Lets every commit waiting for a heartbeat answer go on.
    private func resumeAnswerWaiters() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            defer { s.answerWaiters = [:] }
            return Array(s.answerWaiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    func stop() async {
        state.withLock { $0.stopping = true }
        mailbox.yield(.stop)
        await driver.withLock { $0 }?.value
        mailbox.finish()
    }

    func leave() async {
        let request = state.withLock { s -> ConsumerGroupHeartbeatRequest? in
            defer {
                s.stopping = true
                s.left = true
                s.beating = false
                s.token &+= 1
                s.epoch = -1
            }
            guard s.joinSent, s.epoch >= 0 else { return nil }
            // A static member leaves "for now": its partitions wait for it until its session ends.
            let epoch = settings.groupInstanceID == nil ? ConsumerGroupHeartbeatRequest.leaveEpoch
                                                        : ConsumerGroupHeartbeatRequest.staticLeaveEpoch
            return ConsumerGroupHeartbeatRequest(groupID: groupID, memberID: s.memberID, memberEpoch: epoch,
                                                 instanceID: settings.groupInstanceID)
        }
        resumeAnswerWaiters()
        if let request {
            do {
                let response = try await channel.call(request)
                let code = KafkaErrorCode(rawValue: response.errorCode)
                if code != .none { channel.hub.log(.info, "group '\(groupID)': leaving answered \(code)") }
            } catch {
                channel.hub.log(.info, "group '\(groupID)': leaving failed: \(error)")
            }
        }
        channel.closeConnections()
    }

    func clientClosed() {
        state.withLock { s in
            s.stopping = true
            s.beating = false
            s.token &+= 1
        }
        // The driver may wait for an event: there will be none (the reactors are stopping).
        mailbox.yield(.stop)
        mailbox.finish()
        // Nor a heartbeat answer for a commit waiting for one.
        resumeAnswerWaiters()
    }

    private func identityLocked(_ s: State) -> GroupCommitIdentity? {
        s.epoch > 0 ? GroupCommitIdentity(generationOrEpoch: s.epoch, memberID: s.memberID,
                                          instanceID: settings.groupInstanceID) : nil
    }

    // MARK: Driver

    /// Stopping, or the client closed under the member (it can never send again).
    private var isStopping: Bool { state.withLock { $0.stopping } || channel.client.isClosed }

    private func run() async {
        guard await channel.waitForTopics(settings, listener: listener, isStopping: { isStopping }) else { return }
        guard await findCoordinator() else { return }
        startHeartbeats()
        for await event in events {
            let session = state.withLock { $0.session }
            switch event {
            case .stop:
                return
            case .reconcile(let s) where s == session:
                await reconcile(session)
            case .fenced(let s, let code) where s == session:
                await rejoin(after: code)
            case .coordinatorLost(let s) where s == session:
                channel.forgetCoordinator()
                await backoffAfterRepeatedRecovery()
                guard await findCoordinator() else { return }
                startHeartbeats()
            case .failed(let s, let error) where s == session:
                channel.hub.log(.error, "group '\(groupID)': \(error)")
                state.withLock { $0.stopping = true }
                listener.failed(error)
                return
            default:
                continue // about an earlier session
            }
            if isStopping { return }
        }
    }

    /// Finds the coordinator, retrying with backoff; `false` when stopping first.
    private func findCoordinator() async -> Bool {
        var attempt = 0
        while !isStopping {
            do {
                _ = try await channel.coordinatorNode()
                return true
            } catch {
                attempt += 1
                channel.hub.log(.info, "group '\(groupID)': finding the coordinator failed (attempt \(attempt)): \(error)")
                await settings.groupBackoff(attempt)
            }
        }
        return false
    }

    /// Applies the latest assignment, one change at a time, until owned partitions match it
    /// (topics metadata does not name yet stay pending; metadata is refreshed for them).
    private func reconcile(_ session: UInt64) async {
        while !isStopping {
            let names = topicNamesByID()
            let planned = state.withLock { s -> (ConsumerGroupReconciler.Change, Bool, GroupCommitIdentity?, UInt64?, [KafkaUUID: Set<Int32>]?)? in
                guard s.session == session, s.epoch >= 0 else { return nil }
                let change = s.reconciler.nextChange(names: names)
                let pending = !s.reconciler.unresolved(names: names).isEmpty
                if !pending { s.metadataAttempts = 0 }
                return (change, pending, identityLocked(s), s.targetReceivedAt, s.reconciler.target)
            }
            guard let (change, pending, identity, receivedAt, target) = planned else { return }
            if pending { refreshMetadataForPendingTopics(session) }
            if change.isEmpty { return }
            channel.hub.log(.debug, "group '\(groupID)': reconciling: revoke \(change.revoked.count), assign \(change.added.count) partitions")
            if !change.revoked.isEmpty {
                await listener.revoked(change.revoked, identity: identity)
                state.withLock { $0.reconciler.didRevoke(change.revoked) }
                // The smaller report acknowledges the revocation: the coordinator can hand the
                // partitions to their next owner now rather than at the next interval.
                heartbeatNow()
            }
            // Removed from the group meanwhile: the partitions would be lost at once. A target
            // that changed while revoking is planned again: what it dropped goes to others.
            let assigning = state.withLock { s -> Bool in
                guard s.session == session, s.epoch >= 0, s.reconciler.target == target,
                      !change.added.isEmpty, !s.stopping, !channel.client.isClosed else { return false }
                s.reconciler.willAssign(change.added)
                return true
            }
            if assigning { await listener.assigned(change.added) }
            state.withLock { s in
                let took = receivedAt.map { Reactor.monotonicNanoseconds() &- $0 } ?? 0
                s.statistics.noteRebalance(nanoseconds: took)
            }
        }
    }

    /// Topic names by id, from the client's metadata.
    private func topicNamesByID() -> [KafkaUUID: String] {
        var names: [KafkaUUID: String] = [:]
        for (name, topic) in channel.client.metadataStore.snapshot.metadata.topics where topic.topicID != .zero {
            names[topic.topicID] = name
        }
        return names
    }

    /// Refreshes metadata for every topic (an assignment names topics by id only), then
    /// reconciles again; later attempts wait a backoff first.
    private func refreshMetadataForPendingTopics(_ session: UInt64) {
        let attempt = state.withLock { s -> Int? in
            guard !s.refreshingMetadata else { return nil }
            s.refreshingMetadata = true
            s.metadataAttempts += 1
            return s.metadataAttempts
        }
        guard let attempt else { return }
        Task { [weak self] in
            guard let self else { return }
            if attempt > 1 { await settings.groupBackoff(attempt - 1) }
            do {
                try await channel.client.refreshMetadata(topics: nil)
            } catch {
                channel.hub.log(.info, "group '\(groupID)': metadata for assigned topic ids failed: \(error)")
            }
            state.withLock { $0.refreshingMetadata = false }
            mailbox.yield(.reconcile(session: session))
        }
    }

    /// The coordinator removed the member: its partitions are lost (no commit, others may
    /// read them already), then it joins again at epoch 0, with a new member id when the
    /// coordinator no longer knows the old one.
    private func rejoin(after code: KafkaErrorCode) async {
        let lost = state.withLock { s -> Set<TopicPartition> in
            let lost = s.reconciler.loseAll()
            if !lost.isEmpty { s.statistics.partitionsLostEvents += 1 }
            return lost
        }
        if !lost.isEmpty {
            channel.hub.log(.warning, "group '\(groupID)': \(lost.count) partitions lost (\(code))")
            await listener.lost(lost)
        }
        await backoffAfterRepeatedRecovery()
        if isStopping { return }
        state.withLock { s in
            if code == .unknownMemberID { s.memberID = Self.newMemberID() }
            s.epoch = ConsumerGroupHeartbeatRequest.joinEpoch
            s.session &+= 1
            s.targetReceivedAt = nil
        }
        startHeartbeats()
    }

    /// Counts a rejoin or coordinator search; from the second in a row without an answer in
    /// between, waits the retry backoff first.
    private func backoffAfterRepeatedRecovery() async {
        let attempt = state.withLock { s -> Int in
            s.recoveries += 1
            return s.recoveries
        }
        if attempt > 1 { await settings.groupBackoff(attempt - 1) }
    }

    // MARK: Heartbeats (reactor thread)

    /// Starts heartbeating with one heartbeat at once (or as soon as the one in flight is answered).
    private func startHeartbeats() {
        let token = state.withLock { s -> UInt64? in
            s.beating = true
            s.token &+= 1
            if s.inFlight {
                s.sendSoon = true
                return nil
            }
            return s.token
        }
        if let token { channel.hub.reactor.submit { [weak self] in self?.beat(token) } }
    }

    /// A heartbeat now instead of at the next interval (or right after the one in flight).
    private func heartbeatNow() {
        let token = state.withLock { s -> UInt64? in
            guard s.beating else { return nil }
            if s.inFlight {
                s.sendSoon = true
                return nil
            }
            s.token &+= 1
            return s.token
        }
        if let token { channel.hub.reactor.submit { [weak self] in self?.beat(token) } }
    }

    private func beat(_ token: UInt64) {
        let snapshot = channel.hub.snapshot.metadata
        let due = state.withLock { s -> (ConsumerGroupHeartbeatRequest, UInt64, UInt64?)? in
            guard s.beating, s.token == token, !s.inFlight else { return nil }
            s.inFlight = true
            let (request, ownedVersion) = nextRequest(&s, snapshot: snapshot)
            return (request, s.session, ownedVersion)
        }
        guard let (request, session, ownedVersion) = due else { return }
        channel.send(request) { [weak self] result in
            self?.answered(result, token: token, session: session, ownedVersion: ownedVersion)
        }
    }

    /// The next heartbeat: everything while joining, then only what changed. Returns the
    /// version of the owned partitions it reports, if it reports them.
    private func nextRequest(_ s: inout State, snapshot: ClusterMetadata) -> (ConsumerGroupHeartbeatRequest, UInt64?) {
        var request = ConsumerGroupHeartbeatRequest(groupID: groupID, memberID: s.memberID, memberEpoch: s.epoch)
        let joining = s.epoch == ConsumerGroupHeartbeatRequest.joinEpoch
        if joining {
            request.instanceID = settings.groupInstanceID
            request.rebalanceTimeoutMs = settings.rebalanceTimeout.int32Milliseconds
            request.subscribedTopicNames = settings.topics
            // No regular expression: "" says so explicitly (the coordinator reads "" as none,
            // and librdkafka's mock wants names and expression sent together).
            request.subscribedTopicRegex = ""
            request.serverAssignor = settings.serverAssignor
            s.joinSent = true
        }
        var reported: UInt64?
        if joining || s.reconciler.reportPending {
            request.topicPartitions = s.reconciler.reported { snapshot.topics[$0]?.topicID }
            reported = s.reconciler.reportedVersion
        }
        return (request, reported)
    }

    private func answered(_ result: Result<ConsumerGroupHeartbeatResponse, KlifeError>, token: UInt64, session: UInt64,
                          ownedVersion: UInt64?) {
        var event: Event?
        var note: (LogLevel, String)?
        let next = state.withLock { s -> NextBeat in
            s.inFlight = false
            // Answers after leaving, or about an earlier session, change nothing.
            if s.session == session && s.beating && !s.left {
                switch result {
                case .success(let response):
                    (event, note) = apply(response, to: &s, session: session, ownedVersion: ownedVersion)
                case .failure(let error) where error.code == .unsupportedVersion:
                    s.beating = false
                    s.epoch = -1
                    event = .failed(session: session, .unsupported(
                        "group '\(groupID)': the coordinator does not speak the consumer group protocol (KIP-848: \(error)); use groupProtocol = .classic"))
                case .failure(let error):
                    s.beating = false
                    event = .coordinatorLost(session: session)
                    note = (.info, "heartbeat failed: \(error)")
                }
            }
            guard s.beating else { return .none }
            if s.sendSoon || s.token != token {
                s.sendSoon = false
                s.token &+= 1
                return .now(s.token)
            }
            return .after(nanoseconds: s.heartbeatIntervalNanos, token: token)
        }
        if let note { channel.hub.log(note.0, "group '\(groupID)': \(note.1)") }
        if let event { mailbox.yield(event) }
        resumeAnswerWaiters()
        channel.schedule(next) { [weak self] in self?.beat($0) }
    }

    /// Takes in an answer: the new epoch, interval and assignment, or what its error needs.
    private func apply(_ response: ConsumerGroupHeartbeatResponse, to s: inout State, session: UInt64,
                       ownedVersion: UInt64?) -> (Event?, (LogLevel, String)?) {
        let code = KafkaErrorCode(rawValue: response.errorCode)
        let failure = KlifeError.broker(code, "ConsumerGroupHeartbeat of group '\(groupID)'", message: response.errorMessage)
        switch code {
        case .none:
            s.statistics.heartbeats += 1
            s.recoveries = 0
            if let id = response.memberID, !id.isEmpty { s.memberID = id }
            s.epoch = response.memberEpoch
            if response.heartbeatIntervalMs > 0 {
                s.heartbeatIntervalNanos = UInt64(response.heartbeatIntervalMs) * 1_000_000
            }
            if let ownedVersion { s.reconciler.acknowledge(ownedVersion) }
            guard let assignment = response.assignment else { return (nil, nil) }
            s.reconciler.setTarget(assignment.topicPartitions)
            s.targetReceivedAt = Reactor.monotonicNanoseconds()
            return (.reconcile(session: session), (.debug, "epoch \(response.memberEpoch), assignment of \(assignment.topicPartitions.reduce(0) { $0 + $1.partitions.count }) partitions"))
        case .fencedMemberEpoch, .unknownMemberID:
            s.beating = false
            s.epoch = -1
            return (.fenced(session: session, code), (.info, "heartbeat answered \(code): rejoining"))
        case .notCoordinator, .coordinatorNotAvailable:
            s.beating = false
            return (.coordinatorLost(session: session), (.info, "heartbeat answered \(code)"))
        case .coordinatorLoadInProgress:
            return (nil, (.info, "heartbeat answered \(code): trying again at the next interval"))
        case .unsupportedVersion, .unsupportedAssignor, .groupMaxSizeReached, .fencedInstanceID,
             .unreleasedInstanceID, .invalidRequest:
            s.beating = false
            s.epoch = -1
            return (.failed(session: session, failure), nil)
        default:
            if code.isRetriable { return (nil, (.warning, "heartbeat answered \(code): trying again at the next interval")) }
            s.beating = false
            s.epoch = -1
            return (.failed(session: session, failure), nil)
        }
    }
}
