import KlifeIO
import KlifeProtocol

/// Settings of ``KlifeConsumer/run(transactional:_:)-(_,(ConsumerBatch,Transaction)->Void)``.
public struct TransactionalRunOptions: Sendable, Hashable {
    /// Whether the consumer may read its input at ``IsolationLevel/readUncommitted``. Default
    /// `false`: ``ConsumerConfiguration/isolation`` must be ``IsolationLevel/readCommitted``,
    /// or `run(transactional:_:)` fails with `invalidConfiguration` naming
    /// `consumer.isolation`, because reading uncommitted input would process, and commit the
    /// results of, records whose own transaction is later aborted. Set it only for input that
    /// is never written in transactions.
    public var allowReadUncommittedInput: Bool

    /// Creates the settings.
    /// - Parameter allowReadUncommittedInput: see ``allowReadUncommittedInput``.
    public init(allowReadUncommittedInput: Bool = false) {
        self.allowReadUncommittedInput = allowReadUncommittedInput
    }
}

extension KlifeConsumer {
    /// Processes every batch exactly once: for each batch, a transaction on the consumer's
    /// client runs `handler` with the batch and the ``Transaction``, then sends the batch's
    /// next offset for the group (with this member's generation and ids,
    /// ``Transaction/sendOffsets(_:group:)``) and commits. What the handler produced through
    /// the transaction and the consumed position become visible together, or not at all.
    ///
    /// ```swift
    /// var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:9092"])
    /// config.transactions = TransactionConfiguration(baseTransactionalID: "enricher-\(shard)", poolSize: 4)
    /// let client = try await KlifeClient.connect(config)
    /// var settings = ConsumerConfiguration()
    /// settings.groupID = "enricher"
    /// settings.topics = ["raw"]
    /// settings.isolation = .readCommitted                  // required (see TransactionalRunOptions)
    /// let consumer = try client.consumer(settings)
    /// try await consumer.run(transactional: .init()) { batch, txn in
    ///     for r in batch.records {
    ///         _ = try await txn.produce(ProducerRecord(topic: "enriched", key: r.key.map(Array.init), value: enrich(r.value)))
    ///     }
    /// }                                                    // offsets: committed by the transactions
    /// ```
    ///
    /// As in ``run(_:)-((ConsumerBatch)->Void)``, one partition's batches are processed one after another in offset
    /// order and different partitions concurrently, each in its own transaction (a pool member
    /// each: size ``TransactionConfiguration/poolSize`` for the partitions processed at once).
    ///
    /// - **Commits happen only in transactions.** In this mode the consumer never commits
    ///   offsets otherwise: the auto-commit, the commits on revoke and on close do nothing, and
    ///   ``commit()`` / ``commit(_:)`` throw `invalidArgument`. A partition's ``committed(_:)``
    ///   moves when a transaction carrying its offset committed.
    /// - **A failure aborts.** When the handler throws, or the transaction cannot commit, it is
    ///   aborted (nothing the handler produced becomes visible, no offset moves) and the same
    ///   batch is handed to the handler again after a backoff (doubling from
    ///   ``ConsumerConfiguration/retryBackoff`` to ``ConsumerConfiguration/retryBackoffMax``),
    ///   in a new transaction; later batches of its partition wait. When the partition is
    ///   revoked or lost meanwhile, the retries stop; its next owner starts from the last
    ///   committed transaction.
    /// - **Zombies are fenced.** The offsets carry the generation (member epoch) read when the
    ///   attempt began. A coordinator that no longer counts this member as the partition's
    ///   owner refuses them (``KlifeError/Code/groupMemberFenced``): the transaction aborts,
    ///   the transactional producer stays usable, and the member (classic protocol) drops its
    ///   partitions as lost and joins again (`FENCED_INSTANCE_ID` ends the consumer, as from a
    ///   heartbeat); with the consumer protocol it heartbeats at once to learn whether it lost
    ///   them.
    /// - **A fenced producer ends the run.** `producerFenced` (another instance took the
    ///   transactional id) aborts the transaction and makes `run` throw it.
    ///
    /// Returns once ``close(timeout:)`` finished and every handler returned; a revoke or close
    /// waits (bounded by ``ConsumerConfiguration/revokeTimeout`` / the close timeout) for a
    /// transaction in progress to end.
    /// - Parameters:
    ///   - options: See ``TransactionalRunOptions``.
    ///   - handler: Called with each batch and its transaction; produce the batch's results
    ///     through the transaction. Throwing aborts the transaction and retries the batch.
    /// - Throws: ``KlifeError``: `invalidConfiguration` naming `transactions` when the client
    ///   has no ``KlifeConfiguration/transactions``, `consumer.groupID` without a group, or
    ///   `consumer.isolation` (see ``TransactionalRunOptions/allowReadUncommittedInput``);
    ///   `invalidArgument` when the batches are already read by ``next()`` or a `run`;
    ///   `producerFenced`; or what ends the consumer for good (as ``run(_:)-((ConsumerBatch)->Void)``).
    public func run(transactional options: TransactionalRunOptions,
                    _ handler: @escaping @Sendable (ConsumerBatch, Transaction) async throws -> Void) async throws(KlifeError) {
        try checkTransactionalSetup(options)
        guard state.enterTransactionalHandlerMode() else {
            throw .invalidArgument("a consumer's batches go either to one run or to next(), and a run runs once")
        }
        try await dispatchBatches { [self] batch in await processInTransactions(batch, with: handler) }
    }

