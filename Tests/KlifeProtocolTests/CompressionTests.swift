import XCTest
@testable import KlifeProtocol

/// Deterministic bytes for the compression tests (SplitMix64).
struct CompressionRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        for i in out.indices { out[i] = UInt8(truncatingIfNeeded: next()) }
        return out
    }
}

/// Inputs and golden bytes shared by the compression tests.
enum CompressionFixture {
    static let codecs: [CompressionCodec] = [.gzip, .snappy, .lz4, .zstd]

    /// Text that compresses well (log-like lines with a counter).
    static func compressible(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count + 64)
        var i = 0
        while out.count < count {
            out += Array("2024-01-01T00:00:00Z INFO request \(i % 97) served in \(i % 13) ms\n".utf8)
            i += 1
        }
        return Array(out.prefix(count))
    }

    /// The text the CLI-made golden streams below hold (122 bytes).
    static let goldenText = Array(
        "Kafka compression golden input: the quick brown fox jumps over the lazy dog. the quick brown fox jumps over the lazy dog.\n".utf8)

    /// `gzip -9 -n -c golden.txt` (GNU gzip).
    static let gzipCLI: [UInt8] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x95, 0xca, 0xc9, 0x11, 0x80, 0x20, 0x10, 0x04, 0xc0, 0xbf,
        0x51, 0x4c, 0x04, 0x06, 0x60, 0x0a, 0x46, 0x81, 0xb0, 0x20, 0x02, 0xbb, 0xc8, 0xe1, 0x15, 0xbd, 0x55, 0x66, 0xe0, 0xbb,
        0x7b, 0x56, 0x36, 0x28, 0x68, 0x49, 0xb9, 0x50, 0xad, 0x5e, 0x18, 0x4e, 0xa2, 0x21, 0x86, 0xe7, 0xdc, 0xdb, 0x84, 0xb6,
        0x12, 0xf6, 0xee, 0x75, 0xc0, 0x52, 0xe4, 0x64, 0x58, 0xb9, 0xb0, 0xf5, 0x94, 0x2b, 0xe4, 0xa0, 0xf2, 0x71, 0x54, 0xcf,
        0x0d, 0x23, 0x6e, 0xfc, 0x95, 0x87, 0x17, 0x6b, 0x92, 0xd0, 0x58, 0x7a, 0x00, 0x00, 0x00,
    ]
    /// Python's `zlib.compress(text, 9)`: a zlib wrapper, which gzip reading also takes.
    static let zlibPython: [UInt8] = [
        0x78, 0xda, 0x95, 0xca, 0xc9, 0x11, 0x80, 0x20, 0x10, 0x04, 0xc0, 0xbf, 0x51, 0x4c, 0x04, 0x06, 0x60, 0x0a, 0x46, 0x81,
        0xb0, 0x20, 0x02, 0xbb, 0xc8, 0xe1, 0x15, 0xbd, 0x55, 0x66, 0xe0, 0xbb, 0x7b, 0x56, 0x36, 0x28, 0x68, 0x49, 0xb9, 0x50,
        0xad, 0x5e, 0x18, 0x4e, 0xa2, 0x21, 0x86, 0xe7, 0xdc, 0xdb, 0x84, 0xb6, 0x12, 0xf6, 0xee, 0x75, 0xc0, 0x52, 0xe4, 0x64,
        0x58, 0xb9, 0xb0, 0xf5, 0x94, 0x2b, 0xe4, 0xa0, 0xf2, 0x71, 0x54, 0xcf, 0x0d, 0x23, 0x6e, 0xfc, 0x95, 0x87, 0x17, 0xdc,
        0x11, 0x2c, 0x6c,
    ]
    /// Two gzip members, "first member\n" then "second member\n" (`gzip -n` twice, concatenated).
    static let gzipTwoMembers: [UInt8] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x4b, 0xcb, 0x2c, 0x2a, 0x2e, 0x51, 0xc8, 0x4d, 0xcd, 0x4d,
        0x4a, 0x2d, 0xe2, 0x02, 0x00, 0xa7, 0xf4, 0x85, 0x0a, 0x0d, 0x00, 0x00, 0x00, 0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x03, 0x2b, 0x4e, 0x4d, 0xce, 0xcf, 0x4b, 0x51, 0xc8, 0x4d, 0xcd, 0x4d, 0x4a, 0x2d, 0xe2, 0x02, 0x00, 0x36,
        0x18, 0x4b, 0x0e, 0x0e, 0x00, 0x00, 0x00,
    ]
    /// `lz4 -c golden.txt` (lz4 CLI 1.9.4): independent blocks, content checksum.
    static let lz4CLI: [UInt8] = [
        0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7, 0x58, 0x00, 0x00, 0x00, 0xf1, 0x2f, 0x4b, 0x61, 0x66, 0x6b, 0x61, 0x20, 0x63,
        0x6f, 0x6d, 0x70, 0x72, 0x65, 0x73, 0x73, 0x69, 0x6f, 0x6e, 0x20, 0x67, 0x6f, 0x6c, 0x64, 0x65, 0x6e, 0x20, 0x69, 0x6e,
        0x70, 0x75, 0x74, 0x3a, 0x20, 0x74, 0x68, 0x65, 0x20, 0x71, 0x75, 0x69, 0x63, 0x6b, 0x20, 0x62, 0x72, 0x6f, 0x77, 0x6e,
        0x20, 0x66, 0x6f, 0x78, 0x20, 0x6a, 0x75, 0x6d, 0x70, 0x73, 0x20, 0x6f, 0x76, 0x65, 0x72, 0x1f, 0x00, 0x91, 0x6c, 0x61,
        0x7a, 0x79, 0x20, 0x64, 0x6f, 0x67, 0x2e, 0x0e, 0x00, 0x0f, 0x2d, 0x00, 0x11, 0x50, 0x64, 0x6f, 0x67, 0x2e, 0x0a, 0x00,
        0x00, 0x00, 0x00, 0x95, 0x63, 0xd5, 0x23,
    ]
    /// The zstd frame body both zstd goldens share (zstd CLI 1.5.4), after the frame header.
    static let zstdBlocks: [UInt8] = [
        0x75, 0x02, 0x00, 0x82, 0x84, 0x10, 0x17, 0x70, 0xc5, 0x3a, 0x0a, 0xbc, 0xeb, 0xfe, 0x8e, 0x6a, 0x45, 0xdf, 0xa6, 0xb5,
        0x55, 0x27, 0x80, 0x02, 0x85, 0x03, 0xa0, 0x07, 0xfc, 0x02, 0x81, 0xa0, 0x8e, 0x0c, 0x08, 0x98, 0x06, 0x35, 0xb9, 0xe3,
        0x73, 0xf3, 0xf0, 0xf2, 0xe4, 0x55, 0x0e, 0x0b, 0xb3, 0xb3, 0x26, 0x62, 0x35, 0xa4, 0x07, 0x39, 0xdf, 0x2e, 0xaf, 0xa2,
        0x76, 0xe5, 0xfd, 0x8a, 0x51, 0xe1, 0x73, 0x3f, 0x36, 0x2c, 0x19, 0x22, 0x02, 0x00, 0x42, 0x65, 0x8e, 0x0b, 0x41, 0x41,
        0x01,
    ]
    /// `zstd -c golden.txt`: single segment, content size 122, content checksum.
    static let zstdCLIWithSize: [UInt8] = [0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x7a] + zstdBlocks + [0xf8, 0x50, 0x0c, 0x06]
    /// `cat golden.txt | zstd -c --no-check`: streamed, so no content size in the header.
    static let zstdCLIStreamed: [UInt8] = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58] + zstdBlocks

    /// A raw snappy block built by hand from the format description: "abcabcabcabc" as
    /// length 12, literal "abc", then a copy of 9 bytes at offset 3 (1-byte-offset copy).
    static let snappyByHand: [UInt8] = [0x0c, 0x08, 0x61, 0x62, 0x63, 0x15, 0x03]
    /// The same content in snappy-java's framing, split into two chunks ("abc" and "abcabcabc").
    static let snappyXerialByHand: [UInt8] = [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1]
        + [0, 0, 0, 5, 0x03, 0x08, 0x61, 0x62, 0x63]           // "abc": literal
        + [0, 0, 0, 7, 0x09, 0x08, 0x61, 0x62, 0x63, 0x09, 0x03] // "abcabcabc": literal "abc", copy 6 at offset 3
}

