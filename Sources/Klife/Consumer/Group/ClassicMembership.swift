import KlifeIO
import KlifeProtocol

/// A member of a classic consumer group (JoinGroup, SyncGroup, Heartbeat, LeaveGroup).
///
/// Two halves:
/// - a driver task runs the rebalances in order: revoke (eager: everything, before joining),
///   JoinGroup (with the KIP-394 member-id round trip), the elected leader's assignment,
///   SyncGroup, then the listener's revoke and assign calls (cooperative: revoking something
///   means joining again at once, KIP-429);
/// - heartbeats are timers on the member's reactor, sent on the member's own connection, so a
///   slow application never makes the member miss one. An answer that needs action (a
///   rebalance started, the member was removed, the coordinator moved) becomes an event for
///   the driver, tagged with the generation it belongs to (stale ones are ignored).
final class ClassicMembership: GroupMembership {
    private enum Event: Sendable {
        case rejoin(generation: Int32, reason: String)
        case lost(generation: Int32, KafkaErrorCode)
        case coordinatorLost(generation: Int32)
        case stop
    }

    /// Why a rebalance attempt ended without an assignment.
    private enum JoinFailure: Error {
        /// Try again after a backoff (coordinator moved, loading, connection lost, …).
        case retry(KlifeError)
        /// The member id or generation is no longer valid: owned partitions are lost.
        case lost(KafkaErrorCode)
        /// A new rebalance started: join again now.
        case rejoin
        /// The membership cannot go on (fenced instance id, no common protocol, …).
        case fatal(KlifeError)
        case stopped
    }

    private struct State {
        var memberID = ""
        var generation: Int32 = -1
        var protocolName: String?
        var owned: Set<TopicPartition> = []
        /// Heartbeats run (the member holds an assignment of `generation`).
        var stable = false
        var stopping = false
        /// Bumped whenever heartbeats start or stop: older timers see it and end.
        var heartbeatToken: UInt64 = 0
        /// As leader: partition counts the assignment was computed from (a change means rebalancing).
        var leaderPartitionCounts: [String: Int32]?
        var statistics = GroupStatistics()
    }

    private let channel: GroupChannel
    private let settings: ConsumerConfiguration
    private let groupID: String
    private let listener: any AssignmentListener
    /// Cooperative only when every configured strategy is (as Kafka decides it).
    private let cooperative: Bool
    private let state = Locked(State())
    private let events: AsyncStream<Event>
    private let mailbox: AsyncStream<Event>.Continuation
    private let driver = Locked<Task<Void, Never>?>(nil)

    init(client: KlifeClient, settings: ConsumerConfiguration, listener: any AssignmentListener) {
        self.settings = settings
        self.groupID = settings.groupID ?? ""
        self.channel = GroupChannel(client: client, groupID: groupID)
        self.listener = listener
        self.cooperative = settings.assignmentStrategies.allSatisfy { $0.assignor.rebalanceProtocol == .cooperative }
        (events, mailbox) = AsyncStream.makeStream(of: Event.self)
    }

    func start() {
        let task = Task { [self] in await run() }
        driver.withLock { $0 = task }
    }

    var commitIdentity: GroupCommitIdentity? {
        state.withLock { s in
            s.generation >= 0 ? GroupCommitIdentity(generationOrEpoch: s.generation, memberID: s.memberID,
                                                    instanceID: settings.groupInstanceID) : nil
        }
    }

    var owned: Set<TopicPartition> { state.withLock { $0.owned } }

    /// As a heartbeat answered with `code`: when `identity`'s generation is still the current
    /// one, the member lost its partitions (no commit) and joins again. An answer about an
    /// older generation is ignored, as stale heartbeat answers are.
    func transactionalOffsetsRefused(as identity: GroupCommitIdentity, code: KafkaErrorCode) {
        mailbox.yield(.lost(generation: identity.generationOrEpoch, code))
    }

    var statistics: GroupStatistics {
        state.withLock { s in
            var stats = s.statistics
            stats.generation = s.generation
            stats.memberID = s.memberID
            return stats
        }
    }

