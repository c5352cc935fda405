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
    /// A handler that throws gets the same batch again after a backoff, as
    /// ``ConsumerConfiguration/failurePolicy`` says (by default without limit, doubling from
    /// 100 ms to 30 s with jitter): nothing after it in its partition is handed out or
    /// committed meanwhile, and other partitions go on. When its partition is revoked
    /// meanwhile, the retries stop and the partition's next owner starts from the last commit.
    /// For outcomes per record (retry one, dead-letter another), use the form whose handler
    /// returns a ``BatchOutcome``.
    ///
    /// Returns once ``close(timeout:)`` finished and every handler returned.
    /// - Throws: ``KlifeError`` when the consumer fails for good (for example
    ///   ``OffsetResetPolicy/none`` without a committed offset), or `invalidArgument` when the
    ///   batches are already being read with ``next()`` or another `run`.
    public func run(_ handler: @escaping @Sendable (ConsumerBatch) async throws -> Void) async throws(KlifeError) {
        try await run { (batch: ConsumerBatch) async throws -> BatchOutcome in
            try await handler(batch)
            return .done
        }
    }

    /// Processes every batch with `handler`, which says what became of each record: the
    /// batch is ``BatchOutcome/done``, to be retried as a whole, or some records are to be
    /// retried alone or dead-lettered (see ``BatchOutcome``). Throwing is a whole-batch retry.
    ///
    /// Records after a retrying one go on being processed, but the committed offset never
    /// passes a record that is not finished. Retries follow
    /// ``ConsumerConfiguration/failurePolicy``; a record whose attempts run out moves to the
    /// ``ConsumerConfiguration/retryTopics`` chain, or stops its partition
    /// (``stoppedPartitions``). A retrying record holds back commits, never heartbeats.
    ///
    /// ```swift
    /// try await consumer.run { batch -> BatchOutcome in
    ///     var outcome = BatchOutcome.done
    ///     for record in batch.records where !(await index.put(record)) {
    ///         outcome.retry(record, error: "index refused")
    ///     }
    ///     return outcome
    /// }
    /// ```
    /// - Throws: as the form whose handler returns nothing.
    @_disfavoredOverload  // a handler whose last statement has a value is the form above
    public func run(_ handler: @escaping @Sendable (ConsumerBatch) async throws -> BatchOutcome) async throws(KlifeError) {
        guard state.enterHandlerMode() else {
            throw .invalidArgument("a consumer's batches go either to run(_:) or to next(), and run(_:) runs once")
        }
        let perKeyOrder = state.configuration.retryTopics?.perKeyOrder == true
        let processor = BatchProcessor(state: state, policy: state.configuration.failurePolicy, mover: mover,
                                       ledger: perKeyOrder ? KeyOrderLedger() : nil,
                                       log: { [hub = client.hubs[0]] level, text in hub.log(level, text) },
                                       handler: handler)
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
                group.addTask { await processor.process(batch) }
            }
        }
        if let failure { throw failure }
    }

    /// Processes every record with `handler`, one record at a time per partition (partitions
    /// concurrently), each record's ``RecordOutcome`` applied as in the batch form; a thrown
    /// error retries that record alone.
    ///
    /// ```swift
    /// try await consumer.runEach { record in
    ///     guard let event = Event(record.value) else { return .deadLetter(reason: "unreadable") }
    ///     try await webhook.post(event)
    ///     return .done
    /// }
    /// ```
    public func runEach(_ handler: @escaping @Sendable (ConsumerRecord) async throws -> RecordOutcome) async throws(KlifeError) {
        try await run { (batch: ConsumerBatch) async -> BatchOutcome in
            var outcome = BatchOutcome.done
            for record in batch.records {
                do {
                    outcome.set(try await handler(record), forOffset: record.offset)
                } catch {
                    outcome.set(.retry(error: "\(error)"), forOffset: record.offset)
                }
            }
            return outcome
        }
    }

    /// Partitions stopped by a record that failed every attempt with no retry or dead-letter
    /// topic to take it, with the ``KlifeError/Code/recordFailed`` error that says which. Such
    /// a partition is neither fetched nor handed out, and its commits stay below the record,
    /// until ``seek(_:to:)`` says where to go on (the record's offset to try it again, the next
    /// one to skip it). A revoke ends the stop too (the next owner starts from the commit).
    public var stoppedPartitions: [TopicPartition: KlifeError] { state.stoppedPartitions }
}
