import KlifeIO

/// What a ``KlifeConsumer`` did so far: its partitions with their positions and lag, what it
/// fetched, how long handlers took, its group membership's rebalances, and its flow control
/// (rate limits, the adaptive limit, records in flight).
public struct ConsumerStatistics: Sendable {
    /// One assigned partition.
    public struct Partition: Sendable, Hashable {
        /// Where reading goes on: the offset after the last record handed out (-1 while unknown).
        public var position: Int64
        /// The offset after the last processed record (-1 while unknown).
        public var processed: Int64
        /// The last offset committed or read as committed (-1 if none).
        public var committed: Int64
        /// Records after the position up to the high watermark (or the last stable offset at
        /// read_committed), from the last fetch answer; -1 while unknown.
        public var lag: Int64
        /// Bytes fetched ahead and waiting to be handed out.
        public var bufferedBytes: Int
        /// Paused with ``KlifeConsumer/pause(_:)``.
        public var paused: Bool
    }

    /// Every assigned partition.
    public var partitions: [TopicPartition: Partition]
    /// Records fetched (visible ones: aborted and control records are not counted).
    public var recordsFetched: Int
    /// Bytes of keys and values fetched.
    public var bytesFetched: Int
    /// Batches handed to the application.
    public var batchesDelivered: Int
    /// Bytes fetched ahead of the application now (bounded by
    /// ``ConsumerConfiguration/maxBufferedBytes``).
    public var bufferedBytes: Int
    /// Time from handing a batch to a ``KlifeConsumer/run(_:)-((ConsumerBatch)->Void)`` handler until it returned
    /// successfully (retries included).
    public var handlerLatency: LatencySummary
    /// Rebalances and membership of the group (zeros outside group membership).
    public var group: GroupStatistics
    /// The rate limits in force (`nil`: none).
    public var rateLimit: ConsumerRateLimit?
    /// Total time the reader waited while ready batches were held back by the rate limits
    /// (a wait going on now included): how much the limits throttle delivery.
    public var rateLimitWait: Duration
    /// How many times the reader had to wait on the rate limits.
    public var rateLimitWaits: Int
    /// What handlers' outcomes did: records retrying now, retries, moves to retry and
    /// dead-letter topics, stopped partitions.
    public var outcomes: OutcomeStatistics
    /// Records handed out and not yet finished: in ``KlifeConsumer/run(_:)-((ConsumerBatch)->Void)`` handlers, or the
    /// batch a reader of ``KlifeConsumer/next()`` got last (until it asks again).
    public var inFlightRecords: Int
    /// The adaptive limit's state (`nil`: no ``ConsumerConfiguration/adaptiveLimit``).
    public var adaptiveLimit: AdaptiveLimitStatistics?
    /// Latency of the last finished batches (at most 256), from hand-out until the handler
    /// finished (or the reader asked again): what the application takes now, unlike the
    /// all-time ``handlerLatency``.
    public var recentLatency: RecentLatency
    /// Sum of every partition's ``Partition/lag`` that is known: records not yet handed out.
    public var totalLag: Int64

    /// Percentiles of a bounded window of batch latencies.
    public struct RecentLatency: Sendable, Hashable {
        /// Batches in the window (0: no batch finished yet, and the percentiles are zero).
        public var count: Int
        /// Median.
        public var p50: Duration
        /// 99th percentile (nearest rank).
        public var p99: Duration
    }
}

/// What the handlers' outcomes did to records (``ConsumerStatistics/outcomes``).
public struct OutcomeStatistics: Sendable, Hashable {
    /// Records handed out and not finished now: retrying in the process or being moved (each
    /// holds its partition's commits below it).
    public var recordsInRetry: Int
    /// Attempts after the first, of whole batches and of single records.
    public var retries: Int
    /// Records written to a retry topic.
    public var movedToRetryTopics: Int
    /// Records written to a dead-letter topic.
    public var deadLettered: Int
    /// Failed batches handed out again in halves to find their bad records.
    public var isolatedBatches: Int
    /// Partitions stopped by a record that failed for good, now.
    public var stoppedPartitions: Int
}