/// Calls `body` with `bytes`' memory, keeping its typed error (passing a typed-throws
/// closure straight to `Array.withUnsafeBytes` crashes the 6.3 compiler).
func withBytes<R>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(CompressionError) -> R) throws(CompressionError) -> R {
    try bytes.withUnsafeBytes { raw in Result { () throws(CompressionError) in try body(raw) } }.get()
}

final class CompressionTests: XCTestCase {
    private func roundTrip(_ codec: CompressionCodec, _ input: [UInt8], level: Int32? = nil,
                           file: StaticString = #filePath, line: UInt = #line) throws {
        let compressed = try Compression.compress(codec, input, level: level)
        XCTAssertLessThanOrEqual(compressed.count, try Compression.maxCompressedSize(codec, input.count), file: file, line: line)
        let back = try Compression.decompress(codec, compressed, maxOutputBytes: input.count)
        XCTAssertEqual(back.count, input.count, "\(codec) level \(level.map(String.init) ?? "default")", file: file, line: line)
        XCTAssertTrue(back == input, "\(codec) round trip differs", file: file, line: line)
    }

    func testRoundTripEveryCodecOverEdgeAndLargeInputs() throws {
        var rng = CompressionRNG(seed: 42)
        let random = rng.bytes(1 << 20)
        let text = CompressionFixture.compressible(1 << 20)
        for codec in CompressionFixture.codecs {
            try roundTrip(codec, [])
            try roundTrip(codec, [0x7F])
            try roundTrip(codec, random)
            try roundTrip(codec, text)
            let compressed = try Compression.compress(codec, text)
            XCTAssertLessThan(compressed.count, text.count / 4, "\(codec) should shrink log-like text a lot")
        }
    }

