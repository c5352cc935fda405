import KlifeIO
import KlifeProtocol

/// A member of a share group (KIP-932): ShareGroupHeartbeat at the interval the coordinator
/// asks for, on the member's own connection to its coordinator (``GroupChannel``).
///
/// Two halves, as in ``ConsumerGroupMembership``:
/// - heartbeats are timers on the member's reactor, one in flight at a time. The first
///   (epoch 0) carries the member id generated here and the subscription; later ones only the
///   epoch. An answer may carry the member's assignment by topic id, published at once when
///   metadata names its topics: a share group has nothing to revoke (records, not partitions,
///   are owned, through acquisition locks), so no reconciliation waits;
/// - a driver task does what heartbeats cannot do on the reactor: finding the coordinator
///   (at the start, and after NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or a failed
///   connection, with backoff), fetching metadata for topic ids it does not name yet, and
///   ending the membership on an error that is not retriable (an unsupported API among them).
///
///     join (epoch 0) ──► heartbeat (epoch n) ──► … ──► leave (epoch -1)
///         ▲                   │
///         └── UNKNOWN_MEMBER_ID / FENCED_MEMBER_EPOCH: rejoin at epoch 0, assignment cleared
final class ShareGroupMembership: Sendable {
    private enum Event: Sendable {
        /// Find the coordinator again, then heartbeat.
        case coordinatorLost
        /// An assignment naming topic ids metadata does not know yet.
        case unnamed(ShareGroupHeartbeatResponse.Assignment)
        /// The membership cannot go on.
        case failed(KlifeError)
    }

    private struct State {
        var epoch: Int32 = ShareGroupHeartbeatRequest.joinEpoch
        var assignment: [TopicPartition: KafkaUUID] = [:]
        /// Bumped whenever ``assignment`` changes or the membership ends.
        var version: UInt64 = 0
        var failure: KlifeError?
        var stopped = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        /// Heartbeats run; a timer or an answer whose token is not the current one ends.
        var beating = false
        var token: UInt64 = 0
        var inFlight = false
        var intervalNanos: UInt64
        /// Heartbeat answers, rejoins and coordinator searches, for the statistics.
        var heartbeats = 0
        var rejoins = 0
        var coordinatorSearches = 0
    }

    let memberID: String
    private let client: KlifeClient
    private let channel: GroupChannel
    private let settings: ShareConsumerConfiguration
    private let state: Locked<State>
    private let events: AsyncStream<Event>
    private let mailbox: AsyncStream<Event>.Continuation
    private let driver = Locked<Task<Void, Never>?>(nil)

    init(client: KlifeClient, settings: ShareConsumerConfiguration) {
        self.client = client
        self.settings = settings
        self.memberID = ConsumerGroupMembership.newMemberID()
        self.channel = GroupChannel(client: client, groupID: settings.groupID)
        self.state = Locked(State(intervalNanos: settings.heartbeatInterval.nanoseconds))
        (events, mailbox) = AsyncStream.makeStream(of: Event.self)
    }

    /// Starts the driver, which finds the coordinator and starts heartbeating.
    func start() {
        let task = Task { [self] in await run() }
        driver.withLock { $0 = task }
    }

    /// The partitions assigned now, with their topic ids.
    var assignment: [TopicPartition: KafkaUUID] { state.withLock { $0.assignment } }

    /// The error that ended the membership, if one did.
    var failure: KlifeError? { state.withLock { $0.failure } }

    /// The current member epoch (0 while joining, -1 once left).
    var epoch: Int32 { state.withLock { $0.epoch } }

    /// The version of the current assignment.
    var version: UInt64 { state.withLock { $0.version } }

    /// Heartbeats answered, rejoins (fenced or unknown member) and coordinator searches so far.
    var counters: (heartbeats: Int, rejoins: Int, coordinatorSearches: Int) {
        state.withLock { ($0.heartbeats, $0.rejoins, $0.coordinatorSearches) }
    }

