/// Chooses the partition of a record that names none.
///
/// Set one client-wide (`producer.partitioner`) or per topic (`producer.topicPartitioners`).
/// Called on the producing thread for every such record: keep it fast and thread-safe.
///
/// ```swift
/// struct ByRegion: Partitioner {
///     func partition(topic: String, key: [UInt8]?, value: [UInt8]?, partitionCount: Int32) -> Int32 {
///         key?.first == UInt8(ascii: "e") ? 0 : partitionCount - 1
///     }
/// }
/// config.producer.topicPartitioners["orders"] = ByRegion()
/// ```
public protocol Partitioner: Sendable {
    /// A partition in `0..<partitionCount` for this record.
    func partition(topic: String, key: [UInt8]?, value: [UInt8]?, partitionCount: Int32) -> Int32
}

/// The producer's partitioners resolved once from the configuration: the topic's own,
/// else the client-wide one. Held by the client and every reactor so choosing a
/// partition never copies the configuration.
struct PartitionChooser: Sendable {
    let partitioner: any Partitioner
    let topicPartitioners: [String: any Partitioner]

    init(_ producer: ProducerConfiguration) {
        partitioner = producer.partitioner
        topicPartitioners = producer.topicPartitioners
    }

    /// The partition for a record without one.
    @inline(__always)
    func choose(topic: String, key: [UInt8]?, value: [UInt8]?, partitionCount: Int32) -> Int32 {
        if topicPartitioners.isEmpty {
            return partitioner.partition(topic: topic, key: key, value: value, partitionCount: partitionCount)
        }
        return (topicPartitioners[topic] ?? partitioner).partition(topic: topic, key: key, value: value,
                                                                   partitionCount: partitionCount)
    }
}
