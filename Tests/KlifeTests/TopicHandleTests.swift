@testable import Klife
import Dispatch
import Synchronization
import XCTest

/// Interned topic names: one handle per name, compared by identity, whichever thread interns.
final class TopicHandleTests: XCTestCase {
    func testOneHandlePerNameComparedByIdentity() {
        let table = TopicTable()
        let a = table.handle(for: "orders")
        let b = table.handle(for: "payments")
        let again = table.handle(for: "orders")
        XCTAssertEqual(a, again)
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(a.name, "orders")
        XCTAssertEqual(b.name, "payments")
        XCTAssertEqual(table.handle(for: "payments"), b, "found again after another name was looked up")
        XCTAssertEqual(table.count, 2)
        // A name longer than a small string, built separately (different storage, same bytes).
        let long = table.handle(for: "a-topic-name-longer-than-fifteen-bytes")
        XCTAssertEqual(table.handle(for: String(repeating: "a-topic-name-longer-than-fifteen-bytes", count: 1)), long)
        XCTAssertTrue(TopicHandle.empty.isEmpty)
        XCTAssertFalse(a.isEmpty)
    }

    /// More names than the recent slots, looked up in turn: every lookup still finds the one
    /// handle of its name (through the slots or the table).
    func testNamesBeyondTheRecentSlotsKeepTheirHandles() {
        let table = TopicTable()
        let names = (0..<9).map { "t\($0)" }
        let first = names.map { table.handle(for: $0) }
        for round in 0..<50 {
            for (i, name) in names.enumerated() where (i + round) % 3 != 0 {
                XCTAssertEqual(table.handle(for: name), first[i])
            }
        }
        XCTAssertEqual(Set(first.map { UInt(bitPattern: $0.interned.toOpaque()) }).count, names.count)
        XCTAssertEqual(table.count, names.count)
    }

    /// Threads interning overlapping names at once each get the one handle of every name
    /// (checked under ThreadSanitizer by `scripts/sanitize.sh thread`).
    func testConcurrentInterningYieldsOneHandlePerName() {
        let table = TopicTable()
        let names = (0..<16).map { "topic-\($0)" }
        let seen = Mutex<[String: Set<UInt>]>([:])
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            var mine: [String: Set<UInt>] = [:]
            for round in 0..<2_000 {
                let name = names[(round &* 7 &+ thread) % names.count]
                let handle = table.handle(for: name)
                XCTAssertEqual(handle.name, name)
                mine[name, default: []].insert(UInt(bitPattern: handle.interned.toOpaque()))
            }
            seen.withLock { all in for (name, handles) in mine { all[name, default: []].formUnion(handles) } }
        }
        seen.withLock { all in
            XCTAssertEqual(all.count, names.count)
            for (name, handles) in all { XCTAssertEqual(handles.count, 1, "\(name) interned once") }
        }
        XCTAssertEqual(table.count, names.count)
    }
}
