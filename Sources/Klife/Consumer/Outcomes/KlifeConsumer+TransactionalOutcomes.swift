import KlifeIO

extension KlifeConsumer {
    /// The exactly-once form of the outcome handler: each batch is processed in a transaction
    /// as in ``run(transactional:_:)-(_,(ConsumerBatch,Transaction)->Void)``, and what the handler decides about single records
    /// happens **inside that transaction**. A record to retry is handed to the handler again
    /// alone (with the ``ConsumerConfiguration/failurePolicy`` backoff) before the transaction
    /// commits; a record dead-lettered, or whose attempts ran out, is written to the next topic
    /// of its ``ConsumerConfiguration/retryTopics`` chain in the same transaction as the batch's
    /// offset, so a move and the commit of its source offset happen together or not at all —
    /// also when the process dies in the middle.
    ///
    /// ```swift
    /// settings.isolation = .readCommitted
    /// settings.failurePolicy = FailurePolicy(maxAttempts: 3, backoff: .milliseconds(100), maxBackoff: .seconds(1))
    /// settings.retryTopics = RetryTopics(delays: [.seconds(30)], createMissing: true)
    /// try await consumer.run(transactional: .init()) { batch, txn -> BatchOutcome in
    ///     var outcome = BatchOutcome.done
    ///     for record in batch.records {
    ///         guard let order = Order(record.value) else { outcome.deadLetter(record, reason: "unreadable"); continue }
    ///         _ = try await txn.produce(ProducerRecord(topic: "priced", value: price(order)))
    ///     }
    ///     return outcome
    /// }
    /// ```
    ///
    /// Contract: a record given a retry or dead-letter outcome must have produced nothing in
    /// the transaction (its results would commit with the batch). Throwing, or
    /// ``BatchOutcome/retry(after:error:)``, aborts the transaction and hands the whole batch
    /// out again after the backoff; when the batch's attempts (``FailurePolicy/maxAttempts``)
    /// ran out, one more transaction moves all its records along their chain without calling
    /// the handler.
    ///
    /// Retries of single records keep the transaction open: their waits must fit in
    /// ``TransactionConfiguration/timeout`` (a transaction that outlives it aborts
    /// and the batch starts again: nothing is lost or duplicated, but nothing advances), so set
    /// ``FailurePolicy/maxAttempts``. Halving (``FailurePolicy/isolateFailures``) and
    /// ``RetryTopics/perKeyOrder`` are not available in this form. A record whose attempts ran
    /// out with no topic to take it aborts the transaction and stops its partition at its
    /// committed offset (``stoppedPartitions``).
    /// - Throws: as ``run(transactional:_:)-(_,(ConsumerBatch,Transaction)->Void)``, and `invalidConfiguration` naming
    ///   `consumer.failurePolicy.isolateFailures` or `consumer.retryTopics.perKeyOrder` when set.
    @_disfavoredOverload  // a handler whose last statement has a value is the form above
    public func run(transactional options: TransactionalRunOptions,
                    _ handler: @escaping @Sendable (ConsumerBatch, Transaction) async throws -> BatchOutcome) async throws(KlifeError) {
        try checkTransactionalSetup(options)
        let settings = state.configuration
        if settings.failurePolicy.isolateFailures {
            throw .invalidConfiguration("consumer.failurePolicy.isolateFailures", "is not available with run(transactional:) (a failed half would abort the whole transaction)")
        }
        if settings.retryTopics?.perKeyOrder == true {
            throw .invalidConfiguration("consumer.retryTopics.perKeyOrder", "is not available with run(transactional:)")
        }
        guard state.enterTransactionalHandlerMode() else {
            throw .invalidArgument("a consumer's batches go either to one run or to next(), and a run runs once")
        }
        try await dispatchBatches { [self] batch in await processOutcomesInTransactions(batch, with: handler) }
    }

    /// Why a transaction attempt ended without committing, other than an error.
    private enum TransactionalStop: Error {
        /// The whole batch is to be handed out again (after `after`, or the policy's backoff).
        case retryBatch(after: Duration?, error: String)
        /// A record failed for good with nowhere to go: its partition stops.
        case stopPartition(KlifeError)
    }

