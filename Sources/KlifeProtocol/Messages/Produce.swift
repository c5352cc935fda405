/// Produce (API key 0), versions 3-12, in model form: used by tests, the embedded
/// broker and simple paths. The hot path streams its body with ``ProduceRequestWriter``
/// and produces the same bytes.
///
///     ProduceRequest => transactional_id:NULLABLE_STRING acks:INT16 timeout_ms:INT32
///                       [topics => name:STRING [partitions => index:INT32 records:NULLABLE_BYTES]]
///
/// Version 9+ is flexible: compact strings, arrays and bytes, and a tagged-field
/// section after each partition, each topic and the body. Versions 10-12 only add
/// response fields and error codes; 13 (topic ids) is not supported.
public struct ProduceRequest: KafkaRequest, Equatable {
    /// Response type.
    public typealias Response = ProduceResponse
    /// API key 0.
    public static var apiKey: ApiKey { .produce }
    /// Versions 3 (RecordBatch v2) through 12.
    public static var supportedVersions: ClosedRange<Int16> { 3...12 }
    /// Version 9 introduced the flexible encoding.
    public static var firstFlexibleVersion: Int16 { 9 }

    /// One partition's data.
    public struct Partition: Sendable, Equatable {
        /// The partition index.
        public var index: Int32
        /// One or more complete, pre-encoded RecordBatch v2 batches.
        public var records: [UInt8]
        /// Creates partition data.
        public init(index: Int32, records: [UInt8]) {
            self.index = index
            self.records = records
        }
    }

    /// One topic's partitions.
    public struct Topic: Sendable, Equatable {
        /// The topic name.
        public var name: String
        /// The partitions to produce to.
        public var partitions: [Partition]
        /// Creates topic data.
        public init(name: String, partitions: [Partition]) {
            self.name = name
            self.partitions = partitions
        }
    }

    /// Transactional id, `nil` unless the producer is transactional.
    public var transactionalID: String?
    /// 0 (no response), 1 (leader only) or -1 (all in-sync replicas).
    public var acks: Int16
    /// How long the broker waits for replication when `acks` is -1.
    public var timeoutMs: Int32
    /// The topics to produce to.
    public var topics: [Topic]

    /// Creates a request.
    public init(transactionalID: String? = nil, acks: Int16, timeoutMs: Int32, topics: [Topic]) {
        self.transactionalID = transactionalID
        self.acks = acks
        self.timeoutMs = timeoutMs
        self.topics = topics
    }

    /// Encodes the body through ``ProduceRequestWriter``, so both paths share one encoding.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        var body = ProduceRequestWriter(writer: &writer, version: version, transactionalID: transactionalID,
                                        acks: acks, timeoutMs: timeoutMs, topicCount: topics.count)
        for topic in topics {
            body.beginTopic(into: &writer, name: topic.name, partitionCount: topic.partitions.count)
            for partition in topic.partitions {
                body.beginPartition(into: &writer, index: partition.index, recordsByteCount: partition.records.count)
                writer.writeBytes(partition.records)
                body.endPartition(into: &writer)
            }
            body.endTopic(into: &writer)
        }
        body.finish(into: &writer)
    }

    /// Decodes a request body (the embedded broker's side). Check `reader.error` afterwards.
    /// A null records field decodes as empty.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = Self.isFlexible(version)
        transactionalID = reader.readNullableString(flexible: flexible)
        acks = reader.readInt16()
        timeoutMs = reader.readInt32()
        topics = reader.readArray(flexible: flexible) { r in
            let name = r.readString(flexible: flexible)
            let partitions = r.readArray(flexible: flexible) { r in
                let index = r.readInt32()
                let records = r.readNullableSizedBytes(flexible: flexible) ?? []
                r.skipTaggedFields(flexible: flexible)
                return Partition(index: index, records: records)
            }
            r.skipTaggedFields(flexible: flexible)
            return Topic(name: name, partitions: partitions)
        }
        reader.skipTaggedFields(flexible: flexible)
    }
}

/// The answer to a ``ProduceRequest`` (none is sent when `acks` is 0).
///
/// Fields absent at a version keep Kafka's defaults: `logAppendTimeMs` -1 and
/// `logStartOffset` -1 below their versions, `recordErrors` empty and
/// `errorMessage` nil below v8, `currentLeader` nil and `nodeEndpoints` empty below v10.
public struct ProduceResponse: KafkaResponse, Equatable {
    /// A record that made the broker drop its batch (v8+).
    public struct RecordError: Sendable, Equatable {
        /// Index of the record within its batch.
        public var batchIndex: Int32
        /// Why that record was rejected.
        public var message: String?
        /// Creates a record error.
        public init(batchIndex: Int32, message: String?) {
            self.batchIndex = batchIndex
            self.message = message
        }
    }

