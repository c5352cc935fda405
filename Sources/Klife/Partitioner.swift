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
