public import Klife

/// What a ``ScriptedDownstream`` received compared with what it should have: lost records,
/// duplicates, records out of their partition's order.
public struct FlowCheck: Sendable, CustomStringConvertible {
    /// Whether writing a record twice makes the check fail.
    public enum Duplicates: Sendable {
        /// Exactly once: a second write is a failure.
        case forbidden
        /// At least once: second writes are reported in ``duplicated`` but do not fail.
        case allowed
    }

    /// Expected offsets never written, by partition.
    public var lost: [TopicPartition: [Int64]]
    /// Offsets written more than once, by partition.
    public var duplicated: [TopicPartition: [Int64]]
    /// Offsets whose first write came after the first write of a later offset of their
    /// partition, by partition.
    public var outOfOrder: [TopicPartition: [Int64]]
    /// Records written that were not expected (another partition, or beyond the range).
    public var unexpected: Int
    /// Records written, duplicates included.
    public var writes: Int
    let duplicatesPolicy: Duplicates

    init(written: [ScriptedDownstream.Written], expected: [TopicPartition: Range<Int64>], duplicates: Duplicates) {
        var seen: [TopicPartition: Set<Int64>] = [:]
        var duplicated: [TopicPartition: [Int64]] = [:]
        var outOfOrder: [TopicPartition: [Int64]] = [:]
        var highest: [TopicPartition: Int64] = [:]
        var unexpected = 0
        for w in written {
            guard let range = expected[w.topicPartition], range.contains(w.offset) else {
                unexpected += 1
                continue
            }
            if !seen[w.topicPartition, default: []].insert(w.offset).inserted {
                duplicated[w.topicPartition, default: []].append(w.offset)
                continue
            }
            if let top = highest[w.topicPartition], w.offset < top { outOfOrder[w.topicPartition, default: []].append(w.offset) }
            highest[w.topicPartition] = max(highest[w.topicPartition] ?? w.offset, w.offset)
        }
        var lost: [TopicPartition: [Int64]] = [:]
        for (tp, range) in expected {
            let missing = range.filter { !(seen[tp]?.contains($0) ?? false) }
            if !missing.isEmpty { lost[tp] = missing }
        }
        self.lost = lost
        self.duplicated = duplicated
        self.outOfOrder = outOfOrder
        self.unexpected = unexpected
        self.writes = written.count
        self.duplicatesPolicy = duplicates
    }

    /// No loss, no record out of order, nothing unexpected, and no duplicate unless allowed.
    public var isClean: Bool {
        lost.isEmpty && outOfOrder.isEmpty && unexpected == 0 && (duplicatesPolicy == .allowed || duplicated.isEmpty)
    }

    /// Counts and the first offsets of each kind of fault.
    public var description: String {
        func summary(_ faults: [TopicPartition: [Int64]]) -> String {
            faults.isEmpty ? "none"
                : faults.sorted { "\($0.key)" < "\($1.key)" }.map { "\($0.key): \($0.value.count) (\($0.value.prefix(5).map(String.init).joined(separator: ", ")))" }
                    .joined(separator: "; ")
        }
        return "writes \(writes); lost: \(summary(lost)); duplicated: \(summary(duplicated)); out of order: \(summary(outOfOrder)); unexpected: \(unexpected)"
    }
}
