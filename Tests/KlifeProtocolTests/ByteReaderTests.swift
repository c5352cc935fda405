import XCTest
import KlifeProtocol

final class ByteReaderTests: XCTestCase {
    private func read<T>(_ bytes: [UInt8], _ body: (inout ByteReader) -> T) -> (T, ByteReader) {
        bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let v = body(&r)
            return (v, r)
        }
    }

    func testStringRoundTrips() {
        for flexible in [false, true] {
            let samples: [String?] = [nil, "", "a", "héllo wörld", String(repeating: "x", count: 300)]
            let bytes = RBBytes.written { w in
                for s in samples {
                    w.writeNullableString(s, flexible: flexible)
                    if let s { w.writeString(s, flexible: flexible) }
                }
            }
            let (decoded, r) = read(bytes) { r -> [String?] in
                var out: [String?] = []
                for s in samples {
                    out.append(r.readNullableString(flexible: flexible))
                    if s != nil { out.append(r.readString(flexible: flexible)) }
                }
                return out
            }
            XCTAssertTrue(r.isAtEnd, "flexible \(flexible)")
            XCTAssertEqual(decoded, samples.flatMap { s -> [String?] in s == nil ? [nil] : [s, s] })
        }
    }

    func testBytesRoundTrips() {
        for flexible in [false, true] {
            let samples: [[UInt8]?] = [nil, [], [1], [UInt8](repeating: 5, count: 200)]
            let bytes = RBBytes.written { w in
                for b in samples {
                    w.writeNullableSizedBytes(b, flexible: flexible)
                    if let b { w.writeSizedBytes(b, flexible: flexible) }
                }
            }
            let (decoded, r) = read(bytes) { r -> [[UInt8]?] in
                var out: [[UInt8]?] = []
                for b in samples {
                    out.append(r.readNullableSizedBytes(flexible: flexible))
                    if b != nil { out.append(r.readSizedBytes(flexible: flexible)) }
                }
                return out
            }
            XCTAssertTrue(r.isAtEnd)
            XCTAssertEqual(decoded, samples.flatMap { b -> [[UInt8]?] in b == nil ? [nil] : [b, b] })
        }
    }

    func testTaggedFieldSkippingWithPayloads() {
        let bytes: [UInt8] = [
            3,                          // three tagged fields
            0, 3, 0x61, 0x62, 0x63,     // tag 0, size 3, payload
            5, 0,                       // tag 5, empty
            0x80, 0x01, 2, 0xFF, 0xFF,  // tag 128 (2-byte varint), size 2
        ] + RBBytes.i32(0x1234_5678)
        let (sentinel, r) = read(bytes) { r -> Int32 in
            r.skipTaggedFields()
            return r.readInt32()
        }
        XCTAssertEqual(sentinel, 0x1234_5678)
        XCTAssertTrue(r.isAtEnd)
        // Non-flexible: nothing is consumed.
        let (first, _) = read(bytes) { r -> UInt8 in r.skipTaggedFields(flexible: false); return r.readUInt8() }
        XCTAssertEqual(first, 3)
        // A payload size past the end is an error, not a trap.
        let (_, bad) = read([1, 0, 50, 1, 2]) { r in r.skipTaggedFields() }
        XCTAssertEqual(bad.error?.kind, .truncated)
        let (_, hostile) = read([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]) { r in r.skipTaggedFields() }
        XCTAssertEqual(hostile.error?.kind, .invalidLength)
    }

    /// A buffer of every field kind, and a reader of the same sequence.
    private static let mixed: [UInt8] = RBBytes.written { w in
        w.writeInt8(-3)
        w.writeInt16(-300)
        w.writeInt32(70_000)
        w.writeInt64(-5_000_000_000)
        w.writeVarint(-12345)
        w.writeVarlong(Int64.min)
        w.writeUnsignedVarint(300)
        w.writeString("kafka")
        w.writeCompactNullableString("é")
        w.writeNullableSizedBytes([1, 2, 3])
        w.writeCompactBytes([4, 5])
        w.writeUUID(KafkaUUID(high: 7, low: 8))
        w.writeArrayCount(2, flexible: true)
        w.writeInt16(1)
        w.writeInt16(2)
        w.writeUInt8(1); w.writeUInt8(0); w.writeUInt8(1); w.writeUInt8(0xEE)  // tags: tag 0, size 1
        w.writeFloat64(2.5)
    }

    private static func readMixed(_ r: inout ByteReader) -> [String] {
        var out: [String] = []
        out.append("\(r.readInt8())")
        out.append("\(r.readInt16())")
        out.append("\(r.readInt32())")
        out.append("\(r.readInt64())")
        out.append("\(r.readVarint())")
        out.append("\(r.readVarlong())")
        out.append("\(r.readUnsignedVarint())")
        out.append(r.readString())
        out.append(r.readCompactNullableString() ?? "nil")
        out.append("\(r.readNullableSizedBytes() ?? [])")
        out.append("\(r.readSizedBytes(flexible: true))")
        out.append("\(r.readUUID())")
        out.append("\(r.readArray(flexible: true) { $0.readInt16() })")
        r.skipTaggedFields()
        out.append("\(r.readFloat64())")
        return out
    }

    func testMixedFieldsRoundTrip() {
        let (values, r) = read(Self.mixed) { Self.readMixed(&$0) }
        XCTAssertTrue(r.isAtEnd)
        XCTAssertEqual(values, ["-3", "-300", "70000", "-5000000000", "-12345", "\(Int64.min)", "300", "kafka", "é",
                                "[1, 2, 3]", "[4, 5]", "00000000000000070000000000000008", "[1, 2]", "2.5"])
    }

    func testEveryTruncationSetsStickyError() {
        for cut in 0..<Self.mixed.count {
            let prefix = Array(Self.mixed[0..<cut])
            prefix.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                _ = Self.readMixed(&r)
                XCTAssertNotNil(r.error, "cut \(cut)")
                XCTAssertTrue(r.error?.kind == .truncated || r.error?.kind == .invalidLength, "cut \(cut): \(r.error!)")
                let firstError = r.error
                // Sticky: every later read yields zero / empty and the first error stays.
                XCTAssertEqual(r.readInt32(), 0)
                XCTAssertEqual(r.readInt64(), 0)
                XCTAssertEqual(r.readVarint(), 0)
                XCTAssertEqual(r.readString(), "")
                XCTAssertNil(r.readNullableString())
                XCTAssertEqual(r.readSizedBytes(), [])
                XCTAssertEqual(r.readArray(flexible: false) { $0.readInt8() }, [])
                XCTAssertNil(r.readRawBytes(count: 0))
                XCTAssertEqual(r.remaining, 0)
                XCTAssertFalse(r.isAtEnd)
                XCTAssertEqual(r.error, firstError)
            }
        }
    }

    func testInvalidUTF8() {
        let (s, r) = read([0, 2, 0xFF, 0xFE]) { $0.readString() }
        XCTAssertEqual(s, "")
        XCTAssertEqual(r.error?.kind, .invalidString)
        let (_, c) = read([3, 0xC3, 0x28]) { $0.readCompactString() }
        XCTAssertEqual(c.error?.kind, .invalidString)
    }

    func testOverlongVarints() {
        let (v, r) = read([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]) { $0.readUnsignedVarint() }
        XCTAssertEqual(v, 0)
        XCTAssertEqual(r.error?.kind, .invalidVarint)
        let (_, tooBig) = read([0xFF, 0xFF, 0xFF, 0xFF, 0x1F]) { $0.readVarint() }  // > UInt32.max
        XCTAssertEqual(tooBig.error?.kind, .invalidVarint)
        let (_, long) = read([UInt8](repeating: 0x80, count: 10) + [0x01]) { $0.readVarlong() }
        XCTAssertEqual(long.error?.kind, .invalidVarint)
        let (_, short) = read([0x80, 0x80]) { $0.readVarlong() }
        XCTAssertEqual(short.error?.kind, .truncated)
    }

    /// One- and two-byte varints take an inlined path when two bytes remain: followed by more
    /// bytes, at the very end, cut after a continuation byte, and after an earlier error.
    func testShortVarintsMidBufferAtTheEndAndAfterAnError() {
        let (values, r) = read([0x7E, 0x80, 0x01, 0xFE, 0x7F, 0x80, 0x80, 0x01, 0x02]) { r in
            [r.readVarint(), r.readVarint(), r.readVarint(), r.readVarint(), r.readVarint()]
        }
        XCTAssertEqual(values, [63, 64, 8191, 8192, 1])
        XCTAssertTrue(r.isAtEnd)
        let (last, end) = read([0x05, 0x81, 0x01]) { r in (r.readUInt8(), r.readVarint()) }
        XCTAssertEqual(last.0, 5)
        XCTAssertEqual(last.1, -65)
        XCTAssertTrue(end.isAtEnd)
        let (cut, cr) = read([0x02, 0x80]) { r in (r.readVarint(), r.readVarint()) }
        XCTAssertEqual(cut.0, 1)
        XCTAssertEqual(cut.1, 0)
        XCTAssertEqual(cr.error?.kind, .truncated)
        let (afterError, ar) = read([0x00, 0x02, 0x02]) { r -> Int32 in
            _ = r.readInt32()  // 3 bytes left: truncated
            return r.readVarint()
        }
        XCTAssertEqual(afterError, 0, "a failed reader reads nothing")
        XCTAssertEqual(ar.error?.kind, .truncated)
        XCTAssertEqual(ar.error?.offset, 0)
    }

    func testHostileLengthsAndCounts() {
        let (n, r) = read(RBBytes.i32(Int32.max) + [0, 0, 0, 0]) { $0.readArrayCount(flexible: false) }
        XCTAssertEqual(n, 0)
        XCTAssertEqual(r.error?.kind, .invalidLength)
        let (_, compact) = read([0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0]) { $0.readArrayCount(flexible: true) }
        XCTAssertEqual(compact.error?.kind, .invalidLength)
        let (_, negative) = read(RBBytes.i32(-2)) { $0.readArrayCount(flexible: false) }
        XCTAssertEqual(negative.error?.kind, .invalidLength)
        let (null, nr) = read(RBBytes.i32(-1)) { $0.readNullableArrayCount(flexible: false) }
        XCTAssertNil(null)
        XCTAssertTrue(nr.isAtEnd)
        let (_, wide) = read(RBBytes.i32(3) + [UInt8](repeating: 0, count: 8)) {
            $0.readArrayCount(flexible: false, minimumElementSize: 4)
        }
        XCTAssertEqual(wide.error?.kind, .invalidLength)
        let (_, str) = read(RBBytes.i16(100) + [0x61]) { $0.readString() }
        XCTAssertEqual(str.error?.kind, .invalidLength)
        let (_, bytes) = read(RBBytes.i32(Int32.max)) { $0.readSizedBytes() }
        XCTAssertEqual(bytes.error?.kind, .invalidLength)
    }

    func testSubReaderAndRawBytes() {
        let (parts, r) = read([1, 2, 3, 4, 5]) { r -> ([UInt8], Int, [UInt8]) in
            var sub = r.subReader(count: 3)
            let a = sub.readBytes(count: 2)
            let left = sub.remaining
            let raw = r.readRawBytes(count: 2).map { Array($0) } ?? []
            return (a, left, raw)
        }
        XCTAssertEqual(parts.0, [1, 2])
        XCTAssertEqual(parts.1, 1)
        XCTAssertEqual(parts.2, [4, 5])
        XCTAssertTrue(r.isAtEnd)
        let (_, over) = read([1]) { r in _ = r.subReader(count: 2) }
        XCTAssertEqual(over.error?.kind, .truncated)
        let (empty, e) = read([]) { $0.readBytes(count: 0) }
        XCTAssertEqual(empty, [])
        XCTAssertTrue(e.isAtEnd)
    }
}
