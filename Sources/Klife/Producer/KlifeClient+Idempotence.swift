import KlifeIO
import KlifeProtocol

/// Obtaining and renewing the idempotent producer's id and epoch.
extension KlifeClient {
    /// Asks any broker for a producer id (InitProducerId without a transactional id) and
    /// hands it to every reactor. Retries briefly while the broker is still loading.
    func initProducerIdentity() async throws(KlifeError) {
        let response = try await requestProducerID(InitProducerIdRequest())
        defaultSession.adopt(producerID: response.producerID, epoch: response.producerEpoch)
        announceIdentity(defaultSession)
    }

    /// Starts an epoch bump unless one is under way: sends pause everywhere, in-flight
    /// batches drain, InitProducerId with the current id and epoch returns the next epoch
    /// (or, from brokers before KIP-360, a new id), sequences restart at 0, sends resume.
    func requestEpochBump() {
        guard !isClosed, defaultSession.identity.beginBump() else { return }
        hubs[0].log(.warning, "idempotent producer: bumping the epoch (sequence state lost or a sequenced batch failed)")
        announceIdentity(defaultSession)
        Task { await self.runEpochBump() }
    }

    private func runEpochBump() async {
        let limit = Reactor.monotonicNanoseconds() &+ configuration.requestTimeout.nanoseconds
        let identity = defaultSession.identity
        let sequences = defaultSession.sequences
        while sequences.totalInFlight > 0 && Reactor.monotonicNanoseconds() < limit && !isClosed {
            try? await Task.sleep(for: .milliseconds(1))
        }
        let current = identity.current
        do {
            let response: InitProducerIdResponse
            do {
                response = try await requestProducerID(
                    InitProducerIdRequest(producerID: current.producerID, producerEpoch: current.epoch))
            } catch where error.code == .brokerError {
                // The broker refuses to bump this id (no KIP-360 support, or the id expired): take a new one.
                response = try await requestProducerID(InitProducerIdRequest())
            }
            defaultSession.adopt(producerID: response.producerID, epoch: response.producerEpoch)
        } catch {
            // Records keep waiting (sends stay paused); try again after a backoff.
            try? await Task.sleep(for: configuration.producer.retryBackoff)
            identity.abandonBump()
            requestEpochBump()
            return
        }
        announceIdentity(defaultSession)
    }

    func requestProducerID(_ request: InitProducerIdRequest) async throws(KlifeError) -> InitProducerIdResponse {
        var attempt = 0
        while true {
            let response: InitProducerIdResponse
            do {
                response = try await roundTripAnyBroker(request)
            } catch where error.code == .unsupportedVersion {
                throw .unsupported("producer.idempotent needs InitProducerId, which the broker lacks (\(error)); set producer.idempotent = false")
            }
            let code = KafkaErrorCode(rawValue: response.errorCode)
            if code == .none { return response }
            attempt += 1
            guard code.isRetriable, attempt < 10 else { throw .broker(code, "InitProducerId") }
            try? await Task.sleep(for: .milliseconds(50 * attempt))
        }
    }

    /// Tells every reactor the session's current identity (or that a bump paused sending).
    func announceIdentity(_ session: ProducerSession) {
        let value = session.identity.current
        forEachEngine(of: session) { $0.identityChanged(value) }
    }

    /// Runs `body` on every reactor that has an engine for `session`, on that reactor's thread.
    func forEachEngine(of session: ProducerSession, _ body: @escaping @Sendable (ProducerEngine) -> Void) {
        let slot = Int(session.slot)
        for producer in producers {
            producer.reactor.submit { if let engine = producer.existingEngine(slot: slot) { body(engine) } }
        }
    }
}
