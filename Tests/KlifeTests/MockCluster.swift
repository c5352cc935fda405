import Foundation
import Glibc
import XCTest

/// A librdkafka mock cluster (real TCP brokers on 127.0.0.1) running in a child process,
/// `Tests/interop/mock_cluster.py`, with commands to move leaders, take brokers down,
/// slow them and inject request errors.
///
/// Broker ids are `1...brokers`; ``bootstrap`` lists them in id order. Each command waits for
/// the script's answer and throws when it reports an error. The child exits when ``stop()``
/// runs (also from `deinit`), when its stdin closes, or when this process dies.
///
/// ```swift
/// let mock = try MockCluster(brokers: 3, topics: [("orders", 6)])
/// defer { mock.stop() }
/// try mock.leader("orders", 0, broker: 2)
/// try mock.pushErrors(apiKey: 0, codes: [6, 6])   // next two Produce requests: NOT_LEADER_OR_FOLLOWER
/// ```
final class MockCluster: @unchecked Sendable {
    // @unchecked: every mutable property is guarded by `lock`; commands are serialized.

    /// `127.0.0.1:port` per broker, broker 1 first.
    let bootstrap: [String]
    /// Number of brokers (ids 1...brokerCount).
    let brokerCount: Int

    private let process: Process
    private let input: FileHandle
    private let output: LineReader
    private let logURL: URL
    private let replyTimeout: TimeInterval
    private let lock = NSLock()
    private var stopped = false

