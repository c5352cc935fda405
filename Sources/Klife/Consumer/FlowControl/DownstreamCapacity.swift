import KlifeIO

/// Permits for batches, granted by the application's downstream (a database pool, a bulk
/// indexer): ``KlifeConsumer/run(_:)-((ConsumerBatch)->Void)`` acquires one once a batch could go out (so an idle
/// consumer holds none), before it hands the batch out, and releases it when the batch's
/// handler finished (returned, or gave the batch up). One permit per batch, never per record.
///
/// ```swift
/// actor PoolPermits: DownstreamPermits {
///     var free = 4
///     var waiting: [CheckedContinuation<Void, Never>] = []
///     func acquire() async throws {
///         if free > 0 { free -= 1 } else { await withCheckedContinuation { waiting.append($0) } }
///     }
///     nonisolated func release() { Task { await give() } }
///     func give() { if waiting.isEmpty { free += 1 } else { waiting.removeFirst().resume() } }
/// }
/// settings.downstream = .permits(PoolPermits())
/// ```
public protocol DownstreamPermits: Sendable {
    /// Returns once the downstream can take one more batch. Called from `run`'s dispatcher,
    /// one call at a time; the consumer cancels the calling task when it closes (throw then,
    /// or return: a permit acquired is released again).
    func acquire() async throws
    /// Gives back a permit ``acquire()`` granted. Called once per permit.
    func release()
}

/// How ``KlifeConsumer/run(_:)-((ConsumerBatch)->Void)`` learns whether its downstream can take another batch: a
/// handler is started only when it can. While the consumer waits, fetched data stays buffered
/// (within ``ConsumerConfiguration/maxBufferedBytes``) and heartbeats go on.
public struct DownstreamCapacity: Sendable {
    enum Form: Sendable {
        case permits(any DownstreamPermits)
        case query(poll: Duration, batches: @Sendable () -> Int)
    }

    let form: Form

    /// Permits acquired per batch and released when its handler finished.
    public static func permits(_ permits: any DownstreamPermits) -> DownstreamCapacity {
        DownstreamCapacity(form: .permits(permits))
    }

    /// A synchronous answer: `batches()` returns how many batches the downstream can process
    /// at once right now (for a database pool, the connections it has, or 0 while it is in
    /// maintenance). A handler is started only while fewer handlers run than that; the consumer
    /// counts its own running handlers, so return the capacity, not what is free of it. While
    /// the answer allows nothing, it is asked again every `poll`.
    public static func query(poll: Duration = .milliseconds(20),
                             _ batches: @escaping @Sendable () -> Int) -> DownstreamCapacity {
        DownstreamCapacity(form: .query(poll: poll, batches: batches))
    }

    func validate() throws(KlifeError) {
        if case .query(let poll, _) = form, poll <= .zero || poll > .seconds(60) {
            throw .invalidConfiguration("consumer.downstream.poll", "must be above 0 and at most 60 seconds")
        }
    }
}

/// The downstream's side of handing out batches to handlers: ``ConsumerState/next(markBusy:)``
/// takes capacity before it takes a batch, ``ConsumerState/markProcessed(_:)`` and
/// ``ConsumerState/markAbandoned(_:)`` give it back.
extension ConsumerState {
    /// Identifies the batch a permit went to.
    struct PermitHolder: Hashable, Sendable {
        var tp: TopicPartition
        var assignmentID: UInt64
    }

