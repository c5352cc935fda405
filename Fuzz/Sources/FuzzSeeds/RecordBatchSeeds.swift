import FuzzSupport
import KlifeProtocol

/// Seeds for `FuzzRecordBatch`: a valid batch of every codec, batches other clients wrote
/// (the librdkafka golden batches of the tests), the batches the tests spell out, and the
/// header variants a consumer meets (transactional, control, log-append time, several
/// batches, a truncated tail).
enum RecordBatchSeeds {
    typealias Record = (timestamp: Int64, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader])

    static let baseTimestamp: Int64 = 1_700_000_000_000

    /// The two records of the tests' hand-built golden batch (RecordBatchTests), which the
    /// encoder reproduces byte for byte.
    static let goldenRecords: [Record] = [
        (baseTimestamp, nil, Array("v1".utf8), []),
        (baseTimestamp + 5, Array("k".utf8), Array("hello".utf8),
         [RecordHeader(key: "a", value: [0x01]), RecordHeader(key: "bc", value: nil)]),
    ]

    /// `count` records of every shape: null and empty keys and values, headers with and
    /// without values, timestamps out of order, values that compress.
    static func sampleRecords(_ count: Int) -> [Record] {
        (0..<count).map { i in
            let key: [UInt8]? = i % 5 == 0 ? nil : (i % 5 == 1 ? [] : Array("key-\(i)".utf8))
            let value: [UInt8]? = i % 7 == 3 ? nil : Array("value \(i): request \(i % 3) served in \(i % 13) ms;".utf8)
            let headers = i % 3 == 0 ? [] : [RecordHeader(key: "trace", value: Array("t\(i)".utf8)),
                                             RecordHeader(key: "n", value: nil)]
            return (baseTimestamp + Int64((i * 13) % 50), key, value, headers)
        }
    }

    static func corpus(_ golden: GoldenSources) throws -> Corpus {
        var corpus = Corpus("FuzzRecordBatch")
        let plain = RecordBatchEncoder.encode(baseTimestamp: baseTimestamp, records: goldenRecords)
        corpus.add("golden-none", plain)
        let sample = sampleRecords(24)
        let samplePlain = RecordBatchEncoder.encode(baseTimestamp: baseTimestamp, records: sample)
        corpus.add("sample-none", samplePlain)
        for codec in [CompressionCodec.gzip, .snappy, .lz4, .zstd] {
            corpus.add("sample-\(codec)", try RecordBatchEncoder.encode(baseTimestamp: baseTimestamp, records: sample,
                                                                        compression: codec))
        }
        corpus.add("sample-snappy-xerial", try xerialSnappy(samplePlain))
        corpus.add("transactional-zstd", try RecordBatchEncoder.encode(
            baseTimestamp: baseTimestamp, records: sampleRecords(6), producerID: 77, producerEpoch: 3, baseSequence: 1000,
            isTransactional: true, compression: .zstd))
        corpus.add("idempotent-lz4", try RecordBatchEncoder.encode(
            baseTimestamp: baseTimestamp, records: sampleRecords(5), producerID: 9, producerEpoch: 0, baseSequence: 0,
            compression: .lz4))
        // Control batch: one COMMIT marker (key: version 0, type 1; value: version 0, coordinator epoch 5).
        let marker = RecordBatchEncoder.encode(baseTimestamp: baseTimestamp, records: [
            (baseTimestamp, [0, 0, 0, 1], [0, 0, 0, 0, 0, 5], []),
        ], producerID: 77, producerEpoch: 3, baseSequence: -1, isTransactional: true)
        corpus.add("control-commit", withAttributes(marker, RecordBatchAttributes.transactional | RecordBatchAttributes.control))
        corpus.add("log-append-time", withAttributes(plain, RecordBatchAttributes.logAppendTime))
        corpus.add("delete-horizon", withAttributes(plain, RecordBatchAttributes.deleteHorizon))
        let second = try RecordBatchEncoder.encode(baseTimestamp: baseTimestamp + 10, records: sampleRecords(3), compression: .gzip)
        corpus.add("two-batches", plain + withBaseOffset(second, 2))
        corpus.add("truncated-tail", plain + Array(second.prefix(second.count / 2)))

        for file in golden.files {
            for (i, chain) in file.hexChains.enumerated() where decodes(chain) {
                let codec = readHeader(chain).compression.map(String.init(describing:)) ?? "unknown"
                corpus.add("\(file.stem)-hex\(i)-\(codec)", chain)
            }
        }
        for stem in ["RecordBatchTests", "RecordBatchHostileTests", "CompressedRecordBatchTests"] {
            guard let file = golden.file(stem) else { continue }
            for (name, bytes) in file.arrays where bytes.count >= RecordBatchLayout.headerSize && bytes[16] == 2 {
                corpus.add("\(stem)-\(name)", withCRCs(bytes))
            }
        }
        return corpus
    }

    /// Whether `bytes` decode, CRC checked, into at least one batch.
    static func decodes(_ bytes: [UInt8]) -> Bool {
        guard let result = try? RecordBatchDecoder.decode(bytes, maxUncompressedBytes: MessageCatalog.maxUncompressedBytes)
        else { return false }
        return !result.batches.isEmpty
    }

    static func readHeader(_ bytes: [UInt8]) -> RecordBatchHeader {
        bytes.withUnsafeBytes { RecordBatchDecoder.readHeader($0) }
    }

    /// Recomputes the CRC of every complete batch in `bytes`, so hand-built or patched batches verify.
    static func withCRCs(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        var offset = 0
        while offset + RecordBatchLayout.headerSize <= out.count {
            let length = Int(Int32(bigEndian: out.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 8, as: Int32.self) }))
            let size = RecordBatchLayout.logOverhead + length
            guard size >= RecordBatchLayout.headerSize, offset + size <= out.count else { break }
            let crc = out.withUnsafeBytes {
                CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(offset + RecordBatchLayout.attributesOffset)..<(offset + size)]))
            }
            out.replaceSubrange((offset + RecordBatchLayout.crcOffset)..<(offset + RecordBatchLayout.crcOffset + 4),
                                with: withUnsafeBytes(of: crc.bigEndian) { Array($0) })
            offset += size
        }
        return out
    }

    /// A single batch with `bits` added to its attributes, CRC recomputed.
    static func withAttributes(_ batch: [UInt8], _ bits: Int16) -> [UInt8] {
        var out = batch
        let attributes = readHeader(batch).attributes | bits
        out.replaceSubrange(21..<23, with: withUnsafeBytes(of: attributes.bigEndian) { Array($0) })
        return withCRCs(out)
    }

    /// A single batch moved to `baseOffset` (the CRC does not cover the base offset).
    static func withBaseOffset(_ batch: [UInt8], _ baseOffset: Int64) -> [UInt8] {
        var out = batch
        out.replaceSubrange(0..<8, with: withUnsafeBytes(of: baseOffset.bigEndian) { Array($0) })
        return out
    }

    /// An uncompressed batch rewritten as Java producers write snappy: snappy-java's stream
    /// framing (magic, version 1, compatible 1) around two raw blocks.
    static func xerialSnappy(_ plain: [UInt8]) throws -> [UInt8] {
        let header = RecordBatchLayout.headerSize
        let records = Array(plain[header...])
        let half = records.count / 2
        var stream: [UInt8] = [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1]
        for block in [Array(records[..<half]), Array(records[half...])] {
            let compressed = try Compression.compress(.snappy, block)
            stream += withUnsafeBytes(of: Int32(compressed.count).bigEndian) { Array($0) } + compressed
        }
        var out = Array(plain[..<header]) + stream
        let length = Int32(out.count - RecordBatchLayout.logOverhead)
        out.replaceSubrange(8..<12, with: withUnsafeBytes(of: length.bigEndian) { Array($0) })
        return withAttributes(out, CompressionCodec.snappy.rawValue)
    }
}
