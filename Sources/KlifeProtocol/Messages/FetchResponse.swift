/// Fetch response (key 1), versions 4–17; flexible from v12.
///
///     throttle_time_ms:INT32 error_code:INT16 (v7+) session_id:INT32 (v7+)
///     responses:[topic:STRING (v4–12) | topic_id:UUID (v13+)
///                partitions:[partition_index:INT32 error_code:INT16 high_watermark:INT64
///                            last_stable_offset:INT64 log_start_offset:INT64 (v5+)
///                            aborted_transactions:[producer_id:INT64 first_offset:INT64 <tags>] (nullable)
///                            preferred_read_replica:INT32 (v11+) records:RECORDS (nullable)
///                            <tags: 0 diverging_epoch, 1 current_leader, 2 snapshot_id>] <tags>]
///     <tags: 0 node_endpoints (v16+)>
///
/// Decoded tagged fields: the partition's `current_leader` (tag 1) and the top-level
/// `node_endpoints` (tag 0, v16+), which together let a consumer follow a leader change
/// without a Metadata round trip (KIP-951). `diverging_epoch` and `snapshot_id` are
/// follower concerns and skipped, as are unknown tags; every tag's declared size is honoured.
public struct FetchResponse: KafkaResponse, Equatable {
    /// Quota throttle time.
    public var throttleTimeMs: Int32
    /// Top-level error (v7+), e.g. `FETCH_SESSION_ID_NOT_FOUND` (70).
    public var errorCode: Int16
    /// The fetch session id (v7+), 0 when not in a session.
    public var sessionID: Int32
    /// Data per topic.
    public var responses: [Topic]
    /// Endpoints of the new leaders named in ``Partition/currentLeader`` (v16+; empty otherwise).
    public var nodeEndpoints: [NodeEndpoint]

