/// The shape shared by the group members of `klife consume` (`-G`, `--share-group`): a task
/// prints records until its limit or an error, while a signal (SIGINT, SIGTERM) closes the
/// consumer, which ends the printing; whichever comes first, the consumer is closed once.
enum ConsumeUntilSignal {
    /// Runs `printing` until it returns or throws, closing the consumer with `close` when a
    /// signal arrives first and once more afterwards (closing is idempotent).
    /// - Returns: what the printing returned (or threw) and the signal received, if any.
    static func run(signals: SignalWatcher, close: @escaping @Sendable () async -> Void,
                    printing: @escaping @Sendable () async throws -> Int) async -> (printed: Result<Int, any Error>, signal: Int32?) {
        let printer = Task { try await printing() }
        let stopper = Task {
            let signal = await signals.wait()
            if signal != nil { await close() }
            return signal
        }
        let printed: Result<Int, any Error>
        do { printed = .success(try await printer.value) } catch { printed = .failure(error) }
        stopper.cancel()
        await close()
        return (printed, await stopper.value)
    }
}