    /// Waits until the assignment changes or the membership ends (returns at once if either
    /// happened since `version`). Returns the version it saw.
    /// A cancelled task stops waiting (every waiter is woken; the others wait again).
    func waitForChange(after version: UInt64) async -> UInt64 {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { s -> Bool in
                    if s.version != version || s.stopped || Task.isCancelled { return true }
                    s.waiters.append(continuation)
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            wake { _ in }
        }
        return state.withLock { $0.version }
    }

    /// Stops heartbeating and leaves the group (a heartbeat with epoch -1, best effort).
    func leave() async {
        let joined = state.withLock { s -> Bool in
            s.stopped = true
            s.beating = false
            s.token &+= 1
            return s.epoch > 0
        }
        mailbox.finish()
        await driver.withLock { $0 }?.value
        if joined {
            _ = try? await channel.call(ShareGroupHeartbeatRequest(
                groupID: settings.groupID, memberID: memberID, memberEpoch: ShareGroupHeartbeatRequest.leaveEpoch))
        }
        channel.closeConnections()
        wake { $0.epoch = ShareGroupHeartbeatRequest.leaveEpoch }
    }

    // MARK: The driver

    private func run() async {
        guard await findCoordinator() else { return }
        startHeartbeats()
        var namingAttempts = 0
        for await event in events {
            switch event {
            case .coordinatorLost:
                channel.forgetCoordinator()
                guard await findCoordinator() else { return }
                startHeartbeats()
            case .unnamed(let assignment):
                do {
                    try await publish(assignment)
                    namingAttempts = 0
                } catch where error.isRetriable {
                    namingAttempts += 1
                    await Self.backoff(namingAttempts)
                    if !state.withLock({ $0.stopped }) { mailbox.yield(.unnamed(assignment)) }
                } catch {
                    return fail(error)
                }
            case .failed(let error):
                return fail(error)
            }
        }
    }

    /// Finds the coordinator, retrying with backoff; false when the membership ended meanwhile.
    private func findCoordinator() async -> Bool {
        var attempt = 0
        while !state.withLock({ $0.stopped }) {
            do {
                _ = try await channel.coordinatorNode()
                state.withLock { $0.coordinatorSearches += 1 }
                return true
            } catch {
                if !error.isRetriable {
                    fail(error)
                    return false
                }
                attempt += 1
                await Self.backoff(attempt)
            }
        }
        return false
    }

    /// Names the assigned topics with fresh metadata and publishes the assignment.
    private func publish(_ assignment: ShareGroupHeartbeatResponse.Assignment) async throws(KlifeError) {
        let names = Self.topicNames(try await client.refreshMetadata(topics: settings.topics))
        wake { $0.assignment = Self.named(assignment, names) ?? Self.partlyNamed(assignment, names) }
    }

    // MARK: Heartbeats, on the reactor

    private func startHeartbeats() {
        let token = state.withLock { s -> UInt64? in
            guard !s.stopped else { return nil }
            s.beating = true
            s.token &+= 1
            return s.inFlight ? nil : s.token
        }
        if let token { channel.hub.reactor.submit { [weak self] in self?.beat(token) } }
    }

    private func beat(_ token: UInt64) {
        let request = state.withLock { s -> ShareGroupHeartbeatRequest? in
            guard s.beating, s.token == token, !s.inFlight, !s.stopped else { return nil }
            s.inFlight = true
            let joining = s.epoch == ShareGroupHeartbeatRequest.joinEpoch
            return ShareGroupHeartbeatRequest(
                groupID: settings.groupID, memberID: memberID, memberEpoch: s.epoch,
                rackID: joining ? settings.rackID : nil, subscribedTopicNames: joining ? settings.topics : nil)
        }
        guard let request else { return }
        channel.send(request) { [weak self] result in self?.answered(result, token: token) }
    }

