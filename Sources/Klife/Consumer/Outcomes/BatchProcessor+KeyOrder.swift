import KlifeIO

/// Per-key order through retries: a failing record's key is marked retrying before its batch
/// counts as processed, later records of that key wait for it (or follow it into the retry
/// topic it moved to), and records read from a retry stage are counted out when they finish.
extension BatchProcessor {
    /// The retry stage (0-based) `topic` is, `nil` for a source topic.
    func stage(of topic: String) -> Int? { mover?.stages[topic]?.stage }

    /// The source partition of `record`: its own, or the one its retry headers name.
    func source(of record: ConsumerRecord) -> TopicPartition {
        guard stage(of: record.topic) != nil else { return TopicPartition(topic: record.topic, partition: record.partition) }
        let headers = record.headers
        guard let topic = RetryHeaders.text(RetryHeaders.originalTopic, of: headers),
              let partition = RetryHeaders.text(RetryHeaders.originalPartition, of: headers).flatMap(Int32.init) else {
            return TopicPartition(topic: record.topic, partition: record.partition)
        }
        return TopicPartition(topic: topic, partition: partition)
    }

    /// The ledger's key of `record` (`nil` for a null key).
    func ledgerKey(_ record: ConsumerRecord) -> KeyOrderLedger.Key? {
        record.key.map { KeyOrderLedger.Key(source: source(of: record), key: $0) }
    }

    /// Marks the keys of `failures` retrying; a second failure of a key already retrying waits
    /// behind the first. - Returns: the failures to settle now (first of their key, or keyless).
    func beginRetries(_ failures: [Failure], of batch: ConsumerBatch, ledger: KeyOrderLedger) -> [Failure] {
        var first: [Failure] = []
        var seen: Set<KeyOrderLedger.Key> = []
        for failure in failures {
            guard let key = ledgerKey(batch.records[failure.index]) else {
                first.append(failure)
                continue
            }
            if seen.insert(key).inserted {
                ledger.beginRetry(key)
                first.append(failure)
            } else {
                ledger.enqueue(key, KeyOrderLedger.Follower(batch: batch, index: failure.index))
            }
        }
        return first
    }

    /// Records of `batch` read from a retry stage and finished by the handler leave that stage.
    func noteFinished(_ batch: ConsumerBatch, stage: Int?, except unfinished: [Int: Bool]) {
        guard let ledger, stage != nil else { return }
        for (index, record) in batch.records.enumerated() where unfinished[index] == nil {
            if let key = ledgerKey(record) { ledger.moved(key, from: stage, to: nil) }
        }
    }

    /// One record finished after retrying: it leaves its retry stage, if it was read from one.
    func noteFinished(_ record: ConsumerRecord) {
        guard let ledger, let stage = stage(of: record.topic), let key = ledgerKey(record) else { return }
        ledger.moved(key, from: stage, to: nil)
    }

    /// Settles `failure`, then the records of its key that waited for it: when it moved to a
    /// retry topic they follow it there; otherwise each is handed to the handler in turn.
    /// - Returns: whether the batch's other failures may go on.
    func settleInOrder(_ failure: Failure, of batch: ConsumerBatch) async -> Bool {
        guard let ledger, let key = ledgerKey(batch.records[failure.index]) else {
            return await settle(failure, of: batch) != .halted
        }
        var result = await settle(failure, of: batch)
        while true {
            switch result {
            case .halted:
                return false
            case .moved(let stage?):
                while let next = ledger.endRetry(key) {
                    guard await follow(next.batch, index: next.index, toStage: stage) else { return false }
                }
                return true
            case .done, .moved(stage: nil):
                guard let next = ledger.endRetry(key) else { return true }
                let outcome = await callAlone(next.batch, index: next.index)
                let attempt = Failure(index: next.index, outcome: outcome, attempts: 1,
                                      firstFailure: currentTimeMilliseconds())
                result = await settle(attempt, of: next.batch)
            }
        }
    }

    /// Moves the record at `index` of `batch` straight to retry stage `toStage` of its chain,
    /// behind the record of its key already there (it was not tried).
    func follow(_ batch: ConsumerBatch, index: Int, toStage: Int) async -> Bool {
        guard let mover else { return false }
        let record = batch.records[index]
        let source = self.source(of: record).topic
        let chain = mover.topics.retryTopics(of: source)
        guard toStage < chain.count else { return false }
        return await move(record, of: batch, to: (chain[toStage], mover.topics.delays(of: source)[toStage]), attempts: 0,
                          error: "follows an earlier record of its key into the retry chain",
                          firstFailure: currentTimeMilliseconds())
    }
}
