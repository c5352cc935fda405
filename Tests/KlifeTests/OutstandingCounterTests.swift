@testable import Klife
import Dispatch
import Synchronization
import XCTest

/// Producers waiting for room in the buffer are resumed by releases, never by polling, and no
/// interleaving of a release with a producer going to sleep loses the wakeup.
final class OutstandingCounterTests: XCTestCase {
    /// The interleaving that would lose a wakeup: the producer reads the release count, fails
    /// to take room, and the release happens before it registers. It must not sleep.
    func testAReleaseBetweenTheFailedAttemptAndTheWaitIsNotMissed() async {
        let counter = OutstandingCounter()
        XCTAssertTrue(counter.tryReserve(bytes: 10, maxRecords: 1, maxBytes: 1_000))
        let seen = counter.releaseCount
        XCTAssertFalse(counter.tryReserve(bytes: 10, maxRecords: 1, maxBytes: 1_000), "full")
        counter.completed(count: 1, bytes: 10, success: true)   // before the producer registers
        await counter.waitForRelease(after: seen)               // returns at once
        XCTAssertEqual(counter.waitingCount, 0)
        XCTAssertTrue(counter.tryReserve(bytes: 10, maxRecords: 1, maxBytes: 1_000))
    }

    /// A producer that registered first is resumed by the next release, made on another thread.
    func testARegisteredWaiterIsResumedByTheNextRelease() async throws {
        let counter = OutstandingCounter()
        XCTAssertTrue(counter.tryReserve(bytes: 10, maxRecords: 1, maxBytes: 1_000))
        let seen = counter.releaseCount
        let waiter = Task { await counter.waitForRelease(after: seen) }
        try await waitUntil { counter.waitingCount == 1 }
        DispatchQueue.global().async { counter.completed(count: 1, bytes: 10, success: true) }
        await waiter.value
        XCTAssertEqual(counter.waitingCount, 0)
    }

    /// A transactional session's producer waits on the client's counter: a release of another
    /// session's records (the default one's) wakes it.
    func testAWaiterOnTheRootIsWokenByAnySessionsRelease() async throws {
        let client = OutstandingCounter()
        let session = OutstandingCounter(parent: client)
        XCTAssertTrue(client.tryReserve(bytes: 10, maxRecords: 1, maxBytes: 1_000))
        XCTAssertTrue(session.root === client)
        let seen = session.root.releaseCount
        XCTAssertFalse(session.tryReserve(bytes: 10, maxRecords: 1, maxBytes: 1_000))
        let waiter = Task { await session.root.waitForRelease(after: seen) }
        try await waitUntil { client.waitingCount == 1 }
        client.completed(count: 1, bytes: 10, success: true)
        await waiter.value
        XCTAssertTrue(session.tryReserve(bytes: 10, maxRecords: 1, maxBytes: 1_000))
    }

    /// Cancelling a waiting task resumes it, whether the cancellation comes before or after it
    /// registered.
    func testCancellationResumesAWaiter() async throws {
        let counter = OutstandingCounter()
        XCTAssertTrue(counter.tryReserve(bytes: 10, maxRecords: 1, maxBytes: 1_000))
        let registered = Task { await counter.waitForRelease(after: counter.releaseCount) }
        try await waitUntil { counter.waitingCount == 1 }
        registered.cancel()
        await registered.value
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await counter.waitForRelease(after: counter.releaseCount)
        }
        await early.value
        XCTAssertEqual(counter.waitingCount, 0)
    }

    /// Four producers take room 3,000 times each through a 3-record buffer while another thread
    /// releases whatever is taken: every producer finishes (a lost wakeup leaves one asleep with
    /// nothing left to release), and the counts balance.
    func testManyProducersAndAReleasingThreadNeverLoseAWakeup() async throws {
        let counter = OutstandingCounter()
        let perProducer = 3_000, producers = 4
        let stop = Atomic<Bool>(false)
        let releaser = Thread {
            while !stop.load(ordering: .relaxed) {
                if counter.value > 0 { counter.completed(count: 1, bytes: 1, success: true) } else { sched_yield() }
            }
        }
        releaser.start()
        defer { stop.store(true, ordering: .relaxed) }
        let finished = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<producers {
                group.addTask {
                    for _ in 0..<perProducer {
                        while true {
                            let seen = counter.releaseCount
                            if counter.tryReserve(bytes: 1, maxRecords: 3, maxBytes: 1 << 20) { break }
                            await counter.waitForRelease(after: seen)
                        }
                    }
                    return perProducer
                }
            }
            group.addTask {
                try await Task.sleep(for: .seconds(60))
                throw LostWakeup()
            }
            var done = 0
            for try await n in group {
                done += n
                if done == producers * perProducer { group.cancelAll(); break }
            }
            return done
        }
        XCTAssertEqual(finished, producers * perProducer)
        try await waitUntil { counter.value == 0 }
        XCTAssertEqual(counter.deliveredCount, producers * perProducer)
    }

    private struct LostWakeup: Error {}

    private func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<10_000 where !condition() { try await Task.sleep(for: .milliseconds(1)) }
        XCTAssertTrue(condition())
    }
}
