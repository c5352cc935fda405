import XCTest
import CKlifeShim
import KlifeProtocol

/// Shared fixtures for the RecordBatch tests.
enum RBFixture {
    static let baseTimestamp: Int64 = 1_700_000_000_000

    /// The golden batch, built by hand field by field.
    ///
    /// Record 0: timestamp = base, key null, value "v1", no headers.
    /// Record 1: timestamp = base + 5, key "k", value "hello",
    ///           headers ["a": [0x01], "bc": null].
    static var goldenBatch: [UInt8] {
        let record0: [UInt8] = [
            0x10,               // length: varint 8 (zig-zag 16)
            0x00,               // attributes
            0x00,               // timestampDelta: varlong 0
            0x00,               // offsetDelta: varint 0
            0x01,               // keyLength: varint -1 (null key)
            0x04, 0x76, 0x31,   // valueLength 2, "v1"
            0x00,               // headerCount 0
        ]
        let record1: [UInt8] = [
            0x28,               // length: varint 20
            0x00,               // attributes
            0x0A,               // timestampDelta: varlong 5
            0x02,               // offsetDelta: varint 1
            0x02, 0x6B,         // keyLength 1, "k"
            0x0A, 0x68, 0x65, 0x6C, 0x6C, 0x6F, // valueLength 5, "hello"
            0x04,               // headerCount 2
            0x02, 0x61,         // header 0 key: length 1, "a"
            0x02, 0x01,         // header 0 value: length 1, [0x01]
            0x04, 0x62, 0x63,   // header 1 key: length 2, "bc"
            0x01,               // header 1 value: varint -1 (null)
        ]
        var batch: [UInt8] = []
        batch += RBBytes.i64(0)                 // BaseOffset
        batch += RBBytes.i32(49 + 30)           // Length: 61 - 12 header bytes + 30 record bytes
        batch += RBBytes.i32(-1)                // PartitionLeaderEpoch
        batch += RBBytes.i8(2)                  // Magic
        batch += RBBytes.u32(0)                 // CRC (filled below)
        batch += RBBytes.i16(0)                 // Attributes: no codec, create time
        batch += RBBytes.i32(1)                 // LastOffsetDelta
        batch += RBBytes.i64(baseTimestamp)     // BaseTimestamp
        batch += RBBytes.i64(baseTimestamp + 5) // MaxTimestamp
        batch += RBBytes.i64(-1)                // ProducerId
        batch += RBBytes.i16(-1)                // ProducerEpoch
        batch += RBBytes.i32(-1)                // BaseSequence
        batch += RBBytes.i32(2)                 // RecordCount
        batch += record0 + record1
        fixCRC(&batch)
        return batch
    }

    static let goldenRecords: [(timestamp: Int64, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader])] = [
        (baseTimestamp, nil, Array("v1".utf8), []),
        (baseTimestamp + 5, Array("k".utf8), Array("hello".utf8),
         [RecordHeader(key: "a", value: [0x01]), RecordHeader(key: "bc", value: nil)]),
    ]

    /// Recomputes the CRC of the single batch starting at `start`, with the portable software CRC.
    static func fixCRC(_ bytes: inout [UInt8], start: Int = 0) {
        let length = bytes[(start + 8)..<(start + 12)].reduce(0) { $0 << 8 | Int($1) }
        let end = start + 12 + length
        let crc = bytes.withUnsafeBytes { raw in
            klife_crc32c_software(0, raw.baseAddress! + start + 21, end - start - 21)
        }
        bytes.replaceSubrange((start + 17)..<(start + 21), with: RBBytes.u32(crc))
    }

    /// Encodes a batch with the encoder.
    static func encode(baseOffset: Int64 = 0, records: [(timestamp: Int64, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader])],
                       producerID: Int64 = -1) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        var enc = RecordBatchEncoder(writer: &w, baseOffset: baseOffset, baseTimestamp: baseTimestamp, producerID: producerID)
        for r in records { enc.append(into: &w, timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers) }
        enc.finish(into: &w)
        return w.bytes
    }

    /// Two batches back to back: the golden one (offsets 0-1) and a three-record one (offsets 2-4).
    static var twoBatches: (bytes: [UInt8], firstSize: Int) {
        let first = goldenBatch
        let second = encode(baseOffset: 2, records: [
            (baseTimestamp + 10, [1], [2, 3], []),
            (baseTimestamp + 11, nil, nil, [RecordHeader(key: "h", value: [])]),
            (baseTimestamp + 9, [], Array(repeating: 0x55, count: 200), []),
        ])
        return (first + second, first.count)
    }
}

