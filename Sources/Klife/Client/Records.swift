public import KlifeProtocol
import Glibc

/// A record to produce.
///
/// ```swift
/// let record = ProducerRecord(topic: "orders", key: "user-42", value: "paid",
///                             headers: [RecordHeader(key: "trace", value: Array("abc".utf8))])
/// ```
public struct ProducerRecord: Sendable {
    /// Destination topic.
    public var topic: String
    /// Destination partition; `nil` lets the partitioner choose (by default murmur2 of the key, or sticky for unkeyed records).
    public var partition: Int32?
    /// Key bytes, or `nil` for a null key.
    public var key: [UInt8]?
    /// Value bytes, or `nil` for a null value (a tombstone on compacted topics).
    public var value: [UInt8]?
    /// Record headers, in order; names may repeat.
    public var headers: [RecordHeader]
    /// Create time in milliseconds since the Unix epoch; `nil` means "now": the reactor
    /// stamps it when it takes the record from its queue (microseconds after `produce`,
    /// with millisecond resolution).
    public var timestamp: Int64?

    /// Creates a record from bytes.
    @inlinable
    public init(topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8]?,
                headers: [RecordHeader] = [], timestamp: Int64? = nil) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }

    /// Creates a record from any contiguous or collection-shaped bytes the caller already
    /// holds — `ArraySlice<UInt8>`, `Data`, `UnsafeRawBufferPointer`, a `ByteBuffer` view —
    /// copying them once, straight into the record (no intermediate array to build first).
    /// `[UInt8]` arguments use the non-generic initializer and are not copied at all.
    public init<Key: Collection<UInt8>, Value: Collection<UInt8>>(
        topic: String, partition: Int32? = nil, keyBytes: Key?, valueBytes: Value?,
        headers: [RecordHeader] = [], timestamp: Int64? = nil
    ) {
        var key: [UInt8]? = nil
        if let keyBytes { key = Array(keyBytes) }
        var value: [UInt8]? = nil
        if let valueBytes { value = Array(valueBytes) }
        self.init(topic: topic, partition: partition, key: key, value: value, headers: headers, timestamp: timestamp)
    }

    /// Gives up the record's references (for the producer, which moves them into its own
    /// record instead of retaining each).
    ///
    /// Swapped out one by one: returning the fields of a consumed record copies them first (a
    /// retain of each) and then destroys the record (a release of each).
    mutating func takeParts() -> (topic: String, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader]) {
        var topic = ""
        swap(&topic, &self.topic)
        var key: [UInt8]? = nil
        swap(&key, &self.key)
        var value: [UInt8]? = nil
        swap(&value, &self.value)
        var headers: [RecordHeader] = []
        swap(&headers, &self.headers)
        return (topic, key, value, headers)
    }

    /// Creates a record from UTF-8 text.
    @inlinable
    public init(topic: String, partition: Int32? = nil, key: String? = nil, value: String,
                headers: [RecordHeader] = [], timestamp: Int64? = nil) {
        self.init(topic: topic, partition: partition, key: key.map { Array($0.utf8) }, value: Array(value.utf8),
                  headers: headers, timestamp: timestamp)
    }

}

/// Where a produced record landed.
public struct RecordMetadata: Sendable, Hashable, CustomStringConvertible {
    /// Topic written to.
    public var topic: String
    /// Partition written to.
    public var partition: Int32
    /// Offset assigned by the broker (-1 with `acks = .none`).
    public var offset: Int64
    /// The record's timestamp: its create time, or the broker's append time when the topic uses it.
    public var timestamp: Int64

    /// Creates metadata (mostly for tests).
    public init(topic: String, partition: Int32, offset: Int64, timestamp: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
    }

    /// `topic/partition@offset`.
    public var description: String { "\(topic)/\(partition)@\(offset)" }
}

/// A topic and partition.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    /// Topic name.
    public var topic: String
    /// Partition index.
    public var partition: Int32

    /// Creates a topic-partition pair.
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    /// `topic/partition`.
    public var description: String { "\(topic)/\(partition)" }
}

/// Where to start reading a partition.
public enum OffsetSpec: Sendable, Hashable {
    /// The first offset still in the log.
    case earliest
    /// The offset the next produced record will get (the high watermark).
    case latest
    /// The first offset whose timestamp is at or after this time (ms since epoch).
    case timestamp(Int64)

    var wireTimestamp: Int64 {
        switch self {
        case .earliest: ListOffsetsRequest.earliestTimestamp
        case .latest: ListOffsetsRequest.latestTimestamp
        case .timestamp(let t): t
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch (vDSO, no syscall on Linux).
@inline(__always)
func currentTimeMilliseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
