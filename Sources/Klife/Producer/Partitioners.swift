import KlifeIO
import Synchronization

// The built-in partitioners. All are cheap enough to run on the producing thread for every
// record (one atomic operation each; a lock only when the topic differs from the previous
// record's) and safe to share between threads; copies of a partitioner share its state.
//
// | Partitioner             | Keyed records            | Unkeyed records                        |
// |-------------------------|--------------------------|----------------------------------------|
// | `DefaultPartitioner`    | murmur2                  | sticky (16 KiB per partition, KIP-794) |
// | `Murmur2Partitioner`    | murmur2                  | random partition per record            |
// | `StickyPartitioner`     | murmur2                  | sticky (`batchBytes` per partition)    |
// | `RoundRobinPartitioner` | round robin (key unused) | round robin                            |

/// librdkafka's `murmur2_random`: keyed records by the Java-compatible murmur2 hash,
/// unkeyed records to a random partition, chosen anew for every record.
///
/// Trade-offs: keyed placement is identical to the Java client and to librdkafka's
/// `murmur2_random`, so producers in other languages agree on where a key lives.
/// Unkeyed records are spread evenly and statelessly, but consecutive records land on
/// different partitions, so under load they form many small batches (more requests,
/// worse compression) compared with ``StickyPartitioner``.
public struct Murmur2Partitioner: Partitioner {
    private let random = SharedRandom()

    /// Creates the partitioner.
    public init() {}

    /// `toPositive(murmur2(key)) % partitionCount` for keyed records, a random partition otherwise.
    public func partition(topic: String, key: [UInt8]?, value: [UInt8]?, partitionCount: Int32) -> Int32 {
        guard partitionCount > 1 else { return 0 }
        if let key { return DefaultPartitioner.partition(forKey: key, partitionCount: partitionCount) }
        return random.next(below: partitionCount)
    }

    /// As ``partition(topic:key:value:partitionCount:)``, reading the key in place.
    public func partition(topic: String, keyBytes: UnsafeRawBufferPointer?, valueBytes: UnsafeRawBufferPointer?,
                          partitionCount: Int32) -> Int32 {
        guard partitionCount > 1 else { return 0 }
        if let keyBytes { return DefaultPartitioner.partition(forKey: keyBytes, partitionCount: partitionCount) }
        return random.next(below: partitionCount)
    }
}

/// Keyed records by murmur2; unkeyed records stick to one partition of their topic until
/// about ``batchBytes`` of them were assigned to it, then move to another partition chosen
/// at random among the others ("uniform sticky", KIP-480 / KIP-794).
///
/// A record counts as its value bytes plus ``recordOverheadBytes`` (roughly a record's
/// framing inside a batch), so even empty or null values eventually move on. The
/// partition moves after the record that brings the total to `batchBytes` or beyond.
///
/// Trade-offs: unkeyed records accumulate into few, full batches instead of one small
/// batch per partition, which means fewer and larger Produce requests, better compression,
/// and lower latency under load than per-record spreading (``Murmur2Partitioner``,
/// ``RoundRobinPartitioner``). Over many batches every partition receives about the same
/// number of bytes, but over a short window one partition gets everything. Unlike the
/// Java client, the choice does not adapt to slow brokers (no
/// `partitioner.adaptive.partitioning.enable`): a partition whose leader is slow receives
/// its share regardless. Keyed records do not count toward the sticky partition's bytes.
///
/// State is kept per topic. An unkeyed record costs one atomic compare-and-swap (plus a
/// lock when the producing threads alternate between topics); keyed records touch no state.
public struct StickyPartitioner: Partitioner {
    /// The Java client's default `batch.size`: 16384 bytes.
    public static let defaultBatchBytes = 16_384
    /// Bytes added to each record's value size when counting toward ``batchBytes``.
    public static let recordOverheadBytes = 10

    /// Bytes assigned to a partition before unkeyed records move to another one.
    public let batchBytes: Int
    private let state = StickyState()

    /// Creates a sticky partitioner that moves on after `batchBytes` (at least 1; smaller
    /// values are raised to 1, which moves after every record).
    public init(batchBytes: Int = StickyPartitioner.defaultBatchBytes) {
        self.batchBytes = max(1, batchBytes)
    }

