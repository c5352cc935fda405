public import Klife
public import ServiceLifecycle

/// A ``Klife/KlifeClient`` as a service of a `ServiceGroup`: it runs until the group shuts
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
