import Synchronization

/// The partition choice used when a record names none.
///
/// Keyed records go to `murmur2(key) & 0x7fffffff % partitionCount`, the same
/// partition the Java client and librdkafka's `murmur2_random` partitioner choose,
/// so mixed-language producers agree. Unkeyed records rotate round robin.
public struct DefaultPartitioner: Partitioner {
    private let roundRobin = RoundRobinCounter()

    /// Creates the default partitioner.
    public init() {}

    /// murmur2 of the key, or round robin for unkeyed records.
    public func partition(topic: String, key: [UInt8]?, value: [UInt8]?, partitionCount: Int32) -> Int32 {
        if let key { return Self.partition(forKey: key, partitionCount: partitionCount) }
        return roundRobin.nextPartition(of: partitionCount)
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

    /// The partition for `key` among `partitionCount` partitions.
    public static func partition(forKey key: [UInt8], partitionCount: Int32) -> Int32 {
        (murmur2(key) & 0x7fff_ffff) % partitionCount
    }
}

/// Round-robin counter shared by all producing threads.
final class RoundRobinCounter: Sendable {
    private let next = Atomic<UInt32>(0)

    func nextPartition(of count: Int32) -> Int32 {
        let n = next.add(1, ordering: .relaxed).oldValue
        return Int32(n % UInt32(count))
    }
}
