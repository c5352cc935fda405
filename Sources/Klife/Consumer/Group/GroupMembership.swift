import KlifeIO
import KlifeProtocol

/// What commits of a group member carry so the coordinator accepts them: the classic group's
/// generation or the consumer group's member epoch, and the member's ids.
struct GroupCommitIdentity: Sendable, Hashable {
    var generationOrEpoch: Int32
    var memberID: String
    var instanceID: String?
}

/// What a group membership asks of the consumer it serves. The membership calls these from its
/// own task, one at a time, in protocol order (a revoke finishes before the next join).
protocol AssignmentListener: AnyObject, Sendable {
    /// Partitions given to this member: start reading them.
    func assigned(_ partitions: Set<TopicPartition>) async
    /// Partitions taken away in a rebalance: stop reading them, wait (bounded) for their
    /// processing, commit what was processed with `identity`, drop them.
    func revoked(_ partitions: Set<TopicPartition>, identity: GroupCommitIdentity?) async
    /// Partitions lost without a chance to commit (the member was removed): drop them.
    func lost(_ partitions: Set<TopicPartition>) async
    /// The membership failed for good (for example a fenced static member): end the stream.
    func failed(_ error: KlifeError)
}

/// One member of a consumer group, whatever the protocol: joins, keeps its assignment in step
/// with the group through an ``AssignmentListener``, heartbeats from the reactor, leaves.
protocol GroupMembership: AnyObject, Sendable {
    /// Starts joining (returns at once).
    func start()
    /// What commits carry now; `nil` while the member holds no valid generation.
    var commitIdentity: GroupCommitIdentity? { get }
    /// The partitions this member owns now.
    var owned: Set<TopicPartition> { get }
    /// Stops taking part in rebalances: the listener is not called any more once this returns.
    /// Heartbeats go on, so commits still count, until ``leave()``.
    func stop() async
    /// Stops heartbeating and leaves the group (a static member stays, and its partitions wait
    /// for it until its session times out).
    func leave() async
    /// The client closed: ends the membership at once, without a word to the coordinator
    /// (nothing can be sent any more). The driver task ends and the listener is not called
    /// any more, so nothing keeps the member, or its closed client, alive.
    func clientClosed()
    /// Counters of the membership.
    var statistics: GroupStatistics { get }
    /// The identity to send a commit with once more after the coordinator refused it, sent as
    /// `stale`, with STALE_MEMBER_EPOCH; `nil`: not sent again.
    func identityAfterStaleEpoch(_ stale: GroupCommitIdentity) async -> GroupCommitIdentity?
    /// Offsets a transaction sent as `identity` were refused with `code` (ILLEGAL_GENERATION,
    /// UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, FENCED_MEMBER_EPOCH): the member may be a zombie
    /// and must find out whether it still owns its partitions. Returns at once.
    func transactionalOffsetsRefused(as identity: GroupCommitIdentity, code: KafkaErrorCode)
}

extension GroupMembership {
    /// A classic group refuses an old generation with ILLEGAL_GENERATION, never
    /// STALE_MEMBER_EPOCH: nothing to send again.
    func identityAfterStaleEpoch(_ stale: GroupCommitIdentity) async -> GroupCommitIdentity? { nil }
}

extension GroupMembership {
    /// The consumer was dropped without ``KlifeConsumer/close(timeout:)``: stops as ``stop()``
    /// does, then leaves as ``leave()`` does (a static member stays), from a task of its own
    /// that holds the membership until then. Nothing is committed (the consumer is gone);
    /// the partitions' next owners read them from the last commit.
    func abandon() {
        Task { [self] in
            await stop()
            await leave()
        }
    }
}

/// Rebalance counters of a group member.
public struct GroupStatistics: Sendable, Hashable {
    /// Joins that completed with an assignment (each is a rebalance this member took part in).
    public var rebalances: Int = 0
    /// Total time spent from the start of a rebalance to its assignment, in nanoseconds.
    public var rebalanceNanoseconds: UInt64 = 0
    /// The longest rebalance, in nanoseconds.
    public var longestRebalanceNanoseconds: UInt64 = 0
    /// Heartbeats answered.
    public var heartbeats: Int = 0
    /// Times the member lost its partitions without committing (removed from the group).
    public var partitionsLostEvents: Int = 0
    /// The generation (classic) or member epoch (consumer protocol) now; -1 outside the group.
    public var generation: Int32 = -1
    /// The member id the coordinator knows this member by ("" before the first join).
    public var memberID: String = ""

    /// Creates empty counters.
    public init() {}

    mutating func noteRebalance(nanoseconds: UInt64) {
        rebalances += 1
        rebalanceNanoseconds &+= nanoseconds
        longestRebalanceNanoseconds = max(longestRebalanceNanoseconds, nanoseconds)
    }
}

/// What a heartbeat answer leads to on the member's reactor: nothing, the next heartbeat at
/// once, or the next heartbeat after a wait; each with the token the beat must still hold.
enum NextBeat {
    case none
    case now(UInt64)
    case after(nanoseconds: UInt64, token: UInt64)
}

/// A group member's line to its coordinator: the coordinator's node (found on demand,
/// forgotten when it moves) and a connection of the member's own to it, on one reactor. A
/// connection per member because the broker answers a connection's requests in order and may
/// hold a JoinGroup for a whole rebalance: two members of one group sharing a connection would
/// wait for each other.
final class GroupChannel: Sendable {
    let client: KlifeClient
    let hub: ReactorHub
    let groupID: String
    /// Owner id of the member's dedicated connections.
    let owner: UInt64
    private let coordinator = Locked<Int32?>(nil)

