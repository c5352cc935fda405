import KlifeIO
import Synchronization

/// Records of one partition handed to the application together: in offset order, at most
/// ``ConsumerConfiguration/maxRecords`` of them.
public struct ConsumerBatch: Sendable {
    /// Topic and partition of every record.
    public var topicPartition: TopicPartition
    /// The records, in offset order.
    public var records: ConsumerRecords
    /// The partition's high watermark when these records were fetched.
    public var highWatermark: Int64
    /// The partition's last stable offset when these records were fetched (-1 if unknown).
    public var lastStableOffset: Int64
    /// The offset after the last record: where reading goes on (a committed position).
    public var nextOffset: Int64

    /// Records left to read after this batch when it was fetched (high watermark, or the last
    /// stable offset at read_committed, minus ``nextOffset``).
    public var lag: Int64 {
        let end = lastStableOffset >= 0 ? min(lastStableOffset, highWatermark) : highWatermark
        return max(0, end - nextOffset)
    }

    /// Bytes of keys and values, counted against the prefetch bound.
    var bytes: Int { records.payloadBytes }
    /// The partition's epoch when fetched (a seek or reset since makes the batch stale).
    var epoch: UInt64 = 0
    /// The adaptive limit when the batch was handed out (0 without one).
    var limitAtHandOut = 0
    /// Which assignment of the partition the batch belongs to (it may be revoked and given back).
    var assignmentID: UInt64 = 0
}

/// What one consumer shares between the application's threads and the reactors' fetch
/// engines: assigned partitions with their fetch positions, and the batches fetched ahead,
/// per partition, bounded in bytes. Every access holds the lock; fetch engines take it once
/// per fetch request and once per answer, never per record.
final class ConsumerState: Sendable {
    /// The application task waiting in ``next()``.
    typealias Waiter = CheckedContinuation<Result<ConsumerBatch?, KlifeError>, Never>

    /// One assigned partition.
    struct Partition: Sendable {
        /// The next offset to fetch; -1 while it is being looked up (assignment, reset).
        var fetchPosition: Int64 = -1
        /// The offset after the last record handed to the application.
        var deliveredPosition: Int64 = -1
        /// The offset after the last record the application finished: what may be committed.
        var processedPosition: Int64 = -1
        /// The offset last committed (or read as committed); -1 if none.
        var committedPosition: Int64 = -1
        /// A batch of it is being processed by a handler (no other batch of it is handed out).
        var busy = false
        /// Records of the batch being processed by a handler, and when it was handed out
        /// (limiter clock): in flight until it finishes.
        var busyRecords = 0
        var handedOutAt: UInt64 = 0
        /// Being revoked: neither fetched nor handed out any more.
        var revoking = false
        /// Unique per assignment of the partition to this consumer.
        var assignmentID: UInt64 = 0
        var paused = false
        var inFlight = false
        /// No fetch before this monotonic time (backoff after an error).
        var notBefore: UInt64 = 0
        var failedAttempts = 0
        /// Bumped by every seek and reset: answers to fetches sent before are dropped.
        var epoch: UInt64 = 0
        var highWatermark: Int64 = -1
        var lastStableOffset: Int64 = -1
        /// Batches fetched and not yet handed out.
        var ready: [ConsumerBatch] = []
        /// Offsets of records handed out and not finished (retrying, or being moved to a retry
        /// topic), in ascending order: commits stop at the first.
        var holds: [Int64] = []
        /// Set when a record failed for good: nothing more is fetched or handed out.
        var stopped: KlifeError?
        /// A retry topic's partition: each record waits until the due time in its headers.
        var delayed = false
        /// While delayed records wait: the wall-clock time (ms) the head record is due.
        var dueAt: Int64 = 0
    }

