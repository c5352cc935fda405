import XCTest
import CKlifeShim
import KlifeProtocol

final class CRC32CTests: XCTestCase {
    func testStandardCheckValue() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([]), 0)
        // RFC 3720 (iSCSI) test vectors.
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
    }

    func testHardwareMatchesSoftwareAtEveryLengthAndAlignment() {
        var rng = XorShift(seed: 0xC0FFEE)
        let buffer = (0..<320).map { _ in UInt8.random(in: 0...255, using: &rng) }
        buffer.withUnsafeBytes { raw in
            for offset in 0..<8 {
                for length in 0...300 {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)])
                    let hw = CRC32C.checksum(slice)
                    let sw = klife_crc32c_software(0, slice.baseAddress!, length)
                    XCTAssertEqual(hw, sw, "offset \(offset) length \(length)")
                }
            }
        }
        // The flag just has to be answerable; x86-64 CI machines have SSE4.2.
        _ = CRC32C.isHardwareAccelerated
    }

    /// Buffers of three 512-byte blocks and more take three interleaved streams merged by a
    /// table: every length around the block boundaries and at several alignments.
    func testInterleavedStreamsMatchSoftwareAroundTheirBlocks() {
        var rng = XorShift(seed: 0xBEEF)
        let buffer = (0..<5_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        buffer.withUnsafeBytes { raw in
            var lengths = Array(1_530...1_545) + Array(3_066...3_080) + [4_608, 4_609, 4_615, 4_991]
            lengths += [0, 8, 1_535, 1_536, 1_537]
            for offset in [0, 1, 3, 8] {
                for length in lengths where offset + length <= raw.count {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)])
                    XCTAssertEqual(CRC32C.checksum(slice), klife_crc32c_software(0, slice.baseAddress!, length),
                                   "offset \(offset) length \(length)")
                }
            }
            // Continued from a state that is not the initial one.
            let head = UnsafeRawBufferPointer(rebasing: raw[0..<100])
            let tail = UnsafeRawBufferPointer(rebasing: raw[100..<4_000])
            XCTAssertEqual(CRC32C.update(CRC32C.checksum(head), tail),
                           klife_crc32c_software(0, raw.baseAddress!, 4_000))
        }
    }

    /// Buffers of 256 bytes and more are folded with carry-less multiplication where the CPU
    /// has AVX-512 VPCLMULQDQ: every length around the fold sizes (16, 64, 256 bytes), several
    /// alignments, states other than the initial one, and large buffers, against the table and
    /// the crc32-instruction path.
    func testFoldingMatchesSoftwareAtEveryLengthAroundItsBlocks() {
        var rng = XorShift(seed: 0xF01D)
        let buffer = (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        buffer.withUnsafeBytes { raw in
            var lengths = Array(0...1_100)
            lengths += [1_535, 1_536, 1_537, 4_095, 4_096, 4_097, 16_383, 16_384, 65_536, 69_000]
            for offset in [0, 1, 5, 8, 63] {
                for length in lengths where offset + length <= raw.count {
                    let start = raw.baseAddress! + offset
                    let software = klife_crc32c_software(0, start, length)
                    if CRC32C.checksum(UnsafeRawBufferPointer(start: start, count: length)) != software
                        || klife_crc32c_streams(0, start, length) != software {
                        XCTFail("offset \(offset) length \(length)")
                        return
                    }
                    let state: UInt32 = 0x9E37_79B9 &+ UInt32(length)
                    if klife_crc32c(state, start, length) != klife_crc32c_software(state, start, length) {
                        XCTFail("from state \(state): offset \(offset) length \(length)")
                        return
                    }
                }
            }
        }
        // The path in use just has to be answerable; a CPU without AVX-512 takes the crc32 one.
        _ = klife_crc32c_folds()
    }

    func testIncrementalUpdate() {
        var rng = XorShift(seed: 42)
        let bytes = (0..<1000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let whole = CRC32C.checksum(bytes)
        bytes.withUnsafeBytes { raw in
            for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
                let a = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<split]))
                let ab = CRC32C.update(a, UnsafeRawBufferPointer(rebasing: raw[split...]))
                XCTAssertEqual(ab, whole, "split \(split)")
            }
        }
    }
}
