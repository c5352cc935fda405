/// ShareFetch response (key 78), version 1.
///
///     throttle_time_ms:INT32 error_code:INT16 error_message:COMPACT_NULLABLE_STRING
///     acquisition_lock_timeout_ms:INT32 (v1+)
///     responses:[topic_id:UUID
///                partitions:[partition_index:INT32 error_code:INT16 error_message:COMPACT_NULLABLE_STRING
///                            acknowledge_error_code:INT16 acknowledge_error_message:COMPACT_NULLABLE_STRING
///                            current_leader:(leader_id:INT32 leader_epoch:INT32 <tags>)
///                            records:COMPACT_NULLABLE_RECORDS
///                            acquired_records:[first_offset:INT64 last_offset:INT64
///                                              delivery_count:INT16 <tags>] <tags>] <tags>]
///     node_endpoints:[node_id:INT32 host:COMPACT_STRING port:INT32 rack:COMPACT_NULLABLE_STRING <tags>]
///     <tags>
///
/// `records` holds whole record batches, which may contain offsets this member did not
/// acquire (another member holds them, or they were already settled): only the offsets
/// inside `acquired_records` belong to the member, each range with its delivery count.
public struct ShareFetchResponse: KafkaResponse, Equatable {
    /// Quota throttle time.
    public var throttleTimeMs: Int32
    /// Top-level error, e.g. `INVALID_SHARE_SESSION_EPOCH` or `SHARE_SESSION_NOT_FOUND`.
    public var errorCode: Int16
    /// Error details, if any.
    public var errorMessage: String?
    /// How long the member holds each acquired record before the broker takes it back (v1+).
    public var acquisitionLockTimeoutMs: Int32
    /// Data per topic.
    public var responses: [Topic]
    /// Endpoints of the leaders named in partitions' ``Partition/currentLeader``.
    public var nodeEndpoints: [FetchResponse.NodeEndpoint]

    /// Creates a response.
    public init(
        throttleTimeMs: Int32 = 0, errorCode: Int16 = 0, errorMessage: String? = nil,
        acquisitionLockTimeoutMs: Int32 = 0, responses: [Topic] = [], nodeEndpoints: [FetchResponse.NodeEndpoint] = []
    ) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.acquisitionLockTimeoutMs = acquisitionLockTimeoutMs
        self.responses = responses
        self.nodeEndpoints = nodeEndpoints
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        throttleTimeMs = reader.readInt32()
        errorCode = reader.readInt16()
        errorMessage = reader.readCompactNullableString()
        acquisitionLockTimeoutMs = version >= 1 ? reader.readInt32() : 0
        // A partition is at least 4+2+1+2+1+8+1 (leader tags)+1+1+1 bytes.
        responses = Topic.readArray(from: &reader, partitionMinimumSize: 22) { Partition(from: &$0) }
        nodeEndpoints = Self.readNodeEndpoints(&reader)
        reader.skipTaggedFields()
    }

    /// Reads the `node_endpoints` array of a share response; check `reader.error` afterwards.
    static func readNodeEndpoints(_ reader: inout ByteReader) -> [FetchResponse.NodeEndpoint] {
        let count = reader.readArrayCount(flexible: true, minimumElementSize: 11)
        return reader.readArray(count: count) { FetchResponse.NodeEndpoint(from: &$0, flexible: true) }
    }

    /// Data for one topic, by partition.
    public typealias Topic = ShareTopic<Partition>

    /// Records and acquisitions for one partition.
    public struct Partition: Sendable, Hashable {
        /// The partition index.
        public var partitionIndex: Int32
        /// The fetch error, 0 when records could be fetched.
        public var errorCode: Int16
        /// Fetch error details, if any.
        public var errorMessage: String?
        /// The error of the acknowledgements this request carried for the partition, 0 if none.
        public var acknowledgeErrorCode: Int16
        /// Acknowledgement error details, if any.
        public var acknowledgeErrorMessage: String?
        /// The current leader; -1/-1 unless the error says the leader moved.
        public var currentLeader: ShareLeaderIDAndEpoch
        /// Raw record batches, copied out of the response into a block of their own (pooled when
        /// large: see ``ByteBlock``); empty when null.
        public var recordBlock: ByteBlock
        /// ``recordBlock``'s bytes in a new array (tests and tools; readers index the block).
        public var records: [UInt8] {
            get { recordBlock.bytes }
            set { recordBlock = ByteBlock(newValue) }
        }
        /// The offset ranges this member acquired, each with its delivery count.
        public var acquiredRecords: [AcquiredRecords]

        /// Creates a partition entry.
        public init(
            partitionIndex: Int32, errorCode: Int16 = 0, errorMessage: String? = nil, acknowledgeErrorCode: Int16 = 0,
            acknowledgeErrorMessage: String? = nil,
            currentLeader: ShareLeaderIDAndEpoch = .init(leaderID: -1, leaderEpoch: -1), records: [UInt8] = [],
            acquiredRecords: [AcquiredRecords] = []
        ) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
            self.errorMessage = errorMessage
            self.acknowledgeErrorCode = acknowledgeErrorCode
            self.acknowledgeErrorMessage = acknowledgeErrorMessage
            self.currentLeader = currentLeader
            self.recordBlock = records.isEmpty ? .empty : ByteBlock(records)
            self.acquiredRecords = acquiredRecords
        }

        init(from r: inout ByteReader) {
            partitionIndex = r.readInt32()
            errorCode = r.readInt16()
            errorMessage = r.readCompactNullableString()
            acknowledgeErrorCode = r.readInt16()
            acknowledgeErrorMessage = r.readCompactNullableString()
            currentLeader = ShareLeaderIDAndEpoch(shareFrom: &r)
            recordBlock = r.readNullableSizedBlock(flexible: true) ?? .empty
            let n = r.readArrayCount(flexible: true, minimumElementSize: 19)
            acquiredRecords = r.readArray(count: n) { r in
                let range = AcquiredRecords(firstOffset: r.readInt64(), lastOffset: r.readInt64(),
                                            deliveryCount: r.readInt16())
                r.skipTaggedFields()
                return range
            }
            r.skipTaggedFields()
        }
    }

    /// A range of offsets the member acquired, all delivered the same number of times.
    ///
    ///     first_offset:INT64 last_offset:INT64 delivery_count:INT16 <tags>
    public struct AcquiredRecords: Sendable, Hashable {
        /// The first acquired offset.
        public var firstOffset: Int64
        /// The last acquired offset (inclusive).
        public var lastOffset: Int64
        /// How many times these records have been delivered, this delivery included (1 first time).
        public var deliveryCount: Int16

        /// Creates a range.
        public init(firstOffset: Int64, lastOffset: Int64, deliveryCount: Int16) {
            self.firstOffset = firstOffset
            self.lastOffset = lastOffset
            self.deliveryCount = deliveryCount
        }
    }
}
