import KlifeIO

/// Runs a handler over one batch and carries out what it decided: retries the whole batch
/// with backoff, halves a failed batch to find its bad records, retries single records while
/// later batches of the partition go on (their holds keep commits below them), and moves
/// records whose attempts ran out along their retry chain, or stops their partition.
struct BatchProcessor: Sendable {
    typealias Handler = @Sendable (ConsumerBatch) async throws -> BatchOutcome

    let state: ConsumerState
    let policy: FailurePolicy
    let mover: RecordMover?
    /// Per-key order through retries (``RetryTopics/perKeyOrder``), else `nil`.
    let ledger: KeyOrderLedger?
    let log: @Sendable (LogLevel, String) -> Void
    let handler: Handler

    /// A record that failed and is being retried alone.
    struct Failure {
        var index: Int
        var outcome: RecordOutcome
        var attempts: Int
        var firstFailure: Int64
    }

    /// How a failed record's story ended in this process.
    enum Settled: Equatable {
        /// The handler finished it.
        case done
        /// Written to retry stage `stage` (0-based), or to the dead-letter topic when `nil`.
        case moved(stage: Int?)
        /// Its partition stopped, was revoked or moved: nothing more happens to it here.
        case halted
    }

    /// Processes `batch` until every record is done, moved on, or its partition is gone or
    /// stopped. Marks the batch processed as soon as the whole-batch phase ends, with holds on
    /// the records still failing, so the partition's next batch can go.
    func process(_ batch: ConsumerBatch) async {
        let started = Reactor.monotonicNanoseconds()
        let stage = self.stage(of: batch.topicPartition.topic)
        // Held before any of them can be handed to a retry task that would release it.
        let waiting = ledger.map { ledger in
            ledger.claim(batch, stage: stage, source: source(of:)) { state.addHolds(batch, offsets: $0) }
        } ?? [:]
        let handed = waiting.isEmpty ? batch : batch.keeping { waiting[$0] == nil }
        var attempt = 0
        var outcome = BatchOutcome.done
        let firstFailure = currentTimeMilliseconds()
        while !handed.records.isEmpty {
            attempt += 1
            outcome = await call(handed)
            guard let retry = outcome.retryBatch else { break }
            state.noteHandlerFailure(batch)
            log(.warning, "handler failed for \(batch.topicPartition) at offset \(handed.records[0].offset) (attempt \(attempt)): \(retry.error)")
            if attempt >= batchAttemptLimit {
                if policy.isolateFailures && handed.records.count > 1 {
                    state.count { $0.isolations += 1 }
                    guard let isolated = await isolate(handed) else { return state.markAbandoned(batch) }
                    outcome = isolated
                    attempt += 1  // the failing records were tried once more, alone
                } else {
                    outcome = BatchOutcome.done
                    for record in handed.records { outcome.set(.retry(error: retry.error), forOffset: record.offset) }
                }
                break
            }
            state.count { $0.retries += 1 }
            guard await pause(retry.after ?? backoff(afterAttempt: attempt), batch) else { return state.markAbandoned(batch) }
        }
        state.noteHandlerLatency(Reactor.monotonicNanoseconds() &- started)
        var failures: [Failure] = []
        if !outcome.failures.isEmpty {
            for (index, record) in batch.records.enumerated() where waiting[index] == nil {
                guard let failed = outcome.failures[record.offset] else { continue }
                failures.append(Failure(index: index, outcome: failed, attempts: attempt, firstFailure: firstFailure))
            }
        }
        if failures.isEmpty && waiting.isEmpty {
            noteFinished(batch, stage: stage, except: [:])
            return state.markProcessed(batch)
        }
        let chains = ledger.map { beginRetries(failures, of: batch, ledger: $0) } ?? failures
        let held = failures.map { batch.records[$0.index].offset }
        var unfinished: [Int: Bool] = waiting.mapValues { _ in true }
        for failure in failures { unfinished[failure.index] = true }
        noteFinished(batch, stage: stage, except: unfinished)
        state.markProcessed(batch, holding: held)
        for (index, decision) in waiting.sorted(by: { $0.key < $1.key }) where decision == .follow {
            guard await follow(batch, index: index, toStage: (stage ?? -1) + 1) else { return }
        }
        for chain in chains {
            guard await settleInOrder(chain, of: batch) else { return }
        }
    }

    /// Whole-batch attempts before the batch is halved or its records go on one by one.
    private var batchAttemptLimit: Int {
        let perRecord = policy.maxAttempts ?? .max
        return policy.isolateFailures ? min(policy.batchAttempts, perRecord) : perRecord
    }

    /// Calls the handler; a thrown error is a whole-batch retry.
    func call(_ batch: ConsumerBatch) async -> BatchOutcome {
        do {
            return try await handler(batch)
        } catch {
            return .retry(error: "\(error)")
        }
    }

    /// Calls the handler with the record at `index` alone. - Returns: its outcome.
    func callAlone(_ batch: ConsumerBatch, index: Int) async -> RecordOutcome {
        let outcome = await call(batch.subBatch(index..<index + 1))
        if let retry = outcome.retryBatch { return .retry(after: retry.after, error: retry.error) }
        return outcome.outcome(forOffset: batch.records[index].offset)
    }

