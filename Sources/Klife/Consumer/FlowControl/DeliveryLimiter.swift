import KlifeIO

/// Where the delivery limiter takes its time from and how its timer waits: the monotonic clock
/// and `Task.sleep` in production; tests inject a clock they move by hand.
struct LimiterClock: Sendable {
    /// Now, in nanoseconds (monotonic).
    var now: @Sendable () -> UInt64
    /// Suspends for about this many nanoseconds (returns early when its task is cancelled).
    var sleep: @Sendable (UInt64) async -> Void

    /// The reactors' monotonic clock and `Task.sleep`.
    static let monotonic = LimiterClock(
        now: { Reactor.monotonicNanoseconds() },
        sleep: { try? await Task.sleep(nanoseconds: $0) })
}

/// The consumer's rate limits as token buckets, kept inside ``ConsumerState`` (under its lock):
/// asked once per batch handed out, never per record. Inactive (one branch) without a limit.
struct DeliveryLimiter: Sendable {
    /// The limit in force; `nil` for none.
    private(set) var limit: ConsumerRateLimit?
    private var records: TokenBucket?
    private var bytes: TokenBucket?
    /// Per-partition buckets, made on a partition's first check (full).
    private var partitions: [TopicPartition: (records: TokenBucket?, bytes: TokenBucket?)] = [:]
    /// Whether the limit has per-partition rates (else ``partitions`` is empty and never looked up).
    private var perPartition = false
    /// Nanoseconds a reader waited while a batch was ready but held back, in finished waits.
    private(set) var waitedNanoseconds: UInt64 = 0
    /// Since when the reader waits on the limits (`nil`: it does not).
    private(set) var waitingSince: UInt64?
    /// Waits of the reader on the limits (each ends with a batch handed out, or the reader
    /// leaving): how often delivery was throttled.
    private(set) var waits = 0

    /// Whether any limit is set.
    var isActive: Bool { limit != nil }

    init(_ limit: ConsumerRateLimit?, now: UInt64) {
        setLimit(limit, now: now)
    }

    /// Nanoseconds until a batch of `tp` with `count` records and `size` bytes may go, from
    /// the partition's own buckets.
    func partitionWait(_ tp: TopicPartition, count: Int, size: Int, now: UInt64) -> UInt64 {
        guard perPartition, let buckets = partitions[tp] else { return 0 }
        return max(buckets.records?.wait(for: Double(count), now: now) ?? 0,
                   buckets.bytes?.wait(for: Double(size), now: now) ?? 0)
    }

    /// Nanoseconds until a batch of `count` records and `size` bytes may go, from the
    /// consumer-wide buckets.
    func consumerWait(count: Int, size: Int, now: UInt64) -> UInt64 {
        max(records?.wait(for: Double(count), now: now) ?? 0, bytes?.wait(for: Double(size), now: now) ?? 0)
    }

    /// Makes the per-partition buckets of `tp` if the limit has them and it has none yet.
    mutating func track(_ tp: TopicPartition, now: UInt64) {
        guard perPartition, let limit, partitions[tp] == nil else { return }
        partitions[tp] = (Self.bucket(limit.perPartitionRecordsPerSecond, limit, now),
                          Self.bucket(limit.perPartitionBytesPerSecond, limit, now))
    }

    /// Spends a batch of `tp` going out (into debt where it is larger than the balance).
    mutating func take(_ tp: TopicPartition, count: Int, size: Int, now: UInt64) {
        records?.take(Double(count), now: now)
        bytes?.take(Double(size), now: now)
        if perPartition, var buckets = partitions[tp] {
            buckets.records?.take(Double(count), now: now)
            buckets.bytes?.take(Double(size), now: now)
            partitions[tp] = buckets
        }
    }

    /// Drops the buckets of a partition no longer assigned (given back, it starts full).
    mutating func forget(_ tp: TopicPartition) {
        if perPartition { partitions.removeValue(forKey: tp) }
    }

    /// Puts `limit` in force from `now`: buckets of rates still set keep their balance (and
    /// debt), capped at the new capacity; new rates start full; removed rates go.
    mutating func setLimit(_ limit: ConsumerRateLimit?, now: UInt64) {
        self.limit = limit
        perPartition = limit?.perPartitionRecordsPerSecond != nil || limit?.perPartitionBytesPerSecond != nil
        guard let limit else {
            records = nil
            bytes = nil
            partitions.removeAll()
            return
        }
        records = Self.change(records, limit.recordsPerSecond, limit, now)
        bytes = Self.change(bytes, limit.bytesPerSecond, limit, now)
        guard perPartition else {
            partitions.removeAll()
            return
        }
        for (tp, buckets) in partitions {
            partitions[tp] = (Self.change(buckets.records, limit.perPartitionRecordsPerSecond, limit, now),
                              Self.change(buckets.bytes, limit.perPartitionBytesPerSecond, limit, now))
        }
    }

    /// The reader starts (or goes on) waiting on the limits with a batch ready.
    mutating func beginWait(now: UInt64) {
        guard waitingSince == nil else { return }
        waitingSince = now
        waits += 1
    }

    /// The reader stopped waiting on the limits (it got a batch, left, or nothing is held).
    mutating func endWait(now: UInt64) {
        guard let since = waitingSince else { return }
        waitingSince = nil
        if now > since { waitedNanoseconds += now - since }
    }

    /// Total wait including a wait going on at `now`.
    func totalWait(now: UInt64) -> UInt64 {
        guard let since = waitingSince, now > since else { return waitedNanoseconds }
        return waitedNanoseconds + (now - since)
    }

    private static func bucket(_ rate: Double?, _ limit: ConsumerRateLimit, _ now: UInt64) -> TokenBucket? {
        rate.map { TokenBucket(rate: $0, capacity: $0 * limit.burstSeconds, now: now) }
    }

    private static func change(_ bucket: TokenBucket?, _ rate: Double?, _ limit: ConsumerRateLimit,
                               _ now: UInt64) -> TokenBucket? {
        guard let rate else { return nil }
        guard var bucket else { return Self.bucket(rate, limit, now) }
        bucket.change(rate: rate, capacity: rate * limit.burstSeconds, now: now)
        return bucket
    }
}
