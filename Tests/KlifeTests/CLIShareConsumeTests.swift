import Foundation
import Klife
import KlifeIO
import XCTest

/// `klife consume --share-group`: a share group member that prints what the group hands it,
/// accepts each record printed and, on SIGINT, closes its share sessions, leaves and exits 0.
final class CLIShareConsumeTests: XCTestCase {
    func testShareGroupMemberAcceptsWhatItPrintsAndClosesCleanlyOnSIGINT() async throws {
        let topic = "cli-share"
        let mock = try MockCluster(brokers: 1, topics: [(topic, 1)])
        defer { mock.stop() }
        try mock.shareGroup(sessionTimeoutMs: 10_000, heartbeatIntervalMs: 200, lockDurationMs: 30_000)
        try mock.shareOffsetReset(earliest: true)
        let bootstrap = mock.bootstrap[0]
        var config = KlifeConfiguration(bootstrapServers: mock.bootstrap)
        config.connectTimeout = .seconds(3)
        let client = try await KlifeClient.connect(config)
        for i in 0..<20 { client.produce(ProducerRecord(topic: topic, partition: 0, value: "v\(i)")) { _ in } }
        await client.flush()

        let process = Process()
        process.executableURL = try klifeBinary()
        process.arguments = ["consume", "-b", bootstrap, "--share-group", "g-cli", "-t", topic, "-f", "%o %s\n", "-v"]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        let printed = Locked(Data())
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            printed.withLock { $0.append(data) }
        }
        try process.run()
        let lines = { String(decoding: printed.withLock { $0 }, as: UTF8.self).split(separator: "\n").map(String.init) }
        await eventually("the member printed all 20 records", within: .seconds(60)) { lines().count >= 20 }
        process.interrupt()
        process.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, "SIGINT ends the member cleanly: \(stderr)")
        XCTAssertTrue(stderr.contains("SIGINT received"), stderr)
        XCTAssertTrue(stderr.contains("20 accepted"), stderr)
        XCTAssertEqual(lines(), (0..<20).map { "\($0) v\($0)" }, "every record printed once, in order")

        // The accepted records never come back: the next member only gets the new ones.
        for i in 0..<3 { client.produce(ProducerRecord(topic: topic, partition: 0, value: "late\(i)")) { _ in } }
        await client.flush()
        let next = try runKlife(["consume", "-b", bootstrap, "--share-group", "g-cli", "-t", topic, "-c", "3", "-f", "%s\n"])
        XCTAssertEqual(next.status, 0, next.errors)
        XCTAssertEqual(next.output.split(separator: "\n"), ["late0", "late1", "late2"])

        let misuse = try runKlife(["consume", "-b", bootstrap, "--share-group", "g-cli", "-t", topic, "-p", "0"])
        XCTAssertNotEqual(misuse.status, 0)
        XCTAssertTrue(misuse.errors.contains("--partition cannot be combined with --share-group"), misuse.errors)
        await client.close()
    }
}