    func testLevelsAreHonouredAndClamped() throws {
        let text = CompressionFixture.compressible(64 << 10)
        for codec in CompressionFixture.codecs {
            let range = Compression.levelRange(codec)
            for level in [range.lowerBound, range.upperBound, Int32.min, Int32.max, 1] {
                try roundTrip(codec, text, level: level)
            }
        }
        XCTAssertEqual(Compression.levelRange(.gzip), 0...9)
        XCTAssertEqual(Compression.levelRange(.lz4), 0...12)
        XCTAssertEqual(Compression.levelRange(.zstd).upperBound, 22)
        XCTAssertLessThan(Compression.levelRange(.zstd).lowerBound, 0)
        // Higher levels trade CPU for bytes.
        let fast = try Compression.compress(.zstd, text, level: 1).count
        let strong = try Compression.compress(.zstd, text, level: 19).count
        XCTAssertLessThanOrEqual(strong, fast)
        let gzipStored = try Compression.compress(.gzip, text, level: 0).count
        XCTAssertGreaterThan(gzipStored, text.count, "gzip level 0 stores")
    }

    func testReusedPerThreadContextsGiveIdenticalBytes() throws {
        // zstd and gzip keep one compression context per thread; reuse, level switches
        // and a fresh thread must not change a single output byte.
        let text = CompressionFixture.compressible(50_000)
        for codec in CompressionFixture.codecs {
            let first = try Compression.compress(codec, text, level: 1)
            let strong = try Compression.compress(codec, text, level: 9)
            let defaulted = try Compression.compress(codec, text)
            XCTAssertEqual(try Compression.compress(codec, text, level: 1), first, "\(codec)")
            XCTAssertEqual(try Compression.compress(codec, text), defaulted, "\(codec)")
            XCTAssertEqual(try Compression.compress(codec, text, level: 9), strong, "\(codec)")
            let done = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var onOtherThread: [UInt8] = []
            let thread = Thread {
                onOtherThread = (try? Compression.compress(codec, text, level: 9)) ?? []
                done.signal()
            }
            thread.start()
            done.wait()
            XCTAssertEqual(onOtherThread, strong, "\(codec) on a fresh thread")
        }
    }

