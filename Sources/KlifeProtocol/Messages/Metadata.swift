/// Metadata request (key 3), versions 1–12; flexible from v9.
///
///     topics:[topic_id:UUID (v10+) name:STRING (nullable v10+) <tags>] (nullable: null = all topics)
///     allow_auto_topic_creation:BOOL (v4+)
///     include_cluster_authorized_operations:BOOL (v8–10)
///     include_topic_authorized_operations:BOOL (v8+) <tags>
///
/// Topics are requested by name; from v10 each is sent with the zero topic id.
/// Before v4 the broker decides about auto-creation on its own (it used to create).
public struct MetadataRequest: KafkaRequest, Equatable {
    /// Answered by ``MetadataResponse``.
    public typealias Response = MetadataResponse
    /// Key 3.
    public static let apiKey = ApiKey.metadata
    /// v1 through v12 (v0 cannot ask for "all topics" with a null array).
    public static let supportedVersions: ClosedRange<Int16> = 1...12
    /// v9.
    public static let firstFlexibleVersion: Int16 = 9

    /// Topic names to describe, or `nil` for every topic. An empty array asks for brokers only.
    public var topics: [String]?
    /// Whether the broker may create missing topics (sent from v4).
    public var allowAutoTopicCreation: Bool
    /// Ask for the cluster's authorized-operations bitfield (sent only in v8–10).
    public var includeClusterAuthorizedOperations: Bool
    /// Ask for each topic's authorized-operations bitfield (sent from v8).
    public var includeTopicAuthorizedOperations: Bool

    /// Creates the request.
    public init(
        topics: [String]?, allowAutoTopicCreation: Bool = false,
        includeClusterAuthorizedOperations: Bool = false, includeTopicAuthorizedOperations: Bool = false
    ) {
        self.topics = topics
        self.allowAutoTopicCreation = allowAutoTopicCreation
        self.includeClusterAuthorizedOperations = includeClusterAuthorizedOperations
        self.includeTopicAuthorizedOperations = includeTopicAuthorizedOperations
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 9
        writer.writeNullableArrayCount(topics?.count, flexible: flexible)
        for name in topics ?? [] {
            if version >= 10 { writer.writeUUID(.zero) }
            writer.writeString(name, flexible: flexible)
            writer.writeEmptyTaggedFields(flexible: flexible)
        }
        if version >= 4 { writer.writeBool(allowAutoTopicCreation) }
        if (8...10).contains(version) { writer.writeBool(includeClusterAuthorizedOperations) }
        if version >= 8 { writer.writeBool(includeTopicAuthorizedOperations) }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }
}

/// Metadata response (key 3), versions 1–12.
///
///     throttle_time_ms:INT32 (v3+)
///     brokers:[node_id:INT32 host:STRING port:INT32 rack:NULLABLE_STRING <tags>]
///     cluster_id:NULLABLE_STRING (v2+) controller_id:INT32
///     topics:[error_code:INT16 name:STRING (nullable v12+) topic_id:UUID (v10+) is_internal:BOOL
///             partitions:[error_code:INT16 partition_index:INT32 leader_id:INT32 leader_epoch:INT32 (v7+)
///                         replica_nodes:[INT32] isr_nodes:[INT32] offline_replicas:[INT32] (v5+) <tags>]
///             topic_authorized_operations:INT32 (v8+) <tags>]
///     cluster_authorized_operations:INT32 (v8–10) <tags>
public struct MetadataResponse: KafkaResponse, Equatable {
    /// Quota throttle time (v3+; 0 otherwise).
    public var throttleTimeMs: Int32
    /// Every live broker.
    public var brokers: [Broker]
    /// The cluster id (v2+; `nil` before or when unknown).
    public var clusterID: String?
    /// The controller's node id, -1 when unknown.
    public var controllerID: Int32
    /// The topics asked for (or all of them).
    public var topics: [Topic]
    /// Cluster authorized operations bitfield (v8–10 and only when asked; `Int32.min` otherwise).
    public var clusterAuthorizedOperations: Int32

    /// Creates a response.
    public init(
        throttleTimeMs: Int32 = 0, brokers: [Broker] = [], clusterID: String? = nil, controllerID: Int32 = -1,
        topics: [Topic] = [], clusterAuthorizedOperations: Int32 = .min
    ) {
        self.throttleTimeMs = throttleTimeMs
        self.brokers = brokers
        self.clusterID = clusterID
        self.controllerID = controllerID
        self.topics = topics
        self.clusterAuthorizedOperations = clusterAuthorizedOperations
    }

