/// DeleteTopics request (key 20), versions 1–6; flexible from v4.
///
///     v1–5: topic_names:[STRING] timeout_ms:INT32 <tags v4+>
///     v6:   topics:[name:COMPACT_NULLABLE_STRING topic_id:UUID <tags>] timeout_ms:INT32 <tags>
///
/// Topics are deleted by name; in v6 each name is sent with the zero topic id.
///
/// Per-topic outcomes worth knowing: `REQUEST_TIMED_OUT` (7) means the deletion started but
/// did not finish within ``timeoutMs`` (it normally completes later), and
/// `TOPIC_DELETION_DISABLED` (73) means the cluster has `delete.topic.enable=false`.
public struct DeleteTopicsRequest: KafkaRequest, Equatable {
    /// Answered by ``DeleteTopicsResponse``.
    public typealias Response = DeleteTopicsResponse
    /// Key 20.
    public static let apiKey = ApiKey.deleteTopics
    /// v1 through v6.
    public static let supportedVersions: ClosedRange<Int16> = 1...6
    /// v4.
    public static let firstFlexibleVersion: Int16 = 4

    /// Names of the topics to delete.
    public var topicNames: [String]
    /// How long the broker waits for the deletions before answering.
    public var timeoutMs: Int32

    /// Creates the request.
    public init(topicNames: [String], timeoutMs: Int32 = 30000) {
        self.topicNames = topicNames
        self.timeoutMs = timeoutMs
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 4
        writer.writeArrayCount(topicNames.count, flexible: flexible)
        for name in topicNames {
            if version >= 6 {
                writer.writeCompactNullableString(name)
                writer.writeUUID(.zero)
                writer.writeEmptyTaggedFields()
            } else {
                writer.writeString(name, flexible: flexible)
            }
        }
        writer.writeInt32(timeoutMs)
        writer.writeEmptyTaggedFields(flexible: flexible)
    }
}

/// DeleteTopics response (key 20), versions 1–6.
///
///     throttle_time_ms:INT32
///     responses:[name:STRING (nullable v6+) topic_id:UUID (v6+) error_code:INT16
///                error_message:NULLABLE_STRING (v5+) <tags v4+>] <tags v4+>
public struct DeleteTopicsResponse: KafkaResponse, Equatable {
    /// Quota throttle time.
    public var throttleTimeMs: Int32
    /// One result per topic.
    public var responses: [Result]

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, responses: [Result] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.responses = responses
    }

    /// Decodes the body at `version`.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 4
        throttleTimeMs = reader.readInt32()
        let n = reader.readArrayCount(flexible: flexible, minimumElementSize: 4)
        responses = reader.readArray(count: n) { r in
            let name = version >= 6 ? r.readCompactNullableString() : r.readString(flexible: flexible)
            let result = Result(
                name: name, topicID: version >= 6 ? r.readUUID() : .zero, errorCode: r.readInt16(),
                errorMessage: version >= 5 ? r.readCompactNullableString() : nil)
            r.skipTaggedFields(flexible: flexible)
            return result
        }
        reader.skipTaggedFields(flexible: flexible)
    }

    /// The outcome for one topic.
    public struct Result: Sendable, Hashable {
        /// Topic name; `nil` only in v6+ for an unknown topic deleted by id.
        public var name: String?
        /// Topic id (v6+; zero otherwise).
        public var topicID: KafkaUUID
        /// Error, e.g. `UNKNOWN_TOPIC_OR_PARTITION` (3).
        public var errorCode: Int16
        /// Error details (v5+), if any.
        public var errorMessage: String?

        /// Creates a result.
        public init(name: String?, topicID: KafkaUUID = .zero, errorCode: Int16 = 0, errorMessage: String? = nil) {
            self.name = name
            self.topicID = topicID
            self.errorCode = errorCode
            self.errorMessage = errorMessage
        }
    }
}