    struct State: Sendable {
        var partitions: [TopicPartition: Partition] = [:]
        /// Partitions with ready batches, in the order their data arrived (fair hand-out).
        var order: [TopicPartition] = []
        var bufferedBytes = 0
        /// Room promised to fetches in flight (their request's size limit).
        var reservedBytes = 0
        var waiter: Waiter?
        /// Whether the waiter is a handler dispatcher (its partitions become busy).
        var waiterMarksBusy = false
        /// The batch last returned by ``next()`` (``BatchAcknowledgement/onNextBatch``: processed
        /// once the reader asks again).
        var outstanding: Outstanding?
        var nextAssignmentID: UInt64 = 1
        /// Batches go to ``KlifeConsumer/run(_:)-((ConsumerBatch)->Void)``'s handlers.
        var handlerMode = false
        /// ``KlifeConsumer/run(transactional:_:)-(_,(ConsumerBatch,Transaction)->Void)``: offsets are committed only by its
        /// transactions, never by auto-commit, revoke, close or ``KlifeConsumer/commit()``.
        var transactionalCommits = false
        var recordsFetched = 0
        var bytesFetched = 0
        var batchesDelivered = 0
        var handlerLatency = LatencyHistogram()
        /// Latencies of the last finished batches (limiter clock), for recent percentiles.
        var recentLatencies = RecentLatencies()
        /// Records of batches being processed by handlers (the reader's ``outstanding`` batch
        /// is counted apart).
        var handlerRecords = 0
        /// The adaptive limit on records in flight (`nil`: none).
        var adaptive: AdaptiveLimiter?
        /// `run`'s dispatcher took downstream capacity and has not got its batch yet.
        var pendingPermit = false
        /// `run`'s dispatcher waits for a batch it could take before it asks for a permit.
        var readyWaiter: CheckedContinuation<Void, Never>?
        /// Batches handed to handlers holding a downstream permit.
        var permitHolders: Set<PermitHolder> = []
        /// Cancels what the dispatcher waits on for downstream capacity (close wakes it).
        var downstreamWait: (@Sendable () -> Void)?
        /// Streams of ``KlifeConsumer/statisticsUpdates(every:)``, finished when the consumer ends.
        var statisticsStreams: [UInt64: AsyncStream<ConsumerStatistics>.Continuation] = [:]
        var nextStreamID: UInt64 = 0

        /// Records handed out and not yet finished.
        var inFlightRecords: Int { handlerRecords + (outstanding?.records ?? 0) }
        var failure: KlifeError?
        var closed = false
        /// The rate limits on handing out batches (inactive without one).
        var limiter: DeliveryLimiter
        /// Wakes the reader when the limits let the earliest held batch go.
        var rateTimer: Task<Void, Never>?
        /// When ``rateTimer`` fires (limiter clock), and which timer is current.
        var rateTimerDeadline: UInt64 = 0
        var rateTimerGeneration: UInt64 = 0
        /// What handlers' outcomes did to records: retries, moves, dead letters.
        var outcomes = OutcomeCounters()
    }

    /// The batch last returned by ``next()``.
    struct Outstanding: Sendable {
        var tp: TopicPartition
        var assignmentID: UInt64
        var epoch: UInt64
        var nextOffset: Int64
        var records: Int
        var handedOutAt: UInt64
    }

    let configuration: ConsumerConfiguration
    /// The retry topics read beside the sources: their records wait until due.
    let delayedTopics: Set<String>
    let state: Locked<State>
    /// The time of the rate limits, and how their timer sleeps.
    let limiterClock: LimiterClock
    /// Called (outside the lock) whenever fetching may resume: a partition got a position,
    /// was resumed, or buffer space was freed.
    let wakeFetchers: @Sendable () -> Void

    init(configuration: ConsumerConfiguration, limiterClock: LimiterClock = .monotonic,
         wakeFetchers: @escaping @Sendable () -> Void) {
        self.configuration = configuration
        self.delayedTopics = configuration.retryTopics.map { Set(configuration.topics.flatMap($0.retryTopics(of:))) } ?? []
        self.limiterClock = limiterClock
        var initial = State(limiter: DeliveryLimiter(configuration.rateLimit, now: limiterClock.now()))
        initial.adaptive = configuration.adaptiveLimit.map(AdaptiveLimiter.init)
        self.state = Locked(initial)
        self.wakeFetchers = wakeFetchers
    }

    // MARK: Fetch engine side