    func stop() async {
        let joining = state.withLock { s -> Bool in
            s.stopping = true
            return !s.stable
        }
        mailbox.yield(.stop)
        // A JoinGroup may be held for the whole rebalance: closing the connection ends it.
        if joining { channel.closeConnections() }
        await driver.withLock { $0 }?.value
        mailbox.finish()
    }

    func leave() async {
        let (memberID, wasMember) = state.withLock { s -> (String, Bool) in
            s.stopping = true
            s.stable = false
            s.heartbeatToken &+= 1
            defer { s.generation = -1; s.owned = [] }
            return (s.memberID, s.generation >= 0 || !s.memberID.isEmpty)
        }
        // Static members never leave: their partitions wait for them until the session times out.
        if settings.groupInstanceID == nil && wasMember && !memberID.isEmpty {
            let request = LeaveGroupRequest(groupID: groupID, memberID: memberID, reason: "the consumer is closing")
            _ = try? await channel.call(request)
        }
        channel.closeConnections()
    }

    func clientClosed() {
        state.withLock { s in
            s.stopping = true
            s.stable = false
            s.heartbeatToken &+= 1
        }
        // The driver may wait for an event: there will be none (the reactors are stopping).
        mailbox.yield(.stop)
        mailbox.finish()
    }

    // MARK: Driver

    /// Stopping, or the client closed under the member (it can never send again).
    private var isStopping: Bool { state.withLock { $0.stopping } || channel.client.isClosed }

    private func run() async {
        var iterator = events.makeAsyncIterator()
        guard await channel.waitForTopics(settings, listener: listener, isStopping: { isStopping }) else { return }
        var attempt = 0
        var reason = "joining"
        while !isStopping {
            let started = Reactor.monotonicNanoseconds()
            do throws(JoinFailure) {
                let again = try await rebalance(reason: reason)
                attempt = 0
                let took = Reactor.monotonicNanoseconds() &- started
                state.withLock { $0.statistics.noteRebalance(nanoseconds: took) }
                if again {
                    reason = "revoked partitions in a cooperative rebalance"
                    continue
                }
            } catch {
                switch error {
                case .stopped: return
                case .fatal(let e):
                    channel.hub.log(.error, "group '\(groupID)': \(e)")
                    listener.failed(e)
                    return
                case .rejoin:
                    reason = "a rebalance started during the join"
                    continue
                case .lost(let code):
                    await dropOwnedAsLost(code)
                    reason = "rejoining after \(code)"
                    continue
                case .retry(let e):
                    attempt += 1
                    channel.hub.log(.info, "group '\(groupID)': join attempt \(attempt) failed: \(e)")
                    await backoff(attempt)
                    continue
                }
            }
            // Stable: wait for an event that asks for a rebalance.
            reason = await waitForRebalanceCause(&iterator)
        }
    }

    /// Handles heartbeat events until one needs a rebalance; returns its reason.
    private func waitForRebalanceCause(_ iterator: inout AsyncStream<Event>.Iterator) async -> String {
        while let event = await iterator.next() {
            let current = state.withLock { $0.generation }
            switch event {
            case .stop:
                return "stopping"
            case .rejoin(let generation, let reason) where generation == current:
                return reason
            case .lost(let generation, let code) where generation == current:
                if code == .fencedInstanceID {
                    listener.failed(.broker(code, "group '\(groupID)': another member took instance id '\(settings.groupInstanceID ?? "")'"))
                    state.withLock { $0.stopping = true }
                    return "fenced"
                }
                await dropOwnedAsLost(code)
                return "rejoining after \(code)"
            case .coordinatorLost(let generation) where generation == current:
                // Heartbeats go on once the coordinator is found again; no rebalance needed.
                channel.forgetCoordinator()
                var attempt = 0
                while !isStopping {
                    do {
                        _ = try await channel.coordinatorNode()
                        break
                    } catch {
                        attempt += 1
                        await backoff(attempt)
                    }
                }
            default:
                continue // an answer for an older generation
            }
        }
        return "stopping"
    }