    /// murmur2 for keyed records; the topic's current sticky partition otherwise.
    public func partition(topic: String, key: [UInt8]?, value: [UInt8]?, partitionCount: Int32) -> Int32 {
        guard partitionCount > 1 else { return 0 }
        if let key { return DefaultPartitioner.partition(forKey: key, partitionCount: partitionCount) }
        let size = (value?.count ?? 0) &+ Self.recordOverheadBytes
        return state.assign(topic: topic, bytes: size, limit: batchBytes, partitionCount: partitionCount)
    }

    /// As ``partition(topic:key:value:partitionCount:)``, reading the key in place.
    public func partition(topic: String, keyBytes: UnsafeRawBufferPointer?, valueBytes: UnsafeRawBufferPointer?,
                          partitionCount: Int32) -> Int32 {
        guard partitionCount > 1 else { return 0 }
        if let keyBytes { return DefaultPartitioner.partition(forKey: keyBytes, partitionCount: partitionCount) }
        let size = (valueBytes?.count ?? 0) &+ Self.recordOverheadBytes
        return state.assign(topic: topic, bytes: size, limit: batchBytes, partitionCount: partitionCount)
    }
}

/// Every record, keyed or not, goes to the next partition of its topic in turn (each topic
/// has its own counter, starting at a random partition).
///
/// Trade-offs: the most even spread record by record, and keys are ignored, so records
/// with the same key do *not* stay together (no per-key ordering). Consecutive records
/// land on different partitions, so batches stay small under load, like
/// ``Murmur2Partitioner``'s unkeyed path. Costs one atomic add per record (plus a lock
/// when the producing threads alternate between topics).
public struct RoundRobinPartitioner: Partitioner {
    private let state = RoundRobinState()

    /// Creates the partitioner.
    public init() {}

    /// The topic's next partition in turn.
    public func partition(topic: String, key: [UInt8]?, value: [UInt8]?, partitionCount: Int32) -> Int32 {
        guard partitionCount > 1 else { return 0 }
        return state.next(topic: topic, partitionCount: partitionCount)
    }

    /// The topic's next partition in turn (the bytes are not read).
    public func partition(topic: String, keyBytes: UnsafeRawBufferPointer?, valueBytes: UnsafeRawBufferPointer?,
                          partitionCount: Int32) -> Int32 {
        guard partitionCount > 1 else { return 0 }
        return state.next(topic: topic, partitionCount: partitionCount)
    }
}

// MARK: - Shared state

/// SplitMix64 mixing: a tiny, fast, statistically good generator (not cryptographic).
enum SplitMix64 {
    static let increment: UInt64 = 0x9e37_79b9_7f4a_7c15

    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// Lock-free random numbers shared by all producing threads: one atomic add per draw.
final class SharedRandom: Sendable {
    private let state = Atomic<UInt64>(UInt64.random(in: .min ... .max))

    /// Uniform in `0..<bound` (`bound > 0`), by the multiply-high method.
    func next(below bound: Int32) -> Int32 {
        let s = state.wrappingAdd(SplitMix64.increment, ordering: .relaxed).newValue
        return Int32(truncatingIfNeeded: SplitMix64.mix(s).multipliedFullWidth(by: UInt64(bound)).high)
    }
}

/// Per-topic state of a partitioner, one object per topic (and partition count, when it matters).
protocol TopicSlot: AnyObject, Sendable {
    /// Whether this slot serves records of `topic` with `partitionCount` partitions.
    func serves(topic: String, partitionCount: Int32) -> Bool
}

/// Finds a topic's slot, usually without a lock: the slot used last is cached in an
/// atomic; a miss (another topic, or a changed partition count) takes the lock, looks the
/// topic up in a dictionary and caches the result.
///
/// Slots are never freed while the table lives (replaced ones are kept in `retired`), so
/// the cache may hold them unretained.
final class TopicSlots<Slot: TopicSlot>: @unchecked Sendable {
    // @unchecked: `cache` holds an unretained reference to a slot that `table` keeps alive.
    private struct Table {
        var slots: [String: Slot] = [:]
        var retired: [Slot] = []
    }

    private let cache = Atomic<UnsafeRawPointer?>(nil)
    private let table = Locked(Table())
    private let make: @Sendable (String, Int32) -> Slot

    init(make: @escaping @Sendable (_ topic: String, _ partitionCount: Int32) -> Slot) {
        self.make = make
    }

