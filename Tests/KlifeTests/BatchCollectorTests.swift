@testable import Klife
import Dispatch
import KlifeProtocol
import XCTest

/// `produceBatch`'s collector: records name it unretained, it keeps itself alive until its
/// last slot is filled, and it is freed once that slot is filled and its caller let go.
final class BatchCollectorTests: XCTestCase {
    private func metadata(_ offset: Int64) -> Result<RecordMetadata, KlifeError> {
        .success(RecordMetadata(topic: "t", partition: 0, offset: offset, timestamp: 0))
    }

    /// Slots filled out of order come back in slot order; a second outcome for a slot is ignored.
    func testResultsComeBackInSlotOrderAndASlotIsFilledOnce() async {
        let collector = BatchCollector(count: 3)
        let slots = collector.retainedUntilFilled
        BatchCollector.fill(slots, slot: 2, with: metadata(12))
        BatchCollector.fill(slots, slot: 0, with: metadata(10))
        BatchCollector.fill(slots, slot: 0, with: .failure(.timedOut("late duplicate")))
        XCTAssertFalse(collector.complete(0, .failure(.timedOut("another duplicate"))), "a filled slot does not count twice")
        BatchCollector.fill(slots, slot: 1, with: .failure(.bufferFull(records: 1, bytes: 1)))
        let results = await collector.wait()
        XCTAssertEqual(results.count, 3)
        XCTAssertEqual(try results[0].get().offset, 10)
        XCTAssertThrowsError(try results[1].get())
        XCTAssertEqual(try results[2].get().offset, 12)
    }

    /// Every slot failed before anyone waited (each record refused in `prepare`): the wait
    /// returns at once, and the slots' reference went with the last one.
    func testAllSlotsFilledBeforeTheWaitAndTheCollectorIsFreed() async {
        weak var freed: BatchCollector?
        do {
            let collector = BatchCollector(count: 2)
            freed = collector
            let slots = collector.retainedUntilFilled
            BatchCollector.fill(slots, slot: 0, with: .failure(.clientClosed))
            BatchCollector.fill(slots, slot: 1, with: .failure(.clientClosed))
            let results = await collector.wait()
            XCTAssertEqual(results.count, 2)
        }
        XCTAssertNil(freed, "nothing keeps a filled collector alive once its caller let go")
    }

    /// Until its last slot is filled the collector outlives its caller's reference (a reactor
    /// may still fill slots after a caller gave up on the batch); then it is freed.
    func testTheCollectorLivesUntilItsLastSlotEvenWithoutItsCaller() {
        weak var freed: BatchCollector?
        var slots: Unmanaged<BatchCollector>?
        do {
            let collector = BatchCollector(count: 2)
            freed = collector
            slots = collector.retainedUntilFilled
        }
        XCTAssertNotNil(freed, "the unfilled slots keep it")
        BatchCollector.fill(slots!, slot: 0, with: metadata(0))
        XCTAssertNotNil(freed, "one slot is still unfilled")
        BatchCollector.fill(slots!, slot: 1, with: metadata(1))
        XCTAssertNil(freed, "the last slot gave the reference up")
    }

    /// Slots filled from several threads while the caller waits: every result arrives, the
    /// caller is resumed exactly once, and the collector is freed after the fills returned.
    func testConcurrentFillsResumeTheCallerOnceAndFreeTheCollector() async {
        let count = 8_000
        weak var freed: BatchCollector?
        var results: [Result<RecordMetadata, KlifeError>] = []
        do {
            let collector = BatchCollector(count: count)
            freed = collector
            let slots = collector.retainedUntilFilled
            let group = DispatchGroup()
            for thread in 0..<4 {
                DispatchQueue.global().async(group: group) {
                    for slot in stride(from: thread, to: count, by: 4) {
                        BatchCollector.fill(slots, slot: slot, with: .success(
                            RecordMetadata(topic: "t", partition: 0, offset: Int64(slot), timestamp: 0)))
                    }
                }
            }
            results = await collector.wait()
            await withCheckedContinuation { continuation in group.notify(queue: .global()) { continuation.resume() } }
        }
        XCTAssertEqual(results.count, count)
        for (slot, result) in results.enumerated() { XCTAssertEqual(try result.get().offset, Int64(slot)) }
        XCTAssertNil(freed)
    }
}
