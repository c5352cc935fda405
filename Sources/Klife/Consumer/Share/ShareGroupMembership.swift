import KlifeIO
import KlifeProtocol

/// A member of a share group (KIP-932): ShareGroupHeartbeat at the interval the coordinator
/// asks for, on the member's own connection to its coordinator (``GroupChannel``).
///
/// The first heartbeat (epoch 0) carries the member id generated here and the subscription;
/// later ones carry only the epoch. Each answer may carry the member's assignment by topic id,
/// which is published at once: a share group has nothing to revoke (records, not partitions,
/// are owned, through acquisition locks), so no reconciliation waits.
///
///     join (epoch 0) ──► heartbeat (epoch n) ──► … ──► leave (epoch -1)
///         ▲                   │
///         └── UNKNOWN_MEMBER_ID / FENCED_MEMBER_EPOCH: rejoin at epoch 0, assignment cleared
///     NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE / a failed connection: find the coordinator
///     again, with backoff; anything else not retriable (an unsupported API among them) ends
///     the membership with that error.
final class ShareGroupMembership: Sendable {
    private struct State {
        var epoch: Int32 = ShareGroupHeartbeatRequest.joinEpoch
        var assignment: [TopicPartition: KafkaUUID] = [:]
        /// Bumped whenever ``assignment`` changes or the membership ends.
        var version: UInt64 = 0
        var failure: KlifeError?
        var stopped = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let memberID: String
    private let client: KlifeClient
    private let channel: GroupChannel
    private let settings: ShareConsumerConfiguration
    private let state = Locked(State())
    private let loop = Locked<Task<Void, Never>?>(nil)

    init(client: KlifeClient, settings: ShareConsumerConfiguration) {
        self.client = client
        self.settings = settings
        self.memberID = ConsumerGroupMembership.newMemberID()
        self.channel = GroupChannel(client: client, groupID: settings.groupID)
    }

    /// Starts heartbeating.
    func start() {
        let task = Task { [self] in await run() }
        loop.withLock { $0 = task }
    }

    /// The partitions assigned now, with their topic ids.
    var assignment: [TopicPartition: KafkaUUID] { state.withLock { $0.assignment } }

    /// The error that ended the membership, if one did.
    var failure: KlifeError? { state.withLock { $0.failure } }

    /// The current member epoch (0 while joining).
    var epoch: Int32 { state.withLock { $0.epoch } }

    /// Waits until the assignment changes or the membership ends (returns at once if either
    /// happened since `version`). Returns the version it saw.
    func waitForChange(after version: UInt64) async -> UInt64 {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if s.version != version || s.stopped { return true }
                s.waiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
        return state.withLock { $0.version }
    }

    /// The version of the current assignment.
    var version: UInt64 { state.withLock { $0.version } }

    /// Stops heartbeating and leaves the group (a heartbeat with epoch -1, best effort).
    func leave() async {
        let task = loop.withLock { t -> Task<Void, Never>? in
            defer { t = nil }
            return t
        }
        let wasJoined = state.withLock { s -> Bool in
            s.stopped = true
            return s.epoch > 0
        }
        task?.cancel()
        await task?.value
        if wasJoined {
            _ = try? await channel.call(ShareGroupHeartbeatRequest(
                groupID: settings.groupID, memberID: memberID, memberEpoch: ShareGroupHeartbeatRequest.leaveEpoch))
        }
        channel.closeConnections()
        wake { $0.epoch = ShareGroupHeartbeatRequest.leaveEpoch }
    }

    // MARK: The heartbeat loop

    private func run() async {
        var interval = settings.heartbeatInterval
        var recoveries = 0
        while !Task.isCancelled && !state.withLock({ $0.stopped }) {
            let epoch = state.withLock { $0.epoch }
            let joining = epoch == ShareGroupHeartbeatRequest.joinEpoch
            let request = ShareGroupHeartbeatRequest(
                groupID: settings.groupID, memberID: memberID, memberEpoch: epoch,
                rackID: joining ? settings.rackID : nil, subscribedTopicNames: joining ? settings.topics : nil)
            let response: ShareGroupHeartbeatResponse
            do {
                response = try await channel.call(request)
            } catch {
                if !error.isRetriable { return fail(error) }
                recoveries += 1
                await Self.backoff(recoveries)
                continue
            }
            let code = KafkaErrorCode(rawValue: response.errorCode)
            switch code {
            case .none:
                recoveries = 0
                // The coordinator's interval, kept within 10 ms and 60 s whatever it says.
                if response.heartbeatIntervalMs > 0 { interval = .milliseconds(Int(min(max(response.heartbeatIntervalMs, 10), 60_000))) }
                state.withLock { $0.epoch = response.memberEpoch }
                if let assignment = response.assignment {
                    do {
                        try await publish(assignment)
                    } catch {
                        if !error.isRetriable { return fail(error) }
                    }
                }
            case .unknownMemberID, .fencedMemberEpoch:
                wake {
                    $0.epoch = ShareGroupHeartbeatRequest.joinEpoch
                    $0.assignment = [:]
                }
                continue
            case .notCoordinator, .coordinatorNotAvailable, .coordinatorLoadInProgress:
                channel.forgetCoordinator()
                recoveries += 1
                await Self.backoff(recoveries)
                continue
            default:
                let error = KlifeError.broker(code, "share group '\(settings.groupID)' heartbeat",
                                              message: response.errorMessage)
                if !code.isRetriable { return fail(error) }
                recoveries += 1
                await Self.backoff(recoveries)
                continue
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Names the assigned topics (from metadata, refreshed when an id is unknown) and publishes
    /// the assignment.
    private func publish(_ assignment: ShareGroupHeartbeatResponse.Assignment) async throws(KlifeError) {
        var names = Self.topicNames(client.metadataStore.snapshot.metadata)
        let ids = Set(assignment.topicPartitions.map(\.topicID))
        if !ids.isSubset(of: names.keys) {
            names = Self.topicNames(try await client.refreshMetadata(topics: settings.topics))
        }
        var next: [TopicPartition: KafkaUUID] = [:]
        for entry in assignment.topicPartitions {
            // An id metadata does not name (a topic deleted meanwhile) is left out until it does.
            guard let name = names[entry.topicID] else { continue }
            for partition in entry.partitions { next[TopicPartition(topic: name, partition: partition)] = entry.topicID }
        }
        wake { s in
            if s.assignment != next { s.assignment = next }
        }
    }

    /// Sleeps before recovery `attempt` (from 1): 100 ms doubling, at most 1 s.
    private static func backoff(_ attempt: Int) async {
        try? await Task.sleep(for: min(.milliseconds(100) * (1 << min(max(attempt, 1) - 1, 4)), .seconds(1)))
    }

    private static func topicNames(_ metadata: ClusterMetadata) -> [KafkaUUID: String] {
        var names: [KafkaUUID: String] = [:]
        for (name, topic) in metadata.topics where topic.topicID != .zero { names[topic.topicID] = name }
        return names
    }

    private func fail(_ error: KlifeError) {
        wake {
            $0.failure = error
            $0.stopped = true
        }
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
