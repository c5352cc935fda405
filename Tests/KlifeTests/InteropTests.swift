import Foundation
import Klife
import KlifeProtocol
import KlifeTesting
import XCTest

/// librdkafka (through confluent-kafka) reads what we write and writes what we read.
final class InteropTests: XCTestCase {
    private struct WireRecord: Codable, Equatable {
        var partition: Int32?
        var offset: Int64?
        var key_hex: String?
        var value_hex: String?
        var headers: [[String?]]?
        var timestamp: Int64?
    }

    func testLibrdkafkaReadsWhatWeProduce() async throws {
        let cluster = try await Shared.cluster.value
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 3, prefix: "interop-out")
        var sent: [Int32: [ConsumerRecord]] = [:]
        for i in 0..<30 {
            let headers = i % 3 == 0 ? [] : [RecordHeader(key: "h", value: bytes("v\(i)")), RecordHeader(key: "h", value: nil)]
            let record = ProducerRecord(topic: topic, key: i % 5 == 0 ? nil : bytes("key-\(i)"), value: bytes("value-\(i) ✓"),
                                        headers: headers, timestamp: 1_600_000_000_000 + Int64(i))
            let meta = try await client.produce(record)
            sent[meta.partition, default: []].append(ConsumerRecord(
                topic: topic, partition: meta.partition, offset: meta.offset, timestamp: record.timestamp!,
                key: record.key, value: record.value, headers: headers))
        }
        let output = try runInterop("rdkafka_consume.py", ["--bootstrap", cluster.bootstrapServers[0], "--topic", topic,
                                                          "--count", "30", "--timeout-s", "60"])
        let read = try output.split(separator: "\n").map { try JSONDecoder().decode(WireRecord.self, from: Data($0.utf8)) }
        XCTAssertEqual(read.count, 30)
        let expected = sent.keys.sorted().flatMap { sent[$0]!.sorted { $0.offset < $1.offset } }
        for (r, e) in zip(read, expected) {
            XCTAssertEqual(r.partition, e.partition)
            XCTAssertEqual(r.offset, e.offset)
            XCTAssertEqual(r.key_hex, hex(e.key.map(Array.init)))
            XCTAssertEqual(r.value_hex, hex(e.value.map(Array.init)))
            XCTAssertEqual(r.timestamp, e.timestamp)
            XCTAssertEqual(r.headers ?? [], e.headers.map { [$0.key, hex($0.value)] })
        }
        await client.close()
    }

    func testWeDecodeWhatLibrdkafkaProduces() async throws {
        let cluster = try await Shared.cluster.value
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2, prefix: "interop-in")
        var lines: [String] = []
        var expected: [WireRecord] = []
        for i in 0..<20 {
            let w = WireRecord(partition: Int32(i % 2), offset: nil, key_hex: i % 4 == 0 ? nil : hex(bytes("rk-\(i)")),
                               value_hex: hex(bytes("rdkafka value \(i)")),
                               headers: i % 2 == 0 ? [["trace", hex(bytes("t\(i)"))], ["empty", nil]] : [],
                               timestamp: 1_650_000_000_000 + Int64(i))
            expected.append(w)
            lines.append(String(decoding: try JSONEncoder().encode(w), as: UTF8.self))
        }
        _ = try runInterop("rdkafka_produce.py", ["--bootstrap", cluster.bootstrapServers[0], "--topic", topic],
                           stdin: lines.joined(separator: "\n") + "\n")
        for p in Int32(0)..<2 {
            let records = try await client.allRecords(topic: topic, partition: p)
            let want = expected.filter { $0.partition == p }
            XCTAssertEqual(records.count, want.count)
            for (r, w) in zip(records, want) {
                XCTAssertEqual(hex(r.key.map(Array.init)), w.key_hex)
                XCTAssertEqual(hex(r.value.map(Array.init)), w.value_hex)
                XCTAssertEqual(r.timestamp, w.timestamp)
                XCTAssertEqual(r.headers.map { [$0.key, hex($0.value)] }, w.headers)
            }
        }
        await client.close()
    }
}
