import KlifeIO

/// Per-key order through retries (``RetryTopics/perKeyOrder``): which keys have a record
/// retrying in this process or waiting in a retry topic, so that later records of the same key
/// follow it instead of overtaking it. Keys are counted per source partition; records read
/// from a retry topic are counted under the source named in their headers.
final class KeyOrderLedger: Sendable {
    /// A key of one source partition.
    struct Key: Hashable, Sendable {
        var source: TopicPartition
        var key: RecordBytes
    }

    /// A later record of a key whose record retries in the process: it waits for that retry.
    struct Follower: Sendable {
        var batch: ConsumerBatch
        var index: Int
    }

    private struct Entry {
        /// A record of the key is retrying in the process (its task settles the followers).
        var retrying = false
        var followers: [Follower] = []
        /// Records of the key waiting in each retry stage (0-based).
        var stages: [Int: Int] = [:]
        var isEmpty: Bool { !retrying && followers.isEmpty && stages.isEmpty }
        var furthestStage: Int? { stages.keys.max() }
    }

    private let entries = Locked<[Key: Entry]>([:])

    /// What a record of a batch must do instead of going to the handler.
    enum Decision: Equatable {
        /// Wait behind the key's record retrying in the process (queued as a follower).
        case waitForRetry
        /// Move to the next retry stage at once: the key has a record in a later stage.
        case follow
    }

    /// Sorts out the records of `batch` (read at `stage`, `nil` for the source topic) whose key
    /// has a record ahead of them: queued behind an in-process retry, or to be moved along.
    /// `hold` is called, under the ledger's lock, with the offsets of the claimed records before
    /// any retry task can take one of them.
    func claim(_ batch: ConsumerBatch, stage: Int?, source: (ConsumerRecord) -> TopicPartition,
               hold: ([Int64]) -> Void) -> [Int: Decision] {
        entries.withLock { entries in
            var decisions: [Int: Decision] = [:]
            guard !entries.isEmpty else { return decisions }
            for (index, record) in batch.records.enumerated() {
                guard let bytes = record.key else { continue }
                let key = Key(source: source(record), key: bytes)
                guard var entry = entries[key] else { continue }
                if entry.retrying {
                    entry.followers.append(Follower(batch: batch, index: index))
                    entries[key] = entry
                    decisions[index] = .waitForRetry
                } else if let furthest = entry.furthestStage, furthest > (stage ?? -1) {
                    decisions[index] = .follow
                }
            }
            if !decisions.isEmpty { hold(decisions.keys.sorted().map { batch.records[$0].offset }) }
            return decisions
        }
    }

    /// A record of `key` retries in the process from now on.
    func beginRetry(_ key: Key) {
        entries.withLock { $0[key, default: Entry()].retrying = true }
    }

    /// `follower` waits behind the record of `key` retrying now.
    func enqueue(_ key: Key, _ follower: Follower) {
        entries.withLock { $0[key, default: Entry()].followers.append(follower) }
    }

    /// The in-process retry of `key` ended. - Returns: the next follower to settle (the key
    /// stays retrying for it), or `nil` when none waits (the key is no longer retrying).
    func endRetry(_ key: Key) -> Follower? {
        entries.withLock { entries in
            guard var entry = entries[key] else { return nil }
            if entry.followers.isEmpty {
                entry.retrying = false
                entries[key] = entry.isEmpty ? nil : entry
                return nil
            }
            let next = entry.followers.removeFirst()
            entries[key] = entry
            return next
        }
    }

    /// A record of `key` left `from` (a retry stage, or the source when `nil`) for retry stage
    /// `to` (`nil`: the dead-letter topic, or it finished).
    func moved(_ key: Key, from: Int?, to: Int?) {
        entries.withLock { entries in
            var entry = entries[key, default: Entry()]
            if let from, let count = entry.stages[from] { entry.stages[from] = count > 1 ? count - 1 : nil }
            if let to { entry.stages[to, default: 0] += 1 }
            entries[key] = entry.isEmpty ? nil : entry
        }
    }

    /// Keys known now (for statistics and tests).
    var count: Int { entries.withLock { $0.count } }
}