    /// The partition's current leader, sent with NOT_LEADER_OR_FOLLOWER (v10+, tag 0).
    public struct LeaderIDAndEpoch: Sendable, Equatable {
        /// Leader broker id, -1 when unknown.
        public var leaderID: Int32
        /// Leader epoch, -1 when unknown.
        public var leaderEpoch: Int32
        /// Creates a leader hint.
        public init(leaderID: Int32, leaderEpoch: Int32) {
            self.leaderID = leaderID
            self.leaderEpoch = leaderEpoch
        }
    }

    /// Address of a broker named in a ``LeaderIDAndEpoch`` (v10+, tag 0 of the body).
    public struct NodeEndpoint: Sendable, Equatable {
        /// Broker id.
        public var nodeID: Int32
        /// Host name.
        public var host: String
        /// Port.
        public var port: Int32
        /// Rack, when assigned.
        public var rack: String?
        /// Creates an endpoint.
        public init(nodeID: Int32, host: String, port: Int32, rack: String?) {
            self.nodeID = nodeID
            self.host = host
            self.port = port
            self.rack = rack
        }
    }

    /// One partition's outcome.
    public struct Partition: Sendable, Equatable {
        /// The partition index.
        public var index: Int32
        /// Kafka error code, 0 for success.
        public var errorCode: Int16
        /// Offset assigned to the first record of the (first) batch.
        public var baseOffset: Int64
        /// Broker append time for log-append-time topics, else -1.
        public var logAppendTimeMs: Int64
        /// The partition's log start offset (v5+), else -1.
        public var logStartOffset: Int64
        /// Records that caused the batch to be dropped (v8+).
        public var recordErrors: [RecordError]
        /// Summary of why the batch was dropped (v8+).
        public var errorMessage: String?
        /// New leader hint (v10+ tagged field).
        public var currentLeader: LeaderIDAndEpoch?

        /// Creates a partition result.
        public init(index: Int32, errorCode: Int16, baseOffset: Int64, logAppendTimeMs: Int64 = -1,
                    logStartOffset: Int64 = -1, recordErrors: [RecordError] = [], errorMessage: String? = nil,
                    currentLeader: LeaderIDAndEpoch? = nil) {
            self.index = index
            self.errorCode = errorCode
            self.baseOffset = baseOffset
            self.logAppendTimeMs = logAppendTimeMs
            self.logStartOffset = logStartOffset
            self.recordErrors = recordErrors
            self.errorMessage = errorMessage
            self.currentLeader = currentLeader
        }
    }

    /// One topic's partition outcomes.
    public struct Topic: Sendable, Equatable {
        /// The topic name.
        public var name: String
        /// The partitions.
        public var partitions: [Partition]
        /// Creates a topic result.
        public init(name: String, partitions: [Partition]) {
            self.name = name
            self.partitions = partitions
        }
    }

    /// Per-topic results.
    public var topics: [Topic]
    /// How long the request was throttled by a quota.
    public var throttleTimeMs: Int32
    /// Endpoints of the leaders named in `currentLeader` hints (v10+ tagged field).
    public var nodeEndpoints: [NodeEndpoint]

    /// Creates a response.
    public init(topics: [Topic], throttleTimeMs: Int32 = 0, nodeEndpoints: [NodeEndpoint] = []) {
        self.topics = topics
        self.throttleTimeMs = throttleTimeMs
        self.nodeEndpoints = nodeEndpoints
    }

