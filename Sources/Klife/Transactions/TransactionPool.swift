import KlifeIO
import Synchronization

/// One transactional producer of the pool: its session (id, epoch, sequences, engines),
/// its transactional id and where its coordinators are.
///
/// Used by one transaction at a time (the pool hands it out exclusively).
final class TransactionalMember: Sendable {
    let session: ProducerSession
    let transactionalID: String
    let timeoutMs: Int32
    /// The transaction coordinator of ``transactionalID``.
    let coordinator = CoordinatorCache()
    private let groupCoordinators = Locked<[String: CoordinatorCache]>([:])
    /// Set after an abort: the next transaction first takes a new epoch, so sequence
    /// numbers left behind by failed or unsent batches cannot collide with new ones.
    private let needsEpoch = Atomic<Bool>(false)
    /// Set when a transaction's EndTxn failed with an outcome unknown: it may still be open at
    /// the coordinator. Kafka aborts it when the next epoch is taken, but a broker that does
    /// not would leave its partitions undecided (read_committed readers stuck at it), so the
    /// member aborts it itself first.
    private let mayBeOpen = Atomic<Bool>(false)

    init(session: ProducerSession, timeoutMs: Int32) {
        self.session = session
        self.transactionalID = session.transactionalID ?? ""
        self.timeoutMs = timeoutMs
    }

    /// The cached coordinator of a consumer group (for TxnOffsetCommit).
    func groupCoordinator(_ groupID: String) -> CoordinatorCache {
        groupCoordinators.withLock { caches in
            if let cache = caches[groupID] { return cache }
            let cache = CoordinatorCache()
            caches[groupID] = cache
            return cache
        }
    }

    var needsNewEpoch: Bool {
        get { needsEpoch.load(ordering: .acquiring) }
        set { needsEpoch.store(newValue, ordering: .releasing) }
    }

    var transactionMayBeOpen: Bool {
        get { mayBeOpen.load(ordering: .acquiring) }
        set { mayBeOpen.store(newValue, ordering: .releasing) }
    }
}

/// Hands out the transactional producers, one transaction each at a time; callers beyond
/// the pool size wait (first come, first served) up to the acquire timeout.
final class TransactionPool: Sendable {
    let members: [TransactionalMember]

    private struct State {
        var free: [Int]
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Int?, Never>)] = []
        var nextWaiterID: UInt64 = 0
    }

    private let state: Locked<State>

    init(sessions: [ProducerSession], timeout: Duration = .seconds(60)) {
        members = sessions.map { TransactionalMember(session: $0, timeoutMs: timeout.int32Milliseconds) }
        state = Locked(State(free: Array(members.indices)))
    }

    /// Takes a member, preferring one that is not fenced; waits up to `timeout` for one.
    /// - Throws: `invalidConfiguration` without a pool, `timedOut` when none became free.
    func acquire(timeout: Duration) async throws(KlifeError) -> TransactionalMember {
        guard !members.isEmpty else {
            throw .invalidConfiguration("transactions", "set KlifeConfiguration.transactions to use transactions")
        }
        enum Outcome { case member(Int), wait(UInt64) }
        let members = self.members
        let index: Int? = await withCheckedContinuation { (continuation: CheckedContinuation<Int?, Never>) in
            let outcome: Outcome = state.withLock { s in
                if !s.free.isEmpty {
                    let pick = s.free.firstIndex { members[$0].session.fatalError == nil } ?? 0
                    return .member(s.free.remove(at: pick))
                }
                s.nextWaiterID += 1
                s.waiters.append((s.nextWaiterID, continuation))
                return .wait(s.nextWaiterID)
            }
            switch outcome {
            case .member(let i):
                continuation.resume(returning: i)
            case .wait(let id):
                Task { [weak self] in
                    try? await Task.sleep(for: timeout)
                    self?.expireWaiter(id)
                }
            }
        }
        guard let index else {
            throw .timedOut("waiting \(timeout) for a free transactional producer (pool size \(members.count))")
        }
        return members[index]
    }

    /// Returns a member to the pool (or straight to the longest waiter).
    func release(_ member: TransactionalMember) {
        guard let index = members.firstIndex(where: { $0 === member }) else { return }
        let waiter: CheckedContinuation<Int?, Never>? = state.withLock { s in
            if s.waiters.isEmpty {
                s.free.append(index)
                return nil
            }
            return s.waiters.removeFirst().continuation
        }
        waiter?.resume(returning: index)
    }

    private func expireWaiter(_ id: UInt64) {
        let expired: CheckedContinuation<Int?, Never>? = state.withLock { s in
            guard let position = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return s.waiters.remove(at: position).continuation
        }
        expired?.resume(returning: nil)
    }
}
