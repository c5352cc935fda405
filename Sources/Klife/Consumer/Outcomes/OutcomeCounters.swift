/// What handlers' outcomes did to records so far (kept in ``ConsumerState``, under its lock).
struct OutcomeCounters: Sendable {
    /// Attempts after the first, of batches and of single records.
    var retries = 0
    /// Records written to a retry topic.
    var movedToRetry = 0
    /// Records written to a dead-letter topic.
    var deadLettered = 0
    /// Failed batches given out again in halves to find their bad records.
    var isolations = 0
    /// Records that stopped their partition.
    var stops = 0
}

extension ConsumerState {
    /// Counts what an outcome did (one lock, per retry or move, never per record processed).
    func count(_ change: (inout OutcomeCounters) -> Void) {
        state.withLock { change(&$0.outcomes) }
    }

    var outcomeCounters: OutcomeCounters { state.withLock { $0.outcomes } }
}