    /// Runs `body` with the slot of `topic`. A cached slot is lent without a retain (the
    /// table keeps it alive): this runs once per record.
    @inline(__always)
    func withSlot<R>(topic: String, partitionCount: Int32, _ body: (Slot) -> R) -> R {
        if let cached = cache.load(ordering: .acquiring) {
            let hit: R? = Unmanaged<Slot>.fromOpaque(cached)._withUnsafeGuaranteedRef { slot in
                slot.serves(topic: topic, partitionCount: partitionCount) ? body(slot) : nil
            }
            if let hit { return hit }
        }
        return body(slot(topic: topic, partitionCount: partitionCount))
    }

    func slot(topic: String, partitionCount: Int32) -> Slot {
        if let cached = cache.load(ordering: .acquiring) {
            let slot = Unmanaged<Slot>.fromOpaque(cached).takeUnretainedValue()
            if slot.serves(topic: topic, partitionCount: partitionCount) { return slot }
        }
        let slot = table.withLock { table in
            if let existing = table.slots[topic] {
                if existing.serves(topic: topic, partitionCount: partitionCount) { return existing }
                table.retired.append(existing)
            }
            let fresh = make(topic, partitionCount)
            table.slots[topic] = fresh
            return fresh
        }
        cache.store(UnsafeRawPointer(Unmanaged.passUnretained(slot).toOpaque()), ordering: .releasing)
        return slot
    }
}

/// Per-topic sticky partitions: a (partition, bytes) pair per topic in one atomic word.
final class StickyState: Sendable {
    final class Slot: TopicSlot {
        let topic: String
        let partitionCount: Int32
        /// High 32 bits: the sticky partition; low 32 bits: bytes assigned to it so far.
        let word: Atomic<UInt64>

        init(topic: String, partitionCount: Int32, partition: Int32) {
            self.topic = topic
            self.partitionCount = partitionCount
            word = Atomic(UInt64(UInt32(bitPattern: partition)) << 32)
        }

        func serves(topic: String, partitionCount: Int32) -> Bool {
            self.partitionCount == partitionCount && self.topic == topic
        }
    }

    private let random = SharedRandom()
    private let slots: TopicSlots<Slot>

    init() {
        let random = self.random
        slots = TopicSlots { topic, count in
            Slot(topic: topic, partitionCount: count, partition: random.next(below: count))
        }
    }

    /// The partition for a record of `bytes` bytes (`partitionCount > 1`); the topic moves
    /// to another partition once `limit` bytes were assigned to the current one.
    func assign(topic: String, bytes: Int, limit: Int, partitionCount: Int32) -> Int32 {
        slots.withSlot(topic: topic, partitionCount: partitionCount) { slot in
            assign(slot, bytes: bytes, limit: limit, partitionCount: partitionCount)
        }
    }

    private func assign(_ slot: Slot, bytes: Int, limit: Int, partitionCount: Int32) -> Int32 {
        let limit = UInt64(min(limit, Int(Int32.max)))
        let size = UInt64(min(bytes, Int(Int32.max)))
        var old = slot.word.load(ordering: .relaxed)
        while true {
            let partition = Int32(truncatingIfNeeded: old >> 32)
            let total = (old & 0xffff_ffff) &+ size
            let new: UInt64
            if total >= limit {
                // Move to another partition, uniformly among the other partitionCount - 1.
                var next = random.next(below: partitionCount - 1)
                if next >= partition { next += 1 }
                new = UInt64(UInt32(bitPattern: next)) << 32
            } else {
                new = (old & 0xffff_ffff_0000_0000) | total
            }
            let (exchanged, original) = slot.word.compareExchange(expected: old, desired: new, ordering: .relaxed)
            if exchanged { return partition }
            old = original
        }
    }
}

/// Per-topic round-robin counters.
final class RoundRobinState: Sendable {
    final class Slot: TopicSlot {
        let topic: String
        let counter: Atomic<UInt32>

        init(topic: String, start: UInt32) {
            self.topic = topic
            counter = Atomic(start)
        }

        func serves(topic: String, partitionCount: Int32) -> Bool { self.topic == topic }
    }

    private let slots: TopicSlots<Slot>

    init() {
        let random = SharedRandom()
        slots = TopicSlots { topic, count in Slot(topic: topic, start: UInt32(random.next(below: count))) }
    }

    func next(topic: String, partitionCount: Int32) -> Int32 {
        let n = slots.withSlot(topic: topic, partitionCount: partitionCount) { $0.counter.wrappingAdd(1, ordering: .relaxed).oldValue }
        return Int32(n % UInt32(partitionCount))
    }
}