final class RecordBatchTests: XCTestCase {
    func testEncoderMatchesGoldenBytes() {
        let golden = RBFixture.goldenBatch
        XCTAssertEqual(golden.count, 91)
        XCTAssertEqual(RBFixture.encode(records: RBFixture.goldenRecords), golden)
        XCTAssertEqual(RecordBatchEncoder.encode(baseTimestamp: RBFixture.baseTimestamp, records: RBFixture.goldenRecords),
                       golden)
    }

    func testEncoderPointerFormAndCounters() {
        var w = ByteWriter(capacity: 16)
        w.writeBytes([0xAA, 0xBB])  // a batch can start mid-buffer
        var enc = RecordBatchEncoder(writer: &w, baseTimestamp: RBFixture.baseTimestamp)
        XCTAssertEqual(enc.startOffset, 2)
        XCTAssertEqual(enc.byteCount(in: w), 61)
        enc.append(into: &w, timestamp: RBFixture.baseTimestamp, key: nil, value: nil, headers: [])
        let value = Array("v1".utf8)
        value.withUnsafeBytes { v in
            enc.append(into: &w, timestamp: RBFixture.baseTimestamp, key: nil, value: v, headers: [])
        }
        XCTAssertEqual(enc.recordCount, 2)
        let size = enc.finish(into: &w)
        XCTAssertEqual(size, w.count - 2)
        let result = try? w.withUnsafeBytes { raw in
            try RecordBatchDecoder.decode(UnsafeRawBufferPointer(rebasing: raw[2...]))
        }
        XCTAssertEqual(result?.batches.first?.records.map(\.value), [nil, value])
    }

    func testDecodeGolden() throws {
        let result = try RecordBatchDecoder.decode(RBFixture.goldenBatch)
        XCTAssertFalse(result.truncatedTail)
        XCTAssertEqual(result.batches.count, 1)
        let batch = result.batches[0]
        let crc = CRC32C.checksum(Array(RBFixture.goldenBatch[21...]))
        XCTAssertEqual(batch.header, RecordBatchHeader(
            baseOffset: 0, length: 79, partitionLeaderEpoch: -1, magic: 2, crc: crc, attributes: 0,
            lastOffsetDelta: 1, baseTimestamp: RBFixture.baseTimestamp, maxTimestamp: RBFixture.baseTimestamp + 5,
            producerID: -1, producerEpoch: -1, baseSequence: -1, recordCount: 2))
        XCTAssertEqual(batch.header.compression, CompressionCodec.none)
        XCTAssertEqual(batch.header.timestampType, .createTime)
        XCTAssertFalse(batch.header.isTransactional)
        XCTAssertFalse(batch.header.isControl)
        XCTAssertEqual(batch.header.lastOffset, 1)
        XCTAssertEqual(batch.header.byteCount, 91)
        XCTAssertEqual(batch.records, [
            DecodedRecord(offset: 0, timestamp: RBFixture.baseTimestamp, timestampType: .createTime,
                          key: nil, value: Array("v1".utf8), headers: []),
            DecodedRecord(offset: 1, timestamp: RBFixture.baseTimestamp + 5, timestampType: .createTime,
                          key: Array("k".utf8), value: Array("hello".utf8),
                          headers: [RecordHeader(key: "a", value: [1]), RecordHeader(key: "bc", value: nil)]),
        ])
    }

