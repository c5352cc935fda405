import KlifeIO
import KlifeProtocol

/// Reads assigned partitions as batches: each batch from one partition, in offset order,
/// bounded by ``ConsumerConfiguration/maxRecords`` and ``ConsumerConfiguration/maxBatchBytes``.
///
/// The client's reactors fetch ahead (one Fetch request per broker for all its partitions, on a
/// connection of its own) up to ``ConsumerConfiguration/maxBufferedBytes``; a full buffer stops
/// fetching instead of dropping data.
///
/// ```swift
/// let consumer = try client.consumer(ConsumerConfiguration())
/// try await consumer.assign([TopicPartition(topic: "events", partition: 0): .earliest])
/// for try await batch in consumer.batches {
///     try await store(batch.records)   // the next batch is already being fetched
/// }
/// ```
///
/// With ``ConsumerConfiguration/groupID`` and ``ConsumerConfiguration/topics`` it is a member
/// of a consumer group (classic or KIP-848): the group assigns its partitions, rebalances call
/// ``ConsumerConfiguration/onAssigned`` / ``ConsumerConfiguration/onRevoked``, and processed
/// positions are committed (see ``ConsumerConfiguration/acknowledgement``). Without topics,
/// ``assign(_:)`` chooses the partitions.
public final class KlifeConsumer: Sendable {
    /// The consumer's settings (with the rate and adaptive limits in force, see
    /// ``setRateLimit(_:)`` and ``setAdaptiveLimit(_:)``).
    public var configuration: ConsumerConfiguration {
        var settings = state.configuration
        settings.rateLimit = state.rateLimit
        settings.adaptiveLimit = state.adaptiveLimit
        return settings
    }
    let state: ConsumerState
    let client: KlifeClient
    let committer: OffsetCommitter
    /// The group membership, for a consumer that subscribes to topics.
    let membership: (any GroupMembership)?
    /// Moves records along their retry chains (with ``ConsumerConfiguration/retryTopics``).
    let mover: RecordMover?
    private let autoCommit = Locked<Task<Void, Never>?>(nil)
    private let closing = Locked(false)
    /// The client's ``KlifeClient/onClose(_:)`` registration, forgotten when the consumer ends.
    private let closeHandler = Locked<UInt64?>(nil)