    /// The handler forms' dispatcher: hands every batch to `process` in a task of its own (its
    /// partition is busy until `process` marks the batch processed or abandoned, so one
    /// partition's batches go one after another), and returns once the consumer ended and
    /// every task finished.
    /// - Throws: what ended the consumer for good (`nil` from ``next()`` is a clean end).
    func dispatchBatches(_ process: @escaping @Sendable (ConsumerBatch) async -> Void) async throws(KlifeError) {
        var failure: KlifeError?
        await withDiscardingTaskGroup { group in
            while true {
                let batch: ConsumerBatch?
                do throws(KlifeError) {
                    batch = try await state.next(markBusy: true)
                } catch {
                    failure = error
                    break
                }
                guard let batch else { break }
                group.addTask { await process(batch) }
            }
        }
        if let failure { throw failure }
    }

    /// The settings exactly-once processing needs, each failure naming its field.
    func checkTransactionalSetup(_ options: TransactionalRunOptions) throws(KlifeError) {
        if client.configuration.transactions == nil {
            throw .invalidConfiguration("transactions", "run(transactional:) needs a client with KlifeConfiguration.transactions set (a transactional id pool)")
        }
        guard let groupID = state.configuration.groupID, !groupID.isEmpty else {
            throw .invalidConfiguration("consumer.groupID", "run(transactional:) commits offsets for a group: set it")
        }
        if state.configuration.isolation != .readCommitted && !options.allowReadUncommittedInput {
            throw .invalidConfiguration("consumer.isolation", "run(transactional:) reads its input at readCommitted (records of aborted transactions must not be processed); set it, or TransactionalRunOptions.allowReadUncommittedInput for input never written in transactions")
        }
    }

    /// Runs `batch` in transactions until one commits, its partition is gone, the producer is
    /// fenced, or the consumer ended.
    private func processInTransactions(_ batch: ConsumerBatch,
                                       with handler: @escaping @Sendable (ConsumerBatch, Transaction) async throws -> Void) async {
        let started = Reactor.monotonicNanoseconds()
        var attempt = 0
        while true {
            do {
                try await commitInTransaction(batch, with: handler)
                state.noteHandlerLatency(Reactor.monotonicNanoseconds() &- started)
                state.markCommittedInTransaction(batch)
                return
            } catch {
                attempt += 1
                let at = "\(batch.topicPartition) at offset \(batch.records.first?.offset ?? batch.nextOffset) (attempt \(attempt))"
                if let fenced = error as? KlifeError, fenced.code == .producerFenced {
                    client.hubs[0].log(.error, "transaction for \(at): \(fenced); the consumer stops")
                    state.markAbandoned(batch)
                    state.fail(fenced)
                    return
                }
                client.hubs[0].log(.warning, "transaction for \(at) aborted: \(error)")
                let settings = state.configuration
                let wait = min(settings.retryBackoff * (1 << min(attempt - 1, 16)), settings.retryBackoffMax)
                try? await Task.sleep(for: wait)
                // A consumer that failed for good (its client closed, a fenced producer of
                // another partition's transaction) retries nothing: its run is ending.
                guard state.isCurrent(batch), !state.isEnded else {
                    state.markAbandoned(batch)
                    return
                }
            }
        }
    }

    /// One attempt: a transaction with the handler's records and the batch's next offset,
    /// sent as this member is now.
    func commitInTransaction(_ batch: ConsumerBatch,
                             with handler: @escaping @Sendable (ConsumerBatch, Transaction) async throws -> Void) async throws {
        let group = try transactionalGroupMetadata()
        let membership = membership
        try await client.transaction { txn in
            try await handler(batch, txn)
            do throws(KlifeError) {
                try await txn.sendOffsets([batch.topicPartition: batch.nextOffset], group: group)
            } catch {
                if error.code == .groupMemberFenced, let code = error.kafkaErrorCode {
                    membership?.transactionalOffsetsRefused(as: GroupCommitIdentity(group), code: code)
                }
                throw error
            }
        }
    }

    /// The metadata a transaction's offsets carry; a group member between generations has
    /// none to send (the attempt fails and is retried).
    private func transactionalGroupMetadata() throws(KlifeError) -> ConsumerGroupMetadata {
        let groupID = state.configuration.groupID ?? ""
        guard let membership else { return ConsumerGroupMetadata(groupID: groupID) }
        guard let identity = membership.commitIdentity else {
            throw .broker(.rebalanceInProgress, "transactional offsets for group '\(groupID)': the member is between generations")
        }
        return ConsumerGroupMetadata(groupID: groupID, generationID: identity.generationOrEpoch,
                                     memberID: identity.memberID, groupInstanceID: identity.instanceID)
    }
}