    private func answered(_ result: Result<ShareGroupHeartbeatResponse, KlifeError>, token: UInt64) {
        let names = Self.topicNames(channel.hub.snapshot.metadata)
        var event: Event?
        var published: [TopicPartition: KafkaUUID]?
        let next = state.withLock { s -> NextBeat in
            s.inFlight = false
            guard s.beating, !s.stopped else { return .none }
            // Heartbeats restarted while this one was out: the new token beats now.
            guard s.token == token else { return .now(s.token) }
            switch result {
            case .failure(let error):
                s.beating = false
                event = error.isRetriable ? .coordinatorLost : .failed(error)
                return .none
            case .success(let response):
                s.heartbeats += 1
                let code = KafkaErrorCode(rawValue: response.errorCode)
                switch code {
                case .none:
                    s.epoch = response.memberEpoch
                    // The coordinator's interval, kept within 10 ms and 60 s whatever it says.
                    if response.heartbeatIntervalMs > 0 {
                        s.intervalNanos = UInt64(min(max(response.heartbeatIntervalMs, 10), 60_000)) * 1_000_000
                    }
                    if let assignment = response.assignment {
                        if let named = Self.named(assignment, names) {
                            if named != s.assignment { published = named }
                        } else {
                            event = .unnamed(assignment)
                        }
                    }
                    return .after(nanoseconds: s.intervalNanos, token: token)
                case .unknownMemberID, .fencedMemberEpoch:
                    s.rejoins += 1
                    s.epoch = ShareGroupHeartbeatRequest.joinEpoch
                    published = [:]
                    return .now(token)
                case .notCoordinator, .coordinatorNotAvailable, .coordinatorLoadInProgress:
                    s.beating = false
                    event = .coordinatorLost
                    return .none
                default:
                    if code.isRetriable { return .after(nanoseconds: s.intervalNanos, token: token) }
                    s.beating = false
                    event = .failed(.broker(code, "share group '\(settings.groupID)' heartbeat", message: response.errorMessage))
                    return .none
                }
            }
        }
        if let published { wake { $0.assignment = published } }
        if let event { mailbox.yield(event) }
        channel.schedule(next) { [weak self] in self?.beat($0) }
    }

    // MARK: Helpers

    /// The assignment by topic name, `nil` when metadata does not name every topic id.
    private static func named(_ assignment: ShareGroupHeartbeatResponse.Assignment,
                              _ names: [KafkaUUID: String]) -> [TopicPartition: KafkaUUID]? {
        guard assignment.topicPartitions.allSatisfy({ names[$0.topicID] != nil }) else { return nil }
        return partlyNamed(assignment, names)
    }

    /// The assignment's partitions of the topics metadata names (a topic deleted meanwhile is
    /// left out).
    private static func partlyNamed(_ assignment: ShareGroupHeartbeatResponse.Assignment,
                                    _ names: [KafkaUUID: String]) -> [TopicPartition: KafkaUUID] {
        var result: [TopicPartition: KafkaUUID] = [:]
        for entry in assignment.topicPartitions {
            guard let name = names[entry.topicID] else { continue }
            for partition in entry.partitions { result[TopicPartition(topic: name, partition: partition)] = entry.topicID }
        }
        return result
    }

    private static func topicNames(_ metadata: ClusterMetadata) -> [KafkaUUID: String] {
        var names: [KafkaUUID: String] = [:]
        for (name, topic) in metadata.topics where topic.topicID != .zero { names[topic.topicID] = name }
        return names
    }

    /// Sleeps before recovery `attempt` (from 1): 100 ms doubling, at most 1 s.
    private static func backoff(_ attempt: Int) async {
        try? await Task.sleep(for: min(.milliseconds(100) * (1 << min(max(attempt, 1) - 1, 4)), .seconds(1)))
    }

    private func fail(_ error: KlifeError) {
        wake { s in
            s.failure = error
            s.stopped = true
            s.beating = false
        }
        mailbox.finish()
    }

    /// Applies `change`, bumps the version and resumes every waiter.
    private func wake(_ change: (inout State) -> Void) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            change(&s)
            s.version &+= 1
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
