import Foundation
import Glibc
import Klife
import XCTest

/// A librdkafka consumer-group member in a child process (`Tests/interop/rdkafka_group_member.py`):
/// it joins a group, reads, optionally commits, and reports what happens as JSON lines, which a
/// reader thread turns into ``Event``s.
///
/// ```swift
/// let member = try RdkafkaGroupMember(bootstrap: bootstrap, group: "g", topics: ["orders"], commit: true)
/// let held = try await member.waitForAssignment()
/// let offsets = try await member.committed()
/// try await member.stop()          // leaves the group
/// ```
///
/// The child exits on ``stop(timeout:)``, ``kill()``, `deinit`, when its stdin closes, or when
/// this process dies.
final class RdkafkaGroupMember: @unchecked Sendable {
    // @unchecked: `events`, `waiters`, `nextWaiter` and `finished` are guarded by `lock`; the
    // process and the pipe are only written through methods that take it too.

    /// One line the member printed.
    enum Event: Sendable, Equatable {
        case started(librdkafka: String, confluentKafka: String)
        case assigned(partitions: [TopicPartition], assignment: [TopicPartition])
        case revoked(partitions: [TopicPartition], assignment: [TopicPartition])
        case lost(partitions: [TopicPartition], assignment: [TopicPartition])
        case record(Record)
        case committed([TopicPartition: Int64])
        /// A commit refused with STALE_MEMBER_EPOCH, sent again (`NAME reason`).
        case commitRetry(String)
        case member(id: String)
        case error(String)
        case timeout
        case exit(records: Int)
        case closed
        case other(String)
    }

    /// A record the member read.
    struct Record: Sendable, Hashable {
        var topic: String
        var partition: Int32
        var offset: Int64
        var valueHex: String?
    }

    private struct Waiter {
        let check: @Sendable ([Event]) -> Bool
        let continuation: CheckedContinuation<Bool, Never>
    }

    private let process: Process
    private let noClose: Bool
    private let input: FileHandle
    private let logURL: URL
    private let lock = NSLock()
    private var events: [Event] = []
    private var waiters: [Int: Waiter] = [:]
    private var nextWaiter = 0
    private var finished = false
    private var inputClosed = false

    /// Starts a member of `group` subscribed to `topics` (see the script for each option; `extra`:
    /// more script options, which may repeat one given here and then win).
    init(bootstrap: String, group: String, topics: [String], protocol groupProtocol: String = "classic",
         assignor: String? = nil, instanceID: String? = nil, sessionTimeoutMs: Int? = nil, count: Int = 0,
         commit: Bool = false, timeoutSeconds: Int = 180, noClose: Bool = false, clientID: String? = nil,
         extra: [String] = []) throws {
        Self.ignoreSIGPIPE
        let script = repositoryRoot.appendingPathComponent("Tests/interop/rdkafka_group_member.py").path
        var arguments = [script, "--bootstrap", bootstrap, "--group", group, "--protocol", groupProtocol,
                         "--count", "\(count)", "--timeout-s", "\(timeoutSeconds)"]
        for topic in topics { arguments += ["--topic", topic] }
        if let assignor { arguments += ["--assignor", assignor] }
        if let instanceID { arguments += ["--instance-id", instanceID] }
        if let sessionTimeoutMs { arguments += ["--session-timeout-ms", "\(sessionTimeoutMs)"] }
        if let clientID { arguments += ["--client-id", clientID] }
        if commit { arguments.append("--commit") }
        if noClose { arguments.append("--no-close") }
        arguments += extra

        let logURL = FileManager.default.temporaryDirectory.appendingPathComponent("klife-member-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try interopPython())
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: logURL)
        self.process = process
        self.noClose = noClose
        self.input = stdin.fileHandleForWriting
        self.logURL = logURL
        try process.run()
        let output = stdout.fileHandleForReading
        let thread = Thread { [weak self] in
            RdkafkaGroupMember.readLines(output) { self?.received($0) }
            self?.ended()
        }
        thread.name = "rdkafka-group-member"
        thread.start()
    }