    /// Adds fetched records of `tp` (when `epoch` is still the partition's), split into
    /// batches within the configured bounds, and moves its fetch position to `nextOffset`.
    func deliver(_ records: ConsumerRecords, tp: TopicPartition, epoch: UInt64, nextOffset: Int64,
                 highWatermark: Int64, lastStableOffset: Int64) {
        let handOff = state.withLock { s -> (Waiter, ConsumerBatch)? in
            guard var p = s.partitions[tp], p.epoch == epoch else { return nil }
            p.inFlight = false
            p.failedAttempts = 0
            p.highWatermark = highWatermark
            p.lastStableOffset = lastStableOffset
            p.fetchPosition = max(p.fetchPosition, nextOffset)
            var start = 0
            while start < records.count {
                var end = start
                var bytes = 0
                while end < records.count && end - start < configuration.maxRecords {
                    let size = records.payloadBytes(at: end)
                    if end > start && bytes + size > configuration.maxBatchBytes { break }
                    bytes += size
                    end += 1
                }
                let slice = records.records(start..<end)
                let next = end < records.count ? records.offset(at: end) : max(nextOffset, records.offset(at: end - 1) + 1)
                p.ready.append(ConsumerBatch(topicPartition: tp, records: slice, highWatermark: highWatermark,
                                             lastStableOffset: lastStableOffset, nextOffset: next,
                                             epoch: p.epoch, assignmentID: p.assignmentID))
                s.bufferedBytes += bytes
                s.bytesFetched += bytes
                start = end
            }
            s.recordsFetched += records.count
            if !records.isEmpty && !s.order.contains(tp) { s.order.append(tp) }
            s.partitions[tp] = p
            return takeWaiter(&s)
        }
        if let (waiter, batch) = handOff { waiter.resume(returning: .success(batch)) }
    }

    /// One partition a fetch engine takes into a request.
    struct Claim: Sendable {
        var tp: TopicPartition
        var position: Int64
        var epoch: UInt64
    }

    /// What a fetch engine may send now: partitions with a position, not paused, not in
    /// flight, past their backoff, whose leader `owns` accepts (this reactor's brokers), grouped
    /// by leader and marked in flight. Nothing while the prefetch bound is reached.
    /// - Returns: the claims by leader, whether some partition has no known leader, and the
    ///   earliest backoff end among those left out (`.max` if none).
    ///   Each leader's request gets a size limit from the room left under the bound (reserved
    ///   until ``unreserve(_:)``), so brokers that honour it never take the buffer past it.
    func claimFetchable(now: UInt64, leader: (TopicPartition) -> Int32?,
                        owns: (Int32) -> Bool) -> (byLeader: [Int32: [Claim]], budget: Int, leaderless: Bool, nextDue: UInt64) {
        state.withLock { s in
            var byLeader: [Int32: [Claim]] = [:]
            var leaderless = false
            var nextDue = UInt64.max
            let room = configuration.maxBufferedBytes - s.bufferedBytes - s.reservedBytes
            guard !s.closed, s.failure == nil, room > 0 else { return ([:], 0, false, .max) }
            for (tp, p) in s.partitions where !p.paused && !p.inFlight && !p.revoking && p.fetchPosition >= 0
                && p.stopped == nil && !(p.delayed && !p.ready.isEmpty) {
                if p.notBefore > now {
                    nextDue = min(nextDue, p.notBefore)
                    continue
                }
                guard let node = leader(tp) else {
                    leaderless = true
                    continue
                }
                guard owns(node) else { continue }
                byLeader[node, default: []].append(Claim(tp: tp, position: p.fetchPosition, epoch: p.epoch))
                s.partitions[tp]!.inFlight = true
            }
            guard !byLeader.isEmpty else { return ([:], 0, leaderless, nextDue) }
            let budget = max(1, min(Int(configuration.fetchMaxBytes), room / byLeader.count))
            s.reservedBytes += budget * byLeader.count
            return (byLeader, budget, leaderless, nextDue)
        }
    }

