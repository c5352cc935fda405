import KlifeProtocol

/// What a share group consumer holds and owes, as a pure value: the records it acquired and
/// has not settled (by delivering broker, topic id and partition), the settlements not yet
/// sent, and which held records the application has been given (for implicit acknowledgement).
///
/// A record is settled once: settling one not held (never acquired here, settled already, or
/// lost with its share session) is refused. A settled record is remembered, with its delivery
/// count, until the broker answered the request that carried its settlement: an answer that
/// reports it as acquired meanwhile (librdkafka's mock lists every record a member holds) is
/// not a new delivery.
struct ShareAcknowledgementLedger: Sendable {
    /// Acquired and unsettled offsets, with the delivery count they were acquired at.
    private(set) var held: [ShareSource: [Int64: Int16]] = [:]
    /// Settled offsets waiting to be sent, with how.
    private(set) var pending: [ShareSource: [Int64: ShareAcknowledgeType]] = [:]
    /// Held offsets handed to the application.
    private var handedOut: [ShareSource: Set<Int64>] = [:]
    /// Settled offsets, with their delivery count, until their settlement is answered.
    private var settled: [ShareSource: [Int64: Int16]] = [:]
    /// Settled offsets sent to each broker, in the request awaiting its answer.
    private var sent: [Int32: [ShareSource: [Int64]]] = [:]

    /// Records `offsets` as acquired from `source`, each at its delivery count.
    mutating func acquired(_ source: ShareSource, offsets: some Sequence<(offset: Int64, deliveryCount: Int16)>) {
        for (offset, count) in offsets { held[source, default: [:]][offset] = count }
    }

    /// Whether `offset` of `source` is held, or settled and not yet answered, at delivery count
    /// `count`: a broker reporting it again is not delivering it again.
    func isHeld(_ source: ShareSource, offset: Int64, deliveryCount count: Int16) -> Bool {
        held[source]?[offset] == count || settled[source]?[offset] == count
    }

    /// Records that the application was given `offsets` of `source`.
    mutating func handedOut(_ source: ShareSource, offsets: some Sequence<Int64>) {
        handedOut[source, default: []].formUnion(offsets)
    }

    /// Settles one held offset. Returns false when it is not held.
    mutating func settle(_ source: ShareSource, offset: Int64, as type: ShareAcknowledgeType) -> Bool {
        guard let count = held[source]?.removeValue(forKey: offset) else { return false }
        if held[source]?.isEmpty == true { held[source] = nil }
        handedOut[source]?.remove(offset)
        pending[source, default: [:]][offset] = type
        settled[source, default: [:]][offset] = count
        return true
    }

    /// Accepts every held offset the application was given: implicit acknowledgement.
    /// Returns how many were accepted.
    @discardableResult
    mutating func acceptHandedOut() -> Int {
        let given = handedOut
        handedOut = [:]
        var count = 0
        for (source, offsets) in given {
            for offset in offsets where settle(source, offset: offset, as: .accept) { count += 1 }
        }
        return count
    }

    /// Whether settlements wait to be sent to `node`.
    func hasPending(for node: Int32) -> Bool { pending.keys.contains { $0.node == node } }

    /// Brokers that settlements wait for.
    var nodesWithPending: Set<Int32> { Set(pending.keys.map(\.node)) }

    /// Takes the settlements owed to `node`, by topic and partition, as acknowledgement runs;
    /// ``answered(node:)`` is due when the request carrying them is answered (or lost).
    mutating func takePending(for node: Int32) -> [KafkaUUID: [Int32: [ShareAcknowledgementBatch]]] {
        var result: [KafkaUUID: [Int32: [ShareAcknowledgementBatch]]] = [:]
        for (source, owed) in pending where source.node == node {
            let sorted = owed.sorted { $0.key < $1.key }.map { (offset: $0.key, type: $0.value) }
            result[source.topicID, default: [:]][source.partition] = ShareAcknowledgementBatch.runs(sorted)
            sent[node, default: [:]][source, default: []] += sorted.map(\.offset)
            pending[source] = nil
        }
        return result
    }

    /// The request to `node` that carried settlements was answered: they are forgotten.
    mutating func answered(node: Int32) {
        for (source, offsets) in sent.removeValue(forKey: node) ?? [:] {
            for offset in offsets { settled[source]?.removeValue(forKey: offset) }
            if settled[source]?.isEmpty == true { settled[source] = nil }
        }
    }

    /// Forgets everything about `node`: its share session ended, so the broker no longer
    /// takes settlements for what it delivered (the records return to the group when their
    /// locks end). Returns the held and pending offsets dropped.
    @discardableResult
    mutating func forget(node: Int32) -> Int {
        var dropped = 0
        for source in held.keys where source.node == node { dropped += held.removeValue(forKey: source)?.count ?? 0 }
        for source in pending.keys where source.node == node {
            dropped += pending.removeValue(forKey: source)?.count ?? 0
        }
        for source in handedOut.keys where source.node == node { handedOut[source] = nil }
        for source in settled.keys where source.node == node { settled[source] = nil }
        sent[node] = nil
        return dropped
    }

    /// Held offsets, over every source.
    var heldCount: Int { held.values.reduce(0) { $0 + $1.count } }
}
