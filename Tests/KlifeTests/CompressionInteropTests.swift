import Foundation
@testable import Klife
import KlifeProtocol
import KlifeTesting
import XCTest

/// Compressed batches against the real broker, both ways with librdkafka, for every codec:
/// records we produce compressed are read back identically by librdkafka, and records
/// librdkafka produces with `compression.type=<codec>` are decoded identically by our fetch.
/// Each test also fetches the raw batches to prove they really were compressed, with
/// several records sharing one batch.
final class CompressionInteropTests: XCTestCase {
    private struct WireRecord: Codable, Equatable {
        var partition: Int32?
        var offset: Int64?
        var key_hex: String?
        var value_hex: String?
        var headers: [[String?]]?
        var timestamp: Int64?
    }

    private static let codecs: [CompressionCodec] = [.gzip, .snappy, .lz4, .zstd]

    /// A value that compresses well but differs per record.
    private static func value(_ codec: CompressionCodec, _ i: Int) -> [UInt8] {
        bytes("\(codec) record \(i): " + String(repeating: "payload-\(i % 7) ", count: 20 + i % 5))
    }

    func testLibrdkafkaReadsWhatWeProduceCompressed() async throws {
        let cluster = try await Shared.cluster.value
        for codec in Self.codecs {
            let client = try await Shared.client {
                $0.producer.compression = codec
                $0.producer.linger = .milliseconds(20)
            }
            let topic = try await Shared.topic(client, partitions: 2, prefix: "comp-out-\(codec)")
            var records: [ProducerRecord] = []
            for i in 0..<40 {
                let headers = i % 3 == 0 ? [] : [RecordHeader(key: "h", value: bytes("v\(i)")), RecordHeader(key: "n", value: nil)]
                records.append(ProducerRecord(topic: topic, partition: Int32(i % 2), key: i % 5 == 0 ? nil : bytes("key-\(i)"),
                                              value: Self.value(codec, i), headers: headers,
                                              timestamp: 1_600_000_000_000 + Int64(i)))
            }
            let results = await client.produceBatch(records)
            var sent: [(meta: RecordMetadata, record: ProducerRecord)] = []
            for (result, record) in zip(results, records) { sent.append((try result.get(), record)) }

            for p in Int32(0)..<2 {
                let headers = try await rawBatchHeaders(client, topic: topic, partition: p)
                XCTAssertFalse(headers.isEmpty)
                XCTAssertTrue(headers.allSatisfy { $0.compression == codec }, "\(codec): batches stored as \(headers.map(\.compression))")
                XCTAssertTrue(headers.contains { $0.recordCount > 1 }, "\(codec): expected several records per batch")
            }

            let output = try runInterop("rdkafka_consume.py", ["--bootstrap", cluster.bootstrapServers[0], "--topic", topic,
                                                              "--count", "40", "--timeout-s", "60"])
            let read = try output.split(separator: "\n").map { try JSONDecoder().decode(WireRecord.self, from: Data($0.utf8)) }
            XCTAssertEqual(read.count, 40, "\(codec)")
            let expected = sent.sorted { ($0.meta.partition, $0.meta.offset) < ($1.meta.partition, $1.meta.offset) }
            for (r, e) in zip(read, expected) {
                XCTAssertEqual(r.partition, e.meta.partition, "\(codec)")
                XCTAssertEqual(r.offset, e.meta.offset, "\(codec)")
                XCTAssertEqual(r.key_hex, hex(e.record.key), "\(codec)")
                XCTAssertEqual(r.value_hex, hex(e.record.value), "\(codec)")
                XCTAssertEqual(r.timestamp, e.record.timestamp, "\(codec)")
                XCTAssertEqual(r.headers ?? [], e.record.headers.map { [$0.key, hex($0.value)] }, "\(codec)")
            }

            // And our own fetch decodes our compressed batches.
            let back = try await client.allRecords(topic: topic)
            XCTAssertEqual(back.count, 40, "\(codec)")
            for r in back {
                let e = try XCTUnwrap(sent.first { $0.meta.partition == r.partition && $0.meta.offset == r.offset })
                XCTAssertEqual(r.key.map(Array.init), e.record.key)
                XCTAssertEqual(r.value.map(Array.init), e.record.value)
                XCTAssertEqual(r.headers, e.record.headers)
            }
            await client.close()
        }
    }

