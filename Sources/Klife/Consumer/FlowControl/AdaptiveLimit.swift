/// An adaptive limit on the records a ``KlifeConsumer`` has in flight (handed out and not yet
/// finished), driven by how long the application takes per record and by its errors, in the
/// manner of TCP congestion control (AIMD: additive increase, multiplicative decrease).
///
/// ```swift
/// var settings = ConsumerConfiguration()
/// settings.adaptiveLimit = AdaptiveLimit(minimum: 10, maximum: 2_000, initial: 500)
/// let consumer = try client.consumer(settings)
/// try await consumer.run { batch in try await database.insert(batch.records) }
/// print(consumer.statistics().adaptiveLimit?.limit as Any)
/// ```
///
/// Every finished batch is a sample: its latency (hand-out to finish) divided by its record
/// count, compared with the ``baseline``. A sample above `tolerance × baseline` (or above the
/// target), and every handler error, is congestion: the limit is multiplied by
/// ``decreaseFactor`` (at most once per round trip: batches handed out before a decrease do not
/// decrease it again). Other samples add ``increasePerRoundTrip`` records per limit's worth of
/// records finished, while the limit is in use. The limit bounds batch sizes too: a ready batch
/// larger than the room left is split.
public struct AdaptiveLimit: Sendable, Hashable {
    /// What latency per record counts as normal.
    public enum Baseline: Sendable, Hashable {
        /// A fixed latency per record: batches above it (and above twice what batches of their
        /// size took), twice in a row, are congestion.
        case target(perRecord: Duration)
        /// Learned per batch size class: a low percentile of the latency per record, drifting
        /// slowly up towards later samples (a downstream that became slower for good is accepted
        /// after a few thousand congested batches); batches above `tolerance ×` it, twice in a
        /// row, are congestion.
        case learned(tolerance: Double = 2)
    }

    /// Normal latency per record: a target, or learned. Default learned, tolerance 2.
    public var baseline: Baseline
    /// The limit never goes below this many records (at least 1). Default 1.
    public var minimum: Int
    /// The limit never goes above this many records. Default 10 000.
    public var maximum: Int
    /// The limit at the start. Default 500 (one default batch).
    public var initial: Int
    /// Congestion multiplies the limit by this factor, above 0 and below 1. Default 0.5.
    public var decreaseFactor: Double
    /// Records added to the limit per round trip (a limit's worth of records finished without
    /// congestion). Default 10.
    public var increasePerRoundTrip: Int

    /// An adaptive limit; ``ConsumerConfiguration/validate()`` checks it.
    public init(baseline: Baseline = .learned(), minimum: Int = 1, maximum: Int = 10_000, initial: Int = 500,
                decreaseFactor: Double = 0.5, increasePerRoundTrip: Int = 10) {
        self.baseline = baseline
        self.minimum = minimum
        self.maximum = maximum
        self.initial = initial
        self.decreaseFactor = decreaseFactor
        self.increasePerRoundTrip = increasePerRoundTrip
    }

    /// Checks every field; the error names it (under `consumer.adaptiveLimit`).
    public func validate() throws(KlifeError) {
        switch baseline {
        case .target(let perRecord):
            if perRecord <= .zero {
                throw .invalidConfiguration("consumer.adaptiveLimit.baseline", "a target latency must be positive")
            }
        case .learned(let tolerance):
            if !(tolerance.isFinite && tolerance > 1) {
                throw .invalidConfiguration("consumer.adaptiveLimit.baseline", "the tolerance must be a finite number above 1")
            }
        }
        if minimum < 1 { throw .invalidConfiguration("consumer.adaptiveLimit.minimum", "must be at least 1") }
        if maximum < minimum { throw .invalidConfiguration("consumer.adaptiveLimit.maximum", "must be >= consumer.adaptiveLimit.minimum") }
        if initial < minimum || initial > maximum {
            throw .invalidConfiguration("consumer.adaptiveLimit.initial", "must be between the minimum and the maximum")
        }
        if !(decreaseFactor > 0 && decreaseFactor < 1) {
            throw .invalidConfiguration("consumer.adaptiveLimit.decreaseFactor", "must be above 0 and below 1")
        }
        if increasePerRoundTrip < 1 {
            throw .invalidConfiguration("consumer.adaptiveLimit.increasePerRoundTrip", "must be at least 1")
        }
    }
}

/// The adaptive limit's state in ``ConsumerStatistics``.
public struct AdaptiveLimitStatistics: Sendable, Hashable {
    /// Why the limit last went down.
    public enum Congestion: Sendable, Hashable {
        /// A batch took longer per record than the baseline allows.
        case latency
        /// A handler failed.
        case error
    }

    /// The limit on records in flight now.
    public var limit: Int
    /// Records handed out and not yet finished.
    public var inFlightRecords: Int
    /// Normal latency per record: the target, or the learned baseline (`nil` before the
    /// first sample).
    public var baselinePerRecord: Duration?
    /// How many times the limit went down.
    public var decreases: Int
    /// Why it last went down (`nil`: never).
    public var lastCongestion: Congestion?
}
