/// What happens to records a handler could not finish: how often and how soon they are tried
/// again in the process, whether a failed batch is halved to find its bad records, and where a
/// record goes when its attempts run out.
///
/// A record whose attempts run out moves into the ``RetryTopics`` chain when
/// ``ConsumerConfiguration/retryTopics`` is set, and otherwise **stops its partition** with a
/// typed error (``KlifeError/Code/recordFailed``): nothing after it in the partition is handed
/// out or committed until ``KlifeConsumer/seek(_:to:)`` says where to go on.
///
/// ```swift
/// settings.failurePolicy = FailurePolicy(maxAttempts: 5,            // then the retry topics
///                                        backoff: .milliseconds(200), maxBackoff: .seconds(10),
///                                        isolateFailures: true)     // halve failed bulk inserts
/// ```
public struct FailurePolicy: Sendable, Equatable {
    /// Attempts per record in this process, the first included, before the record goes on
    /// (into the retry topics, or stopping its partition); `nil`: no limit (the partition
    /// waits for the record as long as it takes; other partitions go on).
    public var maxAttempts: Int?
    /// The wait before the second attempt; each further attempt waits twice as long.
    public var backoff: Duration
    /// The longest wait between attempts.
    public var maxBackoff: Duration
    /// Each wait is drawn uniformly from `wait × (1 − jitter) … wait × (1 + jitter)`
    /// (0 … 1), so that records failing together do not hit the downstream again together.
    public var jitter: Double
    /// When a batch fails as a whole (the handler throws, or returns
    /// ``BatchOutcome/retry(after:error:)`` on its last attempt), hand it out again in halves,
    /// and halve the failing halves again, until the failing records are found alone: with `k`
    /// bad records among `n`, about `2k·log₂(n/k)` handler calls instead of `n`. The records of
    /// the halves that succeed are done; the ones found alone go on retrying by themselves.
    /// Suited to bulk writes that fail as a whole (one bad row fails a multi-row insert); costly
    /// when a batch fails for a reason every record shares (the database is down), which is why
    /// halving only starts when the batch's own attempts are used up.
    public var isolateFailures: Bool
    /// Attempts of a whole batch before it is halved (with ``isolateFailures``) or its records
    /// go on one by one. Default 3.
    public var batchAttempts: Int

    /// A policy; the defaults retry without limit, from 100 ms doubling up to 30 s, with 20 %
    /// jitter, and never halve.
    public init(maxAttempts: Int? = nil, backoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(30),
                jitter: Double = 0.2, isolateFailures: Bool = false, batchAttempts: Int = 3) {
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.maxBackoff = maxBackoff
        self.jitter = jitter
        self.isolateFailures = isolateFailures
        self.batchAttempts = batchAttempts
    }

    func validate() throws(KlifeError) {
        if let maxAttempts, maxAttempts < 1 {
            throw .invalidConfiguration("consumer.failurePolicy.maxAttempts", "must be at least 1 (or nil: no limit)")
        }
        if backoff <= .zero { throw .invalidConfiguration("consumer.failurePolicy.backoff", "must be positive") }
        if maxBackoff < backoff {
            throw .invalidConfiguration("consumer.failurePolicy.maxBackoff", "must be >= consumer.failurePolicy.backoff")
        }
        if !(0...1).contains(jitter) { throw .invalidConfiguration("consumer.failurePolicy.jitter", "must be within 0...1") }
        if batchAttempts < 1 { throw .invalidConfiguration("consumer.failurePolicy.batchAttempts", "must be at least 1") }
    }

    /// The wait before attempt `attempt + 1` (after `attempt` failed ones), with jitter.
    func delay(afterAttempt attempt: Int, random: inout some RandomNumberGenerator) -> Duration {
        let doublings = min(max(attempt - 1, 0), 40)
        var nanoseconds = Double(backoff.nanoseconds) * Double(UInt64(1) << UInt64(doublings))
        nanoseconds = min(nanoseconds, Double(maxBackoff.nanoseconds))
        if jitter > 0 { nanoseconds *= Double.random(in: (1 - jitter)...(1 + jitter), using: &random) }
        return .nanoseconds(Int64(nanoseconds))
    }
}