    /// One rebalance: join, sync, then the listener. Returns whether the member must join
    /// again at once (it revoked partitions cooperatively).
    private func rebalance(reason: String) async throws(JoinFailure) -> Bool {
        if !cooperative {
            let (owned, identity) = state.withLock { ($0.owned, $0.stable ? commitIdentityLocked($0) : nil) }
            if !owned.isEmpty {
                await listener.revoked(owned, identity: identity)
                state.withLock { $0.owned = [] }
            }
        }
        stopHeartbeats()
        if isStopping { throw .stopped }
        let joined = try await join(reason: reason)
        let assignments = joined.isLeader && !joined.skipAssignment ? try await assign(joined) : []
        let assigned = try await sync(joined, assignments: assignments)
        let (revoked, added, identity) = state.withLock { s in
            let revoked = s.owned.subtracting(assigned)
            let added = assigned.subtracting(s.owned)
            s.owned.formUnion(added)
            return (revoked, added, commitIdentityLocked(s))
        }
        startHeartbeats()
        if !revoked.isEmpty {
            await listener.revoked(revoked, identity: identity)
            state.withLock { $0.owned.subtract(revoked) }
        }
        if !added.isEmpty { await listener.assigned(added) }
        return cooperative && !revoked.isEmpty
    }

    private func commitIdentityLocked(_ s: State) -> GroupCommitIdentity? {
        s.generation >= 0 ? GroupCommitIdentity(generationOrEpoch: s.generation, memberID: s.memberID,
                                                instanceID: settings.groupInstanceID) : nil
    }

    private func join(reason: String) async throws(JoinFailure) -> JoinGroupResponse {
        let (memberID, owned, generation) = state.withLock { ($0.memberID, $0.owned, $0.generation) }
        let subscription = ConsumerProtocolSubscription(
            topics: settings.topics.sorted(),
            ownedPartitions: Self.grouped(owned),
            generationID: generation)
        let metadata = subscription.encoded(version: 3)
        var request = JoinGroupRequest(
            groupID: groupID, sessionTimeoutMs: settings.sessionTimeout.int32Milliseconds,
            rebalanceTimeoutMs: settings.rebalanceTimeout.int32Milliseconds, memberID: memberID,
            groupInstanceID: settings.groupInstanceID, protocolType: ConsumerProtocol.protocolType,
            protocols: settings.assignmentStrategies.map { .init(name: $0.rawValue, metadata: metadata) },
            reason: reason)
        while true {
            let response: JoinGroupResponse
            do {
                response = try await channel.call(request, extraTimeout: settings.rebalanceTimeout)
            } catch {
                throw isStopping ? .stopped : .retry(error)
            }
            let code = KafkaErrorCode(rawValue: response.errorCode)
            channel.hub.log(.debug, "group '\(groupID)': JoinGroup answered \(code), generation \(response.generationID), member '\(response.memberID)', leader '\(response.leader)', \(response.members.count) members")
            switch code {
            case .none:
                state.withLock { s in
                    s.memberID = response.memberID
                    s.generation = response.generationID
                    s.protocolName = response.protocolName
                }
                return response
            case .memberIDRequired:
                // KIP-394: the coordinator hands out the id first; join again with it.
                state.withLock { $0.memberID = response.memberID }
                request.memberID = response.memberID
            case .unknownMemberID:
                state.withLock { $0.memberID = "" }
                throw .lost(code)
            default:
                throw classify(code, call: "JoinGroup")
            }
        }
    }

