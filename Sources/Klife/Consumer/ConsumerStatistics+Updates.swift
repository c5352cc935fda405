import KlifeIO

/// Snapshots of ``KlifeConsumer/statistics()`` as a stream, and what must hear that the
/// consumer ended (those streams, and a dispatcher waiting for downstream capacity).
extension KlifeConsumer {
    /// ``statistics()`` every `interval`, as a stream that ends when the consumer closes (or
    /// fails). One timer task per stream, cancelled when the stream's reader goes away; a slow
    /// reader gets the newest snapshot, never a backlog.
    ///
    /// ```swift
    /// for await stats in consumer.statisticsUpdates(every: .seconds(10)) {
    ///     metrics.gauge("consumer.limit", stats.adaptiveLimit?.limit ?? 0)
    ///     metrics.gauge("consumer.lag", stats.totalLag)
    /// }
    /// ```
    public func statisticsUpdates(every interval: Duration) -> AsyncStream<ConsumerStatistics> {
        let (stream, continuation) = AsyncStream.makeStream(of: ConsumerStatistics.self, bufferingPolicy: .bufferingNewest(1))
        guard let id = state.addStatisticsStream(continuation) else {
            continuation.finish()
            return stream
        }
        let period = max(interval, .milliseconds(1))
        // Holds the consumer weakly: a stream nobody closes must not keep the consumer alive.
        let timer = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: period)
                guard !Task.isCancelled, let self else { break }
                continuation.yield(self.statistics())
            }
            continuation.finish()
        }
        continuation.onTermination = { [state] _ in
            timer.cancel()
            state.removeStatisticsStream(id)
        }
        return stream
    }
}

extension ConsumerState {
    /// Registers a statistics stream (finished when the consumer ends); `nil` if it ended.
    func addStatisticsStream(_ continuation: AsyncStream<ConsumerStatistics>.Continuation) -> UInt64? {
        state.withLock { s in
            guard !s.closed && s.failure == nil else { return nil }
            s.nextStreamID &+= 1
            s.statisticsStreams[s.nextStreamID] = continuation
            return s.nextStreamID
        }
    }

    func removeStatisticsStream(_ id: UInt64) {
        _ = state.withLock { $0.statisticsStreams.removeValue(forKey: id) }
    }

    /// What must hear that the consumer ended, called outside the lock (their callbacks may
    /// come back to the consumer): statistics streams, and a dispatcher waiting downstream.
    struct EndObservers {
        var streams: [AsyncStream<ConsumerStatistics>.Continuation]
        var downstreamWait: (@Sendable () -> Void)?
        var readyWaiter: CheckedContinuation<Void, Never>?

        func notify() {
            downstreamWait?()
            readyWaiter?.resume()
            for stream in streams { stream.finish() }
        }
    }

    /// Takes the end observers out of the state (under the lock).
    func takeEndObservers(_ s: inout State) -> EndObservers {
        defer {
            s.statisticsStreams.removeAll()
            s.downstreamWait = nil
            s.readyWaiter = nil
        }
        return EndObservers(streams: Array(s.statisticsStreams.values), downstreamWait: s.downstreamWait,
                            readyWaiter: s.readyWaiter)
    }
}
