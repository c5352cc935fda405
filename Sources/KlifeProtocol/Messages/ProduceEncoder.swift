/// Streams a Produce request body straight into a connection's ``ByteWriter``.
///
/// The request header and size prefix come from ``KafkaFrame/beginRequest(_:version:correlationID:clientID:flexible:into:)``
/// and ``KafkaFrame/endRequest(start:into:)``; this writer only writes the body, in
/// this order, and checks the order with preconditions:
///
///     let start = KafkaFrame.beginRequest(.produce, version: v, correlationID: id, clientID: cid,
///                                         flexible: ProduceRequest.isFlexible(v), into: &w)
///     var body = ProduceRequestWriter(writer: &w, version: v, transactionalID: nil, acks: -1,
///                                     timeoutMs: 30_000, topicCount: 1)
///     body.beginTopic(into: &w, name: "t", partitionCount: 1)
///     body.beginPartition(into: &w, index: 0, recordsByteCount: batchSize)  // exact, see RecordBatchLayout
///     ... RecordBatchEncoder(writer: &w, ...) / append / finish ...
///     body.endPartition(into: &w)
///     body.endTopic(into: &w)
///     body.finish(into: &w)
///     KafkaFrame.endRequest(start: start, into: &w)
///
/// `recordsByteCount` must be known before the batches are written because
/// flexible versions (9+) prefix the records with a varint length whose width
/// depends on the value. Compute it as `RecordBatchLayout.headerSize + Σ recordSize`
/// per batch; ``endPartition(into:)`` traps if the batches wrote a different number
/// of bytes.
public struct ProduceRequestWriter {
    /// Whether the version uses compact types and tagged fields (9+).
    public let isFlexible: Bool
    @usableFromInline internal var topicsLeft: Int
    @usableFromInline internal var partitionsLeft: Int
    /// `writer.count` expected at `endPartition`, or -1 outside a partition.
    @usableFromInline internal var recordsEnd: Int

    /// Writes transactional id, acks, timeout and the topic array length.
    ///
    /// - Parameters:
    ///   - writer: Where the request is written.
    ///   - version: 3...12 (``ProduceRequest/supportedVersions``).
    ///   - transactionalID: The transactional id, or `nil` outside transactions.
    ///   - acks: 0, 1 or -1 (all in-sync replicas).
    ///   - timeoutMs: How long the broker may wait for the replicas.
    ///   - topicCount: How many topics follow.
    @inlinable
    public init(writer: inout ByteWriter, version: Int16, transactionalID: String?, acks: Int16,
                timeoutMs: Int32, topicCount: Int) {
        precondition(ProduceRequest.supportedVersions.contains(version), "unsupported Produce version \(version)")
        precondition(topicCount >= 0, "negative topic count")
        let flexible = version >= ProduceRequest.firstFlexibleVersion
        isFlexible = flexible
        topicsLeft = topicCount
        partitionsLeft = 0
        recordsEnd = -1
        writer.writeNullableString(transactionalID, flexible: flexible)
        writer.writeInt16(acks)
        writer.writeInt32(timeoutMs)
        writer.writeArrayCount(topicCount, flexible: flexible)
    }

    /// Starts a topic: its name and partition array length.
    @inlinable
    public mutating func beginTopic(into writer: inout ByteWriter, name: String, partitionCount: Int) {
        precondition(topicsLeft > 0 && partitionsLeft == 0 && recordsEnd < 0, "beginTopic out of order")
        precondition(partitionCount >= 0, "negative partition count")
        topicsLeft &-= 1
        partitionsLeft = partitionCount
        writer.writeString(name, flexible: isFlexible)
        writer.writeArrayCount(partitionCount, flexible: isFlexible)
    }