    func testGoldenStreamsFromReferenceTools() throws {
        let text = CompressionFixture.goldenText
        XCTAssertEqual(try Compression.decompress(.gzip, CompressionFixture.gzipCLI, maxOutputBytes: 1024), text)
        XCTAssertEqual(try Compression.decompress(.gzip, CompressionFixture.zlibPython, maxOutputBytes: 1024), text)
        XCTAssertEqual(try Compression.decompress(.gzip, CompressionFixture.gzipTwoMembers, maxOutputBytes: 1024),
                       Array("first member\nsecond member\n".utf8))
        XCTAssertEqual(try Compression.decompress(.lz4, CompressionFixture.lz4CLI, maxOutputBytes: 1024), text)
        XCTAssertEqual(try Compression.decompress(.zstd, CompressionFixture.zstdCLIWithSize, maxOutputBytes: 1024), text)
        XCTAssertEqual(try Compression.decompress(.zstd, CompressionFixture.zstdCLIStreamed, maxOutputBytes: 1024), text)
        let abc = Array("abcabcabcabc".utf8)
        XCTAssertEqual(try Compression.decompress(.snappy, CompressionFixture.snappyByHand, maxOutputBytes: 1024), abc)
        XCTAssertEqual(try Compression.decompress(.snappy, CompressionFixture.snappyXerialByHand, maxOutputBytes: 1024), abc)
    }

    func testWhatWeWriteMatchesKafkaConventions() throws {
        let text = CompressionFixture.compressible(200 << 10)
        let gzip = try Compression.compress(.gzip, text)
        XCTAssertEqual(Array(gzip.prefix(3)), [0x1f, 0x8b, 0x08], "RFC 1952 gzip member, deflate")
        let lz4 = try Compression.compress(.lz4, text)
        XCTAssertEqual(Array(lz4.prefix(4)), [0x04, 0x22, 0x4d, 0x18], "LZ4 frame magic")
        // FLG: version 01, independent blocks (Java rejects linked ones), no content size/checksums.
        XCTAssertEqual(lz4[4], 0b0110_0000)
        XCTAssertEqual(lz4[5], 0x40, "BD: 64 KiB blocks")
        let zstd = try Compression.compress(.zstd, text)
        XCTAssertEqual(Array(zstd.prefix(4)), [0x28, 0xb5, 0x2f, 0xfd], "zstd frame magic")
        let snappy = try Compression.compress(.snappy, text)
        XCTAssertNotEqual(Array(snappy.prefix(8)), Snappy.xerialMagic, "a raw block, as librdkafka writes")
        XCTAssertEqual(snappy[0], 0x80, "varint length preamble (200 KiB = 0x80 0xC0 0x0C)")
    }

    func testXerialFramingWrittenLikeJavaDecodes() throws {
        var rng = CompressionRNG(seed: 7)
        let input = CompressionFixture.compressible(100_000) + rng.bytes(50_000)
        for blockSize in [1000, Snappy.xerialDefaultBlockSize, 1 << 20] {
            let bytes = try Snappy.compressXerial(input, blockSize: blockSize)
            XCTAssertEqual(Array(bytes.prefix(16)), Snappy.xerialMagic + [0, 0, 0, 1, 0, 0, 0, 1])
            XCTAssertEqual(try Compression.decompress(.snappy, bytes, maxOutputBytes: input.count), input)
        }
        // Header only: no chunks, empty content.
        XCTAssertEqual(try Compression.decompress(.snappy, Snappy.xerialMagic + [0, 0, 0, 1, 0, 0, 0, 1], maxOutputBytes: 10), [])
    }

    func testDecompressionBoundIsExact() throws {
        let text = CompressionFixture.compressible(100_000)
        for codec in CompressionFixture.codecs {
            let compressed = try Compression.compress(codec, text)
            XCTAssertEqual(try Compression.decompress(codec, compressed, maxOutputBytes: text.count).count, text.count)
            XCTAssertThrowsError(try Compression.decompress(codec, compressed, maxOutputBytes: text.count - 1)) { error in
                XCTAssertEqual((error as? CompressionError)?.kind, .outputLimitExceeded, "\(codec): \(error)")
            }
            XCTAssertThrowsError(try Compression.decompress(codec, compressed, maxOutputBytes: 0))
        }
    }

