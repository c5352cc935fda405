@testable import Klife
@testable import KlifeProtocol
import KlifeTesting
import XCTest

/// Fetch answers of 64 KiB and more are read from the socket straight into a block of their
/// own, and the partitions' records are slices of it (no copy out of the receive buffer).
final class LargeFetchTests: XCTestCase {
    func testLargeAnswersAreReadIntoBlocksAndEveryRecordReadsBack() async throws {
        let client = try await Shared.client { $0.producer.linger = .milliseconds(5) }
        let topic = try await Shared.topic(client, partitions: 1)
        let count = 12_000
        func value(_ i: Int) -> [UInt8] { (0..<200).map { UInt8(truncatingIfNeeded: i &* 7 &+ $0) } }
        for start in stride(from: 0, to: count, by: 2_000) {
            let records = (start..<start + 2_000).map { ProducerRecord(topic: topic, partition: 0, value: value($0)) }
            for result in await client.produceBatch(records) { _ = try result.get() }
        }

        var offset: Int64 = 0
        var slicedPages = 0
        var pages = 0
        while offset < Int64(count) {
            let page = try await client.fetch(topic: topic, partition: 0, offset: offset, maxBytes: 1 << 20,
                                              maxWait: .milliseconds(500))
            XCTAssertFalse(page.records.isEmpty, "progress at offset \(offset)")
            if page.records.isEmpty { break }
            pages += 1
            if page.records.fetched.parent != nil { slicedPages += 1 }
            for i in 0..<page.records.count {
                let record = page.records[i]
                XCTAssertEqual(record.offset, offset + Int64(i))
                XCTAssertEqual(record.value.map(Array.init), value(Int(record.offset)), "offset \(record.offset)")
            }
            offset = page.nextOffset
        }
        XCTAssertEqual(offset, Int64(count))
        XCTAssertGreaterThan(slicedPages, 0, "answers of up to 1 MiB (of \(pages)) were read into blocks of their own")
        await client.close()
    }
}