    /// A broker endpoint; the same shape as a Metadata broker entry.
    public typealias NodeEndpoint = MetadataResponse.Broker

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, errorCode: Int16 = 0, sessionID: Int32 = 0, responses: [Topic] = [],
                nodeEndpoints: [NodeEndpoint] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.sessionID = sessionID
        self.responses = responses
        self.nodeEndpoints = nodeEndpoints
    }

    /// Decodes the body at `version`.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 12
        throttleTimeMs = reader.readInt32()
        errorCode = version >= 7 ? reader.readInt16() : 0
        sessionID = version >= 7 ? reader.readInt32() : 0
        let n = reader.readArrayCount(flexible: flexible, minimumElementSize: flexible ? 3 : 6)
        responses = reader.readArray(count: n) { r in
            let name = version <= 12 ? r.readString(flexible: flexible) : ""
            let topicID = version >= 13 ? r.readUUID() : .zero
            let count = r.readArrayCount(flexible: flexible, minimumElementSize: 30)
            let partitions = r.readArray(count: count) { Partition(from: &$0, version: version) }
            r.skipTaggedFields(flexible: flexible)
            return Topic(name: name, topicID: topicID, partitions: partitions)
        }
        var endpoints: [NodeEndpoint] = []
        if flexible {
            Self.readTaggedFields(&reader) { tag, r in
                guard tag == 0 && version >= 16 else { return }
                let count = r.readArrayCount(flexible: true, minimumElementSize: 11)
                endpoints = r.readArray(count: count) { NodeEndpoint(from: &$0, flexible: true) }
            }
        }
        nodeEndpoints = endpoints
    }

    /// Reads a tagged-field section, handing each field's payload to `body` as a reader
    /// bounded by the declared size. Errors inside a payload are reported on `reader`.
    private static func readTaggedFields(_ reader: inout ByteReader, _ body: (UInt32, inout ByteReader) -> Void) {
        let n = Int(reader.readUnsignedVarint())
        if n > reader.remaining { reader.fail(.invalidLength, "tagged field count \(n)"); return }
        for _ in 0..<n {
            let tag = reader.readUnsignedVarint()
            let size = Int(reader.readUnsignedVarint())
            var payload = reader.subReader(count: size)
            guard reader.error == nil else { return }
            body(tag, &payload)
            if let e = payload.error { reader.fail(e.kind, "in tagged field \(tag) at +\(e.offset)") }
        }
    }

    /// Data for one topic.
    public struct Topic: Sendable, Equatable {
        /// Topic name (v4–12; empty from v13).
        public var name: String
        /// Topic id (v13+; zero before).
        public var topicID: KafkaUUID
        /// Data per partition.
        public var partitions: [Partition]

        /// Creates a topic entry.
        public init(name: String = "", topicID: KafkaUUID = .zero, partitions: [Partition] = []) {
            self.name = name
            self.topicID = topicID
            self.partitions = partitions
        }
    }

    /// Data and offsets for one partition.
    public struct Partition: Sendable, Hashable {
        /// The partition number.
        public var partitionIndex: Int32
        /// Partition-level error, e.g. `OFFSET_OUT_OF_RANGE` (1).
        public var errorCode: Int16
        /// The high watermark: one past the last committed offset.
        public var highWatermark: Int64
        /// The last stable offset (read-committed visibility limit); -1 when unknown.
        public var lastStableOffset: Int64
        /// The log start offset (v5+; -1 otherwise).
        public var logStartOffset: Int64
        /// Aborted transactions overlapping the returned data (read committed only); `nil` when null.
        public var abortedTransactions: [AbortedTransaction]?
        /// Replica to fetch from next time (KIP-392; v11+), -1 for none.
        public var preferredReadReplica: Int32
        /// Raw record batches, copied out of the response into a block of their own (pooled when
        /// large: see ``ByteBlock``); empty when null. May end in a partial batch.
        public var recordBlock: ByteBlock
        /// ``recordBlock``'s bytes in a new array (tests and tools; readers index the block).
        public var records: [UInt8] {
            get { recordBlock.bytes }
            set { recordBlock = ByteBlock(newValue) }
        }
        /// The new leader when ``errorCode`` is `NOT_LEADER_OR_FOLLOWER` or `FENCED_LEADER_EPOCH` (v12+ tag 1).
        public var currentLeader: LeaderIDAndEpoch?

        /// Creates a partition entry.
        public init(
            partitionIndex: Int32, errorCode: Int16 = 0, highWatermark: Int64 = -1, lastStableOffset: Int64 = -1,
            logStartOffset: Int64 = -1, abortedTransactions: [AbortedTransaction]? = nil,
            preferredReadReplica: Int32 = -1, records: [UInt8] = [], currentLeader: LeaderIDAndEpoch? = nil
        ) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
            self.highWatermark = highWatermark
            self.lastStableOffset = lastStableOffset
            self.logStartOffset = logStartOffset
            self.abortedTransactions = abortedTransactions
            self.preferredReadReplica = preferredReadReplica
            self.recordBlock = records.isEmpty ? .empty : ByteBlock(records)
            self.currentLeader = currentLeader
        }

        init(from r: inout ByteReader, version: Int16) {
            let flexible = version >= 12
            partitionIndex = r.readInt32()
            errorCode = r.readInt16()
            highWatermark = r.readInt64()
            lastStableOffset = r.readInt64()
            logStartOffset = version >= 5 ? r.readInt64() : -1
            if let n = r.readNullableArrayCount(flexible: flexible, minimumElementSize: 16) {
                abortedTransactions = r.readArray(count: n) { r in
                    let t = AbortedTransaction(producerID: r.readInt64(), firstOffset: r.readInt64())
                    r.skipTaggedFields(flexible: flexible)
                    return t
                }
            } else {
                abortedTransactions = nil
            }
            preferredReadReplica = version >= 11 ? r.readInt32() : -1
            recordBlock = r.readNullableSizedBlock(flexible: flexible) ?? .empty
            var leader: LeaderIDAndEpoch?
            if flexible {
                FetchResponse.readTaggedFields(&r) { tag, r in
                    guard tag == 1 else { return }
                    leader = LeaderIDAndEpoch(leaderID: r.readInt32(), leaderEpoch: r.readInt32())
                    r.skipTaggedFields()
                }
            }
            currentLeader = leader
        }
    }

    /// A transaction whose records in the returned data must be dropped in read-committed mode.
    public struct AbortedTransaction: Sendable, Hashable {
        /// The producer id of the aborted transaction.
        public var producerID: Int64
        /// The first offset of the aborted transaction.
        public var firstOffset: Int64

        /// Creates an entry.
        public init(producerID: Int64, firstOffset: Int64) {
            self.producerID = producerID
            self.firstOffset = firstOffset
        }
    }

    /// A partition leader as known by the responding broker.
    public struct LeaderIDAndEpoch: Sendable, Hashable {
        /// The leader's broker id, -1 when unknown.
        public var leaderID: Int32
        /// The leader epoch, -1 when unknown.
        public var leaderEpoch: Int32

        /// Creates an entry.
        public init(leaderID: Int32, leaderEpoch: Int32) {
            self.leaderID = leaderID
            self.leaderEpoch = leaderEpoch
        }
    }
}
