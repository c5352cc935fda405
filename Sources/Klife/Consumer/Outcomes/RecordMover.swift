import KlifeIO

/// Moves failed records along their retry chain: from the source topic to the first retry
/// topic, from each retry topic to the next, from the last (or on a dead-letter outcome) to
/// the dead-letter topic. A move is acknowledged by the brokers before the record's hold is
/// released, so its source offset is committed only after the copy is safe (at least once).
struct RecordMover: Sendable {
    let client: KlifeClient
    let topics: RetryTopics
    /// Each retry topic's source topic and stage (0-based) in that source's chain.
    let stages: [String: (source: String, stage: Int)]

    init(client: KlifeClient, topics: RetryTopics, sources: [String]) {
        self.client = client
        self.topics = topics
        var stages: [String: (source: String, stage: Int)] = [:]
        for source in sources {
            for (stage, name) in topics.retryTopics(of: source).enumerated() { stages[name] = (source, stage) }
        }
        self.stages = stages
    }

    /// Every retry topic of the chains: read by the consumer beside its sources.
    var retryTopicNames: Set<String> { Set(stages.keys) }

    /// Where a record read from `topic` goes next: the next retry topic with its delay, or the
    /// dead-letter topic (delay `nil`) when `deadLetter` or after the last retry topic; `nil`
    /// when the chain has no further topic.
    func destination(from topic: String, deadLetter: Bool) -> (topic: String, delay: Duration?)? {
        let source = stages[topic]?.source ?? topic
        let next = stages[topic].map { $0.stage + 1 } ?? 0
        let chain = topics.retryTopics(of: source)
        if !deadLetter && next < chain.count { return (chain[next], topics.delays(of: source)[next]) }
        return topics.deadLetterTopic(of: source).map { ($0, nil) }
    }

    /// Writes `record` to `destination` with the chain's headers and waits for the
    /// acknowledgement. - Parameter attempts: attempts made in this process.
    func move(_ record: ConsumerRecord, to destination: (topic: String, delay: Duration?), attempts: Int,
              error: String, firstFailure: Int64) async throws(KlifeError) {
        _ = try await client.produce(copy(record, to: destination, attempts: attempts, error: error, firstFailure: firstFailure))
    }

    /// `record` as written to `destination`: its bytes, and the chain's headers with the
    /// attempts so far (earlier moves' and `attempts` made here) and, in a retry topic, its due time.
    func copy(_ record: ConsumerRecord, to destination: (topic: String, delay: Duration?), attempts: Int,
              error: String, firstFailure: Int64) -> ProducerRecord {
        let now = currentTimeMilliseconds()
        let total = RetryHeaders.attempts(of: record.headers) + attempts
        let due = destination.delay.map { now + Int64($0.nanoseconds / 1_000_000) }
        return RetryHeaders.moved(record, to: destination.topic, attempts: total, error: error, firstFailure: firstFailure, due: due)
    }

    /// Creates the missing topics of every chain, with the partition count of their source
    /// (another member creating one at the same time is fine).
    func createMissingTopics(sources: [String]) async throws(KlifeError) {
        var wanted: [(name: String, source: String)] = []
        for source in sources {
            for name in topics.retryTopics(of: source) { wanted.append((name, source)) }
            if let name = topics.deadLetterTopic(of: source) { wanted.append((name, source)) }
        }
        let metadata = try await client.metadata(topics: sources + wanted.map(\.name))
        for (name, source) in wanted where metadata.topics[name]?.partitions.isEmpty ?? true {
            let partitions = Int32(max(1, metadata.topics[source]?.partitions.count ?? 1))
            do {
                try await client.createTopic(name, partitions: partitions, replicationFactor: topics.replicationFactor)
            } catch where error.kafkaErrorCode == .topicAlreadyExists {
                continue
            }
        }
    }
}
