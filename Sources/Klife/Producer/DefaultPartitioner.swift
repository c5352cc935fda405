/// The partition choice used when a record names none, and the default of
/// `producer.partitioner`: murmur2 for keyed records, sticky for unkeyed ones.
///
/// Keyed records go to `(murmur2(key) & 0x7fffffff) % partitionCount`, the same
/// partition the Java client and librdkafka's `murmur2_random` partitioner choose,
/// so mixed-language producers agree. A non-nil empty key is hashed like any other.
///
/// Unkeyed records stick to one partition per topic until about `batchBytes`
/// (default 16384, the Java client's `batch.size`) were assigned to it, then move to
/// another partition at random: the Java client's default since KIP-480 / KIP-794.
/// See ``StickyPartitioner`` for the trade-offs, ``Murmur2Partitioner`` for librdkafka's
/// per-record random spreading and ``RoundRobinPartitioner`` for strict rotation.
public struct DefaultPartitioner: Partitioner {
    private let sticky: StickyPartitioner

    /// Creates the default partitioner; unkeyed records move on after `batchBytes`.
    public init(batchBytes: Int = StickyPartitioner.defaultBatchBytes) {
        sticky = StickyPartitioner(batchBytes: batchBytes)
    }

    /// murmur2 of the key, or the topic's sticky partition for unkeyed records.
    public func partition(topic: String, key: [UInt8]?, value: [UInt8]?, partitionCount: Int32) -> Int32 {
        sticky.partition(topic: topic, key: key, value: value, partitionCount: partitionCount)
    }

    /// As ``partition(topic:key:value:partitionCount:)``, reading the key in place.
    public func partition(topic: String, keyBytes: UnsafeRawBufferPointer?, valueBytes: UnsafeRawBufferPointer?,
                          partitionCount: Int32) -> Int32 {
        sticky.partition(topic: topic, keyBytes: keyBytes, valueBytes: valueBytes, partitionCount: partitionCount)
    }

    /// Kafka's murmur2 hash (seed 0x9747b28c), bit-exact with the Java client.
    public static func murmur2(_ data: [UInt8]) -> Int32 {
        data.withUnsafeBytes { murmur2(UnsafeRawBufferPointer($0)) }
    }

    /// Kafka's murmur2 hash over raw bytes.
    public static func murmur2(_ data: UnsafeRawBufferPointer) -> Int32 {
        let length = data.count
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: length)
        let blocks = length / 4
        for i in 0..<blocks {
            var k = data.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self).littleEndian
            k &*= m
            k ^= k >> r
            k &*= m
            h &*= m
            h ^= k
        }
        let tail = blocks * 4
        switch length & 3 {
        case 3:
            h ^= UInt32(data[tail + 2]) << 16
            h ^= UInt32(data[tail + 1]) << 8
            h ^= UInt32(data[tail])
            h &*= m
        case 2:
            h ^= UInt32(data[tail + 1]) << 8
            h ^= UInt32(data[tail])
            h &*= m
        case 1:
            h ^= UInt32(data[tail])
            h &*= m
        default:
            break
        }
        h ^= h >> 13
        h &*= m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }

    /// The partition for `key` among `partitionCount` partitions (which must be positive):
    /// `(murmur2(key) & 0x7fffffff) % partitionCount`, Java's `toPositive(murmur2(key)) % n`.
    public static func partition(forKey key: [UInt8], partitionCount: Int32) -> Int32 {
        key.withUnsafeBytes { partition(forKey: $0, partitionCount: partitionCount) }
    }

    /// ``partition(forKey:partitionCount:)-([UInt8],_)`` of a key read in place.
    public static func partition(forKey key: UnsafeRawBufferPointer, partitionCount: Int32) -> Int32 {
        (murmur2(key) & 0x7fff_ffff) % partitionCount
    }
}
