/// How a share group member settles one acquired record (KIP-932).
///
/// The wire value is one byte in an acknowledgement batch's `acknowledge_types`.
public enum ShareAcknowledgeType: Int8, Sendable, Hashable, CaseIterable {
    /// An offset with no record (a compacted or transaction-marker gap); only the client
    /// sends it, to cover a range's holes.
    case gap = 0
    /// The record was processed: it will not be delivered again.
    case accept = 1
    /// Give the record back: it becomes available again, with its delivery count kept.
    case release = 2
    /// The record cannot be processed: it will not be delivered again (archived).
    case reject = 3
}

/// A run of offsets acknowledged in one ShareFetch or ShareAcknowledge partition entry.
///
///     first_offset:INT64 last_offset:INT64 acknowledge_types:[INT8] <tags>
///
/// `acknowledgeTypes` holds either one type for the whole run or one type per offset
/// (`lastOffset - firstOffset + 1` entries); brokers reject any other count.
public struct ShareAcknowledgementBatch: Sendable, Hashable {
    /// The first offset of the run.
    public var firstOffset: Int64
    /// The last offset of the run (inclusive).
    public var lastOffset: Int64
    /// The raw type bytes (see ``ShareAcknowledgeType``), one for the run or one per offset.
    public var acknowledgeTypes: [Int8]

    /// Creates a run whose every offset is settled the same way.
    public init(firstOffset: Int64, lastOffset: Int64, type: ShareAcknowledgeType) {
        self.init(firstOffset: firstOffset, lastOffset: lastOffset, acknowledgeTypes: [type.rawValue])
    }

    /// Creates a run from raw type bytes.
    public init(firstOffset: Int64, lastOffset: Int64, acknowledgeTypes: [Int8]) {
        self.firstOffset = firstOffset
        self.lastOffset = lastOffset
        self.acknowledgeTypes = acknowledgeTypes
    }

    /// Writes the run.
    func encode(into writer: inout ByteWriter) {
        writer.writeInt64(firstOffset)
        writer.writeInt64(lastOffset)
        writer.writeArrayCount(acknowledgeTypes.count, flexible: true)
        for type in acknowledgeTypes { writer.writeInt8(type) }
        writer.writeEmptyTaggedFields()
    }

    /// Groups `(offset, type)` pairs, sorted by offset with no offset twice, into the fewest
    /// runs: consecutive offsets share a run; a run whose types are all equal sends one type.
    public static func runs(_ settled: [(offset: Int64, type: ShareAcknowledgeType)]) -> [ShareAcknowledgementBatch] {
        var result: [ShareAcknowledgementBatch] = []
        var index = 0
        while index < settled.count {
            var end = index
            while end + 1 < settled.count && settled[end + 1].offset == settled[end].offset &+ 1 { end += 1 }
            let types = settled[index...end].map(\.type.rawValue)
            let uniform = types.allSatisfy { $0 == types[0] }
            result.append(ShareAcknowledgementBatch(
                firstOffset: settled[index].offset, lastOffset: settled[end].offset,
                acknowledgeTypes: uniform ? [types[0]] : types))
            index = end + 1
        }
        return result
    }
}

/// The current leader of a partition as a share response reports it.
///
///     leader_id:INT32 leader_epoch:INT32 <tags>
///
/// Set when a partition's error is `NOT_LEADER_OR_FOLLOWER` or `FENCED_LEADER_EPOCH`;
/// -1/-1 otherwise.
public typealias ShareLeaderIDAndEpoch = FetchResponse.LeaderIDAndEpoch

extension FetchResponse.LeaderIDAndEpoch {
    /// Reads the struct and its tags; check `r.error` afterwards.
    init(shareFrom r: inout ByteReader) {
        self.init(leaderID: r.readInt32(), leaderEpoch: r.readInt32())
        r.skipTaggedFields()
    }
}