    init(client: KlifeClient, groupID: String) {
        self.client = client
        self.groupID = groupID
        self.owner = ReactorHub.newConnectionOwner()
        // Members spread over the reactors; a member stays on its reactor for life.
        self.hub = client.hubs[Int(owner % UInt64(client.hubs.count))]
    }

    /// Carries out `next` on the channel's reactor: calls `beat` with the token at once, or
    /// from a timer after the wait (`beat` should hold its member weakly).
    func schedule(_ next: NextBeat, beat: @escaping (UInt64) -> Void) {
        switch next {
        case .none:
            break
        case .now(let token):
            beat(token)
        case .after(let nanoseconds, let token):
            _ = hub.reactor.scheduleTimer(afterNanoseconds: nanoseconds) { beat(token) }
        }
    }

    /// The coordinator's node, when known (any thread).
    var knownCoordinator: Int32? { coordinator.withLock { $0 } }

    /// The coordinator's node, found when unknown.
    func coordinatorNode() async throws(KlifeError) -> Int32 {
        if let node = knownCoordinator { return node }
        let node = try await client.findCoordinator(key: groupID, keyType: FindCoordinatorRequest.groupKeyType)
        coordinator.withLock { $0 = node }
        return node
    }

    /// Forgets the coordinator (it moved or its connection failed) and closes the connection.
    func forgetCoordinator() {
        coordinator.withLock { $0 = nil }
        closeConnections()
    }

    /// Sends `request` to the coordinator on the member's connection. A failed connection, or an
    /// answer that does not decode, makes the coordinator be found again next time.
    /// - Parameter extraTimeout: added to the request timeout (JoinGroup: the rebalance timeout).
    func call<R: KafkaRequest>(_ request: R, extraTimeout: Duration = .zero) async throws(KlifeError) -> R.Response {
        let node = try await coordinatorNode()
        let owner = owner
        do {
            return try await client.roundTrip(request, via: hub, extraTimeout: extraTimeout) { hub in
                hub.dedicatedConnection(forNode: node, purpose: .group, owner: owner)
            }
        } catch {
            if error.code == .connectionFailed || error.code == .timedOut || error.code == .malformedResponse {
                forgetCoordinator()
            }
            throw error
        }
    }

    /// Sends `request` from the reactor thread (heartbeats), calling `completion` there.
    func send<R: KafkaRequest>(_ request: R, completion: @escaping (Result<R.Response, KlifeError>) -> Void) {
        hub.assertOnReactor()
        guard let node = knownCoordinator,
              let connection = hub.dedicatedConnection(forNode: node, purpose: .group, owner: owner) else {
            completion(.failure(.broker(.coordinatorNotAvailable, "group '\(groupID)': coordinator unknown")))
            return
        }
        connection.whenReady { ready in
            switch ready {
            case .failure(let error): completion(.failure(error))
            case .success(let c): c.send(request, completion: completion)
            }
        }
    }

    /// Closes the member's connections (in-flight requests fail).
    func closeConnections() {
        let owner = owner
        hub.reactor.submit { [hub] in hub.closeDedicatedConnections(owner: owner) }
    }
}

/// An asynchronous mutual exclusion for commits: one commit of a consumer at a time, so a
/// retried older commit never lands after a newer one.
final class AsyncSerializer: Sendable {
    private struct State {
        var held = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Locked(State())

    /// Runs `body` when no other body of this serializer runs.
    func run<T>(_ body: () async throws(KlifeError) -> T) async throws(KlifeError) -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if !s.held {
                    s.held = true
                    return true
                }
                s.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.held = false
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}

extension GroupChannel {
    /// Waits until every topic of `settings.topics` is in metadata (as produce waits for a new
    /// topic), at most the producer's `maxBlock`; then fails `listener` naming the first
    /// missing topic.
    /// - Returns: `true` once every topic is known; `false` when the member failed or stops.
    func waitForTopics(_ settings: ConsumerConfiguration, listener: any AssignmentListener,
                       isStopping: () -> Bool) async -> Bool {
        for topic in settings.topics { client.noteTopicOfInterest(topic) }
        let deadline = Reactor.monotonicNanoseconds() &+ client.maxBlockNanos
        var attempt = 0
        while !isStopping() {
            let metadata = try? await client.refreshMetadata(topics: settings.topics)
            let missing = settings.topics.filter { metadata?.topics[$0]?.partitions.isEmpty ?? true }
            if missing.isEmpty { return true }
            if Reactor.monotonicNanoseconds() >= deadline {
                listener.failed(.unknownTopicOrPartition(missing[0]))
                return false
            }
            attempt += 1
            await settings.groupBackoff(attempt)
        }
        return false
    }
}

extension ConsumerConfiguration {
    /// Sleeps before retry `attempt` (from 1) of a group call: ``retryBackoff`` doubling with
    /// each attempt, at most ``retryBackoffMax``.
    func groupBackoff(_ attempt: Int) async {
        let base = retryBackoff * (1 << min(max(attempt, 1) - 1, 5))
        try? await Task.sleep(for: min(base, retryBackoffMax))
    }
}
