import KlifeIO
import Dispatch
import Glibc
import Synchronization

/// Write end of the self-pipe the signal handler writes to (set once, before the handler is installed).
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1
/// Signals received so far.
private let signalsReceived = Atomic<Int>(0)

/// The process-wide handler: async-signal-safe work only (an atomic add and `write`).
private func handleSignal(_ signal: Int32) {
    let (previous, _) = signalsReceived.add(1, ordering: .relaxed)
    if previous >= 2 {
        // Third signal: the dispatch queue did not get to handle the second; leave without cleanup.
        _exit(128 + signal)
    }
    var byte = UInt8(truncatingIfNeeded: signal)
    _ = write(signalPipeWriteEnd, &byte, 1)
}

/// Turns SIGINT and SIGTERM into values async code can poll or await, so commands shut
/// down cleanly (flush output, close the client, stop the broker) instead of dying.
///
/// Uses a `sigaction` handler that writes the signal number to a self-pipe, and a
/// `DispatchSource` reading that pipe. Child processes start with default dispositions
/// (a handler, unlike `SIG_IGN`, is not inherited across `exec`).
///
/// The first signal is only recorded: the command notices it and shuts down. A second one
/// calls `exit(128+signal)` from the dispatch queue, so `atexit` handlers still run (the
/// embedded broker's reaper kills Tansu); a third `_exit`s from the handler itself.
final class SignalWatcher: Sendable {
    private struct State {
        var received: Int32?
        var waiters: [Int: CheckedContinuation<Int32?, Never>] = [:]
        var nextWaiter = 0
    }

    private let state = Locked(State())
    nonisolated(unsafe) private var source: (any DispatchSourceRead)?

    /// Installs the handler for `signals`. Call once per process.
    static func install(_ signals: [Int32] = [SIGINT, SIGTERM]) -> SignalWatcher {
        let watcher = SignalWatcher()
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            reportWarning("cannot create signal pipe: Ctrl-C will stop klife abruptly")
            return watcher
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        _ = signalsReceived.load(ordering: .relaxed)  // initialise the global before any signal
        signalPipeWriteEnd = fds[1]

        let source = DispatchSource.makeReadSource(fileDescriptor: fds[0], queue: .global())
        source.setEventHandler { [watcher] in
            var byte: UInt8 = 0
            while read(fds[0], &byte, 1) == 1 { watcher.deliver(Int32(byte)) }
        }
        source.resume()
        watcher.source = source

        for signal in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = handleSignal
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(signal, &action, nil)
        }
        return watcher
    }

    /// The first signal received, or `nil` while none has arrived.
    var received: Int32? { state.withLock { $0.received } }

    /// Waits for a signal. Returns `nil` when the waiting task is cancelled first.
    func wait() async -> Int32? {
        let id = state.withLock { s -> Int in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
                let resumeNow: Int32?? = state.withLock { s in
                    if let signal = s.received { return .some(signal) }
                    if Task.isCancelled { return .some(nil) }
                    s.waiters[id] = continuation
                    return .none
                }
                if let value = resumeNow { continuation.resume(returning: value) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }

    private func deliver(_ signal: Int32) {
        let (first, waiters) = state.withLock { s -> (Bool, [CheckedContinuation<Int32?, Never>]) in
            let first = s.received == nil
            if first { s.received = signal }
            defer { s.waiters.removeAll() }
            return (first, Array(s.waiters.values))
        }
        guard first else {
            printError("klife: second \(Self.name(signal)), exiting now")
            exit(128 + signal)
        }
        for waiter in waiters { waiter.resume(returning: signal) }
    }

    /// `SIGINT`, `SIGTERM`, or `signal N`.
    static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case SIGHUP: "SIGHUP"
        default: "signal \(signal)"
        }
    }
}
