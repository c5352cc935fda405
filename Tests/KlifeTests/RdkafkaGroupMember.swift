import Foundation
import Klife
import KlifeIO
import XCTest

/// A librdkafka consumer-group member (Tests/interop/rdkafka_group_member.py) running as a
/// child process: its JSON lines are collected as they arrive.
final class RdkafkaGroupMember: Sendable {
    struct Record: Hashable, Sendable {
        var topic: String
        var partition: Int32
        var offset: Int64
    }

    private let process: Process
    private let input: Pipe
    private let lines = Locked<[Data]>([])
    private let buffer = Locked(Data())

    /// Starts a member of `group` on `topics` (`extra`: more script options).
    init(bootstrap: String, group: String, topics: [String], extra: [String] = []) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: try interopPython())
        process.arguments = [repositoryRoot.appendingPathComponent("Tests/interop/rdkafka_group_member.py").path,
                             "--bootstrap", bootstrap, "--group", group] + topics.flatMap { ["--topic", $0] } + extra
        input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        output.fileHandleForReading.readabilityHandler = { [buffer, lines] handle in
            let data = handle.availableData
            guard !data.isEmpty else { return }
            let complete = buffer.withLock { pending -> [Data] in
                pending.append(data)
                var found: [Data] = []
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    found.append(pending[pending.startIndex..<newline])
                    pending.removeSubrange(pending.startIndex...newline)
                }
                return found
            }
            lines.withLock { $0 += complete }
        }
        try process.run()
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    private var parsed: [[String: Any]] {
        lines.withLock { $0 }.compactMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
    }

    private func events(_ name: String) -> [[String: Any]] {
        parsed.filter { $0["event"] as? String == name }
    }

    /// The partitions held after the last assignment change.
    var assignment: Set<TopicPartition> {
        guard let last = parsed.last(where: { ["assigned", "revoked", "lost"].contains($0["event"] as? String ?? "") }),
              let pairs = last["assignment"] as? [[Any]] else { return [] }
        return Set(pairs.compactMap { pair in
            guard let topic = pair[0] as? String, let partition = pair[1] as? Int else { return nil }
            return TopicPartition(topic: topic, partition: Int32(partition))
        })
    }

    /// Every record printed, in order (duplicates kept).
    var records: [Record] {
        events("record").compactMap { e in
            guard let topic = e["topic"] as? String, let partition = e["partition"] as? Int, let offset = e["offset"] as? Int else { return nil }
            return Record(topic: topic, partition: Int32(partition), offset: Int64(offset))
        }
    }

    /// Errors the member reported.
    var errors: [String] { events("error").map { "\($0["name"] ?? "?"): \($0["reason"] ?? "")" } }

    /// Asks for the committed offsets of every partition it ever held and waits for the answer.
    func committed(timeout: Duration = .seconds(30)) async throws -> [TopicPartition: Int64] {
        let before = events("committed").count
        input.fileHandleForWriting.write(Data("committed\n".utf8))
        await eventually("librdkafka printed its committed offsets", within: timeout) { self.events("committed").count > before }
        guard let offsets = events("committed").last?["offsets"] as? [[Any]] else { return [:] }
        var result: [TopicPartition: Int64] = [:]
        for entry in offsets {
            if let topic = entry[0] as? String, let p = entry[1] as? Int, let o = entry[2] as? Int {
                result[TopicPartition(topic: topic, partition: Int32(p))] = Int64(o)
            }
        }
        return result
    }

    /// Asks the member to stop (it leaves the group) and waits for it to exit.
    func quit() {
        try? input.fileHandleForWriting.write(contentsOf: Data("quit\n".utf8))
        process.waitUntilExit()
    }
}