extension ConsumerState {
    /// A handler took `nanoseconds` for a batch.
    func noteHandlerLatency(_ nanoseconds: UInt64) {
        state.withLock { $0.handlerLatency.record(nanoseconds: nanoseconds) }
    }

    /// Whether `batch`'s partition is still assigned in the same assignment and not being revoked.
    func isCurrent(_ batch: ConsumerBatch) -> Bool {
        state.withLock { s in
            guard let p = s.partitions[batch.topicPartition] else { return false }
            return p.assignmentID == batch.assignmentID && !p.revoking && !s.closed
        }
    }

    /// A handler gave up `batch` (its partition went away): the partition is no longer busy,
    /// and nothing is marked processed.
    func markAbandoned(_ batch: ConsumerBatch) {
        let handOff = state.withLock { s -> (Waiter, ConsumerBatch)? in
            guard let p = s.partitions[batch.topicPartition], p.assignmentID == batch.assignmentID else { return nil }
            finishHandlerBatch(&s, batch.topicPartition, assignmentID: batch.assignmentID, processed: false)
            s.partitions[batch.topicPartition]!.busy = false
            return takeWaiter(&s)
        }
        releasePermit(of: batch)
        if let (waiter, next) = handOff { waiter.resume(returning: .success(next)) }
    }

    func statistics(group: GroupStatistics) -> ConsumerStatistics {
        state.withLock { s in
            var partitions: [TopicPartition: ConsumerStatistics.Partition] = [:]
            for (tp, p) in s.partitions {
                var lag: Int64 = -1
                if p.highWatermark >= 0 && p.deliveredPosition >= 0 {
                    let end = p.lastStableOffset >= 0 ? min(p.lastStableOffset, p.highWatermark) : p.highWatermark
                    lag = max(0, end - p.deliveredPosition)
                }
                partitions[tp] = .init(position: p.deliveredPosition, processed: Self.commitPosition(p), committed: p.committedPosition,
                                       lag: lag, bufferedBytes: p.ready.reduce(0) { $0 + $1.bytes }, paused: p.paused)
            }
            let recent = s.recentLatencies.percentiles
            let totalLag = partitions.values.reduce(Int64(0)) { $0 + max(0, $1.lag) }
            let waited = s.limiter.totalWait(now: s.limiter.waitingSince == nil ? 0 : limiterClock.now())
            return ConsumerStatistics(partitions: partitions, recordsFetched: s.recordsFetched, bytesFetched: s.bytesFetched,
                                      batchesDelivered: s.batchesDelivered, bufferedBytes: s.bufferedBytes,
                                      handlerLatency: s.handlerLatency.summary, group: group,
                                      rateLimit: s.limiter.limit, rateLimitWait: .nanoseconds(Int64(clamping: waited)),
                                      rateLimitWaits: s.limiter.waits,
                                      outcomes: OutcomeStatistics(
                                          recordsInRetry: s.partitions.values.reduce(0) { $0 + $1.holds.count },
                                          retries: s.outcomes.retries, movedToRetryTopics: s.outcomes.movedToRetry,
                                          deadLettered: s.outcomes.deadLettered, isolatedBatches: s.outcomes.isolations,
                                          stoppedPartitions: s.partitions.values.filter { $0.stopped != nil }.count),
                                      inFlightRecords: s.inFlightRecords,
                                      adaptiveLimit: s.adaptive?.statistics(inFlight: s.inFlightRecords),
                                      recentLatency: .init(count: recent?.count ?? 0, p50: recent?.p50 ?? .zero, p99: recent?.p99 ?? .zero),
                                      totalLag: totalLag)
        }
    }
}

extension KlifeConsumer {
    /// Positions, lag, fetch counters, handler latency and rebalances, now.
    public func statistics() -> ConsumerStatistics {
        state.statistics(group: groupStatistics)
    }
}
