import KlifeIO
import KlifeProtocol

/// A member of a share group (KIP-932): records of the subscribed topics are handed out to
/// the group's members record by record, not partition by partition, so many members may read
/// one partition together; each record is acknowledged on its own (accept, release, reject).
///
/// ```swift
/// let consumer = try client.shareConsumer(ShareConsumerConfiguration(groupID: "jobs", topics: ["jobs"]))
/// for try await batch in consumer.batches {           // implicit mode: accepted on the next batch
///     for record in batch where !(await run(record)) { try consumer.acknowledge(record, .release) }
/// }
/// ```
///
/// Each record arrives with its delivery count, under an acquisition lock the broker grants
/// for ``acquisitionLockTimeout``: a record neither acknowledged nor accepted implicitly by
/// then goes back to the group and is delivered again with a higher count. Acknowledgements
/// ride the next ShareFetch to the broker that delivered the record, or a ShareAcknowledge
/// when no fetch to it is due (``commit()``, ``close()``). Batches are fetched when asked for,
/// never ahead: a member only holds locks on records it is about to be given.
///
/// Thread-safe: ``acknowledge(_:_:)-(ShareRecord,_)`` may be called from any task; one task at a time should
/// ask for batches.
public final class KlifeShareConsumer: Sendable {
    /// A running count of what the consumer did.
    public struct Statistics: Sendable, Hashable {
        /// Records handed to the application.
        public var recordsDelivered = 0
        /// Records acknowledged, by type (implicit acceptances included).
        public var accepted = 0
        /// Records released.
        public var released = 0
        /// Records rejected.
        public var rejected = 0
        /// Records moved to the dead-letter topic (and accepted).
        public var deadLettered = 0
        /// Partitions whose acknowledgements a broker refused (for example a lock that had run out).
        public var acknowledgementErrors = 0
        /// Held records dropped because their share session ended (they return to the group).
        public var recordsDropped = 0
        /// Share sessions lost and opened again.
        public var sessionsReset = 0
        /// Times the rate limit or a downstream permit held the consumer back.
        public var flowControlWaits = 0
        /// ShareGroupHeartbeat answers received.
        public var heartbeats = 0
        /// Times the member joined again after the coordinator fenced it or forgot it.
        public var rejoins = 0
        /// Times the member looked for its group coordinator (once at the start, again after it moved).
        public var coordinatorSearches = 0
    }

    private struct State {
        var buffered: [ShareBatch] = []
        var closed = false
        var statistics = Statistics()
    }

    /// The settings the consumer was made with.
    public let configuration: ShareConsumerConfiguration
    private let client: KlifeClient
    private let membership: ShareGroupMembership
    private let fetcher: ShareFetcher
    private let flow: ShareFlowControl
    private let state = Locked(State())

    init(client: KlifeClient, configuration: ShareConsumerConfiguration) {
        self.client = client
        self.configuration = configuration
        self.membership = ShareGroupMembership(client: client, settings: configuration)
        self.fetcher = ShareFetcher(client: client, settings: configuration, memberID: membership.memberID)
        self.flow = ShareFlowControl(rateLimit: configuration.rateLimit, permits: configuration.downstream)
        membership.start()
    }

    /// The member id this consumer generated and joined the group with.
    public var memberID: String { membership.memberID }

    /// The member epoch the coordinator last gave this member: 0 while joining, -1 once left.
    public var memberEpoch: Int32 { membership.epoch }

    /// The partitions the coordinator assigned to this member now (other members may be
    /// assigned the same ones).
    public var assignment: Set<TopicPartition> { Set(membership.assignment.keys) }

    /// How long the brokers let this member hold a record it was given (from the last
    /// ShareFetch answer); `nil` before the first.
    public var acquisitionLockTimeout: Duration? { fetcher.acquisitionLockTimeout }

    /// Records given to this consumer and not acknowledged yet.
    public var heldRecords: Int { fetcher.heldRecords }

