import Dispatch
import Glibc
@testable import KlifeIO
import Synchronization
import XCTest

/// An ARC element whose deinit is counted, to prove each element is released exactly once.
final class Tracked: Sendable {
    let id: Int
    let counter: Counter
    init(_ id: Int, _ counter: Counter) {
        self.id = id
        self.counter = counter
    }
    deinit { counter.value.wrappingAdd(1, ordering: .relaxed) }
}

/// The operations both rings share, so one test body covers both.
protocol TestRing<Element>: AnyObject {
    associatedtype Element
    func tryPush(_ element: sending Element) -> Bool
    func pop() -> Element?
    func drain(maxCount: Int, _ body: (Element) -> Void) -> Int
    var capacity: Int { get }
    var approximateCount: Int { get }
}

extension MPSCRing: TestRing {}
extension SPSCRing: TestRing {}

final class RingTests: XCTestCase {
    static let capacities = (0...10).map { 1 << $0 }  // 1, 2, 4, ..., 1024

    /// Every capacity × every start slot: push until full, check refusal, drain in FIFO order.
    private func checkFillAndDrain<R: TestRing<Int>>(_ make: (Int) -> R, name: String) {
        for capacity in Self.capacities {
            for start in 0..<capacity {
                let ring = make(capacity)
                XCTAssertEqual(ring.capacity, capacity)
                // Move the cursors to `start` so the fill wraps around the slot array.
                for i in 0..<start {
                    XCTAssertTrue(ring.tryPush(i))
                    XCTAssertEqual(ring.pop(), i)
                }
                var pushed = 0
                while ring.tryPush(1000 + pushed) { pushed += 1 }
                XCTAssertEqual(pushed, capacity, "\(name) capacity \(capacity) start \(start)")
                XCTAssertEqual(ring.approximateCount, capacity)
                XCTAssertFalse(ring.tryPush(-1), "\(name): a full ring must refuse")
                var expected = 1000
                // Drain half with pop, the rest with drain(maxCount:).
                for _ in 0..<(capacity / 2) {
                    XCTAssertEqual(ring.pop(), expected)
                    expected += 1
                }
                let drained = ring.drain(maxCount: .max) { value in
                    XCTAssertEqual(value, expected)
                    expected += 1
                }
                XCTAssertEqual(drained, capacity - capacity / 2)
                XCTAssertNil(ring.pop())
                XCTAssertEqual(ring.approximateCount, 0)
                // The ring is usable again after the wrap.
                XCTAssertTrue(ring.tryPush(7))
                XCTAssertEqual(ring.pop(), 7)
            }
        }
    }

    func testMPSCEveryCapacityEveryStartPosition() {
        checkFillAndDrain({ MPSCRing<Int>(capacity: $0) }, name: "MPSC")
    }

    func testSPSCEveryCapacityEveryStartPosition() {
        checkFillAndDrain({ SPSCRing<Int>(capacity: $0) }, name: "SPSC")
    }

    func testCapacityRoundsUpToPowerOfTwo() {
        XCTAssertEqual(MPSCRing<Int>(capacity: 3).capacity, 4)
        XCTAssertEqual(MPSCRing<Int>(capacity: 1000).capacity, 1024)
        XCTAssertEqual(SPSCRing<Int>(capacity: 5).capacity, 8)
        XCTAssertEqual(SPSCRing<Int>(capacity: 1).capacity, 1)
    }

    /// Positions that cross Int.max (they wrap with &+).
    func testPositionsWrapPastIntMax() {
        for capacity in [1, 2, 4, 8] {
            for start in [Int.max - 10, -3] {
                let rings: [any TestRing<Int>] = [
                    MPSCRing<Int>(capacity: capacity, startingAt: start),
                    SPSCRing<Int>(capacity: capacity, startingAt: start),
                ]
                for ring in rings {
                    var next = 0, expected = 0
                    for _ in 0..<40 {
                        while ring.tryPush(next) { next += 1 }
                        XCTAssertEqual(ring.approximateCount, capacity)
                        while let value = ring.pop() {
                            XCTAssertEqual(value, expected)
                            expected += 1
                        }
                    }
                    XCTAssertEqual(expected, 40 * capacity)
                }
            }
        }
    }

