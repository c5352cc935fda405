import KlifeProtocol

extension ShareFetcher {
    /// The longest acquired range whose offsets are settled one by one (gaps, undecodable
    /// data); a longer one, which no broker sends for real data, is left to its lock timeout.
    static let largestRangeSettled: Int64 = 100_000

    /// Whether `range` is ordered and short enough to settle offset by offset (a hostile one,
    /// reversed or spanning most of the offset space, is not; and never overflows).
    static func isSettleable(_ range: ShareFetchResponse.AcquiredRecords) -> Bool {
        let (span, overflow) = range.lastOffset.subtractingReportingOverflow(range.firstOffset)
        return !overflow && span >= 0 && span < largestRangeSettled
    }

    /// The records of one partition's answer that this member acquired, cut into batches of at
    /// most `maxRecords`, each record with its delivery count. Records of the answer outside
    /// the acquired ranges (held by other members, or settled) and control records are left
    /// out, and so are records this member holds already at the same delivery count (librdkafka's
    /// mock reports every record a member holds in each answer); acquired offsets with no
    /// record (compacted away, transaction markers) are settled as gaps at once.
    func deliveries(_ partition: ShareFetchResponse.Partition, tp: TopicPartition, source: ShareSource,
                    lockTimeout: Duration, receivedAt: ContinuousClock.Instant,
                    broker: String) throws(KlifeError) -> [ShareBatch] {
        let index = try FetchDecoding.index(partition.records, broker: broker,
                                            maxUncompressedBytes: settings.maxUncompressedBytes)
        let ranges = partition.acquiredRecords.filter { $0.lastOffset >= $0.firstOffset }
            .sorted { $0.firstOffset < $1.firstOffset }
        var slots: [RecordSlot] = []
        var counts: [Int16] = []
        var seen = Set<Int64>()
        for batch in index.batches where !batch.header.isControl {
            for slot in index.slots[batch.records] {
                guard let count = Self.deliveryCount(of: slot.offset, in: ranges), seen.insert(slot.offset).inserted
                else { continue }
                slots.append(slot)
                counts.append(count)
            }
        }
        var gaps: [(offset: Int64, deliveryCount: Int16)] = []
        for range in ranges where Self.isSettleable(range) {
            for offset in range.firstOffset...range.lastOffset where !seen.contains(offset) {
                gaps.append((offset, range.deliveryCount))
            }
        }
        let fresh = recordAcquired(source, delivered: zip(slots.map(\.offset), counts).map { ($0, $1) }, gaps: gaps)
        if fresh.count < slots.count {
            let keep = zip(slots, counts).filter { fresh.contains($0.0.offset) }
            slots = keep.map(\.0)
            counts = keep.map(\.1)
        }
        let records = ConsumerRecords(topic: tp.topic, partition: tp.partition, fetched: index.fetched,
                                      inflated: index.inflated, slots: slots[...])
        var batches: [ShareBatch] = []
        var start = 0
        while start < slots.count {
            let end = min(start + settings.maxRecords, slots.count)
            batches.append(ShareBatch(records: records.records(start..<end), deliveryCounts: Array(counts[start..<end]),
                                      source: source, acquisitionLockTimeout: lockTimeout, receivedAt: receivedAt))
            start = end
        }
        return batches
    }

    /// The delivery count of the range holding `offset`, `nil` when none does (`ranges` sorted).
    static func deliveryCount(of offset: Int64, in ranges: [ShareFetchResponse.AcquiredRecords]) -> Int16? {
        var low = 0, high = ranges.count
        while low < high {
            let mid = (low + high) / 2
            if ranges[mid].lastOffset < offset { low = mid + 1 } else { high = mid }
        }
        guard low < ranges.count, ranges[low].firstOffset <= offset else { return nil }
        return ranges[low].deliveryCount
    }
}
