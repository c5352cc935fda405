import KlifeIO

/// The flow-control pieces of the consumer core that fit a share group: a rate limit on the
/// records and bytes handed out (token buckets over the whole consumer) and downstream
/// permits, one per batch.
///
/// Both are waited for before a fetch, never after: records a broker delivered are under an
/// acquisition lock, so a member that waits with them in hand risks losing them to the lock
/// timeout. Only a batch already buffered (an answer larger than `maxRecords`) waits in hand.
final class ShareFlowControl: Sendable {
    private struct State {
        var records: TokenBucket?
        var bytes: TokenBucket?
        var holdingPermit = false
        var waits = 0
    }

    private let permits: (any DownstreamPermits)?
    private let state: Locked<State>

    init(rateLimit: ConsumerRateLimit?, permits: (any DownstreamPermits)?) {
        self.permits = permits
        let now = Reactor.monotonicNanoseconds()
        let burst = Double(rateLimit?.burst.nanoseconds ?? 0) / 1e9
        state = Locked(State(
            records: rateLimit?.recordsPerSecond.map { TokenBucket(rate: $0, capacity: $0 * burst, now: now) },
            bytes: rateLimit?.bytesPerSecond.map { TokenBucket(rate: $0, capacity: $0 * burst, now: now) }))
    }

    /// Times a wait for the rate limit or a permit held the consumer back.
    var waits: Int { state.withLock { $0.waits } }

    /// Waits until a batch may go out: a permit held (acquired when none is), and every bucket
    /// out of debt.
    /// - Throws: `cancelled` when the task is cancelled or the permits refuse.
    func admit() async throws(KlifeError) {
        if let permits, !state.withLock({ $0.holdingPermit }) {
            state.withLock { $0.waits += 1 }
            do {
                try await permits.acquire()
            } catch {
                throw .cancelled
            }
            state.withLock { $0.holdingPermit = true }
        }
        while true {
            let wait = state.withLock { s -> UInt64 in
                let now = Reactor.monotonicNanoseconds()
                return max(s.records?.wait(for: 1, now: now) ?? 0, s.bytes?.wait(for: 1, now: now) ?? 0)
            }
            if wait == 0 { return }
            state.withLock { $0.waits += 1 }
            do {
                try await Task.sleep(nanoseconds: wait)
            } catch {
                throw .cancelled
            }
        }
    }

    /// Counts a batch handed out against the buckets (into debt when larger than their level).
    func handedOut(records: Int, bytes: Int) {
        state.withLock { s in
            let now = Reactor.monotonicNanoseconds()
            s.records?.take(Double(records), now: now)
            s.bytes?.take(Double(bytes), now: now)
        }
    }

    /// Gives back the permit of the batch handed out last, if one is held.
    func releasePermit() {
        let held = state.withLock { s -> Bool in
            defer { s.holdingPermit = false }
            return s.holdingPermit
        }
        if held { permits?.release() }
    }
}