    deinit {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: logURL)
    }

    // MARK: Observing

    /// Every event so far, in order.
    var allEvents: [Event] { lock.withLock { events } }

    /// The partitions the member holds after its latest assignment change.
    var assignment: Set<TopicPartition> { Set(Self.assignment(in: allEvents) ?? []) }

    /// The member id the coordinator gave the member most recently, if any yet.
    var memberID: String? {
        for event in allEvents.reversed() { if case .member(let id) = event { return id } }
        return nil
    }

    /// The records read so far, in the order they were printed.
    var records: [Record] {
        allEvents.compactMap { if case .record(let r) = $0 { r } else { nil } }
    }

    /// The errors the member reported (`NAME reason`).
    var errors: [String] {
        allEvents.compactMap { if case .error(let text) = $0 { text } else { nil } }
    }

    /// The commits it sent again after STALE_MEMBER_EPOCH (`NAME reason`).
    var commitRetries: [String] {
        allEvents.compactMap { if case .commitRetry(let text) = $0 { text } else { nil } }
    }

    /// The member's stderr so far (librdkafka logs, Python tracebacks).
    var log: String { String(((try? String(contentsOf: logURL, encoding: .utf8)) ?? "").suffix(4000)) }

    /// Waits until the member holds partitions for which `accept` is true (by default: any), and
    /// returns them.
    /// - Throws: ``InteropError`` when the member exits or `timeout` passes first.
    @discardableResult
    func waitForAssignment(timeout: Duration = .seconds(120),
                           _ accept: @escaping @Sendable (Set<TopicPartition>) -> Bool = { !$0.isEmpty }) async throws -> Set<TopicPartition> {
        try await waitFor("an assignment", timeout: timeout) { events in
            Self.assignment(in: events).map { accept(Set($0)) } ?? false
        }
        return assignment
    }

    /// Waits until the member has read at least `count` records and returns them all.
    @discardableResult
    func waitForRecords(_ count: Int, timeout: Duration = .seconds(120)) async throws -> [Record] {
        try await waitFor("\(count) records", timeout: timeout) { events in
            events.count { if case .record = $0 { true } else { false } } >= count
        }
        return records
    }

    /// Asks the member for its committed offsets (`consumer.committed()` for every partition it
    /// ever held) and returns them.
    func committed(timeout: Duration = .seconds(60)) async throws -> [TopicPartition: Int64] {
        let before = allEvents.count
        try send("committed")
        try await waitFor("committed offsets", timeout: timeout) { events in
            events.dropFirst(before).contains { if case .committed = $0 { true } else { false } }
        }
        for event in allEvents.dropFirst(before) {
            if case .committed(let offsets) = event { return offsets }
        }
        return [:]
    }

    /// Asks the member to quit and waits until it closed its consumer (left the group) or, when
    /// started with `noClose`, exited without leaving; reaps the process.
    func stop(timeout: Duration = .seconds(60)) async throws {
        try? send("quit")
        closeInput()
        let noClose = noClose
        try await waitFor(noClose ? "the member to exit" : "the member to leave", timeout: timeout) { events in
            events.contains { event in
                if case .exit = event { return noClose }
                return event == .closed
            }
        }
        await reap()
    }

    /// Asks the member to quit (it leaves the group) and blocks until it exited.
    func quit() {
        try? send("quit")
        closeInput()
        process.waitUntilExit()
    }

    /// Kills the member at once (SIGKILL): it never leaves the group, as a crashed consumer.
    func kill() async {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        closeInput()
        await reap()
    }

    // MARK: Private

    private func send(_ command: String) throws {
        try lock.withLock {
            guard !inputClosed else { throw InteropError(description: "member input closed; cannot send '\(command)'") }
            try input.write(contentsOf: Data((command + "\n").utf8))
        }
    }

    private func closeInput() {
        lock.withLock {
            guard !inputClosed else { return }
            inputClosed = true
            try? input.close()
        }
    }

    /// Waits without blocking a thread until the process is gone.
    private func reap() async {
        while process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
        process.waitUntilExit()
    }

    /// Suspends until `check` holds for the events, the output ends, or `timeout` passes.
    private func waitFor(_ what: String, timeout: Duration, _ check: @escaping @Sendable ([Event]) -> Bool) async throws {
        let id: Int? = lock.withLock {
            if check(events) { return nil }
            nextWaiter += 1
            return nextWaiter
        }
        guard let id else { return }
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            self?.resume(id, false)
        }
        let satisfied = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let resumeNow: Bool? = lock.withLock {
                if check(events) { return true }
                if finished { return false }
                waiters[id] = Waiter(check: check, continuation: continuation)
                return nil
            }
            if let resumeNow { continuation.resume(returning: resumeNow) }
        }
        timer.cancel()
        guard satisfied else {
            throw InteropError(description: "rdkafka group member: no \(what) (events: \(allEvents.suffix(8))); log: \(log)")
        }
    }

    private func resume(_ id: Int, _ value: Bool) {
        let waiter = lock.withLock { waiters.removeValue(forKey: id) }
        waiter?.continuation.resume(returning: value)
    }

    private func received(_ event: Event) {
        let ready: [Waiter] = lock.withLock {
            events.append(event)
            let ids = waiters.filter { $0.value.check(events) }.map(\.key)
            return ids.compactMap { waiters.removeValue(forKey: $0) }
        }
        for waiter in ready { waiter.continuation.resume(returning: true) }
    }

    private func ended() {
        let left: [Waiter] = lock.withLock {
            finished = true
            defer { waiters.removeAll() }
            return Array(waiters.values)
        }
        for waiter in left { waiter.continuation.resume(returning: false) }
    }

    private static func assignment(in events: [Event]) -> [TopicPartition]? {
        for event in events.reversed() {
            switch event {
            case .assigned(_, let a), .revoked(_, let a), .lost(_, let a): return a
            default: continue
            }
        }
        return nil
    }

    /// Reads `handle` to its end, handing each JSON line over as an event.
    private static func readLines(_ handle: FileHandle, _ deliver: (Event) -> Void) {
        var buffer = Data()
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { return }
            buffer.append(chunk)
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                deliver(parse(line))
            }
        }
    }

    private static func parse(_ line: String) -> Event {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let name = object["event"] as? String else { return .other(line) }
        func pairs(_ key: String) -> [TopicPartition] {
            ((object[key] as? [[Any]]) ?? []).compactMap { pair in
                guard pair.count == 2, let topic = pair[0] as? String, let p = pair[1] as? Int else { return nil }
                return TopicPartition(topic: topic, partition: Int32(p))
            }
        }
        switch name {
        case "started":
            return .started(librdkafka: object["librdkafka"] as? String ?? "", confluentKafka: object["confluent_kafka"] as? String ?? "")
        case "assigned": return .assigned(partitions: pairs("partitions"), assignment: pairs("assignment"))
        case "revoked": return .revoked(partitions: pairs("partitions"), assignment: pairs("assignment"))
        case "lost": return .lost(partitions: pairs("partitions"), assignment: pairs("assignment"))
        case "record":
            guard let topic = object["topic"] as? String, let p = object["partition"] as? Int, let o = object["offset"] as? Int else {
                return .other(line)
            }
            return .record(Record(topic: topic, partition: Int32(p), offset: Int64(o), valueHex: object["value_hex"] as? String))
        case "committed":
            var offsets: [TopicPartition: Int64] = [:]
            for entry in (object["offsets"] as? [[Any]]) ?? [] {
                guard entry.count == 3, let topic = entry[0] as? String, let p = entry[1] as? Int, let o = entry[2] as? Int else { continue }
                offsets[TopicPartition(topic: topic, partition: Int32(p))] = Int64(o)
            }
            return .committed(offsets)
        case "member": return .member(id: object["member_id"] as? String ?? "")
        case "commit_retry": return .commitRetry("\(object["name"] ?? "") \(object["reason"] ?? "")")
        case "error": return .error("\(object["name"] ?? "") \(object["reason"] ?? "")")
        case "timeout": return .timeout
        case "exit": return .exit(records: object["records"] as? Int ?? 0)
        case "closed": return .closed
        default: return .other(line)
        }
    }

    /// Writing to a member that already died must throw, not kill the test process.
    private static let ignoreSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()
}
