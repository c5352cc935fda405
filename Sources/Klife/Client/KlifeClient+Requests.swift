import KlifeProtocol
import KlifeIO

/// Request/response round trips for the control plane (metadata, admin, fetch, offsets).
/// Each hops onto the reactor that owns the target connection and resumes the caller
/// from that reactor when the response arrives.
extension KlifeClient {
    /// Sends `request` on the connection `pick` chooses on `hub`'s reactor.
    func roundTrip<R: KafkaRequest>(
        _ request: R, via hub: ReactorHub, extraTimeout: Duration = .zero,
        connection pick: @escaping @Sendable (ReactorHub) -> BrokerConnection?
    ) async throws(KlifeError) -> R.Response {
        let extra = extraTimeout.nanoseconds
        if isClosed { throw .clientClosed }
        let result: Result<R.Response, KlifeError> = await withCheckedContinuation { continuation in
            // A reactor stopping under the call (the client closed meanwhile) drops the task
            // unrun: the caller then gets `clientClosed` instead of waiting forever.
            let answer = ResumeOnce(continuation, otherwise: .failure(.clientClosed))
            let submitted = hub.reactor.trySubmit {
                guard let connection = pick(hub) else {
                    answer.resume(.failure(.unsupported("\(R.apiKey): broker unknown to metadata")))
                    return
                }
                connection.whenReady { ready in
                    switch ready {
                    case .failure(let error): answer.resume(.failure(error))
                    case .success(let c): c.send(request, extraTimeout: extra) { answer.resume($0) }
                    }
                }
            }
            if !submitted { answer.resume(.failure(isClosed ? .clientClosed : .queueFull)) }
        }
        return try result.get()
    }

    /// Sends `request` to broker `node`, on the connection for `purpose`.
    func roundTrip<R: KafkaRequest>(_ request: R, node: Int32,
                                    purpose: ConnectionPurpose = .produce) async throws(KlifeError) -> R.Response {
        try await roundTrip(request, via: hub(forNode: node)) { $0.connection(forNode: node, purpose: purpose) }
    }

    /// Sends `request` to the first known broker that answers, trying each in turn.
    func roundTripAnyBroker<R: KafkaRequest>(_ request: R) async throws(KlifeError) -> R.Response {
        let brokers = metadataStore.snapshot.metadata.brokers.keys.shuffled()
        var lastError: KlifeError = .bootstrapUnreachable(configuration.bootstrapServers, lastError: "no broker known")
        for node in brokers {
            do {
                return try await roundTrip(request, node: node)
            } catch {
                if !error.isRetriable { throw error }
                lastError = error
            }
        }
        throw lastError
    }

    /// Sends `request` to the leader of `topic`/`partition`, refreshing metadata once if it is unknown.
    func roundTripToLeader<R: KafkaRequest>(_ request: R, topic: String, partition: Int32) async throws(KlifeError) -> R.Response {
        try await roundTrip(request, node: leader(topic: topic, partition: partition))
    }

    /// The leader of a partition, from cached metadata or a fresh refresh.
    func leader(topic: String, partition: Int32) async throws(KlifeError) -> Int32 {
        noteTopicOfInterest(topic)
        if let node = metadataStore.snapshot.metadata.leader(topic: topic, partition: partition) { return node }
        let metadata = try await refreshMetadata(topics: [topic])
        guard let t = metadata.topics[topic] else { throw .unknownTopicOrPartition(topic) }
        guard partition >= 0, Int(partition) < t.partitions.count else {
            throw .unknownTopicOrPartition(topic, partition: partition)
        }
        guard let node = metadata.leader(topic: topic, partition: partition) else {
            throw .broker(.leaderNotAvailable, "leader of \(topic)/\(partition)")
        }
        return node
    }
}

/// A continuation resumed exactly once: by ``resume(_:)``, or with the fallback value when the
/// last closure holding it is dropped without resuming it (a task a stopping reactor drops, a
/// completion a closed connection forgets). A caller never waits for a reactor that is gone.
final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Locked<CheckedContinuation<T, Never>?>
    private let fallback: T

    init(_ continuation: CheckedContinuation<T, Never>, otherwise fallback: T) {
        self.continuation = Locked(continuation)
        self.fallback = fallback
    }

    /// Resumes the caller with `value` (later calls do nothing).
    func resume(_ value: T) {
        continuation.withLock { c in
            defer { c = nil }
            return c
        }?.resume(returning: value)
    }

    deinit {
        continuation.withLock { $0 }?.resume(returning: fallback)
    }
}
