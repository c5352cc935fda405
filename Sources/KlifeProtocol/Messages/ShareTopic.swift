/// The entries of one topic in the share messages (KIP-932): ShareFetch and ShareAcknowledge
/// requests and responses all list their partitions by topic the same way.
///
///     topic_id:UUID partitions:[Partition] <tags>
public struct ShareTopic<Partition: Sendable & Hashable>: Sendable, Hashable {
    /// The topic id.
    public var topicID: KafkaUUID
    /// One entry per partition.
    public var partitions: [Partition]

    /// Creates a topic entry.
    public init(topicID: KafkaUUID, partitions: [Partition]) {
        self.topicID = topicID
        self.partitions = partitions
    }

    /// Reads a compact array of topics whose partitions take at least `partitionMinimumSize`
    /// bytes each and are read by `readPartition`; check `reader.error` afterwards.
    static func readArray(
        from reader: inout ByteReader, partitionMinimumSize: Int, readPartition: (inout ByteReader) -> Partition
    ) -> [ShareTopic] {
        // A topic is at least a UUID, an empty array and tags.
        let n = reader.readArrayCount(flexible: true, minimumElementSize: 18)
        return reader.readArray(count: n) { r in
            let topicID = r.readUUID()
            let count = r.readArrayCount(flexible: true, minimumElementSize: partitionMinimumSize)
            let partitions = r.readArray(count: count) { readPartition(&$0) }
            r.skipTaggedFields()
            return ShareTopic(topicID: topicID, partitions: partitions)
        }
    }
}

extension ShareTopic where Partition == ShareFetchRequest.Partition {
    /// Writes `topics`, with their acknowledgement batches, as a compact array.
    static func encode(_ topics: [ShareTopic], into writer: inout ByteWriter) {
        writer.writeArrayCount(topics.count, flexible: true)
        for topic in topics {
            writer.writeUUID(topic.topicID)
            writer.writeArrayCount(topic.partitions.count, flexible: true)
            for partition in topic.partitions {
                writer.writeInt32(partition.partitionIndex)
                writer.writeArrayCount(partition.acknowledgementBatches.count, flexible: true)
                for batch in partition.acknowledgementBatches { batch.encode(into: &writer) }
                writer.writeEmptyTaggedFields()
            }
            writer.writeEmptyTaggedFields()
        }
    }
}
