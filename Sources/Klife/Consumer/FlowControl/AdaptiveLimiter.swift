/// The adaptive limit's algorithm (AIMD), a pure value: fed with finished batches (records,
/// hand-out and finish times of an injected monotonic clock, in nanoseconds) and handler errors;
/// no clock or timer of its own, so nothing changes without a sample.
///
/// Why AIMD rather than a gradient (Netflix's Gradient2, Vegas): the users' case is a downstream
/// that struggles, and the answer they asked for is to back off further than proportionally and
/// come back slowly. AIMD does exactly that, is stable with few samples (a consumer may finish a
/// batch a second), and its two knobs are easy to reason about. A gradient follows latency
/// smoothly but needs many samples per window and backs off only in proportion.
///
/// Latency is compared *per record* (batch latency / records): batches differ in size (the
/// limit itself shrinks them), and a batch of 50 taking half the time of one of 100 is normal.
/// A fixed cost per batch makes small batches look slower per record; the tolerance (2× by
/// default) absorbs that, and a target can be set instead of learning.
struct AdaptiveLimiter: Sendable {
    private(set) var settings: AdaptiveLimit
    /// The limit, fractional so additive increases of less than a record add up.
    private(set) var limit: Double
    /// The learned (or target) latency per record, in nanoseconds; 0 before the first sample.
    private(set) var baseline: Double
    /// When the limit last went down: samples of batches handed out before say nothing about
    /// the reduced limit (at most one decrease per round trip, as TCP).
    private(set) var lastDecreaseAt: UInt64?
    private(set) var decreases = 0
    private(set) var lastCongestion: AdaptiveLimitStatistics.Congestion?

    /// How fast the learned baseline drifts up towards a sample above it: quickly enough to
    /// follow a downstream that became slower for good, slowly enough that a spike (congested
    /// samples, ten times slower still) does not become the new normal.
    static let driftNormal = 1.0 / 100
    static let driftCongested = 1.0 / 1000

    init(_ settings: AdaptiveLimit) {
        self.settings = settings
        self.limit = Double(settings.initial)
        if case .target(let perRecord) = settings.baseline {
            baseline = Double(perRecord.nanoseconds)
        } else {
            baseline = 0
        }
    }

    /// The limit in whole records (never below the minimum).
    var currentLimit: Int { max(settings.minimum, min(settings.maximum, Int(limit))) }

    /// Puts new settings in force: the limit in force is kept within the new bounds, a
    /// learned baseline is kept while the baseline stays learned.
    mutating func change(_ new: AdaptiveLimit) {
        let wasLearned = if case .learned = settings.baseline { true } else { false }
        settings = new
        limit = max(Double(new.minimum), min(Double(new.maximum), limit))
        switch new.baseline {
        case .target(let perRecord): baseline = Double(perRecord.nanoseconds)
        case .learned: if !wasLearned { baseline = 0 }
        }
    }

    /// A batch of `records` handed out at `handedOutAt` finished at `now`; `inFlight` records
    /// (this batch's included) were in flight just before it finished.
    mutating func recordSuccess(records: Int, handedOutAt: UInt64, now: UInt64, inFlight: Int) {
        guard records > 0 else { return }
        let perRecord = Double(now &- min(now, handedOutAt)) / Double(records)
        let congested: Bool
        switch settings.baseline {
        case .target:
            congested = perRecord > baseline
        case .learned(let tolerance):
            if baseline == 0 || perRecord < baseline {
                baseline = perRecord
                congested = false
            } else {
                congested = perRecord > tolerance * baseline
                baseline += (perRecord - baseline) * (congested ? Self.driftCongested : Self.driftNormal)
            }
        }
        guard !isStale(handedOutAt) else { return }
        if congested {
            decrease(now: now, because: .latency)
        } else if inFlight * 2 >= currentLimit {
            // Only a limit in use grows (an idle consumer proves nothing about a higher one).
            limit = min(Double(settings.maximum), limit + Double(settings.increasePerRoundTrip) * Double(records) / limit)
        }
    }

    /// A handler failed for a batch handed out at `handedOutAt`: congestion.
    mutating func recordFailure(handedOutAt: UInt64, now: UInt64) {
        guard !isStale(handedOutAt) else { return }
        decrease(now: now, because: .error)
    }

    private func isStale(_ handedOutAt: UInt64) -> Bool {
        guard let lastDecreaseAt else { return false }
        return handedOutAt < lastDecreaseAt
    }

    private mutating func decrease(now: UInt64, because reason: AdaptiveLimitStatistics.Congestion) {
        limit = max(Double(settings.minimum), limit * settings.decreaseFactor)
        lastDecreaseAt = now
        decreases += 1
        lastCongestion = reason
    }

    /// The public view, with `inFlight` records in flight now.
    func statistics(inFlight: Int) -> AdaptiveLimitStatistics {
        AdaptiveLimitStatistics(limit: currentLimit, inFlightRecords: inFlight,
                                baselinePerRecord: baseline > 0 ? .nanoseconds(Int64(baseline.rounded())) : nil,
                                decreases: decreases, lastCongestion: lastCongestion)
    }
}

/// The latencies of the last ``capacity`` finished batches (nanoseconds), in a ring allocated
/// once: recent percentiles without keeping history.
struct RecentLatencies: Sendable {
    static let capacity = 256
    private var samples: [UInt64] = []
    private var next = 0

    mutating func record(_ nanoseconds: UInt64) {
        if samples.count < Self.capacity {
            if samples.isEmpty { samples.reserveCapacity(Self.capacity) }
            samples.append(nanoseconds)
        } else {
            samples[next] = nanoseconds
        }
        next = (next + 1) % Self.capacity
    }

    /// Median and 99th percentile of the window (nearest rank), or `nil` without samples.
    var percentiles: (count: Int, p50: Duration, p99: Duration)? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        func rank(_ q: Double) -> Duration {
            let index = min(sorted.count - 1, max(0, Int((Double(sorted.count) * q).rounded(.up)) - 1))
            return .nanoseconds(Int64(clamping: sorted[index]))
        }
        return (sorted.count, rank(0.5), rank(0.99))
    }
}