    /// What the consumer did so far.
    public var statistics: Statistics {
        let counters = fetcher.counters
        var statistics = state.withLock { $0.statistics }
        statistics.acknowledgementErrors = counters.acknowledgementErrors
        statistics.recordsDropped = counters.recordsDropped
        statistics.sessionsReset = counters.sessionsReset
        statistics.flowControlWaits = flow.waits
        (statistics.heartbeats, statistics.rejoins, statistics.coordinatorSearches) = membership.counters
        return statistics
    }

    /// The next batch of records (at most ``ShareConsumerConfiguration/maxRecords``, one
    /// partition), waiting until there is one. In implicit mode, first accepts every record of
    /// earlier batches not acknowledged yet. With ``ShareConsumerConfiguration/downstream``,
    /// releases the previous batch's permit and acquires one for this batch; with
    /// ``ShareConsumerConfiguration/rateLimit``, waits until the limit allows a batch. Both
    /// waits happen before fetching, so no record is held while waiting.
    /// - Returns: `nil` once the consumer is closed.
    /// - Throws: ``KlifeError`` when the membership or a fetch fails for good: a broker
    ///   without share groups (``KlifeError/Code/unsupportedVersion``, naming the missing API),
    ///   an authorization failure; ``KlifeError/Code/cancelled`` when the task is cancelled.
    public func next() async throws(KlifeError) -> ShareBatch? {
        if configuration.acknowledgement == .implicit { acceptHandedOut() }
        flow.releasePermit()
        while true {
            if Task.isCancelled { throw .cancelled }
            if state.withLock({ $0.closed }) { return nil }
            if let error = membership.failure { throw error }
            let version = membership.version
            let assignment = membership.assignment
            if assignment.isEmpty && state.withLock({ $0.buffered.isEmpty }) {
                // Nothing assigned (any more): settle what is owed and close the sessions left,
                // so the brokers hand what this member held to the others at once. No permit
                // is held while waiting.
                flow.releasePermit()
                if fetcher.hasOpenSessions { _ = try await fetcher.round([:]) }
                _ = await membership.waitForChange(after: version)
                continue
            }
            try await flow.admit()
            if let batch = state.withLock({ s in s.buffered.isEmpty ? nil : s.buffered.removeFirst() }) {
                fetcher.handedOut(batch)
                flow.handedOut(records: batch.count, bytes: batch.records.payloadBytes)
                state.withLock { $0.statistics.recordsDelivered += batch.count }
                return batch
            }
            let delivered = try await fetcher.round(assignment)
            let kept = await moveDeadLetters(delivered)
            state.withLock { $0.buffered += kept.filter { !$0.isEmpty } }
        }
    }

    /// The batches, as an asynchronous sequence that ends when the consumer closes.
    public var batches: Batches { Batches(consumer: self) }

    /// Settles `record`: it rides the next ShareFetch to the broker that delivered it (or
    /// ``commit()``).
    /// - Throws: ``KlifeError/Code/invalidArgument`` when this consumer does not hold the record
    ///   (acknowledged already, never delivered here, or its share session was lost).
    public func acknowledge(_ record: ShareRecord, _ type: ShareAcknowledgement = .accept) throws(KlifeError) {
        guard fetcher.settle(record.source, offset: record.offset, as: type.wireType) else {
            throw .invalidArgument("\(record.topic)/\(record.partition)@\(record.offset) is not held by this share "
                                   + "consumer (acknowledged already, or its share session ended)")
        }
        count(type, 1)
    }

    /// Settles every record of `batch` this consumer still holds the same way.
    public func acknowledge(_ batch: ShareBatch, _ type: ShareAcknowledgement = .accept) {
        var settled = 0
        for position in batch.indices
        where fetcher.settle(batch.source, offset: batch.records.offset(at: position), as: type.wireType) {
            settled += 1
        }
        count(type, settled)
    }

    /// Sends every acknowledgement made so far now (ShareAcknowledge to each broker owed one)
    /// instead of with the next fetch; in implicit mode, first accepts the records handed out.
    /// - Throws: ``KlifeError`` when a broker refuses for good.
    public func commit() async throws(KlifeError) {
        if configuration.acknowledgement == .implicit { acceptHandedOut() }
        try await fetcher.flush()
    }