    func testRecordSizeMatchesEncodedSize() {
        var rng = XorShift(seed: 7)
        var w = ByteWriter(capacity: 1024)
        var enc = RecordBatchEncoder(writer: &w, baseTimestamp: RBFixture.baseTimestamp)
        var predicted = RecordBatchLayout.headerSize
        let deltas: [Int64] = [0, 1, -1, 63, 64, -65, 8191, 8192, Int64(Int32.max), Int64(Int32.min), 1 << 40]
        let keys = ["", "a", "ключ", "😀-header", String(repeating: "k", count: 130)]
        for i in 0..<600 {
            func blob(_ max: Int) -> [UInt8]? {
                let n = Int.random(in: -1...max, using: &rng)
                return n < 0 ? nil : [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: n)
            }
            let key = blob(i % 50 == 0 ? 20_000 : 70)
            let value = blob(i % 30 == 0 ? 300_000 : 200)
            let headers = (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                RecordHeader(key: keys.randomElement(using: &rng)!, value: blob(150))
            }
            let delta = i < deltas.count ? deltas[i] : Int64.random(in: -100_000...10_000_000, using: &rng)
            let expected = RecordBatchLayout.recordSize(
                offsetDelta: enc.recordCount, timestampDelta: delta, keyCount: key?.count, valueCount: value?.count,
                headers: headers)
            let zeroDelta = RecordBatchLayout.recordSize(offsetDelta: 0, timestampDelta: 0, keyCount: key?.count,
                                                         valueCount: value?.count, headers: headers)
            XCTAssertEqual(RecordBatchLayout.recordSize(zeroDeltaSize: zeroDelta, offsetDelta: enc.recordCount, timestampDelta: delta),
                           expected, "record \(i) from its zero-delta size")
            let before = w.count
            enc.append(into: &w, timestamp: RBFixture.baseTimestamp + delta, key: key, value: value, headers: headers)
            XCTAssertEqual(w.count - before, expected, "record \(i)")
            predicted += expected
        }
        XCTAssertEqual(enc.finish(into: &w), predicted)
        XCTAssertEqual(w.count, predicted)
        XCTAssertNoThrow(try w.withUnsafeBytes { raw in
            let result = try RecordBatchDecoder.decode(raw)
            XCTAssertEqual(result.batches.first?.records.count, 600)
        })
    }

    /// A record's size at any deltas follows from its zero-delta size, across every length
    /// varint width (the record's own length prefix grows at 64, 8,192, 2^20 and 2^27 bytes).
    func testRecordSizeFromZeroDeltaSizeAcrossVarintWidths() {
        let deltas: [(Int32, Int64)] = [(0, 0), (1, 1), (63, 63), (64, -65), (8191, 8192), (Int32.max, Int64(Int32.min)),
                                        (1000, 1 << 40), (0, Int64.min), (Int32.min, Int64.max)]
        var lengths = Array(0...20_000)
        for edge in [1 << 20, 1 << 27] { lengths += (edge - 300)...(edge + 300) }
        for n in lengths {
            for keyCount in [nil, 0, 3] as [Int?] {
                let zeroDelta = RecordBatchLayout.recordSize(offsetDelta: 0, timestampDelta: 0, keyCount: keyCount,
                                                             valueCount: n, headers: EncodedHeaders.none)
                for (offset, time) in deltas {
                    let direct = RecordBatchLayout.recordSize(offsetDelta: offset, timestampDelta: time, keyCount: keyCount,
                                                              valueCount: n, headers: EncodedHeaders.none)
                    let derived = RecordBatchLayout.recordSize(zeroDeltaSize: zeroDelta, offsetDelta: offset, timestampDelta: time)
                    if derived != direct {
                        XCTFail("value \(n), key \(String(describing: keyCount)), deltas \(offset)/\(time): \(derived) != \(direct)")
                        return
                    }
                }
            }
        }
    }

