import Foundation
import Klife
import XCTest

/// `klife produce --transactional-id` and `klife consume --isolation`, run as the built
/// binary against the shared Tansu broker.
final class CLITransactionTests: XCTestCase {
    func testTransactionalProduceCommitsAndAbortsAndConsumeHonoursIsolation() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "clitxn")
        await client.close()
        let bootstrap = try await Shared.cluster.value.bootstrapServers[0]
        let id = "cli-\(UUID().uuidString.prefix(8))"

        let commit = try runKlife(["produce", "-b", bootstrap, "-t", topic, "--transactional-id", id], stdin: "a\nb\n")
        XCTAssertEqual(commit.status, 0, commit.errors)
        let abort = try runKlife(["produce", "-b", bootstrap, "-t", topic, "--transactional-id", id, "--abort"], stdin: "c\n")
        XCTAssertEqual(abort.status, 0, abort.errors)
        XCTAssertTrue(abort.errors.contains("aborted the transaction of '\(id)-0'"), abort.errors)

        let committed = try runKlife(["consume", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e",
                                      "--isolation", "read_committed"])
        XCTAssertEqual(committed.output, "a\nb\n", committed.errors)
        let everything = try runKlife(["consume", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e",
                                       "--isolation", "read_uncommitted"])
        XCTAssertEqual(everything.output, "a\nb\nc\n", everything.errors)
    }

    func testAbortWithoutTransactionalIDIsAUsageError() throws {
        let result = try runKlife(["produce", "-b", "127.0.0.1:9", "-t", "x", "--abort"])
        XCTAssertEqual(result.status, 64)
        XCTAssertTrue(result.errors.contains("--abort needs --transactional-id"), result.errors)
    }
}