    /// Decodes the body at `version`.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 9
        throttleTimeMs = version >= 3 ? reader.readInt32() : 0
        let brokerCount = reader.readArrayCount(flexible: flexible, minimumElementSize: flexible ? 11 : 12)
        brokers = reader.readArray(count: brokerCount) { Broker(from: &$0, flexible: flexible) }
        clusterID = version >= 2 ? reader.readNullableString(flexible: flexible) : nil
        controllerID = reader.readInt32()
        let topicCount = reader.readArrayCount(flexible: flexible, minimumElementSize: flexible ? 10 : 9)
        topics = reader.readArray(count: topicCount) { Topic(from: &$0, version: version) }
        clusterAuthorizedOperations = (8...10).contains(version) ? reader.readInt32() : .min
        reader.skipTaggedFields(flexible: flexible)
    }

    /// A broker in the cluster.
    public struct Broker: Sendable, Hashable {
        /// The broker id.
        public var nodeID: Int32
        /// Advertised host name.
        public var host: String
        /// Advertised port.
        public var port: Int32
        /// The broker's rack, if configured.
        public var rack: String?

        /// Creates a broker entry.
        public init(nodeID: Int32, host: String, port: Int32, rack: String? = nil) {
            self.nodeID = nodeID
            self.host = host
            self.port = port
            self.rack = rack
        }

        init(from r: inout ByteReader, flexible: Bool) {
            nodeID = r.readInt32()
            host = r.readString(flexible: flexible)
            port = r.readInt32()
            rack = r.readNullableString(flexible: flexible)
            r.skipTaggedFields(flexible: flexible)
        }
    }

    /// Metadata for one topic.
    public struct Topic: Sendable, Equatable {
        /// Topic-level error (for example `UNKNOWN_TOPIC_OR_PARTITION`).
        public var errorCode: Int16
        /// The topic name; empty when the broker sent null (v12+, unknown topic looked up by id).
        public var name: String
        /// The topic id (v10+; zero before, or for unknown topics looked up by name).
        public var topicID: KafkaUUID
        /// Whether this is an internal topic such as `__consumer_offsets`.
        public var isInternal: Bool
        /// One entry per partition.
        public var partitions: [Partition]
        /// Topic authorized operations bitfield (v8+ and only when asked; `Int32.min` otherwise).
        public var topicAuthorizedOperations: Int32

        /// Creates a topic entry.
        public init(
            errorCode: Int16 = 0, name: String, topicID: KafkaUUID = .zero, isInternal: Bool = false,
            partitions: [Partition] = [], topicAuthorizedOperations: Int32 = .min
        ) {
            self.errorCode = errorCode
            self.name = name
            self.topicID = topicID
            self.isInternal = isInternal
            self.partitions = partitions
            self.topicAuthorizedOperations = topicAuthorizedOperations
        }

        init(from r: inout ByteReader, version: Int16) {
            let flexible = version >= 9
            errorCode = r.readInt16()
            name = version >= 12 ? (r.readNullableString(flexible: true) ?? "") : r.readString(flexible: flexible)
            topicID = version >= 10 ? r.readUUID() : .zero
            isInternal = r.readBool()
            let n = r.readArrayCount(flexible: flexible, minimumElementSize: 18)
            partitions = r.readArray(count: n) { Partition(from: &$0, version: version) }
            topicAuthorizedOperations = version >= 8 ? r.readInt32() : .min
            r.skipTaggedFields(flexible: flexible)
        }
    }

    /// Leadership and replicas of one partition.
    public struct Partition: Sendable, Hashable {
        /// Partition-level error (for example `LEADER_NOT_AVAILABLE`).
        public var errorCode: Int16
        /// The partition number.
        public var partitionIndex: Int32
        /// The leader's node id, -1 when there is none.
        public var leaderID: Int32
        /// The leader epoch (v7+; -1 otherwise).
        public var leaderEpoch: Int32
        /// All replicas.
        public var replicaNodes: [Int32]
        /// In-sync replicas.
        public var isrNodes: [Int32]
        /// Offline replicas (v5+; empty otherwise).
        public var offlineReplicas: [Int32]

        /// Creates a partition entry.
        public init(
            errorCode: Int16 = 0, partitionIndex: Int32, leaderID: Int32, leaderEpoch: Int32 = -1,
            replicaNodes: [Int32] = [], isrNodes: [Int32] = [], offlineReplicas: [Int32] = []
        ) {
            self.errorCode = errorCode
            self.partitionIndex = partitionIndex
            self.leaderID = leaderID
            self.leaderEpoch = leaderEpoch
            self.replicaNodes = replicaNodes
            self.isrNodes = isrNodes
            self.offlineReplicas = offlineReplicas
        }

        init(from r: inout ByteReader, version: Int16) {
            let flexible = version >= 9
            func nodes(_ r: inout ByteReader) -> [Int32] {
                r.readArray(count: r.readArrayCount(flexible: flexible, minimumElementSize: 4)) { $0.readInt32() }
            }
            errorCode = r.readInt16()
            partitionIndex = r.readInt32()
            leaderID = r.readInt32()
            leaderEpoch = version >= 7 ? r.readInt32() : -1
            replicaNodes = nodes(&r)
            isrNodes = nodes(&r)
            offlineReplicas = version >= 5 ? nodes(&r) : []
            r.skipTaggedFields(flexible: flexible)
        }
    }
}
