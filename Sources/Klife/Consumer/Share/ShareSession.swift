import KlifeProtocol

/// A topic-id partition, the key the share session protocol names partitions by.
struct SharePartitionKey: Sendable, Hashable, Comparable {
    var topicID: KafkaUUID
    var partition: Int32

    static func < (a: SharePartitionKey, b: SharePartitionKey) -> Bool {
        (a.topicID.high, a.topicID.low, a.partition) < (b.topicID.high, b.topicID.low, b.partition)
    }
}

/// One member's share session with one broker (KIP-932), as a pure value: which epoch the
/// next request carries and which partitions it must add or forget.
///
///     closed ── open (epoch 0: every wanted partition, no acknowledgements) ──► epoch 1
///     epoch n ── fetch or acknowledge (partitions added since, acknowledged ones,
///                forgotten ones) ──► epoch n+1 (after Int32.max: 1)
///     any ── SHARE_SESSION_NOT_FOUND / INVALID_SHARE_SESSION_EPOCH / lost connection ──► closed
///     epoch n ── close (epoch -1, last acknowledgements) ──► closed
///
/// The broker keys the session by group, member and itself, so one value per broker.
struct ShareSession: Sendable {
    /// The epoch of the next request: 0 while no session is open.
    private(set) var epoch: Int32 = 0
    /// The partitions the broker has in the session.
    private(set) var partitions: Set<SharePartitionKey> = []

    /// Whether a session is open at the broker.
    var isOpen: Bool { epoch > 0 }

    /// What the next ShareFetch sends when the member wants `wanted` from this broker and owes
    /// `acknowledgements`: at epoch 0 every wanted partition (acknowledgements cannot ride an
    /// opening request; see ``ShareAcknowledgementLedger/forget(node:)``); later the partitions
    /// added since, those acknowledged, and those to forget.
    func fetchRequest(wanted: Set<SharePartitionKey>,
                      acknowledgements: [KafkaUUID: [Int32: [ShareAcknowledgementBatch]]],
                      build: (Int32, [ShareFetchRequest.Topic], [ShareFetchRequest.ForgottenTopic]) -> ShareFetchRequest)
        -> ShareFetchRequest {
        var entries: [SharePartitionKey: [ShareAcknowledgementBatch]] = [:]
        let added = isOpen ? wanted.subtracting(partitions) : wanted
        for key in added { entries[key] = [] }
        if isOpen {
            for (topicID, byPartition) in acknowledgements {
                for (partition, runs) in byPartition { entries[SharePartitionKey(topicID: topicID, partition: partition)] = runs }
            }
        }
        let forgotten = isOpen ? partitions.subtracting(wanted) : []
        return build(epoch, Self.topics(entries), Self.forgottenTopics(forgotten))
    }

    /// The partitions acknowledged in a ShareAcknowledge, by topic.
    static func topics(_ entries: [SharePartitionKey: [ShareAcknowledgementBatch]]) -> [ShareFetchRequest.Topic] {
        var byTopic: [KafkaUUID: [ShareFetchRequest.Partition]] = [:]
        for key in entries.keys.sorted() {
            byTopic[key.topicID, default: []].append(.init(partitionIndex: key.partition,
                                                           acknowledgementBatches: entries[key] ?? []))
        }
        return byTopic.sorted { ($0.key.high, $0.key.low) < ($1.key.high, $1.key.low) }
            .map { ShareFetchRequest.Topic(topicID: $0.key, partitions: $0.value) }
    }

    /// Acknowledgement runs as ShareAcknowledge topics.
    static func topics(_ acknowledgements: [KafkaUUID: [Int32: [ShareAcknowledgementBatch]]]) -> [ShareFetchRequest.Topic] {
        var entries: [SharePartitionKey: [ShareAcknowledgementBatch]] = [:]
        for (topicID, byPartition) in acknowledgements {
            for (partition, runs) in byPartition { entries[SharePartitionKey(topicID: topicID, partition: partition)] = runs }
        }
        return topics(entries)
    }

    private static func forgottenTopics(_ keys: Set<SharePartitionKey>) -> [ShareFetchRequest.ForgottenTopic] {
        var byTopic: [KafkaUUID: [Int32]] = [:]
        for key in keys.sorted() { byTopic[key.topicID, default: []].append(key.partition) }
        return byTopic.sorted { ($0.key.high, $0.key.low) < ($1.key.high, $1.key.low) }
            .map { .init(topicID: $0.key, partitions: $0.value) }
    }

    /// A ShareFetch sent at this epoch for `wanted` was answered without a top-level error.
    mutating func fetched(wanted: Set<SharePartitionKey>) {
        partitions = wanted
        advance()
    }

    /// A ShareAcknowledge sent at this epoch was answered without a top-level error.
    mutating func acknowledged() { advance() }

    /// The session is gone (closed by the member, refused by the broker, or its connection lost).
    mutating func reset() {
        epoch = 0
        partitions = []
    }

    private mutating func advance() {
        epoch = epoch == Int32.max ? 1 : epoch + 1
    }
}
