import KlifeProtocol

/// How a share group consumer settles a record it was given (KIP-932).
public enum ShareAcknowledgement: Sendable, Hashable, CaseIterable {
    /// Processed: the record is never delivered again.
    case accept
    /// Given back: the record becomes available to the group again, and its next delivery
    /// (to this consumer or another) has a delivery count one higher.
    case release
    /// Cannot be processed: the record is never delivered again (the broker archives it).
    case reject

    /// The wire value.
    var wireType: ShareAcknowledgeType {
        switch self {
        case .accept: .accept
        case .release: .release
        case .reject: .reject
        }
    }
}

/// Where a record came from, as the broker that delivered it knows it: acknowledgements go
/// back to that broker, in that member's share session.
struct ShareSource: Sendable, Hashable {
    /// The broker that delivered the record.
    var node: Int32
    /// The topic's id.
    var topicID: KafkaUUID
    /// The partition.
    var partition: Int32
}

/// A record delivered to a share group consumer: the record and how many times the group has
/// delivered it (1 the first time; a record released or whose acquisition lock ran out comes
/// back with a higher count).
public struct ShareRecord: Sendable {
    /// The record (a view over the fetched bytes).
    public let record: ConsumerRecord
    /// Deliveries of this record so far, this one included.
    public let deliveryCount: Int
    let source: ShareSource

    /// Topic of the record.
    public var topic: String { record.topic }
    /// Partition of the record.
    public var partition: Int32 { record.partition }
    /// Offset of the record.
    public var offset: Int64 { record.offset }
    /// Key bytes, `nil` for a null key.
    public var key: RecordBytes? { record.key }
    /// Value bytes, `nil` for a null value.
    public var value: RecordBytes? { record.value }
    /// The value as UTF-8 text, when it is valid UTF-8.
    public var valueString: String? { record.valueString }
}

/// Records of one partition delivered together to a share group consumer, in offset order (a
/// collection of ``ShareRecord``, indices from 0). The consumer holds an acquisition lock on
/// each until it acknowledges it or ``acquisitionLockTimeout`` passes.
public struct ShareBatch: RandomAccessCollection, Sendable {
    /// The records.
    public let records: ConsumerRecords
    /// The delivery count of each record, by position.
    let deliveryCounts: [Int16]
    let source: ShareSource
    /// How long the broker keeps the records acquired for this consumer from when it answered:
    /// a record not acknowledged by then goes back to the group.
    public let acquisitionLockTimeout: Duration
    /// When the broker's answer arrived (monotonic clock): the locks end near
    /// `receivedAt + acquisitionLockTimeout`.
    public let receivedAt: ContinuousClock.Instant

    init(records: ConsumerRecords, deliveryCounts: [Int16], source: ShareSource, acquisitionLockTimeout: Duration,
         receivedAt: ContinuousClock.Instant) {
        self.records = records
        self.deliveryCounts = deliveryCounts
        self.source = source
        self.acquisitionLockTimeout = acquisitionLockTimeout
        self.receivedAt = receivedAt
    }

    /// Topic of every record.
    public var topic: String { records.topic }
    /// Partition of every record.
    public var partition: Int32 { records.partition }
    /// Always 0.
    public var startIndex: Int { 0 }
    /// The number of records.
    public var endIndex: Int { records.count }

    /// The record at `position`, with its delivery count.
    public subscript(position: Int) -> ShareRecord {
        ShareRecord(record: records[position], deliveryCount: Int(deliveryCounts[position]), source: source)
    }

    /// The records at `positions` (a new batch sharing the same buffers).
    func keeping(_ keep: (Int) -> Bool) -> ShareBatch {
        let kept = records.indices.filter(keep)
        let set = Set(kept)
        return ShareBatch(records: records.filter(positions: { set.contains($0) }),
                          deliveryCounts: kept.map { deliveryCounts[$0] }, source: source,
                          acquisitionLockTimeout: acquisitionLockTimeout, receivedAt: receivedAt)
    }
}