    init(client: KlifeClient, configuration: ConsumerConfiguration, limiterClock: LimiterClock = .monotonic) {
        self.client = client
        let services = client.fetchers
        self.state = ConsumerState(configuration: configuration, limiterClock: limiterClock) { for s in services { s.wake() } }
        self.committer = OffsetCommitter(state: state, client: client)
        let mover = configuration.retryTopics.map { RecordMover(client: client, topics: $0, sources: configuration.topics) }
        self.mover = mover
        if configuration.isGroupMember {
            let listener = GroupAssignmentHandler(state: state, client: client, committer: committer)
            // The consumer reads its retry topics itself, in the same group.
            var subscription = configuration
            subscription.topics += (mover?.retryTopicNames ?? []).sorted()
            switch configuration.groupProtocol {
            case .classic: membership = ClassicMembership(client: client, settings: subscription, listener: listener)
            case .consumer: membership = ConsumerGroupMembership(client: client, settings: subscription, listener: listener)
            }
        } else {
            membership = nil
        }
        if let membership { committer.sendStaleCommitsAgain(as: membership) }
        let consumer = FetchService.Consumer(
            state: state,
            onPositionLost: { [weak client, state] tp, epoch in
                guard let client else { return }
                Task { await PositionLookup.reset(tp, epoch: epoch, state: state, client: client,
                                                  reason: "fetch \(tp): position out of range") }
            },
            onUndecided: { [weak client, state] claim in
                guard let client else { return }
                Task { await Self.decideFromLog(claim, state: state, client: client) }
            })
        for service in services { service.hub.reactor.submit { service.add(consumer) } }
        if let mover, configuration.retryTopics?.createMissing == true, let membership {
            // Joins once the chains' topics exist (the membership waits for its topics anyway).
            Task { [hub = client.hubs[0], sources = configuration.topics] in
                do throws(KlifeError) {
                    try await mover.createMissingTopics(sources: sources)
                } catch {
                    hub.log(.error, "creating retry topics failed: \(error)")
                }
                membership.start()
            }
        } else {
            membership?.start()
        }
        if let interval = configuration.autoCommitInterval, configuration.groupID != nil {
            // Holds what it commits with, never the consumer: dropping the consumer must free
            // it at once (its deinit cancels this task).
            let task = Task { [committer, membership] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    guard !Task.isCancelled else { return }
                    await Self.commitInBackground(committer, membership: membership)
                }
            }
            autoCommit.withLock { $0 = task }
        }
        // A closed client ends the membership and the batches even while the consumer lives.
        let handler = client.onClose { [weak self] in self?.clientClosed() }
        closeHandler.withLock { $0 = handler }
    }

    /// Dropped without ``close(timeout:)``: nothing may go on for a consumer nobody holds. The
    /// membership stops and leaves the group from a task of its own (a static member stays;
    /// nothing is committed, so the partitions' next owners start from the last commit),
    /// fetching stops, and what was fetched ahead is dropped.
    deinit {
        autoCommit.withLock { $0?.cancel() }
        if let handler = closeHandler.withLock({ $0 }) { client.removeCloseHandler(handler) }
        // close() holds the consumer until it returns: set here means it ran to the end.
        guard !closing.withLock({ $0 }) else { return }
        membership?.abandon()
        state.close()
        for service in client.fetchers { service.hub.reactor.submit { [state] in service.remove(state) } }
    }

    /// The client closed under the consumer: its membership ends (it can never send again)
    /// and ``batches`` ends with `clientClosed`.
    private func clientClosed() {
        autoCommit.withLock { $0?.cancel() }
        membership?.clientClosed()
        state.fail(.clientClosed)
    }

    /// Starts reading `partitions`, each from where its ``ConsumerStart`` says (looked up now).
    /// Partitions already assigned move to the new start.
    /// - Throws: ``KlifeError`` when a start cannot be looked up (unknown topic or partition, …).
    public func assign(_ partitions: [TopicPartition: ConsumerStart]) async throws(KlifeError) {
        var committed: [TopicPartition: Int64] = [:]
        let asking = partitions.filter { $0.value == .committed }.map(\.key)
        if !asking.isEmpty {
            guard let groupID = configuration.groupID else {
                throw .invalidArgument("ConsumerStart.committed needs ConsumerConfiguration.groupID")
            }
            committed = try await client.committedOffsets(groupID: groupID, partitions: asking)
        }
        let epochs = state.assign(Array(partitions.keys))
        for (tp, start) in partitions {
            let offset: Int64
            if start == .committed {
                if let found = committed[tp] {
                    offset = found
                    state.noteCommitted(tp, offset: found)
                } else {
                    switch configuration.offsetReset {
                    case .earliest: offset = try await resolve(.earliest, tp: tp)
                    case .latest: offset = try await resolve(.latest, tp: tp)
                    case .none:
                        state.unassign([tp])
                        throw .broker(.offsetOutOfRange, "\(tp) has no committed offset in group '\(configuration.groupID ?? "")' and offsetReset is none")
                    }
                }
            } else {
                offset = try await resolve(start, tp: tp)
            }
            state.setPosition(tp, offset, ifEpoch: epochs[tp])
        }
    }

    /// Commits, for ``ConsumerConfiguration/groupID``, the processed position of every assigned
    /// partition: the offset after the last processed record. With
    /// ``BatchAcknowledgement/onNextBatch`` every batch handed out by ``next()`` counts as
    /// processed when this is called (call it after processing them); with
    /// ``BatchAcknowledgement/explicit`` and in ``run(_:)-((ConsumerBatch)->Void)`` only batches marked processed count.
    /// The committed offset never passes a record the application has not finished.
    /// - Throws: ``KlifeError`` from the coordinator; a group member in the middle of a
    ///   rebalance gets `REBALANCE_IN_PROGRESS` (its revoke commits instead);
    ///   `invalidArgument` in ``run(transactional:_:)-(_,(ConsumerBatch,Transaction)->Void)`` (only its transactions commit).
    public func commit() async throws(KlifeError) {
        if state.commitsInTransactions { throw ConsumerState.committedOnlyByTransactions }  // run(transactional:)
        if configuration.acknowledgement == .onNextBatch && !state.handlerMode { state.markDeliveredProcessed() }
        try await committer.commitProcessed(member: try memberIdentity())
    }

    /// Commits `offsets` (the next offset to read per partition) for ``ConsumerConfiguration/groupID``.
    /// - Throws: ``KlifeError`` from the coordinator; `invalidArgument` in
    ///   ``run(transactional:_:)-(_,(ConsumerBatch,Transaction)->Void)`` (only its transactions commit).
    public func commit(_ offsets: [TopicPartition: Int64]) async throws(KlifeError) {
        try await committer.commit(offsets, member: try memberIdentity())
    }

    /// Marks `batch` processed: its records may be committed (automatically, on revoke, on
    /// close or by ``commit()``). Needed with ``BatchAcknowledgement/explicit``; harmless otherwise.
    public func markProcessed(_ batch: ConsumerBatch) {
        state.markProcessed(batch)
    }

    /// The group member's identity for a commit; `nil` outside group membership.
    private func memberIdentity() throws(KlifeError) -> GroupCommitIdentity? {
        guard let membership else { return nil }
        guard let identity = membership.commitIdentity else {
            throw .broker(.rebalanceInProgress, "commit for group '\(configuration.groupID ?? "")': the member is between generations")
        }
        return identity
    }

    /// The auto-commit: processed positions, as the member is now; failures are logged (the
    /// next one carries the same positions).
    private static func commitInBackground(_ committer: OffsetCommitter, membership: (any GroupMembership)?) async {
        if membership != nil && membership?.commitIdentity == nil { return }
        do {
            try await committer.commitProcessed(member: membership?.commitIdentity)
        } catch {
            committer.client.hubs[0].log(.warning, "auto-commit for group '\(committer.state.configuration.groupID ?? "")' failed: \(error)")
        }
    }

    /// Stops reading `partitions` and drops what was fetched ahead for them.
    public func unassign(_ partitions: [TopicPartition]) {
        state.unassign(partitions)
    }

    /// The partitions assigned now.
    public var assignment: Set<TopicPartition> { state.state.withLock { Set($0.partitions.keys) } }

    /// Moves a partition's position: the next batch of it starts at `offset` (fetched-ahead
    /// records of it are dropped).
    public func seek(_ tp: TopicPartition, to offset: Int64) {
        state.setPosition(tp, offset)
    }

    /// The offset after the last record handed out for `tp` (where reading goes on), or `nil`
    /// when `tp` is not assigned or its start is still being looked up.
    public func position(_ tp: TopicPartition) -> Int64? {
        state.state.withLock { s in s.partitions[tp].flatMap { $0.deliveredPosition >= 0 ? $0.deliveredPosition : nil } }
    }

    /// The group's committed offset of `tp` as this consumer knows it: what the group had
    /// committed when the partition was assigned, or this consumer's last successful commit since.
    /// `nil` when `tp` is not assigned or nothing is committed for it. (Another member's commit
    /// for a partition not assigned here: ``KlifeClient/committedOffsets(groupID:partitions:)``.)
    public func committed(_ tp: TopicPartition) -> Int64? {
        state.state.withLock { s in s.partitions[tp].flatMap { $0.committedPosition >= 0 ? $0.committedPosition : nil } }
    }

    /// The offset after the last record the application finished with (processed, what a
    /// commit sends) for `tp`, or `nil` when `tp` is not assigned or nothing was processed.
    public func processed(_ tp: TopicPartition) -> Int64? {
        state.state.withLock { s in s.partitions[tp].flatMap { ConsumerState.commitPosition($0) >= 0 ? ConsumerState.commitPosition($0) : nil } }
    }

    /// Stops handing out and fetching batches of `partitions`; batches fetched ahead are kept
    /// for ``resume(_:)``.
    public func pause(_ partitions: [TopicPartition]) { state.setPaused(partitions, true) }

    /// Resumes paused partitions.
    public func resume(_ partitions: [TopicPartition]) { state.setPaused(partitions, false) }

    /// Records not yet read per partition (from the last answer: high watermark, or the last
    /// stable offset at read_committed, minus the position handed out).
    public var lag: [TopicPartition: Int64] {
        state.state.withLock { s in
            var lag: [TopicPartition: Int64] = [:]
            for (tp, p) in s.partitions where p.highWatermark >= 0 && p.deliveredPosition >= 0 {
                let end = p.lastStableOffset >= 0 ? min(p.lastStableOffset, p.highWatermark) : p.highWatermark
                lag[tp] = max(0, end - p.deliveredPosition)
            }
            return lag
        }
    }

    /// The next batch, waiting until one is fetched; `nil` after ``close(timeout:)``.
    /// - Throws: ``KlifeError`` when fetching failed for good (for example `OFFSET_OUT_OF_RANGE`
    ///   with ``OffsetResetPolicy/none``), or when another task is already waiting.
    public func next() async throws(KlifeError) -> ConsumerBatch? {
        try await state.next()
    }

    /// The batches as an asynchronous sequence (one reader at a time).
    public var batches: Batches { Batches(consumer: self) }

    /// Closes the consumer gracefully: stops fetching, waits up to `timeout` for batches being
    /// processed (handlers of ``run(_:)-((ConsumerBatch)->Void)``; with ``BatchAcknowledgement/explicit``, batches not
    /// yet marked processed), commits what was processed, leaves the group (a static member
    /// stays: its partitions wait for it until the session times out), and ends ``batches``.
    /// Fetched-ahead records are dropped. Calling it again does nothing.
    public func close(timeout: Duration = .seconds(30)) async {
        let first = closing.withLock { c -> Bool in
            defer { c = true }
            return !c
        }
        guard first else { return }
        autoCommit.withLock { $0?.cancel() }
        await membership?.stop()
        let assigned = assignment
        state.beginRevoke(assigned)
        if configuration.acknowledgement == .onNextBatch && !state.handlerMode { state.markOutstandingProcessed() }
        _ = await state.waitUntilFinished(assigned, timeout: timeout)
        if configuration.groupID != nil && (membership == nil || membership?.commitIdentity != nil) {
            do {
                try await committer.commitProcessed(member: membership?.commitIdentity)
            } catch {
                client.hubs[0].log(.warning, "commit on close for group '\(configuration.groupID ?? "")' failed: \(error)")
            }
        }
        await membership?.leave()
        state.close()
        for service in client.fetchers { service.hub.reactor.submit { [state] in service.remove(state) } }
        if let handler = closeHandler.withLock({ $0 }) { client.removeCloseHandler(handler) }
    }

    /// Membership counters (zeros outside group membership).
    public var groupStatistics: GroupStatistics { membership?.statistics ?? GroupStatistics() }

    /// ``KlifeConsumer/batches``.
    public struct Batches: AsyncSequence, Sendable {
        /// One batch of one partition.
        public typealias Element = ConsumerBatch
        let consumer: KlifeConsumer

        /// Creates the iterator.
        public func makeAsyncIterator() -> Iterator { Iterator(consumer: consumer) }

        /// Calls ``KlifeConsumer/next()``.
        public struct Iterator: AsyncIteratorProtocol {
            let consumer: KlifeConsumer

            /// The next batch, or `nil` once the consumer is closed.
            public mutating func next() async throws(KlifeError) -> ConsumerBatch? {
                try await consumer.next()
            }
        }
    }

    // MARK: Positions

    private func resolve(_ start: ConsumerStart, tp: TopicPartition) async throws(KlifeError) -> Int64 {
        switch start {
        case .offset(let offset): return offset
        case .earliest: return try await client.listOffset(topic: tp.topic, partition: tp.partition, .earliest)
        case .latest:
            return try await client.listOffset(topic: tp.topic, partition: tp.partition, .latest, isolation: configuration.isolation)
        case .committed:
            return try await resolve(configuration.offsetReset == .earliest ? .earliest : .latest, tp: tp)
        case .timestamp(let ms):
            let offset = try await client.listOffset(topic: tp.topic, partition: tp.partition, .timestamp(ms))
            if offset >= 0 { return offset }
            return try await client.listOffset(topic: tp.topic, partition: tp.partition, .latest, isolation: configuration.isolation)
        }
    }

    /// read_committed when the broker's answer moved nothing below its last stable offset: the
    /// client's fetch decides transactions from the log (see `KlifeClient+Fetch.swift`).
    private static func decideFromLog(_ claim: ConsumerState.Claim, state: ConsumerState, client: KlifeClient) async {
        do {
            let page = try await client.fetch(topic: claim.tp.topic, partition: claim.tp.partition, offset: claim.position,
                                              maxBytes: state.configuration.partitionMaxBytes,
                                              maxWait: state.configuration.fetchMaxWait, isolation: .readCommitted)
            state.deliver(page.records, tp: claim.tp, epoch: claim.epoch, nextOffset: page.nextOffset,
                          highWatermark: page.highWatermark, lastStableOffset: page.lastStableOffset)
        } catch {
            state.fetchFailed(claim.tp, epoch: claim.epoch, now: Reactor.monotonicNanoseconds())
        }
        state.wakeFetchers()
    }
}

extension KlifeClient {
    /// A consumer reading through this client's reactors and connections (its fetches use a
    /// connection of their own per broker, so they never delay produce acknowledgements).
    /// - Throws: ``KlifeError/Code/invalidConfiguration`` naming the bad field.
    public func consumer(_ configuration: ConsumerConfiguration = ConsumerConfiguration()) throws(KlifeError) -> KlifeConsumer {
        try configuration.validate()
        if isClosed { throw .clientClosed }
        return KlifeConsumer(client: self, configuration: configuration)
    }
}
