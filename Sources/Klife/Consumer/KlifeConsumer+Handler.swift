import KlifeIO

extension KlifeConsumer {
    /// Processes every batch with `handler`: one partition's batches one after another in
    /// offset order, different partitions concurrently (a task per partition with data). A
    /// batch counts as processed when its handler returns, and processed positions are
    /// committed by the auto-commit (``ConsumerConfiguration/autoCommitInterval``), on revoke
    /// and on close.
    ///
    /// ```swift
    /// let consumer = try client.consumer(settings)     // settings.groupID, settings.topics
    /// try await consumer.run { batch in
    ///     try await database.insert(batch.records)     // a slow insert never delays heartbeats
    /// }
    /// ```
    ///
    /// A handler that throws gets the same batch again after a backoff (doubling from
    /// ``ConsumerConfiguration/retryBackoff`` to ``ConsumerConfiguration/retryBackoffMax``):
    /// nothing after it in its partition is handed out or committed until it succeeds, and other
    /// partitions go on. When its partition is revoked meanwhile, the retries stop and the
    /// partition's next owner starts from the last commit.
    ///
    /// Returns once ``close(timeout:)`` finished and every handler returned.
    /// - Throws: ``KlifeError`` when the consumer fails for good (for example
    ///   ``OffsetResetPolicy/none`` without a committed offset), or `invalidArgument` when the
    ///   batches are already being read with ``next()`` or another `run`.
    public func run(_ handler: @escaping @Sendable (ConsumerBatch) async throws -> Void) async throws(KlifeError) {
        guard state.enterHandlerMode() else {
            throw .invalidArgument("a consumer's batches go either to run(_:) or to next(), and run(_:) runs once")
        }
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
                group.addTask { [self] in await process(batch, with: handler) }
            }
        }
        if let failure { throw failure }
    }

    /// Runs the handler for one batch until it succeeds or the batch's partition is gone.
    private func process(_ batch: ConsumerBatch, with handler: @Sendable (ConsumerBatch) async throws -> Void) async {
        let started = Reactor.monotonicNanoseconds()
        var attempt = 0
        while true {
            do {
                try await handler(batch)
                state.noteHandlerLatency(Reactor.monotonicNanoseconds() &- started)
                state.markProcessed(batch)
                return
            } catch {
                state.noteHandlerFailure(batch)
                attempt += 1
                client.hubs[0].log(.warning, "handler failed for \(batch.topicPartition) at offset \(batch.records.first?.offset ?? batch.nextOffset) (attempt \(attempt)): \(error)")
                let settings = configuration
                let wait = min(settings.retryBackoff * (1 << min(attempt - 1, 16)), settings.retryBackoffMax)
                try? await Task.sleep(for: wait)
                guard state.isCurrent(batch) else {
                    state.markAbandoned(batch)
                    return
                }
            }
        }
    }
}
