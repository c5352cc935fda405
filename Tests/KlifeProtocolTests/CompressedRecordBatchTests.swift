import XCTest
import CKlifeShim
@testable import KlifeProtocol

/// Compressed RecordBatch v2: our encoder, batches librdkafka wrote, Java-style snappy,
/// CRC coverage, bounds, and hostile compressed batches.
final class CompressedRecordBatchTests: XCTestCase {
    typealias ModelRecord = (timestamp: Int64, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader])

    /// Batches librdkafka 2.16 (confluent-kafka) produced with `compression.type=<codec>`,
    /// fetched raw from the Tansu broker (which stamped partition leader epoch 0).
    /// Records: (ts 1700000000000, key nil, "golden value zero zero zero"),
    /// (ts +5, "k1", "golden value one one one", headers h="x", n=null), (ts +2, "k2", nil).
    static let librdkafkaBatches: [(CompressionCodec, String)] = [
        (.gzip, "00000000000000000000007d0000000002bde21d4c0001000000020000018bcfe568000000018bcfe56805ffffffffffffffffffffffff"
            + "ffff000000031f8b08000000000000037362606060344bcfcf4949cd53284bcc294d55a84a2dca47100c7e0c5c4c2cd98606286af2f3e098"
            + "852983a982298f518081858525db889101008cde45e253000000"),
        (.snappy, "00000000000000000000007200000000020e1506940002000000020000018bcfe568000000018bcfe56805ffffffffffffffffffffff"
            + "ffffff000000035358420000000136676f6c64656e2076616c7565207a65726f190524004e000a02046b3130672e2400086f6e65110440"
            + "0402680278026e0110000404046b320100"),
        (.lz4, "00000000000000000000007f0000000002be35b2ff0003000000020000018bcfe568000000018bcfe56805ffffffffffffffffffffffff"
            + "ffff0000000304224d186040823f000000f608420000000136676f6c64656e2076616c7565207a65726f050099004e000a02046b313024"
            + "00256f6e0400f0020402680278026e0110000404046b32010000000000"),
        (.zstd, "00000000000000000000007900000000021fb8fa500004000000020000018bcfe568000000018bcfe56805ffffffffffffffffffffffff"
            + "ffff0000000328b52ffd0058fd01003403420000000136676f6c64656e2076616c7565207a65726f004e000a02046b31306f6e04026802"
            + "78026e0110000404046b3201000300bb021f754e6ca509"),
    ]

    static func header(_ batch: [UInt8]) -> RecordBatchHeader {
        batch.withUnsafeBytes { RecordBatchDecoder.readHeader($0) }
    }

    static func unhex(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = text.startIndex
        while i < text.endIndex {
            let j = text.index(i, offsetBy: 2)
            out.append(UInt8(text[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    /// Records with every field shape: null and empty keys/values, headers, out-of-order timestamps.
    static func sampleRecords(_ count: Int) -> [ModelRecord] {
        (0..<count).map { i in
            let value: [UInt8]? = i % 7 == 3 ? nil : Array("value \(i) ".utf8) + CompressionFixture.compressible(i * 37 % 300)
            let key: [UInt8]? = i % 5 == 0 ? nil : (i % 5 == 1 ? [] : Array("key-\(i)".utf8))
            let headers = i % 3 == 0 ? [] : [RecordHeader(key: "trace", value: Array("t\(i)".utf8)), RecordHeader(key: "n", value: nil)]
            return (RBFixture.baseTimestamp + Int64((i * 13) % 50), key, value, headers)
        }
    }

    private func assertRecords(_ decoded: [DecodedRecord], _ expected: [ModelRecord], baseOffset: Int64 = 0,
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(decoded.count, expected.count, file: file, line: line)
        for (i, (d, e)) in zip(decoded, expected).enumerated() {
            XCTAssertEqual(d.offset, baseOffset + Int64(i), file: file, line: line)
            XCTAssertEqual(d.timestamp, e.timestamp, file: file, line: line)
            XCTAssertEqual(d.key, e.key, file: file, line: line)
            XCTAssertEqual(d.value, e.value, file: file, line: line)
            XCTAssertEqual(d.headers, e.headers, file: file, line: line)
        }
    }

    /// The CRC-32C of the batch at `bytes` (software path), which must equal its stored CRC.
    private func assertCRC(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) {
        let computed = bytes.withUnsafeBytes { klife_crc32c_software(0, $0.baseAddress! + 21, bytes.count - 21) }
        let stored = bytes[17..<21].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        XCTAssertEqual(computed, stored, "CRC must cover the compressed bytes as written", file: file, line: line)
    }

    func testLibrdkafkaGoldenBatchesDecode() throws {
        let expected: [ModelRecord] = [
            (1_700_000_000_000, nil, Array("golden value zero zero zero".utf8), []),
            (1_700_000_000_005, Array("k1".utf8), Array("golden value one one one".utf8),
             [RecordHeader(key: "h", value: Array("x".utf8)), RecordHeader(key: "n", value: nil)]),
            (1_700_000_000_002, Array("k2".utf8), nil, []),
        ]
        for (codec, text) in Self.librdkafkaBatches {
            let bytes = Self.unhex(text)
            assertCRC(bytes)
            let result = try RecordBatchDecoder.decode(bytes)
            XCTAssertFalse(result.truncatedTail)
            let batch = try XCTUnwrap(result.batches.first)
            XCTAssertEqual(batch.header.compression, codec)
            XCTAssertEqual(batch.header.recordCount, 3)
            XCTAssertEqual(batch.header.maxTimestamp, 1_700_000_000_005)
            assertRecords(batch.records, expected)
        }
    }

    func testRoundTripEveryCodecWithCRC() throws {
        let records = Self.sampleRecords(200)
        let plain = RecordBatchEncoder.encode(baseTimestamp: RBFixture.baseTimestamp, records: records, producerID: 77,
                                              producerEpoch: 3, baseSequence: 1000, isTransactional: true)
        let plainHeader = Self.header(plain)
        for codec in CompressionFixture.codecs {
            let bytes = try RecordBatchEncoder.encode(baseTimestamp: RBFixture.baseTimestamp, records: records, producerID: 77,
                                                      producerEpoch: 3, baseSequence: 1000, isTransactional: true,
                                                      compression: codec)
            XCTAssertLessThan(bytes.count, plain.count / 2, "\(codec) should shrink the batch")
            assertCRC(bytes)
            let batch = try XCTUnwrap(RecordBatchDecoder.decode(bytes).batches.first)
            var header = batch.header
            XCTAssertEqual(header.compression, codec)
            XCTAssertEqual(header.byteCount, bytes.count)
            XCTAssertTrue(header.isTransactional)
            // Everything but Length, CRC and the codec bits matches the uncompressed batch.
            header.length = plainHeader.length
            header.crc = plainHeader.crc
            header.attributes = plainHeader.attributes
            XCTAssertEqual(header, plainHeader)
            assertRecords(batch.records, records)
            for level in [Compression.levelRange(codec).lowerBound, Compression.levelRange(codec).upperBound] {
                let leveled = try RecordBatchEncoder.encode(baseTimestamp: RBFixture.baseTimestamp, records: records,
                                                            compression: codec, level: level)
                assertRecords(try XCTUnwrap(RecordBatchDecoder.decode(leveled).batches.first).records, records)
            }
        }
        XCTAssertEqual(try RecordBatchEncoder.encode(baseTimestamp: RBFixture.baseTimestamp, records: RBFixture.goldenRecords,
                                                     compression: .none), RBFixture.goldenBatch)
    }

    func testCompressedBatchStartsMidBufferAndKeepsPrefix() throws {
        let records = Self.sampleRecords(20)
        var writer = ByteWriter(capacity: 16)
        writer.writeBytes([0xAA, 0xBB, 0xCC])
        var encoder = RecordBatchEncoder(writer: &writer, baseOffset: 40, baseTimestamp: RBFixture.baseTimestamp)
        for r in records { encoder.append(into: &writer, timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers) }
        let range = try encoder.finishCompressed(into: &writer, codec: .lz4, level: nil)
        XCTAssertEqual(range.upperBound, writer.count)
        let all = writer.bytes
        XCTAssertEqual(Array(all.prefix(3)), [0xAA, 0xBB, 0xCC])
        let bytes = Array(all[range])
        assertCRC(bytes)
        assertRecords(try XCTUnwrap(RecordBatchDecoder.decode(bytes).batches.first).records, records, baseOffset: 40)
    }

    func testJavaXerialFramedSnappyBatchDecodes() throws {
        // Build by hand what Java's producer writes: the records section in snappy-java
        // framing (small blocks, so several chunks), codec 2 in attributes, CRC over it all.
        let records = Self.sampleRecords(60)
        let plain = RecordBatchEncoder.encode(baseTimestamp: RBFixture.baseTimestamp, records: records)
        let section = Array(plain[RecordBatchLayout.headerSize...])
        let framed = try Snappy.compressXerial(section, blockSize: 1024)
        XCTAssertEqual(Array(framed.prefix(8)), [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0x00])
        XCTAssertGreaterThan(section.count, 3 * 1024, "several xerial chunks")
        var bytes = Array(plain[..<RecordBatchLayout.headerSize]) + framed
        bytes.replaceSubrange(8..<12, with: RBBytes.i32(Int32(bytes.count - 12)))
        bytes.replaceSubrange(21..<23, with: RBBytes.i16(CompressionCodec.snappy.rawValue))
        RBFixture.fixCRC(&bytes)
        let batch = try XCTUnwrap(RecordBatchDecoder.decode(bytes).batches.first)
        XCTAssertEqual(batch.header.compression, .snappy)
        assertRecords(batch.records, records)

        // librdkafka-style raw block (what we write) decodes the same records.
        let raw = try RecordBatchEncoder.encode(baseTimestamp: RBFixture.baseTimestamp, records: records, compression: .snappy)
        XCTAssertFalse(raw.withUnsafeBytes { Snappy.isXerial(UnsafeRawBufferPointer(rebasing: $0[61...])) })
        assertRecords(try XCTUnwrap(RecordBatchDecoder.decode(raw).batches.first).records, records)
    }

    func testCRCCoversCompressedBytes() throws {
        let records = Self.sampleRecords(30)
        for codec in CompressionFixture.codecs {
            var bytes = try RecordBatchEncoder.encode(baseTimestamp: RBFixture.baseTimestamp, records: records, compression: codec)
            bytes[bytes.count / 2] ^= 0x20
            XCTAssertThrowsError(try RecordBatchDecoder.decode(bytes)) { error in
                XCTAssertEqual((error as? DecodeError)?.kind, .crcMismatch, "\(codec)")
            }
            // Without the CRC check a corrupted stream still fails cleanly or decodes to something; never traps.
            _ = try? RecordBatchDecoder.decode(bytes, verifyCRC: false)
        }
    }

    func testSeveralCompressedBatchesShareOneBudget() throws {
        let records = Self.sampleRecords(50)
        var all: [UInt8] = []
        var sectionSizes: [Int] = []
        for (i, codec) in CompressionFixture.codecs.enumerated() {
            var w = ByteWriter()
            var enc = RecordBatchEncoder(writer: &w, baseOffset: Int64(i * 50), baseTimestamp: RBFixture.baseTimestamp)
            for r in records { enc.append(into: &w, timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers) }
            sectionSizes.append(enc.byteCount(in: w) - RecordBatchLayout.headerSize)
            let range = try enc.finishCompressed(into: &w, codec: codec, level: nil)
            all += w.withUnsafeBytes { Array($0[range]) }
        }
        let total = sectionSizes.reduce(0, +)
        let result = try RecordBatchDecoder.decode(all, maxUncompressedBytes: total)
        XCTAssertEqual(result.batches.map { $0.header.compression }, CompressionFixture.codecs.map { Optional($0) })
        for (i, batch) in result.batches.enumerated() { assertRecords(batch.records, records, baseOffset: Int64(i * 50)) }
        XCTAssertThrowsError(try RecordBatchDecoder.decode(all, maxUncompressedBytes: total - 1)) { error in
            let e = error as? DecodeError
            XCTAssertEqual(e?.kind, .invalidLength)
            XCTAssertTrue(e?.detail.hasPrefix("compression zstd outputLimitExceeded") ?? false, "\(error)")
        }
    }

    func testDecompressionBombBatchFailsAgainstTheBound() throws {
        let zeros = [UInt8](repeating: 0, count: 10_000_000)
        for codec in CompressionFixture.codecs {
            let bomb = try Compression.compress(codec, zeros)
            var bytes = RecordBatchEncoder.encode(baseTimestamp: 0, records: [(0, nil, [1], [])])
            bytes.removeSubrange(RecordBatchLayout.headerSize...)
            bytes += bomb
            bytes.replaceSubrange(8..<12, with: RBBytes.i32(Int32(bytes.count - 12)))
            bytes.replaceSubrange(21..<23, with: RBBytes.i16(codec.rawValue))
            RBFixture.fixCRC(&bytes)
            XCTAssertThrowsError(try RecordBatchDecoder.decode(bytes, maxUncompressedBytes: 1 << 20)) { error in
                XCTAssertEqual((error as? DecodeError)?.kind, .invalidLength, "\(codec): \(error)")
                XCTAssertEqual((error as? DecodeError)?.offset, RecordBatchLayout.headerSize)
            }
            // With room, ten million zero bytes are not one record: a clean decode error, no trap.
            XCTAssertThrowsError(try RecordBatchDecoder.decode(bytes, maxUncompressedBytes: 20_000_000))
        }
    }

    func testGarbageCompressedRecordsAreTypedErrors() {
        for codec in CompressionFixture.codecs {
            var w = ByteWriter()
            let enc = RecordBatchEncoder(writer: &w, baseTimestamp: 0, compression: codec)
            enc.finish(into: &w)
            var bytes = w.bytes + [1, 2, 3, 4, 5, 6, 7, 8]  // not a valid stream of any codec
            bytes.replaceSubrange(8..<12, with: RBBytes.i32(Int32(bytes.count - 12)))
            RBFixture.fixCRC(&bytes)
            XCTAssertThrowsError(try RecordBatchDecoder.decode(bytes)) { error in
                let e = error as? DecodeError
                XCTAssertEqual(e?.kind, .invalidValue, "\(codec)")
                XCTAssertEqual(e?.offset, RecordBatchLayout.headerSize)
                XCTAssertTrue(e?.detail.hasPrefix("compression \(codec)") ?? false, "\(error)")
            }
        }
    }

    func testDecompressedRecordsThatDisagreeWithTheHeaderAreRejected() throws {
        let records = Self.sampleRecords(5)
        var bytes = try RecordBatchEncoder.encode(baseTimestamp: RBFixture.baseTimestamp, records: records, compression: .zstd)
        bytes.replaceSubrange(57..<61, with: RBBytes.i32(6))  // RecordCount says 6, the stream holds 5
        RBFixture.fixCRC(&bytes)
        XCTAssertThrowsError(try RecordBatchDecoder.decode(bytes)) { error in
            let e = error as? DecodeError
            XCTAssertEqual(e?.offset, RecordBatchLayout.headerSize)
            XCTAssertTrue(e?.detail.hasPrefix("in zstd-decompressed records") ?? false, "\(error)")
        }
    }

    func testEveryTruncationAndMutationOfCompressedBatchesIsSafe() throws {
        var rng = CompressionRNG(seed: 99)
        let records = Self.sampleRecords(12)
        for codec in CompressionFixture.codecs {
            let bytes = try RecordBatchEncoder.encode(baseTimestamp: RBFixture.baseTimestamp, records: records, compression: codec)
            for cut in 0..<bytes.count {
                let result = try RecordBatchDecoder.decode(Array(bytes.prefix(cut)))
                XCTAssertTrue(result.batches.isEmpty && (cut == 0 || result.truncatedTail))
            }
            for _ in 0..<300 {
                var mutated = bytes
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    let at = Int.random(in: RecordBatchLayout.headerSize..<mutated.count, using: &rng)
                    mutated[at] = UInt8.random(in: 0...255, using: &rng)
                }
                RBFixture.fixCRC(&mutated)
                do {
                    let result = try RecordBatchDecoder.decode(mutated, maxUncompressedBytes: 1 << 20)
                    XCTAssertLessThanOrEqual(result.batches.count, 1)
                } catch {
                    XCTAssertNotEqual(error.kind, .crcMismatch, "the CRC was recomputed; the codec must catch it")
                }
            }
        }
    }

    func testFinishCompressedIfSmallerFallsBackToPlain() throws {
        // Tiny, incompressible: compression would grow it, so the plain batch is kept.
        var w = ByteWriter(capacity: 16)
        var enc = RecordBatchEncoder(writer: &w, baseTimestamp: RBFixture.baseTimestamp)
        enc.append(into: &w, timestamp: RBFixture.baseTimestamp, key: nil, value: [0x5A], headers: [])
        let range = enc.finishCompressedIfSmaller(into: &w, codec: .gzip, level: nil)
        XCTAssertEqual(range, 0..<w.count)
        let plain = w.bytes
        XCTAssertEqual(Self.header(plain).compression, CompressionCodec.none)
        XCTAssertEqual(try RecordBatchDecoder.decode(plain).batches.first?.records.first?.value, [0x5A])

        // Compressible: compressed.
        let records = Self.sampleRecords(40)
        for codec in CompressionFixture.codecs {
            var w2 = ByteWriter()
            var enc2 = RecordBatchEncoder(writer: &w2, baseTimestamp: RBFixture.baseTimestamp)
            for r in records { enc2.append(into: &w2, timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers) }
            let r2 = enc2.finishCompressedIfSmaller(into: &w2, codec: codec, level: nil)
            let bytes = w2.withUnsafeBytes { Array($0[r2]) }
            XCTAssertGreaterThan(r2.lowerBound, 0)
            XCTAssertEqual(Self.header(bytes).compression, codec)
            assertRecords(try XCTUnwrap(RecordBatchDecoder.decode(bytes).batches.first).records, records)
        }
    }

    func testFailedCompressionLeavesAValidPlainBatch() throws {
        // `.none` is refused by every codec entry point: the writer is untouched, the
        // codec bits are cleared, and `finish` still yields a valid uncompressed batch.
        let records = Self.sampleRecords(10)
        var w = ByteWriter()
        var enc = RecordBatchEncoder(writer: &w, baseTimestamp: RBFixture.baseTimestamp, compression: .zstd)
        for r in records { enc.append(into: &w, timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers) }
        let before = w.count
        XCTAssertThrowsError(try enc.finishCompressed(into: &w, codec: .none, level: nil)) { error in
            XCTAssertEqual((error as? CompressionError)?.kind, .unsupportedCodec)
        }
        XCTAssertEqual(w.count, before)
        enc.finish(into: &w)
        let batch = try XCTUnwrap(RecordBatchDecoder.decode(w.bytes).batches.first)
        XCTAssertEqual(batch.header.compression, CompressionCodec.none)
        assertRecords(batch.records, records)
    }
}
