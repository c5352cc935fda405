/// CreateTopics request (key 19), versions 2–7; flexible from v5. Must go to the controller
/// (or, with KRaft, any broker, which forwards it).
///
///     topics:[name:STRING num_partitions:INT32 replication_factor:INT16
///             assignments:[partition_index:INT32 broker_ids:[INT32] <tags>]
///             configs:[name:STRING value:NULLABLE_STRING <tags>] <tags>]
///     timeout_ms:INT32 validate_only:BOOL <tags>
public struct CreateTopicsRequest: KafkaRequest, Equatable {
    /// Answered by ``CreateTopicsResponse``.
    public typealias Response = CreateTopicsResponse
    /// Key 19.
    public static let apiKey = ApiKey.createTopics
    /// v2 through v7.
    public static let supportedVersions: ClosedRange<Int16> = 2...7
    /// v5.
    public static let firstFlexibleVersion: Int16 = 5

    /// The topics to create.
    public var topics: [Topic]
    /// How long the broker waits for the topics to be created before answering.
    public var timeoutMs: Int32
    /// Only validate the request; create nothing.
    public var validateOnly: Bool

    /// Creates the request.
    public init(topics: [Topic], timeoutMs: Int32 = 30000, validateOnly: Bool = false) {
        self.topics = topics
        self.timeoutMs = timeoutMs
        self.validateOnly = validateOnly
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 5
        writer.writeArrayCount(topics.count, flexible: flexible)
        for topic in topics {
            writer.writeString(topic.name, flexible: flexible)
            writer.writeInt32(topic.numPartitions)
            writer.writeInt16(topic.replicationFactor)
            writer.writeArrayCount(topic.assignments.count, flexible: flexible)
            for a in topic.assignments {
                writer.writeInt32(a.partitionIndex)
                writer.writeArrayCount(a.brokerIDs.count, flexible: flexible)
                for id in a.brokerIDs { writer.writeInt32(id) }
                writer.writeEmptyTaggedFields(flexible: flexible)
            }
            writer.writeArrayCount(topic.configs.count, flexible: flexible)
            for c in topic.configs {
                writer.writeString(c.name, flexible: flexible)
                writer.writeNullableString(c.value, flexible: flexible)
                writer.writeEmptyTaggedFields(flexible: flexible)
            }
            writer.writeEmptyTaggedFields(flexible: flexible)
        }
        writer.writeInt32(timeoutMs)
        writer.writeBool(validateOnly)
        writer.writeEmptyTaggedFields(flexible: flexible)
    }

    /// One topic to create.
    public struct Topic: Sendable, Equatable {
        /// Topic name.
        public var name: String
        /// Partition count, or -1 for the broker default (or when ``assignments`` is given).
        public var numPartitions: Int32
        /// Replication factor, or -1 for the broker default (or when ``assignments`` is given).
        public var replicationFactor: Int16
        /// Manual replica placement; empty for automatic placement.
        public var assignments: [Assignment]
        /// Topic configuration overrides.
        public var configs: [Config]

        /// Creates a topic entry.
        public init(name: String, numPartitions: Int32 = -1, replicationFactor: Int16 = -1,
                    assignments: [Assignment] = [], configs: [Config] = []) {
            self.name = name
            self.numPartitions = numPartitions
            self.replicationFactor = replicationFactor
            self.assignments = assignments
            self.configs = configs
        }
    }

    /// The brokers one partition is placed on.
    public struct Assignment: Sendable, Hashable {
        /// The partition number.
        public var partitionIndex: Int32
        /// Replica broker ids; the first is the preferred leader.
        public var brokerIDs: [Int32]

        /// Creates an assignment.
        public init(partitionIndex: Int32, brokerIDs: [Int32]) {
            self.partitionIndex = partitionIndex
            self.brokerIDs = brokerIDs
        }
    }

    /// A topic configuration override, e.g. `cleanup.policy=compact`.
    public struct Config: Sendable, Hashable {
        /// Configuration key.
        public var name: String
        /// Configuration value; `nil` for the default.
        public var value: String?

