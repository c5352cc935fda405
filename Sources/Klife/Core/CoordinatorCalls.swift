import KlifeIO
import KlifeProtocol

/// Coordinator calls shared by transactions and consumer groups: finding the broker that
/// coordinates a key (a transactional id or a group id), remembering it, and the retry loop
/// every coordinator request runs through.
extension KlifeClient {
    /// Finds the broker coordinating `key` (a transactional id or a group id).
    func findCoordinator(key: String, keyType: Int8) async throws(KlifeError) -> Int32 {
        let deadline = Reactor.monotonicNanoseconds() &+ configuration.requestTimeout.nanoseconds
        var attempt = 0
        while true {
            let response = try await roundTripAnyBroker(FindCoordinatorRequest(key: key, keyType: keyType))
            guard let coordinator = response.coordinators.first else {
                throw .malformed(DecodeError(.invalidValue, offset: 0, detail: "FindCoordinator answered no coordinator"),
                                 broker: "FindCoordinator")
            }
            let code = KafkaErrorCode(rawValue: coordinator.errorCode)
            if code == .none {
                if metadataStore.snapshot.metadata.brokers[coordinator.nodeID] == nil {
                    // A broker the cached metadata lacks: learn its address before connecting.
                    try await refreshMetadata(topics: [])
                }
                return coordinator.nodeID
            }
            attempt += 1
            guard code.isRetriable, Reactor.monotonicNanoseconds() < deadline else {
                throw .broker(code, "FindCoordinator(\(key))", message: coordinator.errorMessage)
            }
            await coordinatorBackoff(attempt)
        }
    }

    /// Sends `request` to the coordinator of `key` (found once, then remembered in `cache`),
    /// retrying until the client's `requestTimeout`:
    ///
    /// - lost connections, `NOT_COORDINATOR` and `COORDINATOR_NOT_AVAILABLE`: find the
    ///   coordinator again, then retry;
    /// - `COORDINATOR_LOAD_IN_PROGRESS`, `CONCURRENT_TRANSACTIONS` and other retriable codes:
    ///   retry after a short, growing backoff;
    /// - a code `fatal` turns into an error: thrown at once, never retried;
    /// - anything else: a typed broker error naming the call and `subject`.
    /// - Parameters:
    ///   - errorCode: the error the response reports (the first failing entry for
    ///     per-partition responses), `.none` on success.
    func coordinatorCall<R: KafkaRequest>(
        _ request: R, name: String, subject: String, cache: CoordinatorCache, key: String, keyType: Int8,
        errorCode: (R.Response) -> (KafkaErrorCode, String?), fatal: (KafkaErrorCode) -> KlifeError? = { _ in nil }
    ) async throws(KlifeError) -> R.Response {
        let deadline = Reactor.monotonicNanoseconds() &+ configuration.requestTimeout.nanoseconds
        var attempt = 0
        while true {
            attempt += 1
            let node: Int32
            if let cached = cache.node {
                node = cached
            } else {
                node = try await findCoordinator(key: key, keyType: keyType)
                cache.node = node
            }
            let response: R.Response
            do {
                response = try await roundTrip(request, node: node)
            } catch {
                guard error.isRetriable, Reactor.monotonicNanoseconds() < deadline else { throw error }
                cache.node = nil
                await coordinatorBackoff(attempt)
                continue
            }
            let (code, message) = errorCode(response)
            if code == .none { return response }
            if let error = fatal(code) { throw error }
            let findAgain = code == .notCoordinator || code == .coordinatorNotAvailable
            let wait = code == .coordinatorLoadInProgress || code == .concurrentTransactions
            guard findAgain || wait || code.isRetriable, Reactor.monotonicNanoseconds() < deadline else {
                throw .broker(code, "\(name) for '\(subject)'", message: message)
            }
            if findAgain { cache.node = nil }
            await coordinatorBackoff(attempt)
        }
    }

    /// 10 ms doubling to 500 ms: CONCURRENT_TRANSACTIONS usually clears within milliseconds.
    private func coordinatorBackoff(_ attempt: Int) async {
        let ms = min(10 << min(attempt - 1, 6), 500)
        try? await Task.sleep(for: .milliseconds(ms))
    }
}

/// The last known coordinator of a transactional id or group; cleared when it moves.
final class CoordinatorCache: Sendable {
    private let cached = Locked<Int32?>(nil)

    var node: Int32? {
        get { cached.withLock { $0 } }
        set { cached.withLock { $0 = newValue } }
    }
}
