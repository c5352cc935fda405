/// A token bucket over an injected monotonic time (nanoseconds): `rate` tokens per second
/// flow in up to `capacity`; taking spends them. Pure value logic, no clock of its own, so the
/// consumer's limiter and the tests drive it with whatever time they have.
///
/// A cost is allowed once the bucket holds the cost, or is full when the cost is larger than
/// the whole bucket: such a cost goes into debt (the balance turns negative) and later costs wait
/// until the debt is paid back. So a cost never waits for ever, and what was taken up to any time
/// `t` never exceeds `capacity + rate × t` plus the excess of one oversized cost.
struct TokenBucket: Sendable, Equatable {
    /// Tokens per second (positive).
    private(set) var rate: Double
    /// The most tokens the bucket holds (the burst).
    private(set) var capacity: Double
    /// The balance at ``updated``: at most ``capacity``; negative while in debt.
    private(set) var tokens: Double
    /// When ``tokens`` was last brought up to date (nanoseconds of the injected clock).
    private(set) var updated: UInt64

    /// A full bucket.
    init(rate: Double, capacity: Double, now: UInt64) {
        self.rate = rate
        self.capacity = max(0, capacity)
        self.tokens = self.capacity
        self.updated = now
    }

    /// The balance at `now` (refilled since ``updated``, capped at ``capacity``).
    func level(at now: UInt64) -> Double {
        guard now > updated else { return tokens }
        return min(capacity, tokens + rate * Double(now - updated) / 1e9)
    }

    /// Nanoseconds from `now` until `cost` may be taken; 0 when it may be taken now.
    func wait(for cost: Double, now: UInt64) -> UInt64 {
        let needed = min(cost, capacity)
        let missing = needed - level(at: now)
        // A hair of tolerance: a timer armed for the computed time must find the cost allowed.
        guard missing > 1e-9 * max(1, needed) else { return 0 }
        let nanoseconds = (missing / rate * 1e9).rounded(.up)
        return nanoseconds >= 9e18 ? UInt64(9e18) : max(1, UInt64(nanoseconds))
    }

    /// Takes `cost` at `now` (into debt if the balance does not cover it).
    mutating func take(_ cost: Double, now: UInt64) {
        refill(now: now)
        tokens -= cost
    }

    /// Brings the balance up to `now`.
    mutating func refill(now: UInt64) {
        tokens = level(at: now)
        if now > updated { updated = now }
    }

    /// Changes rate and capacity from `now` on: what flowed in so far counts at the old rate,
    /// the balance (and a debt) is kept, capped at the new capacity.
    mutating func change(rate: Double, capacity: Double, now: UInt64) {
        refill(now: now)
        self.rate = rate
        self.capacity = max(0, capacity)
        tokens = min(tokens, self.capacity)
    }
}
