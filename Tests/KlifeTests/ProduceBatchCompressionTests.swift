@testable import Klife
import KlifeProtocol
import XCTest

/// `ProduceBatch.encodeCompressed`: the request a compressed produce writes, for every
/// Produce version, decoded back with the protocol's own request decoder.
final class ProduceBatchCompressionTests: XCTestCase {
    private let tracker = OutstandingCounter()

    private func pending(_ i: Int, topic: String, partition: Int32, value: [UInt8]? = nil) -> PendingRecord {
        PendingRecord.withPayload(topic: topic, partition: partition, key: i % 3 == 0 ? nil : Array("key-\(i)".utf8),
                      value: value ?? Array("value \(i) ".utf8) + Array(repeating: UInt8(ascii: "x"), count: 100 + i),
                      headers: i % 2 == 0 ? [] : [RecordHeader(key: "h", value: [UInt8(i)])],
                      timestamp: 1_700_000_000_000 + Int64(i), deadline: .max, completion: .none, tracker: tracker)
    }

    /// Encodes `batch` and decodes the body back into a request.
    private func encodeAndDecode(_ batch: ProduceBatch, options: BatchEncodingOptions) throws -> ProduceRequest {
        var writer = ByteWriter(capacity: 64)
        var scratch = ByteWriter(capacity: 64)
        scratch.writeBytes([1, 2, 3]) // left over from a previous request: must be cleared
        batch.encode(into: &writer, scratch: &scratch, options: options)
        return try writer.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            let request = ProduceRequest(from: &reader, version: options.version)
            if let error = reader.error { throw error }
            XCTAssertTrue(reader.isAtEnd, "v\(options.version): bytes after the body")
            return request
        }
    }

    func testEveryVersionAndCodecRoundTrips() throws {
        for version in ProduceRequest.supportedVersions {
            for codec in [CompressionCodec.gzip, .snappy, .lz4, .zstd] {
                let batch = ProduceBatch()
                let a = (0..<30).map { pending($0, topic: "a", partition: 0) }
                let b = (0..<5).map { pending($0, topic: "a", partition: 3) }
                let c = (0..<12).map { pending($0, topic: "b", partition: 1) }
                batch.append(topic: "a", partition: 0, records: a, baseSequence: 10)
                batch.append(topic: "a", partition: 3, records: b, baseSequence: 0)
                batch.append(topic: "b", partition: 1, records: c, baseSequence: 7)
                let options = BatchEncodingOptions(version: version, acks: -1, timeoutMs: 1000, producerID: 42,
                                                   producerEpoch: 2, compression: codec, compressionLevel: nil)
                let request = try encodeAndDecode(batch, options: options)
                let expectedCodec = codec == .zstd && version < 7 ? CompressionCodec.lz4 : codec
                let sent: [(String, Int32, [PendingRecord], Int32)] = [("a", 0, a, 10), ("a", 3, b, 0), ("b", 1, c, 7)]
                let partitions = request.topics.flatMap { t in t.partitions.map { (t.name, $0) } }
                XCTAssertEqual(partitions.count, 3)
                for ((topic, partition, records, sequence), (name, p)) in zip(sent, partitions) {
                    XCTAssertEqual(name, topic)
                    XCTAssertEqual(p.index, partition)
                    let decoded = try RecordBatchDecoder.decode(p.records)
                    XCTAssertFalse(decoded.truncatedTail)
                    let only = try XCTUnwrap(decoded.batches.first)
                    XCTAssertEqual(decoded.batches.count, 1)
                    XCTAssertEqual(only.header.compression, expectedCodec, "v\(version) \(codec)")
                    XCTAssertEqual(only.header.producerID, 42)
                    XCTAssertEqual(only.header.producerEpoch, 2)
                    XCTAssertEqual(only.header.baseSequence, sequence)
                    XCTAssertEqual(only.records.map(\.key), records.map(\.key))
                    XCTAssertEqual(only.records.map(\.value), records.map(\.value))
                    XCTAssertEqual(only.records.map(\.headers), records.map(\.headers))
                    XCTAssertEqual(only.records.map(\.timestamp), records.map(\.timestamp))
                }
            }
        }
    }

    func testIncompressibleBatchGoesOutUncompressed() throws {
        var rng = SystemRandomNumberGenerator()
        let noise = (0..<64).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let batch = ProduceBatch()
        batch.append(topic: "t", partition: 0, records: [pending(0, topic: "t", partition: 0, value: noise)])
        for codec in [CompressionCodec.gzip, .snappy, .lz4, .zstd] {
            let options = BatchEncodingOptions(version: 9, acks: -1, timeoutMs: 1000, compression: codec)
            let request = try encodeAndDecode(batch, options: options)
            let only = try XCTUnwrap(RecordBatchDecoder.decode(request.topics[0].partitions[0].records).batches.first)
            XCTAssertEqual(only.header.compression, CompressionCodec.none, "\(codec) would have grown the batch")
            XCTAssertEqual(only.records.first?.value, noise)
        }
    }

    func testZstdFallsBackToLZ4BelowProduceV7() {
        XCTAssertEqual(ProduceBatch.effectiveCodec(.zstd, version: 6), .lz4)
        XCTAssertEqual(ProduceBatch.effectiveCodec(.zstd, version: 7), .zstd)
        XCTAssertEqual(ProduceBatch.effectiveCodec(.gzip, version: 3), .gzip)
        XCTAssertEqual(ProduceBatch.effectiveCodec(.snappy, version: 3), .snappy)
    }
}