    /// Leaves the group: in implicit mode accepts the records handed out, sends every
    /// acknowledgement and closes each share session (the brokers release the records still
    /// held, for other members), then leaves with a last heartbeat. Idempotent.
    public func close() async {
        let first = state.withLock { s -> Bool in
            defer { s.closed = true }
            return !s.closed
        }
        guard first else { return }
        if configuration.acknowledgement == .implicit { acceptHandedOut() }
        flow.releasePermit()
        await fetcher.close()
        await membership.leave()
    }

    // MARK: Private

    private func acceptHandedOut() {
        count(.accept, fetcher.acceptHandedOut())
    }

    private func count(_ type: ShareAcknowledgement, _ n: Int) {
        guard n > 0 else { return }
        state.withLock { s in
            switch type {
            case .accept: s.statistics.accepted += n
            case .release: s.statistics.released += n
            case .reject: s.statistics.rejected += n
            }
        }
    }

    /// With a dead-letter topic: moves the records delivered more often than allowed there and
    /// accepts them; a record whose move failed is released (it comes back, and is tried again).
    private func moveDeadLetters(_ batches: [ShareBatch]) async -> [ShareBatch] {
        guard let deadLetter = configuration.deadLetter else { return batches }
        var kept: [ShareBatch] = []
        for batch in batches {
            let over = batch.indices.filter { Int(batch.deliveryCounts[$0]) > deadLetter.maxDeliveryCount }
            guard !over.isEmpty else {
                kept.append(batch)
                continue
            }
            for position in over {
                let record = batch[position]
                var headers = record.record.headers
                headers.append(RecordHeader(key: "klife-share-source",
                                            value: Array("\(record.topic)/\(record.partition)/\(record.offset)".utf8)))
                headers.append(RecordHeader(key: "klife-share-deliveries", value: Array("\(record.deliveryCount)".utf8)))
                let moved = ProducerRecord(topic: deadLetter.topic, key: record.key.map { Array($0) },
                                           value: record.value.map { Array($0) }, headers: headers)
                let type: ShareAcknowledgement
                do {
                    _ = try await client.produce(moved)
                    type = .accept
                    state.withLock { $0.statistics.deadLettered += 1 }
                } catch {
                    type = .release
                }
                if fetcher.settle(batch.source, offset: record.offset, as: type.wireType) { count(type, 1) }
            }
            let overSet = Set(over)
            kept.append(batch.keeping { !overSet.contains($0) })
        }
        return kept
    }

    /// The batches of a share consumer as an `AsyncSequence`.
    public struct Batches: AsyncSequence, Sendable {
        /// The batch type.
        public typealias Element = ShareBatch
        /// The error type.
        public typealias Failure = KlifeError
        let consumer: KlifeShareConsumer

        /// Makes the iterator.
        public func makeAsyncIterator() -> Iterator { Iterator(consumer: consumer) }

        /// Iterates by calling ``KlifeShareConsumer/next()``.
        public struct Iterator: AsyncIteratorProtocol {
            let consumer: KlifeShareConsumer

            /// The next batch, `nil` once the consumer is closed.
            public mutating func next() async throws(KlifeError) -> ShareBatch? { try await consumer.next() }

            /// The next batch, `nil` once the consumer is closed.
            public mutating func next(isolation actor: isolated (any Actor)?) async throws(KlifeError) -> ShareBatch? {
                try await consumer.next()
            }
        }
    }
}

extension KlifeClient {
    /// A share group consumer (KIP-932) reading through this client's reactors; it joins the
    /// group at once.
    /// - Throws: ``KlifeError/Code/invalidConfiguration`` naming the bad field;
    ///   ``KlifeError/Code/clientClosed``.
    public func shareConsumer(_ configuration: ShareConsumerConfiguration) throws(KlifeError) -> KlifeShareConsumer {
        try configuration.validate()
        if isClosed { throw .clientClosed }
        return KlifeShareConsumer(client: self, configuration: configuration)
    }
}
