/// AddPartitionsToTxn request (key 24), versions 0–3; flexible from v3.
///
///     transactional_id:STRING producer_id:INT64 producer_epoch:INT16
///     topics:[name:STRING partitions:[INT32] <tags v3+>] <tags v3+>
///
/// Registers partitions with the transaction coordinator before the producer writes to them
/// inside a transaction. Versions 4+ are the broker-to-broker batched form and are not encoded.
///
/// Per-partition outcomes worth knowing: `CONCURRENT_TRANSACTIONS` (51) is retriable,
/// `OPERATION_NOT_ATTEMPTED` (55) means another partition in the request failed, and
/// `INVALID_PRODUCER_EPOCH` (47) / `PRODUCER_FENCED` (90) mean the producer was fenced.
public struct AddPartitionsToTxnRequest: KafkaRequest, Equatable {
    /// Answered by ``AddPartitionsToTxnResponse``.
    public typealias Response = AddPartitionsToTxnResponse
    /// Key 24.
    public static let apiKey = ApiKey.addPartitionsToTxn
    /// v0 through v3.
    public static let supportedVersions: ClosedRange<Int16> = 0...3
    /// v3.
    public static let firstFlexibleVersion: Int16 = 3

    /// The transactional id of the transaction.
    public var transactionalID: String
    /// The producer id in use by the transactional id.
    public var producerID: Int64
    /// The epoch of ``producerID``.
    public var producerEpoch: Int16
    /// The partitions to add, grouped by topic.
    public var topics: [Topic]

    /// Creates the request.
    public init(transactionalID: String, producerID: Int64, producerEpoch: Int16, topics: [Topic]) {
        self.transactionalID = transactionalID
        self.producerID = producerID
        self.producerEpoch = producerEpoch
        self.topics = topics
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 3
        writer.writeString(transactionalID, flexible: flexible)
        writer.writeInt64(producerID)
        writer.writeInt16(producerEpoch)
        writer.writeArrayCount(topics.count, flexible: flexible)
        for topic in topics {
            writer.writeString(topic.name, flexible: flexible)
            writer.writeArrayCount(topic.partitions.count, flexible: flexible)
            for partition in topic.partitions { writer.writeInt32(partition) }
            writer.writeEmptyTaggedFields(flexible: flexible)
        }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }

    /// The partitions of one topic to add to the transaction.
    public struct Topic: Sendable, Hashable {
        /// Topic name.
        public var name: String
        /// Partition indexes.
        public var partitions: [Int32]

        /// Creates a topic entry.
        public init(name: String, partitions: [Int32]) {
            self.name = name
            self.partitions = partitions
        }
    }
}

/// AddPartitionsToTxn response (key 24), versions 0–3.
///
///     throttle_time_ms:INT32
///     results_by_topic:[name:STRING
///                       results_by_partition:[partition_index:INT32 partition_error_code:INT16 <tags v3+>]
///                       <tags v3+>] <tags v3+>
public struct AddPartitionsToTxnResponse: KafkaResponse, Equatable {
    /// Quota throttle time.
    public var throttleTimeMs: Int32
    /// One result per topic.
    public var results: [TopicResult]

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, results: [TopicResult] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.results = results
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 3
        throttleTimeMs = reader.readInt32()
        // A topic is at least a name length and a partition count.
        let n = reader.readArrayCount(flexible: flexible, minimumElementSize: flexible ? 2 : 6)
        results = reader.readArray(count: n) { r in
            let name = r.readString(flexible: flexible)
            let m = r.readArrayCount(flexible: flexible, minimumElementSize: 6)
            let partitions = r.readArray(count: m) { p in
                let result = PartitionResult(partitionIndex: p.readInt32(), errorCode: p.readInt16())
                p.skipTaggedFields(flexible: flexible)
                return result
            }
            r.skipTaggedFields(flexible: flexible)
            return TopicResult(name: name, partitions: partitions)
        }
        reader.skipTaggedFields(flexible: flexible)
    }

    /// The outcome for one topic.
    public struct TopicResult: Sendable, Hashable {
        /// Topic name.
        public var name: String
        /// One result per partition.
        public var partitions: [PartitionResult]

        /// Creates a topic result.
        public init(name: String, partitions: [PartitionResult]) {
            self.name = name
            self.partitions = partitions
        }
    }

    /// The outcome for one partition.
    public struct PartitionResult: Sendable, Hashable {
        /// Partition index.
        public var partitionIndex: Int32
        /// The error, 0 on success.
        public var errorCode: Int16

        /// Creates a partition result.
        public init(partitionIndex: Int32, errorCode: Int16 = 0) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
        }
    }
}