    private func sync(_ joined: JoinGroupResponse, assignments: [SyncGroupRequest.Assignment]) async throws(JoinFailure) -> Set<TopicPartition> {
        let request = SyncGroupRequest(
            groupID: groupID, generationID: joined.generationID, memberID: joined.memberID,
            groupInstanceID: settings.groupInstanceID, protocolType: ConsumerProtocol.protocolType,
            protocolName: joined.protocolName, assignments: assignments)
        let response: SyncGroupResponse
        do {
            response = try await channel.call(request, extraTimeout: settings.rebalanceTimeout)
        } catch {
            throw isStopping ? .stopped : .retry(error)
        }
        let code = KafkaErrorCode(rawValue: response.errorCode)
        channel.hub.log(.debug, "group '\(groupID)': SyncGroup answered \(code) with \(response.assignment.count) assignment bytes")
        switch code {
        case .none:
            break
        case .unknownMemberID, .illegalGeneration:
            if code == .unknownMemberID { state.withLock { $0.memberID = "" } }
            throw .lost(code)
        default:
            throw classify(code, call: "SyncGroup")
        }
        if response.assignment.isEmpty { return [] }
        do {
            let assignment = try ConsumerProtocolAssignment(decoding: response.assignment)
            var partitions: Set<TopicPartition> = []
            for t in assignment.assignedPartitions {
                for p in t.partitions { partitions.insert(TopicPartition(topic: t.topic, partition: p)) }
            }
            return partitions
        } catch {
            throw .fatal(.malformed(error, broker: "group coordinator of '\(groupID)'"))
        }
    }

    /// Error codes of JoinGroup and SyncGroup that need no special path.
    private func classify(_ code: KafkaErrorCode, call: String) -> JoinFailure {
        switch code {
        case .rebalanceInProgress:
            return .rejoin
        case .notCoordinator, .coordinatorNotAvailable:
            channel.forgetCoordinator()
            return .retry(.broker(code, "\(call) for group '\(groupID)'"))
        case .coordinatorLoadInProgress:
            return .retry(.broker(code, "\(call) for group '\(groupID)'"))
        case .illegalGeneration:
            return .lost(code)
        default:
            if code.isRetriable { return .retry(.broker(code, "\(call) for group '\(groupID)'")) }
            return .fatal(.broker(code, "\(call) for group '\(groupID)'"))
        }
    }

    /// The elected leader's part: every member's subscription, the partition counts of their
    /// topics, the strategy the coordinator chose.
    private func assign(_ joined: JoinGroupResponse) async throws(JoinFailure) -> [SyncGroupRequest.Assignment] {
        guard let name = joined.protocolName, let strategy = AssignmentStrategy(rawValue: name) else {
            throw .fatal(.broker(.inconsistentGroupProtocol,
                                 "group '\(groupID)' chose assignor '\(joined.protocolName ?? "")', which this member does not have"))
        }
        var members: [GroupMemberSubscription] = []
        var version = ConsumerProtocol.supportedVersions.upperBound
        for member in joined.members {
            if member.metadata.count >= 2 {
                version = min(version, max(0, Int16(member.metadata[0]) << 8 | Int16(member.metadata[1])))
            }
            // A member whose subscription does not decode gets nothing rather than failing the group.
            let subscription = try? ConsumerProtocolSubscription(decoding: member.metadata)
            members.append(GroupMemberSubscription(
                memberID: member.memberID, groupInstanceID: member.groupInstanceID, topics: subscription?.topics ?? [],
                ownedPartitions: (subscription?.ownedPartitions ?? []).flatMap { t in
                    t.partitions.map { TopicPartition(topic: t.topic, partition: $0) }
                },
                generation: subscription?.generationID ?? -1, rackID: subscription?.rackID))
        }
        let topics = Set(members.flatMap(\.topics))
        let metadata: ClusterMetadata
        do {
            metadata = try await channel.client.refreshMetadata(topics: topics.sorted())
        } catch {
            throw .retry(error)
        }
        var counts: [String: Int32] = [:]
        for topic in topics {
            if let t = metadata.topics[topic], !t.partitions.isEmpty { counts[topic] = Int32(t.partitions.count) }
        }
        state.withLock { $0.leaderPartitionCounts = counts.filter { settings.topics.contains($0.key) } }
        let result = strategy.assignor.assign(members: members, partitionCounts: counts)
        return result.sorted { $0.key < $1.key }.map { memberID, partitions in
            .init(memberID: memberID,
                  assignment: ConsumerProtocolAssignment(assignedPartitions: Self.grouped(Set(partitions)))
                      .encoded(version: min(version, 3)))
        }
    }