    func testWeDecodeWhatLibrdkafkaProducesCompressed() async throws {
        let cluster = try await Shared.cluster.value
        let client = try await Shared.client()
        for codec in Self.codecs {
            let topic = try await Shared.topic(client, partitions: 2, prefix: "comp-in-\(codec)")
            var lines: [String] = []
            var expected: [WireRecord] = []
            for i in 0..<30 {
                let w = WireRecord(partition: Int32(i % 2), offset: nil, key_hex: i % 4 == 0 ? nil : hex(bytes("rk-\(i)")),
                                   value_hex: hex(Self.value(codec, i)),
                                   headers: i % 2 == 0 ? [["trace", hex(bytes("t\(i)"))], ["empty", nil]] : [],
                                   timestamp: 1_650_000_000_000 + Int64(i))
                expected.append(w)
                lines.append(String(decoding: try JSONEncoder().encode(w), as: UTF8.self))
            }
            _ = try runInterop("rdkafka_produce.py", ["--bootstrap", cluster.bootstrapServers[0], "--topic", topic,
                                                      "--compression", "\(codec)", "--linger-ms", "200"],
                               stdin: lines.joined(separator: "\n") + "\n")
            for p in Int32(0)..<2 {
                let headers = try await rawBatchHeaders(client, topic: topic, partition: p)
                XCTAssertTrue(headers.allSatisfy { $0.compression == codec }, "\(codec): librdkafka wrote \(headers.map(\.compression))")
                XCTAssertTrue(headers.contains { $0.recordCount > 1 }, "\(codec): expected several records per batch")

                let records = try await client.allRecords(topic: topic, partition: p)
                let want = expected.filter { $0.partition == p }
                XCTAssertEqual(records.count, want.count, "\(codec)")
                for (r, w) in zip(records, want) {
                    XCTAssertEqual(hex(r.key.map(Array.init)), w.key_hex, "\(codec)")
                    XCTAssertEqual(hex(r.value.map(Array.init)), w.value_hex, "\(codec)")
                    XCTAssertEqual(r.timestamp, w.timestamp, "\(codec)")
                    XCTAssertEqual(r.headers.map { [$0.key, hex($0.value)] }, w.headers, "\(codec)")
                }
            }
        }
        await client.close()
    }

    /// The headers of the batches a raw Fetch returns from offset 0 (decoding them also checks CRCs).
    private func rawBatchHeaders(_ client: KlifeClient, topic: String, partition: Int32) async throws -> [RecordBatchHeader] {
        let topicID = client.metadataStore.snapshot.metadata.topics[topic]?.topicID ?? .zero
        let request = FetchRequest(maxWaitMs: 500, minBytes: 1, maxBytes: 4 << 20, topics: [
            .init(name: topic, topicID: topicID, partitions: [.init(partition: partition, fetchOffset: 0, partitionMaxBytes: 4 << 20)]),
        ])
        let response = try await client.roundTripToLeader(request, topic: topic, partition: partition)
        let records = try XCTUnwrap(response.responses.first?.partitions.first { $0.partitionIndex == partition }?.records,
                                    "\(response)")
        if let dump = ProcessInfo.processInfo.environment["KLIFE_DUMP_BATCHES"], !dump.isEmpty {
            print("BATCHES \(topic)/\(partition): \(hex(records) ?? "")")
        }
        return try RecordBatchDecoder.decode(records).batches.map(\.header)
    }
}
