import KlifeIO

/// The rate limits' side of handing out batches: the waiting reader stays suspended (its
/// continuation in ``ConsumerState/State/waiter``) while the limits hold every ready batch, and
/// one timer task wakes it when the earliest held batch may go. No thread blocks; fetching, the
/// prefetch bound and heartbeats are untouched; nothing held is marked processed.
extension ConsumerState {
    /// The reader waits and ready batches are held back for `held` nanoseconds (0: nothing is
    /// held): counts the wait and arms the timer, or ends the count and disarms it.
    func noteHeld(_ s: inout State, _ held: UInt64) {
        guard held > 0 else {
            stopRateWait(&s)
            return
        }
        let now = limiterClock.now()
        if s.limiter.isActive { s.limiter.beginWait(now: now) }
        let deadline = now &+ held
        if s.rateTimer != nil && s.rateTimerDeadline <= deadline { return }
        s.rateTimer?.cancel()
        s.rateTimerGeneration &+= 1
        s.rateTimerDeadline = deadline
        let generation = s.rateTimerGeneration
        let clock = limiterClock
        s.rateTimer = Task { [weak self] in
            await clock.sleep(held)
            guard !Task.isCancelled else { return }
            self?.rateTimerFired(generation)
        }
    }

    /// The reader no longer waits on the limits: the wait is counted and the timer stopped.
    func stopRateWait(_ s: inout State) {
        if s.limiter.waitingSince != nil { s.limiter.endWait(now: limiterClock.now()) }
        guard let timer = s.rateTimer else { return }
        timer.cancel()
        s.rateTimer = nil
        s.rateTimerGeneration &+= 1
    }

    private func rateTimerFired(_ generation: UInt64) {
        let handOff = state.withLock { s -> (Waiter, ConsumerBatch)? in
            guard s.rateTimerGeneration == generation else { return nil }
            s.rateTimer = nil
            return takeWaiter(&s)
        }
        if let (waiter, batch) = handOff { waiter.resume(returning: .success(batch)) }
    }

    /// Looks at the limits again now (after a change, or after a test moved its clock): hands
    /// the waiting reader a batch they allow, or re-arms the timer for the earliest one.
    func recheckLimits() {
        let handOff = state.withLock { s -> (Waiter, ConsumerBatch)? in
            if let timer = s.rateTimer {
                timer.cancel()
                s.rateTimer = nil
                s.rateTimerGeneration &+= 1
            }
            return takeWaiter(&s)
        }
        if let (waiter, batch) = handOff { waiter.resume(returning: .success(batch)) }
    }

    /// Puts `limit` in force now and wakes the reader to look at it.
    func setRateLimit(_ limit: ConsumerRateLimit?) {
        state.withLock { s in s.limiter.setLimit(limit, now: limiterClock.now()) }
        recheckLimits()
    }

    /// The limit in force.
    var rateLimit: ConsumerRateLimit? { state.withLock { $0.limiter.limit } }
}

extension KlifeConsumer {
    /// Changes the rate limits at run time (`nil` removes them). Buckets of rates still set keep
    /// their balance and debt (capped at the new burst); a reader waiting on the old limits
    /// looks at the new ones at once.
    /// - Throws: ``KlifeError/Code/invalidConfiguration`` naming the bad field.
    public func setRateLimit(_ limit: ConsumerRateLimit?) throws(KlifeError) {
        try limit?.validate()
        state.setRateLimit(limit)
    }

    /// The rate limits in force (``ConsumerConfiguration/rateLimit`` until ``setRateLimit(_:)``).
    public var rateLimit: ConsumerRateLimit? { state.rateLimit }
}