    /// ARC elements: popped ones are released by the consumer, queued ones by the ring's deinit,
    /// each exactly once.
    private func checkARC<R: TestRing<Tracked>>(_ make: () -> R) {
        let counter = Counter()
        var popped: [Tracked] = []
        do {
            let ring = make()
            for i in 0..<ring.capacity { XCTAssertTrue(ring.tryPush(Tracked(i, counter))) }
            XCTAssertFalse(ring.tryPush(Tracked(-1, counter)))  // refused element is released by the caller
            XCTAssertEqual(counter.current, 1)
            for _ in 0..<10 { popped.append(ring.pop()!) }
            XCTAssertEqual(popped.map(\.id), Array(0..<10))
            // wrap around with more pushes and pops
            for i in 0..<100 {
                XCTAssertTrue(ring.tryPush(Tracked(1000 + i, counter)))
                _ = ring.pop()
            }
            XCTAssertEqual(counter.current, 101)
            // ring (with `capacity - 10` queued elements) is released here
        }
        XCTAssertEqual(counter.current, 1 + 100 + (64 - 10))
        popped.removeAll()
        XCTAssertEqual(counter.current, 1 + 100 + 64)
    }

    func testMPSCReleasesARCElementsExactlyOnce() {
        checkARC { MPSCRing<Tracked>(capacity: 64) }
    }

    func testSPSCReleasesARCElementsExactlyOnce() {
        checkARC { SPSCRing<Tracked>(capacity: 64) }
    }

    /// 4 producers × 100k items, one consumer: every item exactly once, per-producer order kept.
    func testMPSCFourProducersOneConsumer() {
        let producers = 4, perProducer = 100_000
        let ring = MPSCRing<Int>(capacity: 1024)
        var finished: [DispatchSemaphore] = []
        for producer in 0..<producers {
            finished.append(runThread {
                for sequence in 0..<perProducer {
                    while !ring.tryPush(producer << 32 | sequence) { sched_yield() }
                }
            })
        }
        var nextExpected = [Int](repeating: 0, count: producers)
        var received = 0
        let deadline = DispatchTime.after(safetyTimeout)
        while received < producers * perProducer {
            let taken = ring.drain(maxCount: 256) { value in
                let producer = value >> 32, sequence = value & 0xFFFF_FFFF
                XCTAssertEqual(sequence, nextExpected[producer], "producer \(producer) out of order")
                nextExpected[producer] = sequence + 1
            }
            received += taken
            if taken == 0 {
                if DispatchTime.now() > deadline { return XCTFail("consumer starved: \(received) received") }
                sched_yield()
            }
        }
        for done in finished { _ = waitOrFail(done, "producer") }
        XCTAssertEqual(nextExpected, [Int](repeating: perProducer, count: producers))
        XCTAssertNil(ring.pop())
    }

    /// One producer, one consumer, 1M items in order.
    func testSPSCStressOneMillion() {
        let total = 1_000_000
        let ring = SPSCRing<Int>(capacity: 512)
        let done = runThread {
            for i in 0..<total {
                while !ring.tryPush(i) { sched_yield() }
            }
        }
        var expected = 0
        let deadline = DispatchTime.after(safetyTimeout)
        while expected < total {
            let taken = ring.drain(maxCount: 512) { value in
                if value != expected { XCTFail("expected \(expected), got \(value)") }
                expected += 1
            }
            if taken == 0 {
                if DispatchTime.now() > deadline { return XCTFail("consumer starved at \(expected)") }
                sched_yield()
            }
        }
        _ = waitOrFail(done, "producer")
        XCTAssertNil(ring.pop())
    }
}
