public import Klife
public import KlifeProtocol

/// Reading back what was produced, for assertions in users' own tests.
///
/// ```swift
/// let found = try await client.producedRecords(topic: "orders", value: Array("paid".utf8))
/// XCTAssertEqual(found.count, 1)
/// let record = try await client.record(topic: "orders", partition: 0, offset: 0)
/// ```
extension KlifeClient {
    /// Every record currently in `topic`, partition by partition, in offset order.
    public func allRecords(topic: String) async throws(KlifeError) -> [ConsumerRecord] {
        let metadata = try await metadata(topics: [topic])
        guard let t = metadata.topics[topic] else {
            // Let the client report the missing topic with its usual typed error.
            _ = try await listOffset(topic: topic, partition: 0, .earliest)
            return []
        }
        var all: [ConsumerRecord] = []
        for p in t.partitions {
            all += try await allRecords(topic: topic, partition: p.partition)
        }
        return all
    }

    /// Every record currently in one partition, in offset order.
    ///
    /// Reads from the earliest offset until the high watermark reported by the fetches
    /// themselves (some brokers answer ListOffsets(latest) with a batch's base offset).
    public func allRecords(topic: String, partition: Int32) async throws(KlifeError) -> [ConsumerRecord] {
        var offset = try await listOffset(topic: topic, partition: partition, .earliest)
        var records: [ConsumerRecord] = []
        while true {
            let page = try await fetch(topic: topic, partition: partition, offset: offset)
            records += page.records
            offset = page.nextOffset
            if page.records.isEmpty || offset >= page.highWatermark { break }
        }
        return records
    }

    /// The records of `topic` whose key, value and headers match every criterion given
    /// (`nil` criteria match anything; headers must all be present with equal values).
    public func producedRecords(topic: String, key: [UInt8]?? = nil, value: [UInt8]?? = nil,
                                headers: [RecordHeader] = []) async throws(KlifeError) -> [ConsumerRecord] {
        try await allRecords(topic: topic).filter { r in
            if let key, r.key != key { return false }
            if let value, r.value != value { return false }
            return headers.allSatisfy { h in r.headers.contains(h) }
        }
    }

    /// The record at `offset` of `topic`/`partition`, or `nil` when there is none.
    public func record(topic: String, partition: Int32, offset: Int64) async throws(KlifeError) -> ConsumerRecord? {
        let result = try await fetch(topic: topic, partition: partition, offset: offset)
        return result.records.first { $0.offset == offset }
    }
}