    /// Gives back the room a finished fetch had reserved.
    func unreserve(_ bytes: Int) {
        state.withLock { $0.reservedBytes = max(0, $0.reservedBytes - bytes) }
    }

    /// A fetch of `tp` failed: retried after a growing backoff.
    func fetchFailed(_ tp: TopicPartition, epoch: UInt64, now: UInt64) {
        state.withLock { s in
            guard var p = s.partitions[tp], p.epoch == epoch else { return }
            p.inFlight = false
            p.failedAttempts += 1
            let base = configuration.retryBackoff.nanoseconds
            let backoff = min(base << UInt64(min(p.failedAttempts - 1, 16)), configuration.retryBackoffMax.nanoseconds)
            p.notBefore = now &+ backoff
            s.partitions[tp] = p
        }
    }

    /// Gives a partition back to fetching without records (the answer left it out).
    func release(_ tp: TopicPartition, epoch: UInt64) {
        state.withLock { s in
            guard s.partitions[tp]?.epoch == epoch else { return }
            s.partitions[tp]?.inFlight = false
        }
    }

    /// The partition's position is out of range (or must be looked up): fetching stops until
    /// ``setPosition(_:_:)``. Returns the epoch the lookup answers to, or nil if unassigned.
    func positionLost(_ tp: TopicPartition, epoch: UInt64) -> UInt64? {
        state.withLock { s in
            guard var p = s.partitions[tp], p.epoch == epoch else { return nil }
            p.inFlight = false
            p.fetchPosition = -1
            p.epoch &+= 1
            p.holds.removeAll()
            s.bufferedBytes -= p.ready.reduce(0) { $0 + $1.bytes }
            p.ready.removeAll()
            s.order.removeAll { $0 == tp }
            s.partitions[tp] = p
            return p.epoch
        }
    }

    /// Ends the stream with `error` (a fatal fetch error).
    func fail(_ error: KlifeError) {
        let (waiter, observers) = state.withLock { s -> (Waiter?, EndObservers) in
            if s.failure == nil { s.failure = error }
            stopRateWait(&s)
            defer { s.waiter = nil }
            return (s.waiter, takeEndObservers(&s))
        }
        observers.notify()
        waiter?.resume(returning: .failure(error))
    }

    // MARK: Application side

    /// Sets where `tp` is read from (assignment, seek, reset), dropping what was fetched ahead.
    func setPosition(_ tp: TopicPartition, _ offset: Int64, ifEpoch expected: UInt64? = nil) {
        let changed = state.withLock { s -> Bool in
            guard var p = s.partitions[tp] else { return false }
            if let expected, p.epoch != expected { return false }
            if expected == nil { p.epoch &+= 1 }
            s.bufferedBytes -= p.ready.reduce(0) { $0 + $1.bytes }
            p.ready.removeAll()
            s.order.removeAll { $0 == tp }
            p.fetchPosition = offset
            p.deliveredPosition = offset
            p.processedPosition = offset
            p.holds.removeAll()
            p.stopped = nil
            p.inFlight = false
            p.notBefore = 0
            s.partitions[tp] = p
            return true
        }
        if changed { wakeFetchers() }
    }