        /// Creates a config entry.
        public init(name: String, value: String?) {
            self.name = name
            self.value = value
        }
    }
}

/// CreateTopics response (key 19), versions 2–7.
///
///     throttle_time_ms:INT32
///     topics:[name:STRING topic_id:UUID (v7+) error_code:INT16 error_message:NULLABLE_STRING
///             num_partitions:INT32 (v5+) replication_factor:INT16 (v5+)
///             configs:[name:STRING value:NULLABLE_STRING read_only:BOOL config_source:INT8
///                      is_sensitive:BOOL <tags>] (v5+, nullable) <tags>] <tags>
///
/// The v5+ tagged `topic_config_error_code` (tag 0 of each topic) is skipped.
public struct CreateTopicsResponse: KafkaResponse, Equatable {
    /// Quota throttle time.
    public var throttleTimeMs: Int32
    /// One result per requested topic.
    public var topics: [Topic]

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, topics: [Topic] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.topics = topics
    }

    /// Decodes the body at `version`.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 5
        throttleTimeMs = reader.readInt32()
        let n = reader.readArrayCount(flexible: flexible, minimumElementSize: flexible ? 12 : 6)
        topics = reader.readArray(count: n) { Topic(from: &$0, version: version) }
        reader.skipTaggedFields(flexible: flexible)
    }

    /// The outcome for one topic.
    public struct Topic: Sendable, Equatable {
        /// Topic name.
        public var name: String
        /// The new topic's id (v7+; zero otherwise or on error).
        public var topicID: KafkaUUID
        /// Error, e.g. `TOPIC_ALREADY_EXISTS` (36).
        public var errorCode: Int16
        /// Error details, if any.
        public var errorMessage: String?
        /// Partition count (v5+; -1 otherwise).
        public var numPartitions: Int32
        /// Replication factor (v5+; -1 otherwise).
        public var replicationFactor: Int16
        /// The topic's resulting configuration (v5+; empty when null, e.g. not authorized).
        public var configs: [Config]

        /// Creates a result.
        public init(name: String, topicID: KafkaUUID = .zero, errorCode: Int16 = 0, errorMessage: String? = nil,
                    numPartitions: Int32 = -1, replicationFactor: Int16 = -1, configs: [Config] = []) {
            self.name = name
            self.topicID = topicID
            self.errorCode = errorCode
            self.errorMessage = errorMessage
            self.numPartitions = numPartitions
            self.replicationFactor = replicationFactor
            self.configs = configs
        }

        init(from r: inout ByteReader, version: Int16) {
            let flexible = version >= 5
            name = r.readString(flexible: flexible)
            topicID = version >= 7 ? r.readUUID() : .zero
            errorCode = r.readInt16()
            errorMessage = r.readNullableString(flexible: flexible)
            guard flexible else {
                (numPartitions, replicationFactor, configs) = (-1, -1, [])
                return
            }
            numPartitions = r.readInt32()
            replicationFactor = r.readInt16()
            let n = r.readNullableArrayCount(flexible: true, minimumElementSize: 6) ?? 0
            configs = r.readArray(count: n) { r in
                let c = Config(name: r.readCompactString(), value: r.readCompactNullableString(),
                               readOnly: r.readBool(), configSource: r.readInt8(), isSensitive: r.readBool())
                r.skipTaggedFields()
                return c
            }
            r.skipTaggedFields()
        }
    }

    /// One configuration entry of a created topic.
    public struct Config: Sendable, Hashable {
        /// Configuration key.
        public var name: String
        /// Value; `nil` when sensitive or unset.
        public var value: String?
        /// Whether the value is read-only.
        public var readOnly: Bool
        /// Where the value comes from (Kafka's `ConfigSource` id), -1 when unknown.
        public var configSource: Int8
        /// Whether the value is sensitive (and so withheld).
        public var isSensitive: Bool

        /// Creates a config entry.
        public init(name: String, value: String?, readOnly: Bool = false, configSource: Int8 = -1,
                    isSensitive: Bool = false) {
            self.name = name
            self.value = value
            self.readOnly = readOnly
            self.configSource = configSource
            self.isSensitive = isSensitive
        }
    }
}