    /// Hands the failed batch out again in halves, halving the failing halves, until each
    /// failing record is alone. - Returns: the records found failing (as retries) and what the
    /// succeeding halves said about theirs; `nil` when the partition went away meanwhile.
    private func isolate(_ batch: ConsumerBatch) async -> BatchOutcome? {
        var result = BatchOutcome.done
        let count = batch.records.count
        var pending: [Range<Int>] = [count / 2..<count, 0..<count / 2]  // taken from the end: in offset order
        while let range = pending.popLast() {
            guard state.isCurrentPosition(batch) else { return nil }
            let part = batch.subBatch(range)
            let outcome = await call(part)
            if let retry = outcome.retryBatch {
                if range.count == 1 {
                    result.set(.retry(error: retry.error), forOffset: part.records[0].offset)
                } else {
                    let middle = range.lowerBound + range.count / 2
                    pending.append(middle..<range.upperBound)
                    pending.append(range.lowerBound..<middle)
                }
                continue
            }
            let first = part.records[0].offset
            for (offset, failed) in outcome.failures where offset >= first && offset < part.nextOffset {
                result.set(failed, forOffset: offset)
            }
        }
        return result
    }

    /// Retries one failed record alone until it is done, moved on, or its partition stops or
    /// goes away.
    func settle(_ start: Failure, of batch: ConsumerBatch) async -> Settled {
        var failure = start
        let record = batch.records[failure.index]
        while true {
            switch failure.outcome {
            case .done:
                noteFinished(record)
                state.releaseHold(batch, offset: record.offset)
                return .done
            case .deadLetter(let reason):
                return await exhaust(record, of: batch, deadLetter: true, error: reason, failure: failure)
            case .retry(let after, let error):
                if let max = policy.maxAttempts, failure.attempts >= max {
                    return await exhaust(record, of: batch, deadLetter: false, error: error, failure: failure)
                }
                log(.warning, "record \(batch.topicPartition) at offset \(record.offset) failed (attempt \(failure.attempts)): \(error)")
                state.count { $0.retries += 1 }
                guard await pause(after ?? backoff(afterAttempt: failure.attempts), batch) else { return .halted }
                failure.attempts += 1
                failure.outcome = await callAlone(batch, index: failure.index)
            }
        }
    }

    /// A record whose attempts ran out (or that was dead-lettered) moves on along its chain,
    /// sent again until the brokers take it; without a next topic its partition stops.
    private func exhaust(_ record: ConsumerRecord, of batch: ConsumerBatch, deadLetter: Bool, error: String,
                         failure: Failure) async -> Settled {
        guard let mover, let destination = mover.destination(from: record.topic, deadLetter: deadLetter) else {
            let reason = deadLetter ? "dead-lettered (\(error)) without a dead-letter topic" : error
            let stop = KlifeError.recordFailed(batch.topicPartition, offset: record.offset, attempts: failure.attempts, error: reason)
            log(.error, "\(stop)")
            state.count { $0.stops += 1 }
            state.stop(batch, error: stop)
            return .halted
        }
        guard await move(record, of: batch, to: destination, attempts: failure.attempts, error: error,
                         firstFailure: failure.firstFailure) else { return .halted }
        return .moved(stage: mover.stages[destination.topic]?.stage)
    }

    /// Writes `record` to `destination`, again until the brokers take it, then releases its
    /// hold. - Returns: `false` when its partition went away first.
    func move(_ record: ConsumerRecord, of batch: ConsumerBatch, to destination: (topic: String, delay: Duration?),
              attempts: Int, error: String, firstFailure: Int64) async -> Bool {
        guard let mover else { return false }
        var sendAttempt = 0
        while true {
            do throws(KlifeError) {
                try await mover.move(record, to: destination, attempts: attempts, error: error, firstFailure: firstFailure)
                state.count { destination.delay == nil ? ($0.deadLettered += 1) : ($0.movedToRetry += 1) }
                if let ledger, let key = ledgerKey(record) {
                    ledger.moved(key, from: stage(of: record.topic), to: mover.stages[destination.topic]?.stage)
                }
                state.releaseHold(batch, offset: record.offset)
                return true
            } catch {
                sendAttempt += 1
                log(.warning, "moving \(batch.topicPartition) offset \(record.offset) to \(destination.topic) failed (attempt \(sendAttempt)): \(error)")
                guard await pause(backoff(afterAttempt: sendAttempt), batch) else { return false }
            }
        }
    }

    func backoff(afterAttempt attempt: Int) -> Duration {
        var random = SystemRandomNumberGenerator()
        return policy.delay(afterAttempt: attempt, random: &random)
    }

    /// Sleeps `delay`. - Returns: whether the batch's partition is still this consumer's, at
    /// the same position, afterwards.
    func pause(_ delay: Duration, _ batch: ConsumerBatch) async -> Bool {
        try? await Task.sleep(for: delay)
        return state.isCurrentPosition(batch)
    }
}

extension ConsumerBatch {
    /// The batch with only the records whose positions `keep` accepts (same end offset).
    func keeping(_ keep: (Int) -> Bool) -> ConsumerBatch {
        var kept = self
        kept.records = records.filter(positions: keep)
        return kept
    }
}
