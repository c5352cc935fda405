import XCTest
import KlifeProtocol

/// Truncated, corrupted and malicious RecordBatch input: errors, never traps.
final class RecordBatchHostileTests: XCTestCase {
    private func decodeError(_ bytes: [UInt8], verifyCRC: Bool = true,
                             file: StaticString = #filePath, line: UInt = #line) -> DecodeError? {
        do {
            _ = try RecordBatchDecoder.decode(bytes, verifyCRC: verifyCRC)
            XCTFail("expected a decode error", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    /// The golden batch with its records section replaced by `records`, count and length fixed, CRC valid.
    private func batch(records: [UInt8], count: Int32) -> [UInt8] {
        var bytes = Array(RBFixture.goldenBatch[0..<61]) + records
        bytes.replaceSubrange(8..<12, with: RBBytes.i32(Int32(bytes.count - 12)))
        bytes.replaceSubrange(57..<61, with: RBBytes.i32(count))
        RBFixture.fixCRC(&bytes)
        return bytes
    }

    func testTruncationAtEveryByte() throws {
        let (bytes, firstSize) = RBFixture.twoBatches
        for cut in 0...bytes.count {
            let prefix = Array(bytes[0..<cut])
            let result = try RecordBatchDecoder.decode(prefix)
            switch cut {
            case 0:
                XCTAssertEqual(result.batches.count, 0)
                XCTAssertFalse(result.truncatedTail)
            case 1..<firstSize:
                XCTAssertEqual(result.batches.count, 0, "cut \(cut)")
                XCTAssertTrue(result.truncatedTail, "cut \(cut)")
            case firstSize:
                XCTAssertEqual(result.batches.count, 1)
                XCTAssertFalse(result.truncatedTail)
            case (firstSize + 1)..<bytes.count:
                XCTAssertEqual(result.batches.count, 1, "cut \(cut)")
                XCTAssertEqual(result.batches.first?.records.count, 2)
                XCTAssertTrue(result.truncatedTail, "cut \(cut)")
            default:
                XCTAssertEqual(result.batches.count, 2)
                XCTAssertFalse(result.truncatedTail)
            }
        }
    }

    func testFlippedByteAfterCRCFieldIsCRCMismatch() {
        let (bytes, firstSize) = RBFixture.twoBatches
        for start in [0, firstSize] {
            let end = start == 0 ? firstSize : bytes.count
            for i in (start + 21)..<end {
                for mask: UInt8 in [0x01, 0x80, 0xFF] {
                    var corrupt = bytes
                    corrupt[i] ^= mask
                    XCTAssertEqual(decodeError(corrupt)?.kind, .crcMismatch, "byte \(i) mask \(mask)")
                }
            }
            var badCRC = bytes
            badCRC[start + 18] ^= 0x40
            XCTAssertEqual(decodeError(badCRC)?.kind, .crcMismatch)
            XCTAssertEqual(decodeError(badCRC)?.offset, start + 17)
        }
    }

    func testHeaderFieldsBeforeCRC() throws {
        var epoch = RBFixture.goldenBatch
        epoch[13] ^= 0xFF  // PartitionLeaderEpoch is not covered by the CRC
        XCTAssertEqual(try RecordBatchDecoder.decode(epoch).batches.count, 1)
        var magic = RBFixture.goldenBatch
        magic[16] = 1
        XCTAssertEqual(decodeError(magic)?.kind, .unsupported)
        var short = RBFixture.goldenBatch
        short.replaceSubrange(8..<12, with: RBBytes.i32(48))  // below the 49-byte minimum
        XCTAssertEqual(decodeError(short)?.kind, .invalidLength)
        var negative = RBFixture.goldenBatch
        negative.replaceSubrange(8..<12, with: RBBytes.i32(-1))
        XCTAssertEqual(decodeError(negative)?.kind, .invalidLength)
        var huge = RBFixture.goldenBatch
        huge.replaceSubrange(8..<12, with: RBBytes.i32(Int32.max))  // longer than the buffer: a truncated tail
        let tail = try RecordBatchDecoder.decode(huge)
        XCTAssertTrue(tail.truncatedTail)
        XCTAssertTrue(tail.batches.isEmpty)
        var codec = RBFixture.goldenBatch
        codec[22] = 0x07
        RBFixture.fixCRC(&codec)
        XCTAssertEqual(decodeError(codec)?.kind, .unsupported)
    }

    func testRecordLengthsPastTheBatch() {
        // Record length 100 with only 8 bytes of records.
        XCTAssertEqual(decodeError(batch(records: [0xC8, 0x01, 0, 0, 0, 1, 1, 0], count: 1))?.kind, .invalidLength)
        // Key length 1000 inside a record of 7 bytes.
        XCTAssertEqual(decodeError(batch(records: [0x0C, 0, 0, 0, 0xD0, 0x0F, 1, 0], count: 1))?.kind, .invalidLength)
        // Value length Int32.max.
        XCTAssertEqual(decodeError(batch(records: [0x14, 0, 0, 0, 1, 0xFE, 0xFF, 0xFF, 0xFF, 0x0F, 0], count: 1))?.kind,
                       .invalidLength)
        // Negative key length other than -1.
        XCTAssertEqual(decodeError(batch(records: [0x0C, 0, 0, 0, 0x03, 1, 0], count: 1))?.kind, .invalidLength)
        // Negative record length.
        XCTAssertEqual(decodeError(batch(records: [0x03, 0, 0, 0, 1, 1, 0], count: 1))?.kind, .invalidLength)
        // Header value length past the record.
        XCTAssertEqual(decodeError(batch(records: [0x12, 0, 0, 0, 1, 1, 2, 2, 0x61, 0x7E], count: 1))?.kind,
                       .invalidLength)
        // Fields end before the record's declared length.
        XCTAssertEqual(decodeError(batch(records: [0x10, 0, 0, 0, 1, 1, 0, 0xAA, 0xBB], count: 1))?.kind,
                       .invalidLength)
        // Overlong timestamp varlong.
        XCTAssertEqual(decodeError(batch(records: [0x1E, 0] + [UInt8](repeating: 0xFF, count: 14), count: 1))?.kind,
                       .invalidVarint)
    }

    func testRecordCountMismatch() {
        let records = Array(RBFixture.goldenBatch[61...])
        // Declares 3, holds 2: the third length varint runs off the end.
        XCTAssertEqual(decodeError(batch(records: records, count: 3))?.kind, .truncated)
        // Declares 1, holds 2: trailing bytes after the declared records.
        XCTAssertEqual(decodeError(batch(records: records, count: 1))?.kind, .invalidLength)
        XCTAssertEqual(decodeError(batch(records: records + [0x0C, 0, 0, 0, 1, 1, 0], count: 4))?.kind, .truncated)
        XCTAssertEqual(decodeError(batch(records: records, count: -1))?.kind, .invalidLength)
        XCTAssertNoThrow(try RecordBatchDecoder.decode(batch(records: records, count: 2)))
    }

    func testHugeCountsFailBeforeAllocating() {
        // RecordCount Int32.max over 30 bytes: rejected up front (no reserveCapacity of 2^31 records).
        let records = Array(RBFixture.goldenBatch[61...])
        XCTAssertEqual(decodeError(batch(records: records, count: Int32.max))?.kind, .invalidLength)
        // Header count Int32.max inside a small record.
        let hostileHeaders: [UInt8] = [0x14, 0, 0, 0, 1, 1, 0xFE, 0xFF, 0xFF, 0xFF, 0x0F]
        XCTAssertEqual(decodeError(batch(records: hostileHeaders, count: 1))?.kind, .invalidLength)
        // Negative header count.
        XCTAssertEqual(decodeError(batch(records: [0x0C, 0, 0, 0, 1, 1, 0x03], count: 1))?.kind, .invalidLength)
    }

    func testErrorOffsetsPointIntoTheCallerBuffer() {
        let (good, firstSize) = RBFixture.twoBatches
        var bytes = good
        // Corrupt the first record of the second batch: make its key length 100.
        let recordStart = firstSize + 61
        XCTAssertEqual(bytes[recordStart + 4], 0x02)  // key length 1
        bytes[recordStart + 4] = 0xC8
        bytes[recordStart + 5] = 0x01
        RBFixture.fixCRC(&bytes, start: firstSize)
        let error = decodeError(bytes)
        XCTAssertEqual(error?.kind, .invalidLength)
        XCTAssertTrue((recordStart..<(recordStart + 12)).contains(error?.offset ?? -1),
                      "offset \(String(describing: error?.offset))")
    }

    func testSeededRandomMutationsNeverTrap() {
        let (bytes, firstSize) = RBFixture.twoBatches
        var rng = XorShift(seed: 0x5EED_1234)
        var outcomes: [String: Int] = [:]
        for iteration in 0..<2000 {
            var m = bytes
            let edits = Int.random(in: 1...4, using: &rng)
            for _ in 0..<edits {
                switch Int.random(in: 0..<10, using: &rng) {
                case 0..<6 where m.count > 21:  // overwrite a CRC-covered byte (where the parser works hardest)
                    let i = Int.random(in: 21..<m.count, using: &rng)
                    m[i] = UInt8.random(in: 0...255, using: &rng)
                case 0...6 where !m.isEmpty:    // overwrite any byte
                    m[Int.random(in: 0..<m.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 0...6:
                    m = [0]
                case 7:       // delete a byte
                    if m.count > 1 { m.remove(at: Int.random(in: 0..<m.count, using: &rng)) }
                case 8:       // insert a byte
                    m.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...m.count, using: &rng))
                default:      // truncate
                    if !m.isEmpty { m.removeLast(Int.random(in: 0..<m.count, using: &rng)) }
                }
            }
            // Re-sign both batches so most mutations get past the CRC into the record parser.
            if iteration % 2 == 0, m.count >= 12 {
                let len0 = m[8..<12].reduce(0) { $0 << 8 | Int($1) }
                if len0 >= 49, 12 + len0 <= m.count {
                    RBFixture.fixCRC(&m)
                    let s1 = 12 + len0
                    if s1 + 12 <= m.count {
                        let len1 = m[(s1 + 8)..<(s1 + 12)].reduce(0) { $0 << 8 | Int($1) }
                        if len1 >= 49, s1 + 12 + len1 <= m.count { RBFixture.fixCRC(&m, start: s1) }
                    }
                }
            }
            for verify in [true, false] {
                do {
                    let r = try RecordBatchDecoder.decode(m, verifyCRC: verify)
                    outcomes["ok", default: 0] += 1
                    XCTAssertLessThanOrEqual(r.batches.reduce(0) { $0 + $1.records.count }, m.count / 7)
                } catch {
                    outcomes["\(error.kind)", default: 0] += 1
                }
            }
        }
        _ = firstSize
        XCTAssertEqual(outcomes.values.reduce(0, +), 4000)
        XCTAssertGreaterThan(outcomes["ok", default: 0], 0)
        XCTAssertGreaterThan(outcomes["crcMismatch", default: 0], 0)
        XCTAssertGreaterThan(outcomes["invalidLength", default: 0], 0)
    }
}
