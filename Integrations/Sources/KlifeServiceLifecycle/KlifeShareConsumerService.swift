public import Klife
public import ServiceLifecycle
import Synchronization

/// A `KlifeShareConsumer` running a handler as a service of a `ServiceGroup`: it hands each
/// batch to the handler as the group runs it and, on the group's graceful shutdown, lets the
/// batch in hand finish, then closes the consumer (acknowledgements sent, what it still holds
/// given back to the other members, the group left).
///
/// ```swift
/// let consumer = try client.shareConsumer(ShareConsumerConfiguration(groupID: "thumbnails", topics: ["uploads"]))
/// let service = KlifeShareConsumerService(consumer: consumer) { batch in
///     for record in batch { try await render(record) }   // implicit mode: accepted when it returns
/// }
/// let group = ServiceGroup(services: [KlifeClientService(client: client), service],
///                          gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// A batch is never accepted unprocessed: when the handler throws, the records of its batch
/// that are not acknowledged yet are released (delivered again, with a higher delivery count)
/// before the consumer closes and `run()` throws the error; a batch that arrives after the
/// shutdown began is released unread. In explicit mode the handler acknowledges records
/// itself, as with `KlifeShareConsumer.acknowledge(_:_:)`; what it leaves unacknowledged is
/// released when the consumer closes.
public struct KlifeShareConsumerService: Service {
    /// The share consumer the service runs and closes.
    public let consumer: KlifeShareConsumer
    private let handler: @Sendable (ShareBatch) async throws -> Void

    /// Wraps a share consumer and the handler that processes its batches.
    /// - Parameters:
    ///   - consumer: The share consumer; the service owns its shutdown.
    ///   - handler: Processes one batch. In implicit mode its records are accepted when the next
    ///     batch is asked for (after it returns); throwing releases them and ends the service.
    public init(consumer: KlifeShareConsumer, handler: @escaping @Sendable (ShareBatch) async throws -> Void) {
        self.consumer = consumer
        self.handler = handler
    }

    /// Processes batches until the group shuts down gracefully or the task is cancelled
    /// (then, once the batch in hand is finished, closes the consumer), or the handler throws.
    /// - Throws: what the handler threw, or the `KlifeError` that ended the consumer.
    public func run() async throws {
        let consumer = consumer
        let handler = handler
        let loop = ShareServiceLoop()
        // The batches are read in a task of their own, so a shutdown can interrupt a wait for the
        // next batch without cancelling a handler at work; the consumer closes afterwards, never
        // while a batch is being handed out.
        let reading = Task {
            while true {
                guard let batch = try await consumer.next() else { return }
                guard loop.enterHandler() else {
                    consumer.acknowledge(batch, .release)
                    return
                }
                do {
                    try await handler(batch)
                } catch {
                    consumer.acknowledge(batch, .release)
                    throw error
                }
                guard loop.leaveHandler() else { return }
            }
        }
        let outcome = await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await reading.result
            } onGracefulShutdown: {
                if loop.requestStop() { reading.cancel() }
            }
        } onCancel: {
            if loop.requestStop() { reading.cancel() }
        }
        await consumer.close()
        switch outcome {
        case .success:
            return
        case .failure(let error as KlifeError) where error.code == .cancelled && loop.stopRequested:
            return  // the wait for the next batch, interrupted by the shutdown
        case .failure(let error):
            throw error
        }
    }
}

/// Whether a handler is at work and whether the service was asked to stop, decided under one
/// lock so that a stop either interrupts the wait for a batch or lets the batch in hand finish.
private final class ShareServiceLoop: Sendable {
    private struct State {
        var inHandler = false
        var stop = false
    }

    private let state = Mutex(State())

    /// Enters the handler unless a stop was asked for.
    func enterHandler() -> Bool {
        state.withLock { s in
            guard !s.stop else { return false }
            s.inHandler = true
            return true
        }
    }

    /// Leaves the handler; `false` when a stop was asked for meanwhile.
    func leaveHandler() -> Bool {
        state.withLock { s in
            s.inHandler = false
            return !s.stop
        }
    }

    /// Asks for a stop; `true` when the reading task waits for a batch and may be cancelled.
    func requestStop() -> Bool {
        state.withLock { s in
            s.stop = true
            return !s.inHandler
        }
    }

    var stopRequested: Bool { state.withLock { $0.stop } }
}