    func testDecodeThenReencodeIsIdentical() throws {
        var w = ByteWriter()
        var enc = RecordBatchEncoder(writer: &w, baseOffset: 0, baseTimestamp: RBFixture.baseTimestamp, producerID: 4321,
                                     producerEpoch: 3, baseSequence: 17, isTransactional: true)
        for i in 0..<20 {
            enc.append(into: &w, timestamp: RBFixture.baseTimestamp + Int64(i * 13 % 7) - 2,
                       key: i % 3 == 0 ? nil : [UInt8(i)], value: [UInt8](repeating: UInt8(i), count: i * 10),
                       headers: i % 4 == 0 ? [] : [RecordHeader(key: "h\(i)", value: i % 2 == 0 ? nil : [1, 2])])
        }
        enc.finish(into: &w)
        let original = w.bytes
        let batch = try XCTUnwrap(RecordBatchDecoder.decode(original).batches.first)
        let h = batch.header
        XCTAssertTrue(h.isTransactional)
        XCTAssertEqual(h.producerID, 4321)
        XCTAssertEqual(h.producerEpoch, 3)
        XCTAssertEqual(h.baseSequence, 17)
        XCTAssertEqual(h.maxTimestamp, RBFixture.baseTimestamp + 4)
        var w2 = ByteWriter()
        var enc2 = RecordBatchEncoder(writer: &w2, baseOffset: h.baseOffset, partitionLeaderEpoch: h.partitionLeaderEpoch,
                                      baseTimestamp: h.baseTimestamp, producerID: h.producerID,
                                      producerEpoch: h.producerEpoch, baseSequence: h.baseSequence,
                                      isTransactional: h.isTransactional, compression: h.compression!)
        for r in batch.records {
            enc2.append(into: &w2, timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers)
        }
        enc2.finish(into: &w2)
        XCTAssertEqual(w2.bytes, original)
        let golden = RBFixture.goldenBatch
        let decoded = try XCTUnwrap(RecordBatchDecoder.decode(golden).batches.first)
        XCTAssertEqual(RBFixture.encode(records: decoded.records.map { ($0.timestamp, $0.key, $0.value, $0.headers) }),
                       golden)
    }

    func testTwoBatchesAndOffsets() throws {
        let (bytes, firstSize) = RBFixture.twoBatches
        let result = try RecordBatchDecoder.decode(bytes)
        XCTAssertFalse(result.truncatedTail)
        XCTAssertEqual(result.batches.map { $0.header.byteCount }, [firstSize, bytes.count - firstSize])
        XCTAssertEqual(result.batches.flatMap { $0.records.map(\.offset) }, [0, 1, 2, 3, 4])
        let second = result.batches[1]
        XCTAssertEqual(second.header.maxTimestamp, RBFixture.baseTimestamp + 11)
        XCTAssertEqual(second.records[2].timestamp, RBFixture.baseTimestamp + 9)
        XCTAssertEqual(second.records[1].headers, [RecordHeader(key: "h", value: [])])
        XCTAssertEqual(second.records[2].key, [])
        XCTAssertNil(second.records[1].key)
    }

    func testLogAppendTimeAndControlBatches() throws {
        var bytes = RBFixture.goldenBatch
        bytes[22] = 0x08 | 0x20 | 0x10  // log append time, control, transactional
        RBFixture.fixCRC(&bytes)
        let batch = try XCTUnwrap(RecordBatchDecoder.decode(bytes).batches.first)
        XCTAssertEqual(batch.header.timestampType, .logAppendTime)
        XCTAssertTrue(batch.header.isControl)
        XCTAssertTrue(batch.header.isTransactional)
        XCTAssertEqual(batch.records.map(\.timestamp), [RBFixture.baseTimestamp + 5, RBFixture.baseTimestamp + 5])
        XCTAssertEqual(batch.records.map(\.timestampType), [.logAppendTime, .logAppendTime])
        XCTAssertEqual(batch.records.count, 2, "control records are kept for the caller to filter")
    }

    func testEmptyInputAndEmptyBatch() throws {
        let empty = try RecordBatchDecoder.decode([UInt8]())
        XCTAssertTrue(empty.batches.isEmpty)
        XCTAssertFalse(empty.truncatedTail)
        var w = ByteWriter()
        let enc = RecordBatchEncoder(writer: &w, baseTimestamp: 5)
        XCTAssertEqual(enc.finish(into: &w), 61)
        let batch = try XCTUnwrap(RecordBatchDecoder.decode(w.bytes).batches.first)
        XCTAssertEqual(batch.header.recordCount, 0)
        XCTAssertEqual(batch.header.maxTimestamp, -1)
        XCTAssertTrue(batch.records.isEmpty)
    }
}