    /// Runs `batch` in transactions until one commits, its partition is gone or stopped, the
    /// producer is fenced, or the consumer ended.
    private func processOutcomesInTransactions(_ batch: ConsumerBatch,
                                               with handler: @escaping @Sendable (ConsumerBatch, Transaction) async throws -> BatchOutcome) async {
        let policy = state.configuration.failurePolicy
        let started = Reactor.monotonicNanoseconds()
        let firstFailure = currentTimeMilliseconds()
        var attempt = 0
        var lastError = ""
        while true {
            attempt += 1
            let exhausted = policy.maxAttempts.map { attempt > $0 } ?? false
            let moves = Locked(OutcomeCounters())
            var wait: Duration?
            do {
                try await commitInTransaction(batch) { [self, attempt, lastError] batch, txn in
                    if exhausted {
                        for record in batch.records {
                            try await moveInTransaction(record, of: batch, deadLetter: false, error: lastError,
                                                        attempts: attempt - 1, firstFailure: firstFailure, txn: txn, moves: moves)
                        }
                    } else {
                        try await settleInTransaction(batch, txn: txn, handler: handler, attempt: attempt,
                                                      firstFailure: firstFailure, moves: moves)
                    }
                }
                let counted = moves.withLock { $0 }
                state.count {
                    $0.retries += counted.retries
                    $0.movedToRetry += counted.movedToRetry
                    $0.deadLettered += counted.deadLettered
                }
                state.noteHandlerLatency(Reactor.monotonicNanoseconds() &- started)
                state.markCommittedInTransaction(batch)
                return
            } catch TransactionalStop.stopPartition(let error) {
                client.hubs[0].log(.error, "\(error); the transaction was aborted")
                state.count { $0.stops += 1 }
                state.markAbandoned(batch)
                state.stop(batch, error: error)
                return
            } catch TransactionalStop.retryBatch(let after, let error) {
                lastError = error
                wait = after
            } catch let error as KlifeError where error.code == .producerFenced {
                client.hubs[0].log(.error, "transaction for \(batch.topicPartition): \(error); the consumer stops")
                state.markAbandoned(batch)
                state.fail(error)
                return
            } catch {
                lastError = "\(error)"
            }
            state.noteHandlerFailure(batch)
            state.count { $0.retries += 1 }
            client.hubs[0].log(.warning, "transaction for \(batch.topicPartition) at offset \(batch.records.first?.offset ?? batch.nextOffset) aborted (attempt \(attempt)): \(lastError)")
            var random = SystemRandomNumberGenerator()
            try? await Task.sleep(for: wait ?? policy.delay(afterAttempt: attempt, random: &random))
            guard state.isCurrentPosition(batch) else {
                state.markAbandoned(batch)
                return
            }
        }
    }

    /// Inside the transaction: the handler on the batch, then each failed record alone until it
    /// is done or moved along its chain (also in the transaction).
    private func settleInTransaction(_ batch: ConsumerBatch, txn: Transaction,
                                     handler: @Sendable (ConsumerBatch, Transaction) async throws -> BatchOutcome,
                                     attempt: Int, firstFailure: Int64, moves: Locked<OutcomeCounters>) async throws {
        let policy = state.configuration.failurePolicy
        let outcome = try await handler(batch, txn)
        if let retry = outcome.retryBatch { throw TransactionalStop.retryBatch(after: retry.after, error: retry.error) }
        guard !outcome.failures.isEmpty else { return }
        for (index, record) in batch.records.enumerated() {
            guard var failed = outcome.failures[record.offset] else { continue }
            var attempts = attempt
            while true {
                switch failed {
                case .done:
                    break
                case .deadLetter(let reason):
                    try await moveInTransaction(record, of: batch, deadLetter: true, error: reason, attempts: attempts,
                                                firstFailure: firstFailure, txn: txn, moves: moves)
                case .retry(let after, let error):
                    if let max = policy.maxAttempts, attempts >= max {
                        try await moveInTransaction(record, of: batch, deadLetter: false, error: error, attempts: attempts,
                                                    firstFailure: firstFailure, txn: txn, moves: moves)
                        break
                    }
                    moves.withLock { $0.retries += 1 }
                    var random = SystemRandomNumberGenerator()
                    try await Task.sleep(for: after ?? policy.delay(afterAttempt: attempts, random: &random))
                    attempts += 1
                    let alone = try await handler(batch.subBatch(index..<index + 1), txn)
                    if let retry = alone.retryBatch {
                        failed = .retry(after: retry.after, error: retry.error)
                    } else {
                        failed = alone.outcome(forOffset: record.offset)
                    }
                    continue
                }
                break
            }
        }
    }

    /// Writes `record` to the next topic of its chain in the transaction, or ends the attempt
    /// with a stop when the chain has none.
    private func moveInTransaction(_ record: ConsumerRecord, of batch: ConsumerBatch, deadLetter: Bool, error: String,
                                   attempts: Int, firstFailure: Int64, txn: Transaction,
                                   moves: Locked<OutcomeCounters>) async throws {
        guard let mover, let destination = mover.destination(from: record.topic, deadLetter: deadLetter) else {
            let reason = deadLetter ? "dead-lettered (\(error)) without a dead-letter topic" : error
            throw TransactionalStop.stopPartition(.recordFailed(batch.topicPartition, offset: record.offset,
                                                                attempts: attempts, error: reason))
        }
        _ = try await txn.produce(mover.copy(record, to: destination, attempts: attempts, error: error, firstFailure: firstFailure))
        moves.withLock { destination.delay == nil ? ($0.deadLettered += 1) : ($0.movedToRetry += 1) }
    }
}