    /// Waits until the downstream can take one more batch. The capacity taken is pending until
    /// ``attachPermit(to:)`` gives it to the batch handed out, or ``returnPendingPermit()``.
    /// - Throws: `cancelled` when the waiting task is cancelled or the consumer closes.
    func acquireDownstream(_ capacity: DownstreamCapacity) async throws(KlifeError) {
        switch capacity.form {
        case .permits(let permits):
            while true {
                // A permit is asked for only once a batch could go out: an idle consumer holds
                // none of a pool it may share with the rest of the application.
                try await waitUntilTakeable()
                let waiting = Task { try await permits.acquire() }
                guard registerDownstreamWait(waiting) else {
                    waiting.cancel()
                    if case .success = await waiting.result { permits.release() }
                    throw .cancelled
                }
                let result = await withTaskCancellationHandler { await waiting.result } onCancel: { waiting.cancel() }
                let ended = state.withLock { s -> Bool in
                    s.downstreamWait = nil
                    return s.closed || s.failure != nil
                }
                if case .success = result {
                    if ended || Task.isCancelled {
                        permits.release()
                        throw .cancelled
                    }
                    state.withLock { $0.pendingPermit = true }
                    return
                }
                if ended || Task.isCancelled { throw .cancelled }
                // The downstream refused for now: ask again after the consumer's backoff.
                try await pauseDownstream(configuration.retryBackoff)
            }
        case .query(let poll, let batches):
            while true {
                // Asked outside the lock: it is the application's code.
                let allowed = batches()
                let granted = state.withLock { s -> Bool? in
                    if s.closed || s.failure != nil { return nil }
                    guard s.permitHolders.count < allowed else { return false }
                    s.pendingPermit = true
                    return true
                }
                guard let granted else { throw .cancelled }
                if granted { return }
                try await pauseDownstream(poll)
            }
        }
    }

    /// Whether a batch could be handed out now, rate limits aside: a partition with ready
    /// batches that is not paused, busy or being revoked, and room under the adaptive limit.
    func hasTakeable(_ s: State) -> Bool {
        if let adaptive = s.adaptive, adaptive.currentLimit <= s.inFlightRecords { return false }
        return s.order.contains { tp in
            guard let p = s.partitions[tp] else { return false }
            return !p.paused && !p.busy && !p.revoking && !p.ready.isEmpty
        }
    }

    /// Suspends until a batch could be handed out (woken by every path that calls
    /// ``takeWaiter(_:)``), the consumer ends, or the task is cancelled (then throws).
    private func waitUntilTakeable() async throws(KlifeError) {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.closed || s.failure != nil || Task.isCancelled || hasTakeable(s) { return true }
                    s.readyWaiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiting = state.withLock { s -> CheckedContinuation<Void, Never>? in
                defer { s.readyWaiter = nil }
                return s.readyWaiter
            }
            waiting?.resume()
        }
        let ended = state.withLock { $0.closed || $0.failure != nil }
        if ended || Task.isCancelled { throw .cancelled }
    }

    /// Sleeps `duration` unless the consumer closes or the task is cancelled meanwhile.
    private func pauseDownstream(_ duration: Duration) async throws(KlifeError) {
        let sleeping = Task { try? await Task.sleep(for: duration) }
        guard registerDownstreamWait(sleeping) else { throw .cancelled }
        await withTaskCancellationHandler { await sleeping.value } onCancel: { sleeping.cancel() }
        let ended = state.withLock { s -> Bool in
            s.downstreamWait = nil
            return s.closed || s.failure != nil
        }
        if ended || Task.isCancelled { throw .cancelled }
    }

    /// Remembers the task the dispatcher waits on (close cancels it); false when already closed.
    private func registerDownstreamWait<T: Sendable, E: Error>(_ task: Task<T, E>) -> Bool {
        state.withLock { s in
            guard !s.closed && s.failure == nil else { return false }
            s.downstreamWait = { task.cancel() }
            return true
        }
    }

    /// Gives the pending permit to the batch just handed out (under the lock).
    func attachPermit(_ s: inout State, to batch: ConsumerBatch) {
        guard s.pendingPermit else { return }
        s.pendingPermit = false
        s.permitHolders.insert(PermitHolder(tp: batch.topicPartition, assignmentID: batch.assignmentID))
    }

    /// The dispatcher got no batch after all (closed, failed, cancelled): its permit goes back.
    func returnPendingPermit() {
        let had = state.withLock { s -> Bool in
            defer { s.pendingPermit = false }
            return s.pendingPermit
        }
        if had, case .permits(let permits)? = configuration.downstream?.form { permits.release() }
    }

    /// The handler of `batch` finished: its permit goes back.
    func releasePermit(of batch: ConsumerBatch) {
        let had = state.withLock { s in
            s.permitHolders.remove(PermitHolder(tp: batch.topicPartition, assignmentID: batch.assignmentID)) != nil
        }
        if had, case .permits(let permits)? = configuration.downstream?.form { permits.release() }
    }
}
