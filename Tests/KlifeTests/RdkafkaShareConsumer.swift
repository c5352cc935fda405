import Foundation
import Glibc
import KlifeIO

/// librdkafka's share consumer in a child process (`Tests/interop/rdkafka_share_consumer.py`):
/// it joins a share group in implicit mode and reports each record it reads as a JSON line,
/// which a reader thread keeps. ``stop()`` makes it close (accepting what it read, leaving
/// the group); the child also exits when this process dies.
final class RdkafkaShareConsumer: Sendable {
    /// (offset, delivery count) of every record read, in order.
    let records = Locked<[(offset: Int64, deliveries: Int)]>([])
    /// Lines that were not records (start, errors, close).
    let otherLines = Locked<[String]>([])
    private let process: Process
    private let input: FileHandle

    init(bootstrap: String, group: String, topic: String) throws {
        _ = signal(SIGPIPE, SIG_IGN)
        let script = repositoryRoot.appendingPathComponent("Tests/interop/rdkafka_share_consumer.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try interopPython())
        process.arguments = [script, "--bootstrap", bootstrap, "--group", group, "--topic", topic]
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        self.input = stdin.fileHandleForWriting
        let output = stdout.fileHandleForReading
        let thread = Thread { [records, otherLines] in
            var pending = Data()
            while true {
                let chunk = output.availableData
                if chunk.isEmpty { break }
                pending += chunk
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending = Data(pending[(newline + 1)...])
                    if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                       object["event"] as? String == "record",
                       let offset = object["offset"] as? Int, let deliveries = object["deliveries"] as? Int {
                        records.withLock { $0.append((Int64(offset), deliveries)) }
                    } else {
                        otherLines.withLock { $0.append(line) }
                    }
                }
            }
        }
        thread.name = "rdkafka-share-consumer"
        thread.start()
    }

    var offsets: [Int64] { records.withLock { $0.map(\.offset) } }

    /// Asks the consumer to close and waits for the child to exit (SIGKILL after 30 s).
    func stop() async {
        try? input.write(contentsOf: Data("quit\n".utf8))
        try? input.close()
        let deadline = ContinuousClock.now + .seconds(30)
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }

    deinit {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }
}
