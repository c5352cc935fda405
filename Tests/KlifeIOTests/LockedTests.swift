import Dispatch
@testable import KlifeIO
import XCTest

/// `Locked` must exclude for real: its annotations for ThreadSanitizer would hide a lock that
/// does not lock, so this checks the exclusion itself, with heap-backed state that concurrent
/// writers would corrupt.
final class LockedTests: XCTestCase {
    private final class Shared: Sendable {
        let state = Locked<[Int]>([])
    }

    func testConcurrentWritersNeverInterleave() {
        let shared = Shared()
        let threads = 8, perThread = 20_000
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for i in 0..<perThread {
                shared.state.withLock { values in
                    // Grows and reallocates the array under the lock: any overlap corrupts it.
                    values.append(t * perThread + i)
                    if values.count % 1024 == 0 { values.reserveCapacity(values.count * 2) }
                }
            }
        }
        let values = shared.state.withLock { $0 }
        XCTAssertEqual(values.count, threads * perThread)
        XCTAssertEqual(Set(values).count, threads * perThread, "every append kept, none lost or doubled")
    }

    func testValueIsReturnedAndErrorsPropagate() {
        let lock = Locked(5)
        XCTAssertEqual(lock.withLock { value -> Int in value += 1; return value }, 6)
        struct Boom: Error {}
        XCTAssertThrowsError(try lock.withLock { (_: inout Int) throws(Boom) -> Void in throw Boom() })
        XCTAssertEqual(lock.withLock { $0 }, 6)
    }
}
