/// ShareAcknowledge request (key 79), version 1; flexible in every version (KIP-932).
///
///     group_id:COMPACT_NULLABLE_STRING member_id:COMPACT_NULLABLE_STRING share_session_epoch:INT32
///     topics:[topic_id:UUID
///             partitions:[partition_index:INT32
///                         acknowledgement_batches:[first_offset:INT64 last_offset:INT64
///                                                  acknowledge_types:[INT8] <tags>] <tags>] <tags>]
///     <tags>
///
/// Settles acquired records without fetching more, inside the share session that the
/// broker which delivered them opened for this member: it takes the session's next epoch
/// (it never opens a session: epoch 0 is refused), or -1 to settle and close the session.
public struct ShareAcknowledgeRequest: KafkaRequest, Equatable {
    /// Answered by ``ShareAcknowledgeResponse``.
    public typealias Response = ShareAcknowledgeResponse
    /// Key 79.
    public static let apiKey = ApiKey.shareAcknowledge
    /// v1 only (the first stable version).
    public static let supportedVersions: ClosedRange<Int16> = 1...1
    /// Every version is flexible.
    public static let firstFlexibleVersion: Int16 = 0

    /// The share group id.
    public var groupID: String?
    /// The member id.
    public var memberID: String?
    /// The next epoch of the share session, or -1 to close it.
    public var shareSessionEpoch: Int32
    /// The acknowledgements, by topic and partition.
    public var topics: [ShareFetchRequest.Topic]

    /// Creates the request.
    public init(groupID: String?, memberID: String?, shareSessionEpoch: Int32, topics: [ShareFetchRequest.Topic]) {
        self.groupID = groupID
        self.memberID = memberID
        self.shareSessionEpoch = shareSessionEpoch
        self.topics = topics
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        writer.writeCompactNullableString(groupID)
        writer.writeCompactNullableString(memberID)
        writer.writeInt32(shareSessionEpoch)
        ShareFetchRequest.Topic.encode(topics, into: &writer)
        writer.writeEmptyTaggedFields()
    }
}

/// ShareAcknowledge response (key 79), version 1.
///
///     throttle_time_ms:INT32 error_code:INT16 error_message:COMPACT_NULLABLE_STRING
///     responses:[topic_id:UUID
///                partitions:[partition_index:INT32 error_code:INT16 error_message:COMPACT_NULLABLE_STRING
///                            current_leader:(leader_id:INT32 leader_epoch:INT32 <tags>) <tags>] <tags>]
///     node_endpoints:[node_id:INT32 host:COMPACT_STRING port:INT32 rack:COMPACT_NULLABLE_STRING <tags>]
///     <tags>
public struct ShareAcknowledgeResponse: KafkaResponse, Equatable {
    /// Quota throttle time.
    public var throttleTimeMs: Int32
    /// Top-level error, e.g. `INVALID_SHARE_SESSION_EPOCH`.
    public var errorCode: Int16
    /// Error details, if any.
    public var errorMessage: String?
    /// Results per topic.
    public var responses: [Topic]
    /// Endpoints of the leaders named in partitions' ``Partition/currentLeader``.
    public var nodeEndpoints: [FetchResponse.NodeEndpoint]

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, errorCode: Int16 = 0, errorMessage: String? = nil, responses: [Topic] = [],
                nodeEndpoints: [FetchResponse.NodeEndpoint] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.responses = responses
        self.nodeEndpoints = nodeEndpoints
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        throttleTimeMs = reader.readInt32()
        errorCode = reader.readInt16()
        errorMessage = reader.readCompactNullableString()
        responses = Topic.readArray(from: &reader, partitionMinimumSize: 17) { r in
            let partition = Partition(partitionIndex: r.readInt32(), errorCode: r.readInt16(),
                                      errorMessage: r.readCompactNullableString(),
                                      currentLeader: ShareLeaderIDAndEpoch(shareFrom: &r))
            r.skipTaggedFields()
            return partition
        }
        nodeEndpoints = ShareFetchResponse.readNodeEndpoints(&reader)
        reader.skipTaggedFields()
    }

    /// Results for one topic, by partition.
    public typealias Topic = ShareTopic<Partition>

    /// The acknowledgement result for one partition.
    public struct Partition: Sendable, Hashable {
        /// The partition index.
        public var partitionIndex: Int32
        /// The error, 0 when every acknowledgement was applied.
        public var errorCode: Int16
        /// Error details, if any.
        public var errorMessage: String?
        /// The current leader; -1/-1 unless the error says the leader moved.
        public var currentLeader: ShareLeaderIDAndEpoch

        /// Creates a partition entry.
        public init(partitionIndex: Int32, errorCode: Int16 = 0, errorMessage: String? = nil,
                    currentLeader: ShareLeaderIDAndEpoch = .init(leaderID: -1, leaderEpoch: -1)) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
            self.errorMessage = errorMessage
            self.currentLeader = currentLeader
        }
    }
}