    /// The next batch of a partition that is not paused, or `nil` when none is ready, the
    /// adaptive limit has no room, or the rate limits hold back every ready one. Frees its
    /// bytes from the prefetch bound. A batch larger than the adaptive limit's room is split:
    /// its first `room` records go out, the rest stays at the head of the partition's batches.
    /// - Parameter held: set to the nanoseconds until the limits let the earliest held batch
    ///   go (0 when no batch is held back).
    private func takeReady(_ s: inout State, markBusy: Bool, held: inout UInt64) -> ConsumerBatch? {
        held = 0
        var room = Int.max
        if let adaptive = s.adaptive {
            room = adaptive.currentLimit - s.inFlightRecords
            // Full: a finishing batch wakes the reader (no timer).
            guard room > 0 else { return nil }
        }
        let limited = s.limiter.isActive
        let now = limited ? limiterClock.now() : 0
        for (i, tp) in s.order.enumerated() {
            guard var p = s.partitions[tp], !p.paused, !p.busy, !p.revoking, !p.ready.isEmpty, p.stopped == nil else { continue }
            if p.delayed {
                let wait = Self.waitForDue(&p, now: currentTimeMilliseconds())
                s.partitions[tp] = p
                if wait > 0 {
                    held = held == 0 ? wait : min(held, wait)
                    continue
                }
            }
            let whole = p.ready[0].records.count
            let count = min(whole, room)
            if limited {
                // Per batch, never per record. A partition held by its own limit lets the
                // others go first; the consumer-wide limit holds everything in arrival order.
                let size = count == whole ? p.ready[0].bytes : p.ready[0].records.records(0..<count).payloadBytes
                s.limiter.track(tp, now: now)
                let own = s.limiter.partitionWait(tp, count: count, size: size, now: now)
                if own > 0 {
                    held = held == 0 ? own : min(held, own)
                    continue
                }
                let shared = s.limiter.consumerWait(count: count, size: size, now: now)
                if shared > 0 {
                    held = held == 0 ? shared : min(held, shared)
                    return nil
                }
                s.limiter.take(tp, count: count, size: size, now: now)
            }
            var batch: ConsumerBatch
            if count < whole {
                let records = p.ready[0].records
                batch = p.ready[0]
                batch.records = records.records(0..<count)
                batch.nextOffset = records.offset(at: count)
                p.ready[0].records = records.records(count..<whole)
            } else {
                batch = p.ready.removeFirst()
            }
            batch.limitAtHandOut = s.adaptive?.currentLimit ?? 0
            let handedOutAt = limited ? now : limiterClock.now()
            p.deliveredPosition = batch.nextOffset
            p.busy = markBusy
            if markBusy {
                p.busyRecords = count
                p.handedOutAt = handedOutAt
                s.handlerRecords += count
            } else {
                s.outstanding = Outstanding(tp: tp, assignmentID: batch.assignmentID, epoch: batch.epoch,
                                            nextOffset: batch.nextOffset, records: count, handedOutAt: handedOutAt)
            }
            s.batchesDelivered += 1
            s.partitions[tp] = p
            s.order.remove(at: i)
            if !p.ready.isEmpty { s.order.append(tp) }
            s.bufferedBytes -= batch.bytes
            if markBusy { attachPermit(&s, to: batch) }
            return batch
        }
        return nil
    }

    /// The waiting reader and the batch to resume it with, if both exist.
    func takeWaiter(_ s: inout State) -> (Waiter, ConsumerBatch)? {
        if s.readyWaiter != nil && hasTakeable(s) {
            // Resuming only schedules the dispatcher: safe under the lock.
            s.readyWaiter?.resume()
            s.readyWaiter = nil
        }
        guard let waiter = s.waiter else { return nil }
        var held: UInt64 = 0
        guard let batch = takeReady(&s, markBusy: s.waiterMarksBusy, held: &held) else {
            noteHeld(&s, held)
            return nil
        }
        stopRateWait(&s)
        s.waiter = nil
        return (waiter, batch)
    }

    /// Adds partitions (without a position yet: ``setPosition(_:_:ifEpoch:)`` starts them).
    /// - Returns: each partition's epoch, for the position lookup.
    func assign(_ tps: [TopicPartition]) -> [TopicPartition: UInt64] {
        state.withLock { s in
            var epochs: [TopicPartition: UInt64] = [:]
            for tp in tps {
                if s.partitions[tp] == nil {
                    var p = Partition()
                    p.assignmentID = s.nextAssignmentID
                    // Never an epoch of an earlier assignment of the partition: an answer to a
                    // fetch sent before it was lost or revoked would pass for a current one.
                    p.epoch = p.assignmentID << 32
                    p.delayed = delayedTopics.contains(tp.topic)
                    s.nextAssignmentID &+= 1
                    s.partitions[tp] = p
                }
                epochs[tp] = s.partitions[tp]!.epoch
            }
            return epochs
        }
    }