    /// Starts a partition: its index and the records length. The caller then writes
    /// exactly `recordsByteCount` bytes of complete batches.
    @inlinable
    public mutating func beginPartition(into writer: inout ByteWriter, index: Int32, recordsByteCount: Int) {
        precondition(partitionsLeft > 0 && recordsEnd < 0, "beginPartition out of order")
        precondition(recordsByteCount >= 0 && recordsByteCount < Int(Int32.max), "records size out of range")
        partitionsLeft &-= 1
        writer.writeInt32(index)
        if isFlexible {
            writer.writeUnsignedVarint(UInt32(truncatingIfNeeded: recordsByteCount &+ 1))
        } else {
            writer.writeInt32(Int32(truncatingIfNeeded: recordsByteCount))
        }
        recordsEnd = writer.count &+ recordsByteCount
    }

    /// Ends a partition (its tagged-field section when flexible). Traps unless exactly
    /// the announced `recordsByteCount` bytes were written since ``beginPartition(into:index:recordsByteCount:)``.
    @inlinable
    public mutating func endPartition(into writer: inout ByteWriter) {
        precondition(recordsEnd >= 0, "endPartition without beginPartition")
        precondition(writer.count == recordsEnd,
                     "partition records size mismatch: announced end \(recordsEnd), wrote to \(writer.count)")
        recordsEnd = -1
        writer.writeEmptyTaggedFields(flexible: isFlexible)
    }

    /// Ends a topic (its tagged-field section when flexible).
    @inlinable
    public mutating func endTopic(into writer: inout ByteWriter) {
        precondition(partitionsLeft == 0 && recordsEnd < 0, "endTopic before all partitions were written")
        writer.writeEmptyTaggedFields(flexible: isFlexible)
    }

    /// Ends the body (its tagged-field section when flexible).
    @inlinable
    public func finish(into writer: inout ByteWriter) {
        precondition(topicsLeft == 0 && partitionsLeft == 0 && recordsEnd < 0, "finish before all topics were written")
        writer.writeEmptyTaggedFields(flexible: isFlexible)
    }
}

extension ProduceRequestWriter {
    /// Bytes of a Produce body before the first topic: transactional id, acks, timeout, topic count.
    @inlinable
    public static func bodyPrefixSize(version: Int16, transactionalID: String?, topicCount: Int) -> Int {
        let flexible = version >= ProduceRequest.firstFlexibleVersion
        return stringSize(transactionalID, flexible: flexible) &+ 2 &+ 4 &+ arrayCountSize(topicCount, flexible: flexible)
    }

    /// Bytes a topic adds besides its partitions: name, partition count, tagged fields.
    @inlinable
    public static func topicOverhead(version: Int16, name: String, partitionCount: Int) -> Int {
        let flexible = version >= ProduceRequest.firstFlexibleVersion
        return stringSize(name, flexible: flexible) &+ arrayCountSize(partitionCount, flexible: flexible)
            &+ (flexible ? 1 : 0)
    }

    /// Bytes a partition adds around its records: index, records length, tagged fields.
    @inlinable
    public static func partitionOverhead(version: Int16, recordsByteCount: Int) -> Int {
        guard version >= ProduceRequest.firstFlexibleVersion else { return 4 &+ 4 }
        return 4 &+ ByteWriter.unsignedVarlongSize(UInt64(recordsByteCount &+ 1)) &+ 1
    }

    /// Bytes of the body's closing tagged-field section (1 when flexible).
    @inlinable
    public static func bodySuffixSize(version: Int16) -> Int {
        version >= ProduceRequest.firstFlexibleVersion ? 1 : 0
    }

    @inlinable
    internal static func stringSize(_ s: String?, flexible: Bool) -> Int {
        guard let s else { return flexible ? 1 : 2 }
        let n = s.utf8.count
        return flexible ? ByteWriter.unsignedVarlongSize(UInt64(n &+ 1)) &+ n : 2 &+ n
    }

    @inlinable
    internal static func arrayCountSize(_ n: Int, flexible: Bool) -> Int {
        flexible ? ByteWriter.unsignedVarlongSize(UInt64(n &+ 1)) : 4
    }
}
