import Foundation
import Klife
import KlifeIO
import XCTest

/// `klife consume -G`: a group member that prints what the group gives it and, on SIGINT,
/// commits what it printed, leaves and exits 0.
final class CLIGroupConsumeTests: XCTestCase {
    func testGroupMemberCommitsWhatItPrintedOnSIGINTAndExitsZero() async throws {
        let bootstrap = try await Shared.cluster.value.bootstrapServers[0]
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 3, prefix: "cli-group")
        let group = "g-" + topic
        for p in Int32(0)..<3 {
            for i in 0..<10 { client.produce(ProducerRecord(topic: topic, partition: p, value: "v\(p)-\(i)")) { _ in } }
        }
        await client.flush()

        let process = Process()
        process.executableURL = try klifeBinary()
        process.arguments = ["consume", "-b", bootstrap, "-G", group, "-t", topic, "-o", "beginning",
                             "--session-timeout", "6000", "--assignor", "range", "-f", "%p %o %s\n", "-v"]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        let printed = Locked(Data())
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            printed.withLock { $0.append(data) }
        }
        try process.run()
        let lines = { String(decoding: printed.withLock { $0 }, as: UTF8.self).split(separator: "\n") }
        await eventually("the member printed all 30 records") { lines().count >= 30 }
        process.interrupt()
        process.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, "SIGINT ends the member cleanly: \(stderr)")
        XCTAssertTrue(stderr.contains("SIGINT received"), stderr)
        XCTAssertEqual(Set(lines()).count, 30, "every record printed once")

        let committed = try await client.committedOffsets(groupID: group)
        XCTAssertEqual(committed, Dictionary(uniqueKeysWithValues: (0..<3).map { (TopicPartition(topic: topic, partition: $0), Int64(10)) }),
                       "the offsets of everything printed are committed")

        // The next member of the group starts where the first one stopped. (Same assignor: Tansu
        // 0.6 keeps an empty group's protocol and refuses another with INCONSISTENT_GROUP_PROTOCOL.)
        for p in Int32(0)..<3 { client.produce(ProducerRecord(topic: topic, partition: p, value: "late\(p)")) { _ in } }
        await client.flush()
        let next = try runKlife(["consume", "-b", bootstrap, "-G", group, "-t", topic, "--session-timeout", "6000",
                                 "--assignor", "range", "-c", "3", "-f", "%s\n"])
        XCTAssertEqual(next.status, 0, next.errors)
        XCTAssertEqual(Set(next.output.split(separator: "\n")), ["late0", "late1", "late2"])
        await client.close()
    }
}
