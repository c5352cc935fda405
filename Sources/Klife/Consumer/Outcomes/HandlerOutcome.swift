/// What a handler decided about one record.
public enum RecordOutcome: Sendable, Equatable {
    /// Finished: the record may be committed once every record before it is finished too.
    case done
    /// Failed for now: handed to the handler again (alone) after `after`, or after the
    /// policy's backoff when `nil`. `error` is kept for the log, the record's
    /// retry-topic headers and the typed error that stops the partition when attempts run out.
    case retry(after: Duration? = nil, error: String)
    /// Never going to work (a poison record): moved to the dead-letter topic with `reason`,
    /// without further attempts.
    case deadLetter(reason: String)
}

/// What a handler decided about a batch: the whole batch is done, the whole batch is to be
/// retried, or some records failed (every record not named is done).
///
/// ```swift
/// try await consumer.run { batch -> BatchOutcome in
///     var outcome = BatchOutcome.done
///     for record in batch.records {
///         guard let order = Order(json: record.value) else {
///             outcome.deadLetter(record, reason: "not an order")   // poison: no retries
///             continue
///         }
///         do { try await shop.apply(order) }
///         catch { outcome.retry(record, error: "\(error)") }       // again later, alone
///     }
///     return outcome
/// }
/// ```
public struct BatchOutcome: Sendable, Equatable {
    /// Outcomes other than ``RecordOutcome/done``, by record offset.
    public private(set) var failures: [Int64: RecordOutcome] = [:]
    /// Set when the whole batch is to be handed out again, after this delay (`nil`: the
    /// policy's backoff).
    public private(set) var retryBatch: RetryBatch?

    /// The batch is to be handed to the handler again as a whole.
    public struct RetryBatch: Sendable, Equatable {
        /// The wait before the next attempt (`nil`: the policy's backoff).
        public var after: Duration?
        /// Why, for the log and for the error when attempts run out.
        public var error: String
    }

    /// Every record of the batch is finished.
    public static let done = BatchOutcome()

    /// The whole batch is handed to the handler again after `after` (the policy's backoff when
    /// `nil`); nothing after it in its partition is handed out meanwhile.
    public static func retry(after: Duration? = nil, error: String = "retry requested") -> BatchOutcome {
        var outcome = BatchOutcome()
        outcome.retryBatch = RetryBatch(after: after, error: error)
        return outcome
    }

    /// Sets the outcome of one record (by its offset); ``RecordOutcome/done`` clears a failure.
    public mutating func set(_ outcome: RecordOutcome, forOffset offset: Int64) {
        if outcome == .done { failures[offset] = nil } else { failures[offset] = outcome }
    }

    /// `record` is to be retried alone, after `after` (the policy's backoff when `nil`).
    public mutating func retry(_ record: ConsumerRecord, after: Duration? = nil, error: String) {
        set(.retry(after: after, error: error), forOffset: record.offset)
    }

    /// `record` goes to the dead-letter topic without further attempts.
    public mutating func deadLetter(_ record: ConsumerRecord, reason: String) {
        set(.deadLetter(reason: reason), forOffset: record.offset)
    }

    /// The outcome given for the record at `offset` (``RecordOutcome/done`` unless set).
    public func outcome(forOffset offset: Int64) -> RecordOutcome { failures[offset] ?? .done }
}
