import XCTest
import KlifeProtocol

/// Big-endian byte helpers and a seeded PRNG shared by the RecordBatch/Produce/primitive tests.
enum RBBytes {
    static func i8(_ v: Int8) -> [UInt8] { [UInt8(bitPattern: v)] }
    static func i16(_ v: Int16) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    static func i32(_ v: Int32) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    static func i64(_ v: Int64) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    static func utf8(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// Bytes a writer produces for `body`.
    static func written(_ body: (inout ByteWriter) -> Void) -> [UInt8] {
        var w = ByteWriter(capacity: 16)
        body(&w)
        return w.bytes
    }
}

/// Deterministic xorshift64* generator, so hostile-input tests are reproducible.
struct XorShift: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}

final class ByteWriterTests: XCTestCase {
    func testFixedWidthBigEndian() {
        let bytes = RBBytes.written { w in
            w.writeInt8(-2)
            w.writeUInt8(0xAB)
            w.writeBool(true)
            w.writeBool(false)
            w.writeInt16(0x0102)
            w.writeUInt16(0xFFFE)
            w.writeInt32(0x0102_0304)
            w.writeUInt32(0xDEAD_BEEF)
            w.writeInt64(0x0102_0304_0506_0708)
            w.writeFloat64(1.0)
        }
        XCTAssertEqual(bytes, [0xFE, 0xAB, 1, 0, 1, 2, 0xFF, 0xFE, 1, 2, 3, 4, 0xDE, 0xAD, 0xBE, 0xEF,
                               1, 2, 3, 4, 5, 6, 7, 8, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0])
    }

    func testVarintBoundaries() {
        let cases: [(Int32, [UInt8])] = [
            (0, [0x00]), (-1, [0x01]), (1, [0x02]), (63, [0x7E]), (-64, [0x7F]), (64, [0x80, 0x01]),
            (-65, [0x81, 0x01]), (8191, [0xFE, 0x7F]), (-8192, [0xFF, 0x7F]), (8192, [0x80, 0x80, 0x01]),
            (Int32.max, [0xFE, 0xFF, 0xFF, 0xFF, 0x0F]), (Int32.min, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        ]
        for (value, expected) in cases {
            let bytes = RBBytes.written { $0.writeVarint(value) }
            XCTAssertEqual(bytes, expected, "varint \(value)")
            XCTAssertEqual(ByteWriter.varintSize(value), expected.count, "varintSize \(value)")
            bytes.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                XCTAssertEqual(r.readVarint(), value)
                XCTAssertTrue(r.isAtEnd)
            }
        }
    }

