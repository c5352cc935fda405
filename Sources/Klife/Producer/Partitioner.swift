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

    /// The same choice for a record whose key and value the producer already copied into its
    /// own memory (the bytes are valid only during the call; `nil` is a null key or value).
    /// The default copies them into arrays and calls
    /// ``partition(topic:key:value:partitionCount:)``; the built-in partitioners read them in place.
    func partition(topic: String, keyBytes: UnsafeRawBufferPointer?, valueBytes: UnsafeRawBufferPointer?,
                   partitionCount: Int32) -> Int32
}

extension Partitioner {
    /// Copies the bytes into arrays and calls ``partition(topic:key:value:partitionCount:)``.
    public func partition(topic: String, keyBytes: UnsafeRawBufferPointer?, valueBytes: UnsafeRawBufferPointer?,
                          partitionCount: Int32) -> Int32 {
        partition(topic: topic, key: keyBytes.map { [UInt8]($0) }, value: valueBytes.map { [UInt8]($0) },
                  partitionCount: partitionCount)
    }
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

    /// The partition for a pending record without one: its key and value read where they lie
    /// (located from the record's lengths: a partitioner that looks only at the lengths reads
    /// nothing of the entry).
    @inline(__always)
    func choose(_ record: borrowing PendingRecord, partitionCount: Int32) -> Int32 {
        let (key, value) = record.keyAndValue
        // The name lent where the interned topic keeps it (a copy of it retained its storage).
        return record.topic.interned._withUnsafeGuaranteedRef { topic in
            choose(topic: topic.name, keyBytes: key, valueBytes: value, partitionCount: partitionCount)
        }
    }

    /// The partition for a record without one, its key and value read in place.
    @inline(__always)
    func choose(topic: String, keyBytes: UnsafeRawBufferPointer?, valueBytes: UnsafeRawBufferPointer?,
                partitionCount: Int32) -> Int32 {
        // Called on the stored existential, not on a local: binding one copies it (a retain).
        if topicPartitioners.isEmpty {
            return partitioner.partition(topic: topic, keyBytes: keyBytes, valueBytes: valueBytes, partitionCount: partitionCount)
        }
        return (topicPartitioners[topic] ?? partitioner).partition(topic: topic, keyBytes: keyBytes, valueBytes: valueBytes,
                                                                   partitionCount: partitionCount)
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