    /// Drops every owned partition without committing (the member id or generation is gone).
    private func dropOwnedAsLost(_ code: KafkaErrorCode) async {
        stopHeartbeats()
        let owned = state.withLock { s -> Set<TopicPartition> in
            defer {
                s.owned = []
                s.generation = -1
                if code == .unknownMemberID || code == .fencedInstanceID { s.memberID = "" }
            }
            if !s.owned.isEmpty { s.statistics.partitionsLostEvents += 1 }
            return s.owned
        }
        if !owned.isEmpty {
            channel.hub.log(.warning, "group '\(groupID)': \(owned.count) partitions lost (\(code))")
            await listener.lost(owned)
        }
    }

    private func backoff(_ attempt: Int) async {
        await settings.groupBackoff(attempt)
    }

    // MARK: Heartbeats (reactor thread)

    private func startHeartbeats() {
        let token = state.withLock { s -> UInt64 in
            s.stable = true
            s.heartbeatToken &+= 1
            return s.heartbeatToken
        }
        channel.hub.reactor.submit { [weak self] in self?.scheduleHeartbeat(token) }
    }

    private func stopHeartbeats() {
        state.withLock { s in
            s.stable = false
            s.heartbeatToken &+= 1
        }
    }

    private func scheduleHeartbeat(_ token: UInt64) {
        _ = channel.hub.reactor.scheduleTimer(afterNanoseconds: settings.heartbeatInterval.nanoseconds) { [weak self] in
            self?.heartbeat(token)
        }
    }

    private func heartbeat(_ token: UInt64) {
        let snapshot = channel.hub.snapshot.metadata
        let due = state.withLock { s -> (HeartbeatRequest, Int32, Bool)? in
            guard s.stable, s.heartbeatToken == token else { return nil }
            // As leader: a subscribed topic's partition count changed → rebalance.
            var changed = false
            if let counts = s.leaderPartitionCounts {
                for (topic, count) in counts {
                    if let t = snapshot.topics[topic], !t.partitions.isEmpty, Int32(t.partitions.count) != count { changed = true }
                }
            }
            return (HeartbeatRequest(groupID: groupID, generationID: s.generation, memberID: s.memberID,
                                     groupInstanceID: settings.groupInstanceID), s.generation, changed)
        }
        guard let (request, generation, partitionsChanged) = due else { return }
        if partitionsChanged {
            state.withLock { $0.leaderPartitionCounts = nil }
            mailbox.yield(.rejoin(generation: generation, reason: "the partition count of a subscribed topic changed"))
        }
        channel.send(request) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let response):
                let code = KafkaErrorCode(rawValue: response.errorCode)
                switch code {
                case .none:
                    state.withLock { $0.statistics.heartbeats += 1 }
                case .rebalanceInProgress:
                    mailbox.yield(.rejoin(generation: generation, reason: "the coordinator started a rebalance"))
                case .unknownMemberID, .illegalGeneration, .fencedInstanceID:
                    mailbox.yield(.lost(generation: generation, code))
                case .notCoordinator, .coordinatorNotAvailable:
                    mailbox.yield(.coordinatorLost(generation: generation))
                default:
                    channel.hub.log(.warning, "group '\(groupID)': heartbeat answered \(code)")
                }
            case .failure(let error):
                channel.hub.log(.info, "group '\(groupID)': heartbeat failed: \(error)")
                mailbox.yield(.coordinatorLost(generation: generation))
            }
            scheduleHeartbeat(token)
        }
    }

    /// Partitions grouped by topic, both sorted, as the consumer protocol carries them.
    static func grouped(_ partitions: Set<TopicPartition>) -> [ConsumerProtocolTopicPartitions] {
        var byTopic: [String: [Int32]] = [:]
        for tp in partitions { byTopic[tp.topic, default: []].append(tp.partition) }
        return byTopic.sorted { $0.key < $1.key }.map { .init(topic: $0.key, partitions: $0.value.sorted()) }
    }
}
