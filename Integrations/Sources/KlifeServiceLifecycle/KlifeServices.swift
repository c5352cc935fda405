public import Klife
public import ServiceLifecycle

/// A `KlifeClient` as a service of a `ServiceGroup`: it runs until the group shuts
/// down, then flushes the buffered records and closes the client.
///
/// ```swift
/// let client = try await KlifeClient.connect(config)
/// let group = ServiceGroup(services: [KlifeClientService(client: client), webServer],
///                          gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// A `ServiceGroup` shuts its services down in reverse order: list the client before the
/// services that produce with it (a ``KlifeConsumerService`` of the same client, a web server),
/// so they stop first and the client flushes what they produced last.
public struct KlifeClientService: Service {
    /// The client the service closes.
    public let client: KlifeClient
    /// How long buffered records may take to be acknowledged on graceful shutdown.
    public let closeTimeout: Duration

    /// Wraps a connected client.
    /// - Parameters:
    ///   - client: The client; the service owns its shutdown.
    ///   - closeTimeout: How long buffered records may take on graceful shutdown (on
    ///     cancellation the client closes at once, failing what is left with `clientClosed`).
    public init(client: KlifeClient, closeTimeout: Duration = .seconds(30)) {
        self.client = client
        self.closeTimeout = closeTimeout
    }

    /// Waits for the group's graceful shutdown, then flushes and closes the client; when the
    /// task is cancelled instead, closes it without waiting for buffered records.
    public func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            await client.close(timeout: .zero)
            return
        }
        await client.close(timeout: closeTimeout)
    }
}

/// A `KlifeConsumer` running a handler as a service of a `ServiceGroup`: it starts
/// processing when the group runs it and, on the group's graceful shutdown, closes the
/// consumer: fetching stops, the batches being handled finish (up to ``closeTimeout``), what
/// was processed is committed and the consumer leaves its group.
///
/// ```swift
/// let consumer = try client.consumer(settings)
/// let service = KlifeConsumerService(consumer: consumer) { batch in
///     try await store(batch.records)
/// }
/// let group = ServiceGroup(services: [KlifeClientService(client: client), service],
///                          gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// When the consumer fails for good (`KlifeConsumer.run(_:)` throws), `run()` throws
/// that `KlifeError` and the group reacts as its configuration says (by default, it
/// shuts down).
public struct KlifeConsumerService: Service {
    /// The consumer the service runs and closes.
    public let consumer: KlifeConsumer
    /// How long the batches being handled may take to finish on graceful shutdown.
    public let closeTimeout: Duration
    private let handler: @Sendable (ConsumerBatch) async throws -> BatchOutcome

    /// Wraps a consumer and the handler that processes its batches (as
    /// `KlifeConsumer.run(_:)`).
    /// - Parameters:
    ///   - consumer: The consumer; the service owns its shutdown.
    ///   - closeTimeout: How long batches being handled may take on graceful shutdown.
    ///   - handler: Processes one batch; a batch counts as processed when it returns.
    public init(consumer: KlifeConsumer, closeTimeout: Duration = .seconds(30),
                handler: @escaping @Sendable (ConsumerBatch) async throws -> Void) {
        self.init(consumer: consumer, closeTimeout: closeTimeout) { (batch: ConsumerBatch) async throws -> BatchOutcome in
            try await handler(batch)
            return .done
        }
    }

    /// Wraps a consumer and a handler that says what became of each record (as the form of
    /// `KlifeConsumer.run(_:)` whose handler returns a `BatchOutcome`).
    /// - Parameters:
    ///   - consumer: The consumer; the service owns its shutdown.
    ///   - closeTimeout: How long batches being handled may take on graceful shutdown.
    ///   - handler: Processes one batch and returns its outcome.
    @_disfavoredOverload
    public init(consumer: KlifeConsumer, closeTimeout: Duration = .seconds(30),
                handler: @escaping @Sendable (ConsumerBatch) async throws -> BatchOutcome) {
        self.consumer = consumer
        self.closeTimeout = closeTimeout
        self.handler = handler
    }

    /// Processes batches until the group shuts down gracefully (then closes the consumer and
    /// returns once every handler returned) or the task is cancelled (then closes it without
    /// waiting for handlers).
    /// - Throws: `KlifeError` when the consumer fails for good.
    public func run() async throws {
        let consumer = consumer
        let closeTimeout = closeTimeout
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await consumer.run(handler)
            } onGracefulShutdown: {
                Task { await consumer.close(timeout: closeTimeout) }
            }
        } onCancel: {
            Task { await consumer.close(timeout: .zero) }
        }
    }
}