    /// Decodes a response body at `version`. Check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= ProduceRequest.firstFlexibleVersion
        topics = reader.readArray(flexible: flexible) { r in
            let name = r.readString(flexible: flexible)
            let partitions = r.readArray(flexible: flexible) { r in
                Self.readPartition(&r, version: version, flexible: flexible)
            }
            r.skipTaggedFields(flexible: flexible)
            return Topic(name: name, partitions: partitions)
        }
        throttleTimeMs = reader.readInt32()
        nodeEndpoints = []
        guard flexible else { return }
        var endpoints: [NodeEndpoint] = []
        Self.readTaggedFields(&reader) { tag, r in
            guard tag == 0 else { return false }
            endpoints = r.readArray(flexible: true) { r in
                let endpoint = NodeEndpoint(nodeID: r.readInt32(), host: r.readCompactString(), port: r.readInt32(),
                                            rack: r.readCompactNullableString())
                r.skipTaggedFields()
                return endpoint
            }
            return true
        }
        nodeEndpoints = endpoints
    }

    static func readPartition(_ r: inout ByteReader, version: Int16, flexible: Bool) -> Partition {
        var p = Partition(index: r.readInt32(), errorCode: r.readInt16(), baseOffset: r.readInt64())
        p.logAppendTimeMs = r.readInt64()
        if version >= 5 { p.logStartOffset = r.readInt64() }
        if version >= 8 {
            p.recordErrors = r.readArray(flexible: flexible) { r in
                let e = RecordError(batchIndex: r.readInt32(), message: r.readNullableString(flexible: flexible))
                r.skipTaggedFields(flexible: flexible)
                return e
            }
            p.errorMessage = r.readNullableString(flexible: flexible)
        }
        if flexible {
            var leader: LeaderIDAndEpoch?
            readTaggedFields(&r) { tag, t in
                guard tag == 0 else { return false }
                leader = LeaderIDAndEpoch(leaderID: t.readInt32(), leaderEpoch: t.readInt32())
                t.skipTaggedFields()
                return true
            }
            p.currentLeader = leader
        }
        return p
    }

    /// Reads a tagged-field section, handing each field's bytes to `field`, which returns
    /// false for tags it does not know (skipped). A known field must consume exactly its size.
    static func readTaggedFields(_ reader: inout ByteReader, _ field: (UInt32, inout ByteReader) -> Bool) {
        let count = Int(reader.readUnsignedVarint())
        if count > reader.remaining { reader.fail(.invalidLength, "tagged field count \(count)"); return }
        for _ in 0..<count {
            let tag = reader.readUnsignedVarint()
            let size = Int(reader.readUnsignedVarint())
            let start = reader.offset
            var sub = reader.subReader(count: size)
            guard reader.error == nil else { return }
            let known = field(tag, &sub)
            if let error = sub.error {
                reader.fail(error.kind, "tagged field \(tag) at byte \(start + error.offset)")
                return
            }
            if known && !sub.isAtEnd { reader.fail(.invalidLength, "tagged field \(tag) size \(size)"); return }
        }
    }

    /// Encodes the body at `version` (the embedded broker's side).
    public func encode(into w: inout ByteWriter, version: Int16) {
        let flexible = version >= ProduceRequest.firstFlexibleVersion
        w.writeArrayCount(topics.count, flexible: flexible)
        for topic in topics {
            w.writeString(topic.name, flexible: flexible)
            w.writeArrayCount(topic.partitions.count, flexible: flexible)
            for p in topic.partitions {
                w.writeInt32(p.index)
                w.writeInt16(p.errorCode)
                w.writeInt64(p.baseOffset)
                w.writeInt64(p.logAppendTimeMs)
                if version >= 5 { w.writeInt64(p.logStartOffset) }
                if version >= 8 {
                    w.writeArrayCount(p.recordErrors.count, flexible: flexible)
                    for e in p.recordErrors {
                        w.writeInt32(e.batchIndex)
                        w.writeNullableString(e.message, flexible: flexible)
                        w.writeEmptyTaggedFields(flexible: flexible)
                    }
                    w.writeNullableString(p.errorMessage, flexible: flexible)
                }
                if flexible {
                    if let leader = p.currentLeader, version >= 10 {
                        w.writeUnsignedVarint(1)   // one tagged field
                        w.writeUnsignedVarint(0)   // tag 0: CurrentLeader
                        w.writeUnsignedVarint(9)   // size: two INT32 + empty tags
                        w.writeInt32(leader.leaderID)
                        w.writeInt32(leader.leaderEpoch)
                        w.writeEmptyTaggedFields()
                    } else {
                        w.writeEmptyTaggedFields()
                    }
                }
            }
            w.writeEmptyTaggedFields(flexible: flexible)
        }
        w.writeInt32(throttleTimeMs)
        guard flexible else { return }
        guard version >= 10, !nodeEndpoints.isEmpty else { w.writeEmptyTaggedFields(); return }
        var field = ByteWriter(capacity: 64)
        field.writeArrayCount(nodeEndpoints.count, flexible: true)
        for e in nodeEndpoints {
            field.writeInt32(e.nodeID)
            field.writeCompactString(e.host)
            field.writeInt32(e.port)
            field.writeCompactNullableString(e.rack)
            field.writeEmptyTaggedFields()
        }
        w.writeUnsignedVarint(1)                   // one tagged field
        w.writeUnsignedVarint(0)                   // tag 0: NodeEndpoints
        w.writeUnsignedVarint(UInt32(field.count))
        field.withUnsafeBytes { w.writeBytes($0) }
    }
}
