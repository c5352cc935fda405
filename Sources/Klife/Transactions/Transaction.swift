import KlifeIO
import KlifeProtocol

/// An open Kafka transaction, handed to the block of ``KlifeClient/transaction(isolation:_:)``.
///
/// Everything produced through it, and the consumer offsets sent with
/// ``sendOffsets(_:group:)`` or ``sendOffsets(_:groupID:)``, becomes visible to `read_committed` consumers together
/// when the block returns, or never, when it throws. Each partition is registered with
/// the transaction coordinator (AddPartitionsToTxn) before its first record leaves.
///
/// Use it only inside its block: once the transaction has ended every call fails with
/// `invalidArgument`. Calls may run concurrently (for example from a task group).
public final class Transaction: Sendable {
    private let client: KlifeClient
    let member: TransactionalMember
    /// Monotonic deadline (ns) from the configured transaction timeout.
    let deadline: UInt64
    private let state = Locked(State())

    private struct State {
        var ended = false
        /// Partitions the coordinator has accepted into this transaction.
        var added: Set<TopicPartition> = []
        /// Partitions being added by some call, with the calls waiting for the answer.
        var adding: [TopicPartition: [CheckedContinuation<KlifeError?, Never>]] = [:]
        /// Whether the coordinator knows this transaction (a partition or offsets were added).
        var begun = false
    }

    /// Records of the session that had failed before this transaction began.
    let failuresBefore: Int

    init(client: KlifeClient, member: TransactionalMember, deadline: UInt64) {
        self.client = client
        self.member = member
        self.deadline = deadline
        self.failuresBefore = member.session.outstanding.failedCount
    }

    /// The transactional id of the pool member running this transaction.
    public var transactionalID: String { member.transactionalID }

    /// The producer id and epoch the transaction's batches carry.
    public var producerIdentity: (producerID: Int64, epoch: Int16) {
        let value = member.session.identity.current
        return (value.producerID, value.epoch)
    }

    // MARK: Producing

    /// Produces one record in the transaction and waits for the broker's acknowledgement.
    /// The record stays invisible to `read_committed` readers until the transaction commits.
    /// - Returns: where the record was written.
    /// - Throws: ``KlifeError`` — as ``KlifeClient/produce(_:)``, plus `producerFenced`; a
    ///   failed record makes the whole transaction abort when the block ends.
    public func produce(_ record: ProducerRecord) async throws(KlifeError) -> RecordMetadata {
        let placed = try await place([record])
        return try await client.produce(placed[0], session: member.session)
    }

    /// Produces many records in the transaction and waits for all; partitions new to the
    /// transaction are registered in one AddPartitionsToTxn call.
    /// - Returns: one result per record, in order.
    public func produceBatch(_ records: [ProducerRecord]) async throws(KlifeError) -> [Result<RecordMetadata, KlifeError>] {
        guard !records.isEmpty else { return [] }
        let placed = try await place(records)
        return await client.produceBatch(placed, session: member.session)
    }

    /// Queues one record in the transaction without waiting for its acknowledgement; the
    /// transaction's commit waits for it. `onDelivery` runs once with the outcome (on a
    /// reactor thread).
    public func enqueue(_ record: ProducerRecord,
                        onDelivery: @escaping @Sendable (Result<RecordMetadata, KlifeError>) -> Void = { _ in }) async throws(KlifeError) {
        let placed = try await place([record])
        try await client.enqueue(placed[0], session: member.session, onDelivery: onDelivery)
    }

    /// Adds consumer-group offsets to the transaction: they are committed for `groupID`
    /// if and only if the transaction commits (consume-transform-produce, exactly once).
    /// They are sent as by no member of the group, which a coordinator accepts only while the
    /// group has no active members; a group member sends ``sendOffsets(_:group:)`` instead.
    /// - Parameters:
    ///   - offsets: For each partition, the offset of the next record to consume (last processed + 1).
    ///   - groupID: The consumer group whose offsets these are.
    public func sendOffsets(_ offsets: [TopicPartition: Int64], groupID: String) async throws(KlifeError) {
        try await sendOffsets(offsets, group: ConsumerGroupMetadata(groupID: groupID))
    }

    /// Adds consumer-group offsets to the transaction as the group member `group` describes
    /// (KIP-447): the group coordinator accepts them only while that member still holds its
    /// generation (classic protocol) or member epoch (consumer protocol), so a zombie — a
    /// member the group has moved on without — cannot commit offsets for partitions that now
    /// belong to another member. They are committed if and only if the transaction commits.
    ///
    /// ```swift
    /// try await client.transaction { txn in
    ///     _ = try await txn.produce(ProducerRecord(topic: "enriched", value: enrich(record)))
    ///     try await txn.sendOffsets([batch.topicPartition: batch.nextOffset], group: consumer.groupMetadata!)
    /// }
    /// ```
    ///
    /// The member fields travel in TxnOffsetCommit v3 and later; a broker that only speaks
    /// older versions gets the offsets without them (no fencing by generation).
    /// - Parameters:
    ///   - offsets: For each partition, the offset of the next record to consume (last processed + 1).
    ///   - group: The group and the member sending (``KlifeConsumer/groupMetadata``).
    /// - Throws: ``KlifeError``: ``KlifeError/Code/groupMemberFenced`` when the coordinator no
    ///   longer takes offsets from this member (the transaction will abort; the transactional
    ///   producer stays usable), `producerFenced`, or a broker or connection error. Any failure
    ///   makes the transaction abort when its block ends, even if the block catches it.
    public func sendOffsets(_ offsets: [TopicPartition: Int64], group: ConsumerGroupMetadata) async throws(KlifeError) {
        guard !group.groupID.isEmpty else { throw .invalidArgument("sendOffsets needs a group id") }
        guard !offsets.isEmpty else { return }
        try checkUsable()
        state.withLock { $0.begun = true }
        do {
            try await client.sendOffsetsToTransaction(offsets, group: group, member: member)
        } catch {
            member.session.markAbortable(error)
            throw error
        }
    }

