import Synchronization

/// The topics the sink knows and the high watermark of each of their partitions, shared by
/// every connection. Nothing is stored but the counters: a partition starts with the prepared
/// record set (offsets `0..<preparedRecords`) and each acknowledged Produce moves its high
/// watermark by the batch's record count.
final class SinkCatalog: Sendable {
    /// What one lookup or append found.
    enum Outcome: Equatable {
        /// The partition exists; the value is an offset (base offset, or high watermark).
        case offset(Int64)
        /// No such topic, or no such partition in it.
        case unknown
    }

    private struct State {
        var highWatermarks: [String: [Int64]] = [:]
        var nextProducerID: Int64 = 1000
    }

    /// The largest partition count a topic may have (a bound on memory).
    static let maxPartitions: Int32 = 10_000

    private let state = Mutex(State())
    /// Records every new partition starts with (the prepared Fetch record set).
    let preparedRecords: Int64
    /// Partition count for topics created without one.
    let defaultPartitions: Int32

    init(preparedRecords: Int64, defaultPartitions: Int32) {
        self.preparedRecords = preparedRecords
        self.defaultPartitions = defaultPartitions
    }

    /// Creates `name` with `partitions` partitions (the default when `nil` or not positive;
    /// at most ``maxPartitions``).
    /// - Returns: `false` when the topic already exists (it is left as it is).
    @discardableResult
    func create(_ name: String, partitions: Int32?) -> Bool {
        let count = Int(min(partitions.flatMap { $0 > 0 ? $0 : nil } ?? defaultPartitions, Self.maxPartitions))
        let start = preparedRecords
        return state.withLock { state in
            guard state.highWatermarks[name] == nil else { return false }
            state.highWatermarks[name] = Array(repeating: start, count: count)
            return true
        }
    }

    /// Deletes `name`. - Returns: `false` when it did not exist.
    func delete(_ name: String) -> Bool {
        state.withLock { $0.highWatermarks.removeValue(forKey: name) != nil }
    }

    /// The partition count of `name`, or `nil` when the topic does not exist.
    func partitionCount(_ name: String) -> Int? {
        state.withLock { $0.highWatermarks[name]?.count }
    }

    /// Every topic with its partition count, sorted by name.
    func allTopics() -> [(name: String, partitions: Int)] {
        state.withLock { state in state.highWatermarks.map { ($0.key, $0.value.count) } }.sorted { $0.name < $1.name }
    }

    /// Acknowledges `records` records appended to a partition.
    /// - Returns: the base offset they were given.
    func append(_ topic: String, _ partition: Int32, records: Int64) -> Outcome {
        state.withLock { state in
            guard let count = state.highWatermarks[topic]?.count, partition >= 0, Int(partition) < count else {
                return .unknown
            }
            let base = state.highWatermarks[topic]![Int(partition)]
            state.highWatermarks[topic]![Int(partition)] = base &+ records
            return .offset(base)
        }
    }

    /// The high watermark (next offset) of a partition.
    func highWatermark(_ topic: String, _ partition: Int32) -> Outcome {
        state.withLock { state in
            guard let marks = state.highWatermarks[topic], partition >= 0, Int(partition) < marks.count else {
                return .unknown
            }
            return .offset(marks[Int(partition)])
        }
    }

    /// A new producer id for InitProducerId (epoch 0).
    func nextProducerID() -> Int64 {
        state.withLock { state in
            defer { state.nextProducerID += 1 }
            return state.nextProducerID
        }
    }
}
