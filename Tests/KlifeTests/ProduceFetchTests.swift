import KlifeIO
import Klife
import KlifeProtocol
import KlifeTesting
import XCTest
import Synchronization

final class ProduceFetchTests: XCTestCase {
    func testSyncProduceReturnsOffsetsAndRecordsReadBack() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 3)
        var sent: [RecordMetadata] = []
        for i in 0..<9 {
            let record = ProducerRecord(topic: topic, partition: Int32(i % 3), key: bytes("k\(i)"), value: bytes("v\(i)"),
                                        headers: [RecordHeader(key: "n", value: bytes("\(i)")), RecordHeader(key: "null", value: nil)],
                                        timestamp: 1_700_000_000_000 + Int64(i))
            sent.append(try await client.produce(record))
        }
        for p in 0..<3 {
            XCTAssertEqual(sent.filter { $0.partition == Int32(p) }.map(\.offset), [0, 1, 2], "partition \(p) offsets")
        }
        for (i, meta) in sent.enumerated() {
            let record = try await client.record(topic: topic, partition: meta.partition, offset: meta.offset)
            let r = try XCTUnwrap(record)
            XCTAssertEqual(r.key.map(Array.init), bytes("k\(i)"))
            XCTAssertEqual(r.value.map(Array.init), bytes("v\(i)"))
            XCTAssertEqual(r.headers, [RecordHeader(key: "n", value: bytes("\(i)")), RecordHeader(key: "null", value: nil)])
            XCTAssertEqual(r.timestamp, 1_700_000_000_000 + Int64(i))
            XCTAssertEqual(r.timestampType, .createTime)
            XCTAssertEqual(meta.timestamp, r.timestamp)
        }
        await client.close()
    }

    func testAsyncProduceWithCallbacksToManyPartitions() async throws {
        let client = try await Shared.client { $0.producer.linger = .milliseconds(2) }
        let topic = try await Shared.topic(client, partitions: 6)
        let results = Locked<[Int: RecordMetadata]>([:])
        let failures = Locked<[String]>([])
        let count = 3000
        for i in 0..<count {
            client.produce(ProducerRecord(topic: topic, key: bytes("key-\(i)"), value: bytes("value-\(i)"))) { result in
                switch result {
                case .success(let meta): results.withLock { $0[i] = meta }
                case .failure(let error): failures.withLock { $0.append("\(i): \(error)") }
                }
            }
        }
        await client.flush()
        XCTAssertEqual(failures.withLock { $0 }, [])
        let delivered = results.withLock { $0 }
        XCTAssertEqual(delivered.count, count)
        // Keyed records land on the murmur2 partition, offsets are dense per partition.
        for (i, meta) in delivered {
            XCTAssertEqual(meta.partition, DefaultPartitioner.partition(forKey: bytes("key-\(i)"), partitionCount: 6))
        }
        var perPartition: [Int32: [Int64]] = [:]
        for meta in delivered.values { perPartition[meta.partition, default: []].append(meta.offset) }
        for (p, offsets) in perPartition {
            XCTAssertEqual(offsets.sorted(), Array(0..<Int64(offsets.count)), "partition \(p)")
        }
        let all = try await client.allRecords(topic: topic)
        XCTAssertEqual(all.count, count)
        for r in all {
            let i = Int(String(decoding: r.key!, as: UTF8.self).dropFirst(4))!
            XCTAssertEqual(r.value.map(Array.init), bytes("value-\(i)"))
            XCTAssertEqual(delivered[i]?.offset, r.offset)
            XCTAssertEqual(delivered[i]?.partition, r.partition)
        }
        await client.close()
    }

    func testListOffsetsEarliestAndLatest() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1)
        let earliestEmpty = try await client.listOffset(topic: topic, partition: 0, .earliest)
        let latestEmpty = try await client.listOffset(topic: topic, partition: 0, .latest)
        XCTAssertEqual(earliestEmpty, 0)
        XCTAssertEqual(latestEmpty, 0)
        for i in 0..<5 { _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: "r\(i)")) }
        let earliest = try await client.listOffset(topic: topic, partition: 0, .earliest)
        let latest = try await client.listOffset(topic: topic, partition: 0, .latest)
        XCTAssertEqual(earliest, 0)
        XCTAssertEqual(latest, 5)
        let fetched = try await client.fetch(topic: topic, partition: 0, offset: 2)
        XCTAssertEqual(fetched.records.map(\.offset), [2, 3, 4])
        XCTAssertEqual(fetched.records.map(\.valueString), ["r2", "r3", "r4"])
        XCTAssertEqual(fetched.highWatermark, 5)
        XCTAssertEqual(fetched.nextOffset, 5)
        await client.close()
    }

    func testNullKeyNullValueAndEmptyValue() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1)
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, key: nil, value: nil))
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 0, key: [], value: []))
        let records = try await client.allRecords(topic: topic)
        XCTAssertEqual(records.count, 2)
        XCTAssertNil(records[0].key)
        XCTAssertNil(records[0].value)
        XCTAssertEqual(records[1].key, [])
        XCTAssertEqual(records[1].value, [])
        await client.close()
    }

    func testProducedRecordsHelperMatchesKeyValueAndHeaders() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 2)
        let header = RecordHeader(key: "source", value: bytes("test"))
        _ = try await client.produce(ProducerRecord(topic: topic, key: bytes("a"), value: bytes("x"), headers: [header]))
        _ = try await client.produce(ProducerRecord(topic: topic, key: bytes("b"), value: bytes("x")))
        _ = try await client.produce(ProducerRecord(topic: topic, key: bytes("a"), value: bytes("y")))
        let byValue = try await client.producedRecords(topic: topic, value: bytes("x"))
        XCTAssertEqual(byValue.count, 2)
        let byKeyAndValue = try await client.producedRecords(topic: topic, key: bytes("a"), value: bytes("x"))
        XCTAssertEqual(byKeyAndValue.count, 1)
        let byHeader = try await client.producedRecords(topic: topic, headers: [header])
        XCTAssertEqual(byHeader.map { $0.value.map(Array.init) }, [bytes("x")])
        await client.close()
    }
}