    func testDecompressionBombsStopAtTheBound() throws {
        let zeros = [UInt8](repeating: 0, count: 10_000_000)
        for codec in CompressionFixture.codecs {
            let bomb = try Compression.compress(codec, zeros)
            XCTAssertLessThan(bomb.count, 600_000, "\(codec) bomb is small")
            var output = ByteWriter(capacity: 16)
            XCTAssertThrowsError(try withBytes(bomb) { raw throws(CompressionError) in
                try Compression.decompress(codec, raw, into: &output, maxOutputBytes: 1 << 20)
            }) { error in
                XCTAssertEqual((error as? CompressionError)?.kind, .outputLimitExceeded, "\(codec): \(error)")
            }
            XCTAssertLessThanOrEqual(output.count, (1 << 20) + 1, "\(codec) wrote past the bound")
        }
        // xerial: many small chunks, each under the bound, together over it.
        let framed = try Snappy.compressXerial(zeros)
        XCTAssertThrowsError(try Compression.decompress(.snappy, framed, maxOutputBytes: 1 << 20)) { error in
            XCTAssertEqual((error as? CompressionError)?.kind, .outputLimitExceeded)
        }
    }

    func testHostileSnappyLengthIsRejectedBeforeAllocating() {
        // Preamble claims 4 GiB - 1 bytes; the bound check comes before any reservation.
        let claim: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00]
        XCTAssertThrowsError(try Compression.decompress(.snappy, claim, maxOutputBytes: 1 << 20)) { error in
            XCTAssertEqual((error as? CompressionError)?.kind, .outputLimitExceeded)
        }
        let xerialClaim = Snappy.xerialMagic + [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 6] + claim
        XCTAssertThrowsError(try Compression.decompress(.snappy, xerialClaim, maxOutputBytes: 1 << 20))
        // A chunk length past the end, and a negative one.
        for length: [UInt8] in [[0, 0, 0, 9], [0xFF, 0xFF, 0xFF, 0xFF]] {
            let bad = Snappy.xerialMagic + [0, 0, 0, 1, 0, 0, 0, 1] + length + [0x00]
            XCTAssertThrowsError(try Compression.decompress(.snappy, bad, maxOutputBytes: 100))
        }
        XCTAssertThrowsError(try Compression.decompress(.snappy, Snappy.xerialMagic + [0, 0, 0, 1, 0, 0, 0, 1, 0, 0],
                                                        maxOutputBytes: 100), "trailing bytes")
    }

    func testZstdWindowIsCappedByTheBound() {
        XCTAssertEqual(Zstd.windowLogMax(limit: 0), 23)
        XCTAssertEqual(Zstd.windowLogMax(limit: 1 << 20), 23)
        XCTAssertEqual(Zstd.windowLogMax(limit: 1 << 25), 26)
        XCTAssertEqual(Zstd.windowLogMax(limit: 256 << 20), 27)
        XCTAssertEqual(Zstd.windowLogMax(limit: .max), 27)
        // A frame header asking for a 2 GiB window (Window_Descriptor exponent 21 => 2^31) is refused.
        let hugeWindow: [UInt8] = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xA8, 0x01, 0x00, 0x00]
        XCTAssertThrowsError(try Compression.decompress(.zstd, hugeWindow, maxOutputBytes: 1 << 20)) { error in
            XCTAssertEqual((error as? CompressionError)?.kind, .outputLimitExceeded, "\(error)")
        }
    }

    func testEveryTruncationThrowsATypedError() throws {
        let text = CompressionFixture.compressible(3000)
        for codec in CompressionFixture.codecs {
            let compressed = try Compression.compress(codec, text)
            for cut in 0..<compressed.count {
                let prefix = Array(compressed.prefix(cut))
                XCTAssertThrowsError(try Compression.decompress(codec, prefix, maxOutputBytes: 1 << 20),
                                     "\(codec) prefix of \(cut)/\(compressed.count) bytes decoded") { error in
                    XCTAssertTrue(error is CompressionError)
                }
            }
        }
        // Java-framed snappy: a cut at a chunk boundary is a valid shorter stream; others throw.
        let bytes = try Snappy.compressXerial(text, blockSize: 500)
        for cut in 0..<bytes.count {
            if let out = try? Compression.decompress(.snappy, Array(bytes.prefix(cut)), maxOutputBytes: 1 << 20) {
                XCTAssertTrue(text.starts(with: out), "xerial prefix of \(cut) bytes decoded to something else")
                XCTAssertEqual(out.count % 500, 0)
            }
        }
    }

    func testSeededRandomMutationsNeverTrap() throws {
        var rng = CompressionRNG(seed: 0xC0FFEE)
        let text = CompressionFixture.compressible(4000) + rng.bytes(500)
        var inputs: [(CompressionCodec, [UInt8])] = try CompressionFixture.codecs.map { ($0, try Compression.compress($0, text)) }
        inputs.append((.snappy, try Snappy.compressXerial(text, blockSize: 1000)))
        let limit = 64 << 10
        for (codec, original) in inputs {
            var failures = 0
            for _ in 0..<500 {
                var mutated = original
                let edits = Int.random(in: 1...4, using: &rng)
                for _ in 0..<edits {
                    let at = Int.random(in: 0..<mutated.count, using: &rng)
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0: mutated[at] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
                    case 1: mutated[at] = UInt8.random(in: 0...255, using: &rng)
                    case 2: mutated.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                    default: mutated.remove(at: at)
                    }
                }
                do throws(CompressionError) {
                    let output = try Compression.decompress(codec, mutated, maxOutputBytes: limit)
                    XCTAssertLessThanOrEqual(output.count, limit)
                } catch {
                    failures += 1
                    XCTAssertEqual(error.codec, codec)
                }
            }
            XCTAssertGreaterThan(failures, 100, "\(codec): most mutations should be detected")
        }
    }

    func testGarbageAndUnsupportedCodec() {
        for codec in CompressionFixture.codecs {
            XCTAssertThrowsError(try Compression.decompress(codec, [], maxOutputBytes: 100), "\(codec) empty input")
            XCTAssertThrowsError(try Compression.decompress(codec, [1, 2, 3, 4, 5, 6, 7, 8], maxOutputBytes: 100),
                                 "\(codec) garbage")
        }
        XCTAssertThrowsError(try Compression.compress(.none, [1, 2, 3])) { error in
            XCTAssertEqual(error as? CompressionError, CompressionError(.none, .unsupportedCodec))
        }
        XCTAssertThrowsError(try Compression.decompress(.none, [1], maxOutputBytes: 10))
        XCTAssertEqual(CompressionError(.lz4, .corrupt, "bad").description, "lz4 corrupt: bad")
    }

    func testCompressAppendsAfterExistingBytes() throws {
        var writer = ByteWriter(capacity: 16)
        writer.writeBytes([0xAA, 0xBB])
        let text = CompressionFixture.compressible(10_000)
        for codec in CompressionFixture.codecs {
            writer.removeAll()
            writer.writeBytes([0xAA, 0xBB])
            let n = try withBytes(text) { raw throws(CompressionError) in
                try Compression.compress(codec, raw, level: nil, into: &writer)
            }
            XCTAssertEqual(writer.count, 2 + n)
            let bytes = writer.bytes
            XCTAssertEqual(Array(bytes.prefix(2)), [0xAA, 0xBB])
            var out = ByteWriter(capacity: 16)
            out.writeBytes([0x01])
            let m = try withBytes(bytes) { raw throws(CompressionError) in
                try Compression.decompress(codec, UnsafeRawBufferPointer(rebasing: raw[2...]), into: &out,
                                           maxOutputBytes: text.count)
            }
            XCTAssertEqual(m, text.count)
            XCTAssertEqual(out.bytes, [0x01] + text)
        }
    }
}