    // MARK: Placement and registration

    /// Gives each record its partition (running the partitioner where none is set, with
    /// metadata fetched if needed) and registers new partitions with the coordinator.
    private func place(_ records: [ProducerRecord]) async throws(KlifeError) -> [ProducerRecord] {
        try checkUsable()
        var placed = records
        var partitions: Set<TopicPartition> = []
        for i in placed.indices {
            let topic = placed[i].topic
            if topic.isEmpty { throw .invalidArgument("record topic is empty") }
            let count = try await partitionCount(of: topic)
            if let p = placed[i].partition {
                guard p >= 0 && p < count else { throw .unknownTopicOrPartition(topic, partition: p) }
            } else {
                let p = client.partitions.choose(topic: topic, key: placed[i].key, value: placed[i].value,
                                                           partitionCount: count)
                guard p >= 0 && p < count else {
                    throw .invalidArgument("the partitioner for \(topic) chose partition \(p) of \(count)")
                }
                placed[i].partition = p
            }
            partitions.insert(TopicPartition(topic: topic, partition: placed[i].partition!))
        }
        try await register(partitions)
        return placed
    }

    private func partitionCount(of topic: String) async throws(KlifeError) -> Int32 {
        if let route = client.metadataStore.snapshot.routes[topic] { return route.partitionCount }
        client.noteTopicOfInterest(topic)
        let metadata = try await client.refreshMetadata(topics: [topic])
        guard let t = metadata.topics[topic], !t.partitions.isEmpty else { throw .unknownTopicOrPartition(topic) }
        return Int32(t.partitions.count)
    }

    /// Makes sure every partition in `partitions` is part of the transaction: sends one
    /// AddPartitionsToTxn for those nobody is adding yet, and waits for those another
    /// concurrent call is adding.
    private func register(_ partitions: Set<TopicPartition>) async throws(KlifeError) {
        let (toSend, toAwait): ([TopicPartition], [TopicPartition]) = state.withLock { s in
            var send: [TopicPartition] = []
            var waitFor: [TopicPartition] = []
            for tp in partitions where !s.added.contains(tp) {
                if s.adding[tp] != nil { waitFor.append(tp) } else { s.adding[tp] = []; send.append(tp) }
            }
            return (send, waitFor)
        }
        if !toSend.isEmpty {
            var failure: KlifeError?
            do {
                try await client.addPartitionsToTransaction(toSend, member: member)
            } catch {
                failure = error
            }
            let waiters = state.withLock { s -> [CheckedContinuation<KlifeError?, Never>] in
                var waiters: [CheckedContinuation<KlifeError?, Never>] = []
                for tp in toSend {
                    waiters += s.adding.removeValue(forKey: tp) ?? []
                    if failure == nil { s.added.insert(tp) }
                }
                if failure == nil { s.begun = true }
                return waiters
            }
            for w in waiters { w.resume(returning: failure) }
            if let failure {
                member.session.markAbortable(failure)
                throw failure
            }
        }
        for tp in toAwait {
            let failure: KlifeError? = await withCheckedContinuation { continuation in
                let done = state.withLock { s -> Bool in
                    guard s.adding[tp] != nil else { return true }
                    s.adding[tp]!.append(continuation)
                    return false
                }
                if done { continuation.resume(returning: nil) }
            }
            if let failure { throw failure }
            // The other call failed before this one could wait: its error is the session's.
            if !state.withLock({ $0.added.contains(tp) }) {
                throw member.session.abortableError ?? .invalidArgument("partition \(tp) could not join the transaction")
            }
        }
    }

    /// Fails when the transaction has ended, its producer is fenced, or its time is up.
    private func checkUsable() throws(KlifeError) {
        if state.withLock({ $0.ended }) { throw .invalidArgument("the transaction of '\(transactionalID)' has already ended") }
        if let fatal = member.session.fatalError { throw fatal }
        if Reactor.monotonicNanoseconds() >= deadline {
            throw .transactionAborted(transactionalID, reason: "the transaction outlived its timeout")
        }
    }

    // MARK: Ending (used by KlifeClient)

    /// Stops accepting calls; returns whether the coordinator knows the transaction.
    func close() -> Bool {
        state.withLock { s in
            s.ended = true
            return s.begun
        }
    }
}
