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
/// Latency is compared *per record*: batches differ in size (the limit itself shrinks them, down
/// to a record when it splits a batch), and a batch of 50 taking half the time of one of 100 is
/// normal. But a fixed cost per batch (a round trip, a statement) makes small batches slower
/// per record, so the learned latency per record is kept per *size class* (1, 2–3, 4–7, …
/// records): a batch is compared with what batches of its size took. A class not seen yet is
/// compared with the smallest batch of the nearest larger class seen (a smaller batch should not
/// take longer than a larger one) and starts learning from that.
struct AdaptiveLimiter: Sendable {
    private(set) var settings: AdaptiveLimit
    /// The limit, fractional so additive increases of less than a record add up.
    private(set) var limit: Double
    /// The learned (or target) latency per record, in nanoseconds; 0 before the first sample.
    private(set) var baseline: Double
    /// The learned latency per record of each size class (`⌊log₂ records⌋`, the last one open
    /// ended), in nanoseconds; 0 for a class not seen yet.
    private(set) var classes = [Double](repeating: 0, count: 14)
    /// When the limit last went down: samples of batches handed out before say nothing about
    /// the reduced limit (at most one decrease per round trip, as TCP).
    private(set) var lastDecreaseAt: UInt64?
    private(set) var decreases = 0
    /// Slow batches in a row so far (see ``slowInARow``).
    private var slowStreak = 0
    private(set) var lastCongestion: AdaptiveLimitStatistics.Congestion?

    /// How fast what is learned drifts up towards a sample above it: a
    /// normal sample moves them 1/100 of the way; a congested one by at most 1/1000 of their
    /// own value, however slow it was, so a struggle of a few hundred batches does not become
    /// the new normal, while a downstream slower for good is followed within a few thousand.
    static let driftNormal = 1.0 / 100
    static let driftCongested = 1.0 / 1000
    /// How far a faster sample pulls what was learned down (1/10 of the gap): together with the
    /// slow drift up, what is learned settles near a low percentile of the latencies (about the
    /// 10th), not at the single fastest batch, so a downstream whose normal latency spreads
    /// widely is not taken for congested half of the time.
    static let pullDown = 1.0 / 10
    /// Slow batches in a row that make congestion: one slow batch alone (a pause, a checkpoint)
    /// is not congestion; two in a row are. Handler errors count at once.
    static let slowInARow = 2

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
        let latency = Double(now &- min(now, handedOutAt))
        let perRecord = latency / Double(records)
        let sizeClass = Self.sizeClass(records)
        let usual = expected(records)
        let congested: Bool
        switch settings.baseline {
        case .target:
            congested = latency > max(baseline * Double(records), 2 * (usual ?? 0))
        case .learned(let tolerance):
            if baseline == 0 { baseline = perRecord }
            congested = latency > tolerance * (usual ?? baseline * Double(records))
            Self.learn(&baseline, from: perRecord, congested: congested)
        }
        // A class seen for the first time starts from what was expected of it, so a congested
        // first sample moves it only as far as any congested sample moves a learned class.
        if classes[sizeClass] == 0 { classes[sizeClass] = usual.map { $0 / Double(records) } ?? perRecord }
        Self.learn(&classes[sizeClass], from: perRecord, congested: congested)
        slowStreak = congested ? slowStreak + 1 : 0
        guard !isStale(handedOutAt) else { return }
        if slowStreak >= Self.slowInARow {
            decrease(now: now, because: .latency)
        } else if !congested && inFlight * 2 >= currentLimit {
            // Only a limit in use grows (an idle consumer proves nothing about a higher one).
            limit = min(Double(settings.maximum), limit + Double(settings.increasePerRoundTrip) * Double(records) / limit)
        }
    }

    /// The size class of a batch of `records` (`⌊log₂ records⌋`, at most the last class).
    static func sizeClass(_ records: Int) -> Int {
        min(13, Int.bitWidth - 1 - max(records, 1).leadingZeroBitCount)
    }

    /// What a normal batch of `records` takes (nanoseconds): its class's latency per record;
    /// for a class not seen yet, what the smallest batch of the nearest larger class seen
    /// takes; `nil` before any sample.
    private func expected(_ records: Int) -> Double? {
        let own = Self.sizeClass(records)
        if classes[own] > 0 { return classes[own] * Double(records) }
        for larger in own + 1..<classes.count where classes[larger] > 0 {
            return classes[larger] * Double(1 << larger)
        }
        return nil
    }

    /// A low percentile of the samples: pulled down by faster ones (``pullDown``), drifting
    /// slowly up towards slower ones (``driftNormal``, ``driftCongested``).
    private static func learn(_ value: inout Double, from sample: Double, congested: Bool) {
        if sample < value {
            value += (sample - value) * pullDown
        } else if congested {
            value += min((sample - value) * driftNormal, value * driftCongested)
        } else {
            value += (sample - value) * driftNormal
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