    func testVarlongBoundaries() {
        let cases: [(Int64, [UInt8])] = [
            (0, [0x00]), (-1, [0x01]), (1, [0x02]), (63, [0x7E]), (-64, [0x7F]), (64, [0x80, 0x01]),
            (Int64(Int32.max), [0xFE, 0xFF, 0xFF, 0xFF, 0x0F]), (Int64(Int32.min), [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
            (Int64(Int32.max) + 1, [0x80, 0x80, 0x80, 0x80, 0x10]),
            (Int64.max, [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            (Int64.min, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
        ]
        for (value, expected) in cases {
            let bytes = RBBytes.written { $0.writeVarlong(value) }
            XCTAssertEqual(bytes, expected, "varlong \(value)")
            XCTAssertEqual(ByteWriter.varlongSize(value), expected.count, "varlongSize \(value)")
            bytes.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                XCTAssertEqual(r.readVarlong(), value)
                XCTAssertTrue(r.isAtEnd)
            }
        }
    }

    func testUnsignedVarintSizes() {
        var values: [UInt64] = [0, 1, UInt64(UInt32.max), UInt64.max]
        for bits in stride(from: 7, through: 63, by: 7) {
            values += [(1 << UInt64(bits)) - 1, 1 << UInt64(bits)]
        }
        for value in values {
            let bytes = RBBytes.written { $0.writeUnsignedVarlong(value) }
            XCTAssertEqual(bytes.count, ByteWriter.unsignedVarlongSize(value), "size of \(value)")
            XCTAssertEqual(bytes.last! & 0x80, 0)
            XCTAssertTrue(bytes.dropLast().allSatisfy { $0 & 0x80 != 0 })
            bytes.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                XCTAssertEqual(r.readUnsignedVarlong(), value)
                XCTAssertTrue(r.isAtEnd)
            }
            if value <= UInt64(UInt32.max) {
                let small = RBBytes.written { $0.writeUnsignedVarint(UInt32(value)) }
                XCTAssertEqual(small, bytes)
            }
        }
        XCTAssertEqual(RBBytes.written { $0.writeUnsignedVarint(300) }, [0xAC, 0x02])
    }

    func testStringAndBytesEncodings() {
        XCTAssertEqual(RBBytes.written { $0.writeString("ab") }, [0, 2, 0x61, 0x62])
        XCTAssertEqual(RBBytes.written { $0.writeNullableString(nil) }, [0xFF, 0xFF])
        XCTAssertEqual(RBBytes.written { $0.writeCompactString("ab") }, [3, 0x61, 0x62])
        XCTAssertEqual(RBBytes.written { $0.writeCompactNullableString(nil) }, [0])
        XCTAssertEqual(RBBytes.written { $0.writeCompactString("") }, [1])
        XCTAssertEqual(RBBytes.written { $0.writeString("é", flexible: false) }, [0, 2, 0xC3, 0xA9])
        XCTAssertEqual(RBBytes.written { $0.writeSizedBytes([9]) }, [0, 0, 0, 1, 9])
        XCTAssertEqual(RBBytes.written { $0.writeNullableSizedBytes(nil) }, [0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertEqual(RBBytes.written { $0.writeCompactBytes([9]) }, [2, 9])
        XCTAssertEqual(RBBytes.written { $0.writeNullableSizedBytes(nil, flexible: true) }, [0])
        XCTAssertEqual(RBBytes.written { $0.writeArrayCount(2, flexible: false) }, [0, 0, 0, 2])
        XCTAssertEqual(RBBytes.written { $0.writeArrayCount(2, flexible: true) }, [3])
        XCTAssertEqual(RBBytes.written { $0.writeNullableArrayCount(nil, flexible: false) }, [0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertEqual(RBBytes.written { $0.writeNullableArrayCount(nil, flexible: true) }, [0])
        XCTAssertEqual(RBBytes.written { $0.writeEmptyTaggedFields() }, [0])
        XCTAssertEqual(RBBytes.written { $0.writeEmptyTaggedFields(flexible: false) }, [])
        XCTAssertEqual(RBBytes.written { $0.writeUUID(KafkaUUID(high: 1, low: 2)) },
                       RBBytes.i64(1) + RBBytes.i64(2))
    }

    func testGrowthAcrossCapacity() {
        var w = ByteWriter(capacity: 1)
        var expected: [UInt8] = []
        for i in 0..<5000 {
            w.writeInt32(Int32(i))
            expected += RBBytes.i32(Int32(i))
            if i % 7 == 0 {
                let blob = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: i % 300)
                w.writeBytes(blob)
                expected += blob
            }
        }
        XCTAssertEqual(w.count, expected.count)
        XCTAssertEqual(w.bytes, expected)
        let big = [UInt8](repeating: 7, count: 100_000)
        w.writeBytes(big)
        XCTAssertEqual(w.count, expected.count + big.count)
    }

    func testReserveAndPatch() {
        var w = ByteWriter(capacity: 16)
        w.writeUInt8(0xAA)
        let size = w.reserve(4)
        let short = w.reserve(2)
        w.writeBytes([UInt8](repeating: 1, count: 40))  // forces growth after reserving
        w.patchInt32(-2, at: size)
        w.patchInt16(0x0102, at: short)
        XCTAssertEqual(Array(w.bytes[0..<7]), [0xAA, 0xFF, 0xFF, 0xFF, 0xFE, 1, 2])
        w.patchUInt32(0xDEAD_BEEF, at: size)
        XCTAssertEqual(Array(w.bytes[1..<5]), [0xDE, 0xAD, 0xBE, 0xEF])
        XCTAssertEqual(w.count, 47)
    }

    func testRemoveFirstAndRemoveAll() {
        var w = ByteWriter(capacity: 16)
        w.writeBytes((0..<100).map { UInt8($0) })
        w.removeFirst(10)
        XCTAssertEqual(w.bytes, (10..<100).map { UInt8($0) })
        w.removeFirst(0)
        XCTAssertEqual(w.count, 90)
        w.writeUInt8(200)
        XCTAssertEqual(w.bytes.last, 200)
        w.removeFirst(w.count)
        XCTAssertEqual(w.count, 0)
        w.writeInt16(5)
        XCTAssertEqual(w.bytes, [0, 5])
        w.removeAll()
        XCTAssertEqual(w.count, 0)
        XCTAssertEqual(w.bytes, [])
    }

    func testMutableRangeAccess() {
        var w = ByteWriter(capacity: 16)
        w.writeBytes([1, 2, 3, 4])
        w.withUnsafeMutableBytes(1..<3) { $0[0] = 9; $0[1] = 8 }
        XCTAssertEqual(w.bytes, [1, 9, 8, 4])
        let sum = w.withUnsafeBytes { $0.reduce(0) { $0 + Int($1) } }
        XCTAssertEqual(sum, 22)
    }
}