    /// Removes partitions and what was fetched ahead for them.
    func unassign(_ tps: [TopicPartition]) {
        let handOff = state.withLock { s -> (Waiter, ConsumerBatch)? in
            var released = false
            for tp in tps {
                guard let p = s.partitions.removeValue(forKey: tp) else { continue }
                s.limiter.forget(tp)
                if p.busy && p.busyRecords > 0 {
                    s.handlerRecords -= p.busyRecords
                    released = true
                }
                s.bufferedBytes -= p.ready.reduce(0) { $0 + $1.bytes }
                s.order.removeAll { $0 == tp }
            }
            // Records released: a reader waiting for room under the adaptive limit may go on.
            return released ? takeWaiter(&s) : nil
        }
        if let (waiter, batch) = handOff { waiter.resume(returning: .success(batch)) }
        wakeFetchers()
    }

    /// Pauses or resumes partitions: a paused partition is not fetched and its batches fetched
    /// ahead wait (kept) until it resumes.
    func setPaused(_ tps: [TopicPartition], _ paused: Bool) {
        let waiter = state.withLock { s -> (Waiter, ConsumerBatch)? in
            for tp in tps { s.partitions[tp]?.paused = paused }
            return paused ? nil : takeWaiter(&s)
        }
        if let (w, batch) = waiter { w.resume(returning: .success(batch)) }
        if !paused { wakeFetchers() }
    }

    /// Closed, or failed for good: nothing read from now on reaches the application (retries
    /// on its behalf stop).
    var isEnded: Bool { state.withLock { $0.closed || $0.failure != nil } }

    /// Ends the stream: the reader gets `nil`; fetched batches are dropped.
    func close() {
        let (waiter, observers) = state.withLock { s -> (Waiter?, EndObservers) in
            s.closed = true
            s.partitions.removeAll()
            s.order.removeAll()
            s.bufferedBytes = 0
            s.reservedBytes = 0
            s.handlerRecords = 0
            s.outstanding = nil
            stopRateWait(&s)
            defer { s.waiter = nil }
            return (s.waiter, takeEndObservers(&s))
        }
        observers.notify()
        waiter?.resume(returning: .success(nil))
    }

    /// The next ready batch, waiting for one; `nil` once the consumer is closed. A cancelled
    /// waiting task gets `cancelled` (and takes nothing).
    /// - Parameter markBusy: a handler dispatcher asks: the batch's partition gets no other
    ///   batch until ``markProcessed(_:)``. Otherwise (a reader), the batch returned by the
    ///   previous call counts as processed when ``BatchAcknowledgement/onNextBatch``.
    func next(markBusy: Bool = false) async throws(KlifeError) -> ConsumerBatch? {
        if markBusy, let downstream = configuration.downstream {
            do {
                try await acquireDownstream(downstream)
            } catch {
                let end = state.withLock { s -> Result<ConsumerBatch?, KlifeError> in
                    if let failure = s.failure { return .failure(failure) }
                    return s.closed ? .success(nil) : .failure(error)
                }
                return try end.get()
            }
        }
        let result: Result<ConsumerBatch?, KlifeError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let immediate = state.withLock { s -> Result<ConsumerBatch?, KlifeError>? in
                    if !markBusy, s.outstanding != nil {
                        finishOutstanding(&s, processed: configuration.acknowledgement == .onNextBatch)
                    }
                    if let failure = s.failure { return .failure(failure) }
                    if s.closed { return .success(nil) }
                    if s.waiter != nil { return .failure(.invalidArgument("a consumer's batches are read by one task at a time")) }
                    var held: UInt64 = 0
                    if let batch = takeReady(&s, markBusy: markBusy, held: &held) {
                        stopRateWait(&s)
                        return .success(batch)
                    }
                    if Task.isCancelled { return .failure(.cancelled) }
                    s.waiter = continuation
                    s.waiterMarksBusy = markBusy
                    noteHeld(&s, held)
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> Waiter? in
                stopRateWait(&s)
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: .failure(.cancelled))
        }
        let gotBatch = if case .success(.some) = result { true } else { false }
        if markBusy && !gotBatch { returnPendingPermit() }
        wakeFetchers()
        return try result.get()
    }
}