    /// Starts the cluster and creates `topics` (name, partition count; replication factor
    /// `replicationFactor`, default 1, under which partition `p` is led by broker `p % brokers + 1`).
    init(brokers: Int = 3, topics: [(String, Int32)], replicationFactor: Int = 1,
         replyTimeout: TimeInterval = 15) throws {
        MockCluster.ignoreSIGPIPE
        let python = try interopPython()
        let script = repositoryRoot.appendingPathComponent("Tests/interop/mock_cluster.py").path
        var arguments = [script, "--brokers", "\(brokers)"]
        for (name, partitions) in topics { arguments += ["--topic", "\(name):\(partitions):\(replicationFactor)"] }

        let logURL = FileManager.default.temporaryDirectory.appendingPathComponent("klife-mock-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: logURL)
        try process.run()

        self.process = process
        self.input = stdin.fileHandleForWriting
        self.output = LineReader(stdout.fileHandleForReading)
        self.logURL = logURL
        self.replyTimeout = replyTimeout
        self.brokerCount = brokers

        guard let line = output.next(timeout: replyTimeout) else {
            let log = Self.readLog(logURL)
            Self.terminate(process)
            throw MockClusterError(description: "mock_cluster.py did not start (status \(process.isRunning ? "running" : "\(process.terminationStatus)")): \(log)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let servers = object["bootstrap"] as? String else {
            Self.terminate(process)
            throw MockClusterError(description: "unexpected first line from mock_cluster.py: \(line)")
        }
        self.bootstrap = servers.split(separator: ",").map(String.init)
    }

    deinit { stop() }

    /// Makes `broker` (>= 1) the leader of `topic`/`partition`. The partition's log stays with it.
    func leader(_ topic: String, _ partition: Int32, broker: Int32) throws {
        try command("leader \(topic) \(partition) \(broker)")
    }

    /// Closes the broker's connections and refuses new ones (the port stays reserved).
    func down(_ broker: Int32) throws { try command("down \(broker)") }

    /// Accepts connections again on the same port.
    func up(_ broker: Int32) throws { try command("up \(broker)") }

    /// Delays every response of `broker` by `ms` milliseconds (0 removes the delay).
    func rtt(_ broker: Int32, ms: Int) throws { try command("rtt \(broker) \(ms)") }

    /// Fails the next `codes.count` requests with API key `apiKey` (on any broker), one code each, in order.
    func pushErrors(apiKey: Int16, codes: [Int16]) throws {
        precondition(!codes.isEmpty, "pushErrors needs at least one code")
        try command("errors \(apiKey) " + codes.map { "\($0)" }.joined(separator: " "))
    }

    /// Answers the next `answers.count` requests with API key `apiKey` sent to `broker` with the
    /// given error code (0: none) after the given delay. The broker still handles each request
    /// when it arrives (a Produce is written at once); only its answer waits. Answers on a
    /// connection stay in order, so later answers on it wait too.
    func brokerErrors(_ broker: Int32, apiKey: Int16, _ answers: [(code: Int16, delayMs: Int)]) throws {
        precondition(!answers.isEmpty, "brokerErrors needs at least one answer")
        try command("broker_errors \(broker) \(apiKey) " + answers.map { "\($0.code) \($0.delayMs)" }.joined(separator: " "))
    }

    /// Makes `broker` the coordinator of a transactional id (`type` "transaction") or a group ("group").
    func coordinator(_ type: String, key: String, broker: Int32) throws {
        try command("coordinator \(type) \(key) \(broker)")
    }

    /// Session timeout and heartbeat interval of KIP-848 consumer groups (the mock's defaults
    /// are 30 s and 3 s); members pick them up on their next ConsumerGroupHeartbeat.
    func consumerGroup(sessionTimeoutMs: Int, heartbeatIntervalMs: Int) throws {
        try command("consumer_group \(sessionTimeoutMs) \(heartbeatIntervalMs)")
    }

    /// Makes Metadata and FindCoordinator answers name `host:port` for `broker` (a proxy in front
    /// of it); the broker keeps listening on its own port.
    func advertise(_ broker: Int32, host: String, port: Int) throws {
        try command("advertise \(broker) \(host) \(port)")
    }

    /// Advertises (and accepts) only versions `range` of API `apiKey`.
    func apiVersions(_ apiKey: Int16, _ range: ClosedRange<Int16>) throws {
        try command("apiversion \(apiKey) \(range.lowerBound) \(range.upperBound)")
    }

    /// Caps the classic group APIs at the versions the mock parses. It advertises JoinGroup up to
    /// v6, SyncGroup up to v4 and LeaveGroup up to v4, but reads the protocols of JoinGroup v6
    /// and the assignments of SyncGroup v4 as fixed-width arrays although those versions are
    /// flexible (compact arrays), and reads LeaveGroup v3+ with the single member id of v0–v2:
    /// such a request fails to parse and the mock closes the connection.
    func useGroupVersionsTheMockParses() throws {
        try apiVersions(11, 0...5)  // JoinGroup
        try apiVersions(14, 0...3)  // SyncGroup
        try apiVersions(13, 0...2)  // LeaveGroup
    }

    /// How long the first join of an empty group waits for more members before a leader is
    /// elected (librdkafka's mock defaults to 3 s, as Kafka's `group.initial.rebalance.delay.ms`).
    /// Later rebalances wait for the rejoining members up to the session timeout less one second.
    func groupInitialRebalanceDelay(ms: Int) throws {
        try command("group_initial_delay \(ms)")
    }

    /// Share groups (KIP-932): the member session timeout, the heartbeat interval and how long
    /// a member holds a record it was given (the mock's defaults are 45 s, 5 s and 30 s).
    func shareGroup(sessionTimeoutMs: Int, heartbeatIntervalMs: Int, lockDurationMs: Int) throws {
        try command("share_group \(sessionTimeoutMs) \(heartbeatIntervalMs) \(lockDurationMs)")
    }

    /// Where a share partition starts when the group first reads it (the mock's default is latest).
    func shareOffsetReset(earliest: Bool) throws {
        try command("share_offset_reset \(earliest ? "earliest" : "latest")")
    }

    /// Deliveries before the mock archives a record (default 5; 0 for no limit).
    func shareMaxDeliveries(_ n: Int) throws {
        try command("share_max_deliveries \(n)")
    }

    /// Gives `partitions` of `topic` to every member of share group `group` (a manual
    /// assignment: the mock's own assignor never gives one partition to two members). Fails
    /// unless at least `minMembers` have joined.
    func shareAssign(group: String, minMembers: Int, topic: String, partitions: [Int32]) throws {
        try command("share_assign \(group) \(minMembers) \(topic) " + partitions.map(String.init).joined(separator: " "))
    }

    /// Asks the child to quit, closes its stdin and reaps it (SIGKILL if it lingers). Idempotent.
    func stop() {
        let first = lock.withLock { () -> Bool in
            if stopped { return false }
            stopped = true
            return true
        }
        guard first else { return }
        try? input.write(contentsOf: Data("quit\n".utf8))
        try? input.close()
        Self.terminate(process, grace: 5)
        output.close()
        try? FileManager.default.removeItem(at: logURL)
    }

    /// The child's stderr so far (librdkafka logs, Python tracebacks).
    var log: String { Self.readLog(logURL) }

    // MARK: Private

    private func command(_ text: String) throws {
        try lock.withLock {
            guard !stopped else { throw MockClusterError(description: "mock cluster stopped; cannot run '\(text)'") }
            do {
                try input.write(contentsOf: Data((text + "\n").utf8))
            } catch {
                throw MockClusterError(description: "'\(text)': cannot write to mock_cluster.py (\(error)): \(log)")
            }
            guard let line = output.next(timeout: replyTimeout) else {
                throw MockClusterError(description: "'\(text)': no answer from mock_cluster.py within \(replyTimeout) s: \(log)")
            }
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw MockClusterError(description: "'\(text)': unexpected answer \(line)")
            }
            if object["ok"] as? Bool != true {
                throw MockClusterError(description: "'\(text)' failed: \(object["error"] as? String ?? line)")
            }
        }
    }

    private static func readLog(_ url: URL) -> String {
        let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        return String(text.suffix(4000))
    }

    /// Waits up to `grace` seconds for a voluntary exit, then SIGTERM, then SIGKILL.
    private static func terminate(_ process: Process, grace: TimeInterval = 0) {
        func wait(_ seconds: TimeInterval) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            return !process.isRunning
        }
        if !wait(grace) {
            process.terminate()
            if !wait(2) { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
    }

    /// Writing a command to a child that already died must throw, not kill the test process.
    private static let ignoreSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()
}

struct MockClusterError: Error, CustomStringConvertible {
    let description: String
}

/// Splits a pipe into lines on a background thread so reads can time out.
private final class LineReader: @unchecked Sendable {
    // @unchecked: `lines` and `finished` are guarded by `condition`.
    private let condition = NSCondition()
    private var lines: [String] = []
    private var finished = false
    private let handle: FileHandle

    init(_ handle: FileHandle) {
        self.handle = handle
        let thread = Thread { [self] in run() }
        thread.name = "mock-cluster-reader"
        thread.start()
    }

    private func run() {
        var buffer = Data()
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                condition.withLock {
                    lines.append(line)
                    condition.broadcast()
                }
            }
        }
        condition.withLock {
            finished = true
            condition.broadcast()
        }
    }

    /// The next line, or `nil` at end of stream or after `timeout` seconds.
    func next(timeout: TimeInterval) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while lines.isEmpty && !finished {
            if !condition.wait(until: deadline) { break }
        }
        return lines.isEmpty ? nil : lines.removeFirst()
    }

    /// Called once the child exited (the reader thread then sees end of stream).
    func close() {
        condition.withLock { finished = true; condition.broadcast() }
    }
}
