/// A Kafka protocol error code, as carried in the `error_code` fields of responses.
///
/// Every code Kafka defines (`org.apache.kafka.common.protocol.Errors`, -1 through 133)
/// has a constant below; those constants are the one table of names and retriability.
/// Unknown codes are still representable: their ``name`` is `UNKNOWN_CODE_<n>` and they
/// are never retriable.
///
/// ``isRetriable`` follows the Java client: a code is retriable when its exception extends
/// `RetriableException` (often through `InvalidMetadataException`, which means "refresh
/// metadata, then retry"). Group-membership errors (rebalance, unknown member) are not
/// retriable in that sense: they are handled by rejoining, not by resending.
///
/// Equality and hashing use ``rawValue`` only.
///
/// Note: ``none`` (code 0) shares its name with `Optional.none`; where an optional is
/// involved write `KafkaErrorCode.none` in full.
public struct KafkaErrorCode: Hashable, Sendable, CustomStringConvertible {
    /// The code as it appears on the wire.
    public let rawValue: Int16
    private let knownName: StaticString
    private let retriable: Bool

    /// Wraps a code read from the wire; codes missing from the table are allowed.
    public init(rawValue: Int16) {
        if Self.knownRange.contains(rawValue) {
            self = Self.allKnown[Int(rawValue) - Int(Self.knownRange.lowerBound)]
        } else {
            self.init(rawValue, "", false)
        }
    }

    /// Creates the error code for a raw `error_code` field.
    @inlinable
    public init(_ rawValue: Int16) { self.init(rawValue: rawValue) }

    private init(_ code: Int16, _ name: StaticString, _ retriable: Bool) {
        self.rawValue = code
        self.knownName = name
        self.retriable = retriable
    }

    /// Kafka's upper-case name, e.g. `NOT_LEADER_OR_FOLLOWER`, or `UNKNOWN_CODE_<n>`.
    public var name: String {
        knownName.utf8CodeUnitCount == 0 ? "UNKNOWN_CODE_\(rawValue)" : knownName.description
    }

    /// Whether the Java client treats this error as retriable (a `RetriableException`).
    public var isRetriable: Bool { retriable }

    /// Whether this code is in the table of codes Kafka defines.
    public var isKnown: Bool { knownName.utf8CodeUnitCount != 0 }

    /// Whether this is code 0, `NONE`.
    public var isSuccess: Bool { rawValue == 0 }

    /// `NAME (code)`, e.g. `NOT_LEADER_OR_FOLLOWER (6)`.
    public var description: String { "\(name) (\(rawValue))" }

    /// Compares raw values.
    public static func == (a: Self, b: Self) -> Bool { a.rawValue == b.rawValue }

    /// Hashes the raw value.
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }

    /// The lowest and highest codes Kafka defines.
    public static let knownRange: ClosedRange<Int16> = -1...133

    /// Every known code in ascending order, one per value in ``knownRange``.
    public static let allKnown: [KafkaErrorCode] = [
        .unknownServerError, .none, .offsetOutOfRange, .corruptMessage, .unknownTopicOrPartition,
        .invalidFetchSize, .leaderNotAvailable, .notLeaderOrFollower, .requestTimedOut, .brokerNotAvailable,
        .replicaNotAvailable, .messageTooLarge, .staleControllerEpoch, .offsetMetadataTooLarge,
        .networkException, .coordinatorLoadInProgress, .coordinatorNotAvailable, .notCoordinator,
        .invalidTopicException, .recordListTooLarge, .notEnoughReplicas, .notEnoughReplicasAfterAppend,
        .invalidRequiredAcks, .illegalGeneration, .inconsistentGroupProtocol, .invalidGroupID, .unknownMemberID,
        .invalidSessionTimeout, .rebalanceInProgress, .invalidCommitOffsetSize, .topicAuthorizationFailed,
        .groupAuthorizationFailed, .clusterAuthorizationFailed, .invalidTimestamp, .unsupportedSaslMechanism,
        .illegalSaslState, .unsupportedVersion, .topicAlreadyExists, .invalidPartitions,
        .invalidReplicationFactor, .invalidReplicaAssignment, .invalidConfig, .notController, .invalidRequest,
        .unsupportedForMessageFormat, .policyViolation, .outOfOrderSequenceNumber, .duplicateSequenceNumber,
        .invalidProducerEpoch, .invalidTxnState, .invalidProducerIDMapping, .invalidTransactionTimeout,
        .concurrentTransactions, .transactionCoordinatorFenced, .transactionalIDAuthorizationFailed,
        .securityDisabled, .operationNotAttempted, .kafkaStorageError, .logDirNotFound,
        .saslAuthenticationFailed, .unknownProducerID, .reassignmentInProgress, .delegationTokenAuthDisabled,
        .delegationTokenNotFound, .delegationTokenOwnerMismatch, .delegationTokenRequestNotAllowed,
        .delegationTokenAuthorizationFailed, .delegationTokenExpired, .invalidPrincipalType, .nonEmptyGroup,
        .groupIDNotFound, .fetchSessionIDNotFound, .invalidFetchSessionEpoch, .listenerNotFound,
        .topicDeletionDisabled, .fencedLeaderEpoch, .unknownLeaderEpoch, .unsupportedCompressionType,
        .staleBrokerEpoch, .offsetNotAvailable, .memberIDRequired, .preferredLeaderNotAvailable,
        .groupMaxSizeReached, .fencedInstanceID, .eligibleLeadersNotAvailable, .electionNotNeeded,
        .noReassignmentInProgress, .groupSubscribedToTopic, .invalidRecord, .unstableOffsetCommit,
        .throttlingQuotaExceeded, .producerFenced, .resourceNotFound, .duplicateResource,
        .unacceptableCredential, .inconsistentVoterSet, .invalidUpdateVersion, .featureUpdateFailed,
        .principalDeserializationFailure, .snapshotNotFound, .positionOutOfRange, .unknownTopicID,
        .duplicateBrokerRegistration, .brokerIDNotRegistered, .inconsistentTopicID, .inconsistentClusterID,
        .transactionalIDNotFound, .fetchSessionTopicIDError, .ineligibleReplica, .newLeaderElected,
        .offsetMovedToTieredStorage, .fencedMemberEpoch, .unreleasedInstanceID, .unsupportedAssignor,
        .staleMemberEpoch, .mismatchedEndpointType, .unsupportedEndpointType, .unknownControllerID,
        .unknownSubscriptionID, .telemetryTooLarge, .invalidRegistration, .transactionAbortable,
        .invalidRecordState, .shareSessionNotFound, .invalidShareSessionEpoch, .fencedStateEpoch,
        .invalidVoterKey, .duplicateVoter, .voterNotFound, .invalidRegularExpression, .rebootstrapRequired,
        .streamsInvalidTopology, .streamsInvalidTopologyEpoch, .streamsTopologyFenced,
        .shareSessionLimitReached,
    ]
}

extension KafkaErrorCode {
    // The table: `Self(code, KAFKA_NAME, retriable)`, with the reason above where it is not obvious.

    // unexpected broker failure; Java surfaces it as fatal
    /// `UNKNOWN_SERVER_ERROR` (-1).
    public static let unknownServerError = Self(-1, "UNKNOWN_SERVER_ERROR", false)
    /// `NONE` (0).
    public static let none = Self(0, "NONE", false)
    // needs an offset reset decision, not a retry
    /// `OFFSET_OUT_OF_RANGE` (1).
    public static let offsetOutOfRange = Self(1, "OFFSET_OUT_OF_RANGE", false)
    // may be corruption in transit, so resending can succeed
    /// `CORRUPT_MESSAGE` (2).
    public static let corruptMessage = Self(2, "CORRUPT_MESSAGE", true)
    // metadata may lag topic creation
    /// `UNKNOWN_TOPIC_OR_PARTITION` (3).
    public static let unknownTopicOrPartition = Self(3, "UNKNOWN_TOPIC_OR_PARTITION", true)
    /// `INVALID_FETCH_SIZE` (4).
    public static let invalidFetchSize = Self(4, "INVALID_FETCH_SIZE", false)
    // election in progress
    /// `LEADER_NOT_AVAILABLE` (5).
    public static let leaderNotAvailable = Self(5, "LEADER_NOT_AVAILABLE", true)
    // stale metadata: refresh, then retry
    /// `NOT_LEADER_OR_FOLLOWER` (6).
    public static let notLeaderOrFollower = Self(6, "NOT_LEADER_OR_FOLLOWER", true)
    /// `REQUEST_TIMED_OUT` (7).
    public static let requestTimedOut = Self(7, "REQUEST_TIMED_OUT", true)
    // a plain ApiException in Java, surprisingly
    /// `BROKER_NOT_AVAILABLE` (8).
    public static let brokerNotAvailable = Self(8, "BROKER_NOT_AVAILABLE", false)
    /// `REPLICA_NOT_AVAILABLE` (9).
    public static let replicaNotAvailable = Self(9, "REPLICA_NOT_AVAILABLE", true)
    // same bytes will fail again
    /// `MESSAGE_TOO_LARGE` (10).
    public static let messageTooLarge = Self(10, "MESSAGE_TOO_LARGE", false)
    // inter-broker only
    /// `STALE_CONTROLLER_EPOCH` (11).
    public static let staleControllerEpoch = Self(11, "STALE_CONTROLLER_EPOCH", false)
    /// `OFFSET_METADATA_TOO_LARGE` (12).
    public static let offsetMetadataTooLarge = Self(12, "OFFSET_METADATA_TOO_LARGE", false)
    /// `NETWORK_EXCEPTION` (13).
    public static let networkException = Self(13, "NETWORK_EXCEPTION", true)
    /// `COORDINATOR_LOAD_IN_PROGRESS` (14).
    public static let coordinatorLoadInProgress = Self(14, "COORDINATOR_LOAD_IN_PROGRESS", true)
    // find the coordinator again
    /// `COORDINATOR_NOT_AVAILABLE` (15).
    public static let coordinatorNotAvailable = Self(15, "COORDINATOR_NOT_AVAILABLE", true)
    // find the coordinator again
    /// `NOT_COORDINATOR` (16).
    public static let notCoordinator = Self(16, "NOT_COORDINATOR", true)
    // bad topic name
    /// `INVALID_TOPIC_EXCEPTION` (17).
    public static let invalidTopicException = Self(17, "INVALID_TOPIC_EXCEPTION", false)
    /// `RECORD_LIST_TOO_LARGE` (18).
    public static let recordListTooLarge = Self(18, "RECORD_LIST_TOO_LARGE", false)
    // ISR may recover
    /// `NOT_ENOUGH_REPLICAS` (19).
    public static let notEnoughReplicas = Self(19, "NOT_ENOUGH_REPLICAS", true)
    // written but under-replicated; a retry may duplicate
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND` (20).
    public static let notEnoughReplicasAfterAppend = Self(20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", true)
    /// `INVALID_REQUIRED_ACKS` (21).
    public static let invalidRequiredAcks = Self(21, "INVALID_REQUIRED_ACKS", false)
    // group must rejoin, not resend
    /// `ILLEGAL_GENERATION` (22).
    public static let illegalGeneration = Self(22, "ILLEGAL_GENERATION", false)
    /// `INCONSISTENT_GROUP_PROTOCOL` (23).
    public static let inconsistentGroupProtocol = Self(23, "INCONSISTENT_GROUP_PROTOCOL", false)
    /// `INVALID_GROUP_ID` (24).
    public static let invalidGroupID = Self(24, "INVALID_GROUP_ID", false)
    // group must rejoin, not resend
    /// `UNKNOWN_MEMBER_ID` (25).
    public static let unknownMemberID = Self(25, "UNKNOWN_MEMBER_ID", false)
    /// `INVALID_SESSION_TIMEOUT` (26).
    public static let invalidSessionTimeout = Self(26, "INVALID_SESSION_TIMEOUT", false)
    // handled by rejoining, not by resending
    /// `REBALANCE_IN_PROGRESS` (27).
    public static let rebalanceInProgress = Self(27, "REBALANCE_IN_PROGRESS", false)
    /// `INVALID_COMMIT_OFFSET_SIZE` (28).
    public static let invalidCommitOffsetSize = Self(28, "INVALID_COMMIT_OFFSET_SIZE", false)
    /// `TOPIC_AUTHORIZATION_FAILED` (29).
    public static let topicAuthorizationFailed = Self(29, "TOPIC_AUTHORIZATION_FAILED", false)
    /// `GROUP_AUTHORIZATION_FAILED` (30).
    public static let groupAuthorizationFailed = Self(30, "GROUP_AUTHORIZATION_FAILED", false)
    /// `CLUSTER_AUTHORIZATION_FAILED` (31).
    public static let clusterAuthorizationFailed = Self(31, "CLUSTER_AUTHORIZATION_FAILED", false)
    /// `INVALID_TIMESTAMP` (32).
    public static let invalidTimestamp = Self(32, "INVALID_TIMESTAMP", false)
    /// `UNSUPPORTED_SASL_MECHANISM` (33).
    public static let unsupportedSaslMechanism = Self(33, "UNSUPPORTED_SASL_MECHANISM", false)
    /// `ILLEGAL_SASL_STATE` (34).
    public static let illegalSaslState = Self(34, "ILLEGAL_SASL_STATE", false)
    // renegotiate versions instead
    /// `UNSUPPORTED_VERSION` (35).
    public static let unsupportedVersion = Self(35, "UNSUPPORTED_VERSION", false)
    /// `TOPIC_ALREADY_EXISTS` (36).
    public static let topicAlreadyExists = Self(36, "TOPIC_ALREADY_EXISTS", false)
    /// `INVALID_PARTITIONS` (37).
    public static let invalidPartitions = Self(37, "INVALID_PARTITIONS", false)
    /// `INVALID_REPLICATION_FACTOR` (38).
    public static let invalidReplicationFactor = Self(38, "INVALID_REPLICATION_FACTOR", false)
    /// `INVALID_REPLICA_ASSIGNMENT` (39).
    public static let invalidReplicaAssignment = Self(39, "INVALID_REPLICA_ASSIGNMENT", false)
    /// `INVALID_CONFIG` (40).
    public static let invalidConfig = Self(40, "INVALID_CONFIG", false)
    // controller moved: refresh metadata
    /// `NOT_CONTROLLER` (41).
    public static let notController = Self(41, "NOT_CONTROLLER", true)
    /// `INVALID_REQUEST` (42).
    public static let invalidRequest = Self(42, "INVALID_REQUEST", false)
    /// `UNSUPPORTED_FOR_MESSAGE_FORMAT` (43).
    public static let unsupportedForMessageFormat = Self(43, "UNSUPPORTED_FOR_MESSAGE_FORMAT", false)
    /// `POLICY_VIOLATION` (44).
    public static let policyViolation = Self(44, "POLICY_VIOLATION", false)
    // idempotence broken: producer must reset its epoch
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` (45).
    public static let outOfOrderSequenceNumber = Self(45, "OUT_OF_ORDER_SEQUENCE_NUMBER", false)
    // the batch is already written; treat as success
    /// `DUPLICATE_SEQUENCE_NUMBER` (46).
    public static let duplicateSequenceNumber = Self(46, "DUPLICATE_SEQUENCE_NUMBER", false)
    /// `INVALID_PRODUCER_EPOCH` (47).
    public static let invalidProducerEpoch = Self(47, "INVALID_PRODUCER_EPOCH", false)
    /// `INVALID_TXN_STATE` (48).
    public static let invalidTxnState = Self(48, "INVALID_TXN_STATE", false)
    /// `INVALID_PRODUCER_ID_MAPPING` (49).
    public static let invalidProducerIDMapping = Self(49, "INVALID_PRODUCER_ID_MAPPING", false)
    /// `INVALID_TRANSACTION_TIMEOUT` (50).
    public static let invalidTransactionTimeout = Self(50, "INVALID_TRANSACTION_TIMEOUT", false)
    // previous transaction still completing
    /// `CONCURRENT_TRANSACTIONS` (51).
    public static let concurrentTransactions = Self(51, "CONCURRENT_TRANSACTIONS", true)
    /// `TRANSACTION_COORDINATOR_FENCED` (52).
    public static let transactionCoordinatorFenced = Self(52, "TRANSACTION_COORDINATOR_FENCED", false)
    /// `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` (53).
    public static let transactionalIDAuthorizationFailed = Self(53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", false)
    /// `SECURITY_DISABLED` (54).
    public static let securityDisabled = Self(54, "SECURITY_DISABLED", false)
    // another item of the batch failed; fix that first
    /// `OPERATION_NOT_ATTEMPTED` (55).
    public static let operationNotAttempted = Self(55, "OPERATION_NOT_ATTEMPTED", false)
    // a log dir failed; leadership will move
    /// `KAFKA_STORAGE_ERROR` (56).
    public static let kafkaStorageError = Self(56, "KAFKA_STORAGE_ERROR", true)
    /// `LOG_DIR_NOT_FOUND` (57).
    public static let logDirNotFound = Self(57, "LOG_DIR_NOT_FOUND", false)
    /// `SASL_AUTHENTICATION_FAILED` (58).
    public static let saslAuthenticationFailed = Self(58, "SASL_AUTHENTICATION_FAILED", false)
    // producer state expired: needs a new epoch
    /// `UNKNOWN_PRODUCER_ID` (59).
    public static let unknownProducerID = Self(59, "UNKNOWN_PRODUCER_ID", false)
    /// `REASSIGNMENT_IN_PROGRESS` (60).
    public static let reassignmentInProgress = Self(60, "REASSIGNMENT_IN_PROGRESS", false)
    /// `DELEGATION_TOKEN_AUTH_DISABLED` (61).
    public static let delegationTokenAuthDisabled = Self(61, "DELEGATION_TOKEN_AUTH_DISABLED", false)
    /// `DELEGATION_TOKEN_NOT_FOUND` (62).
    public static let delegationTokenNotFound = Self(62, "DELEGATION_TOKEN_NOT_FOUND", false)
    /// `DELEGATION_TOKEN_OWNER_MISMATCH` (63).
    public static let delegationTokenOwnerMismatch = Self(63, "DELEGATION_TOKEN_OWNER_MISMATCH", false)
    /// `DELEGATION_TOKEN_REQUEST_NOT_ALLOWED` (64).
    public static let delegationTokenRequestNotAllowed = Self(64, "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED", false)
    /// `DELEGATION_TOKEN_AUTHORIZATION_FAILED` (65).
    public static let delegationTokenAuthorizationFailed = Self(65, "DELEGATION_TOKEN_AUTHORIZATION_FAILED", false)
    /// `DELEGATION_TOKEN_EXPIRED` (66).
    public static let delegationTokenExpired = Self(66, "DELEGATION_TOKEN_EXPIRED", false)
    /// `INVALID_PRINCIPAL_TYPE` (67).
    public static let invalidPrincipalType = Self(67, "INVALID_PRINCIPAL_TYPE", false)
    /// `NON_EMPTY_GROUP` (68).
    public static let nonEmptyGroup = Self(68, "NON_EMPTY_GROUP", false)
    /// `GROUP_ID_NOT_FOUND` (69).
    public static let groupIDNotFound = Self(69, "GROUP_ID_NOT_FOUND", false)
    // start a new fetch session
    /// `FETCH_SESSION_ID_NOT_FOUND` (70).
    public static let fetchSessionIDNotFound = Self(70, "FETCH_SESSION_ID_NOT_FOUND", true)
    // start a new fetch session
    /// `INVALID_FETCH_SESSION_EPOCH` (71).
    public static let invalidFetchSessionEpoch = Self(71, "INVALID_FETCH_SESSION_EPOCH", true)
    // listener config may still be propagating
    /// `LISTENER_NOT_FOUND` (72).
    public static let listenerNotFound = Self(72, "LISTENER_NOT_FOUND", true)
    /// `TOPIC_DELETION_DISABLED` (73).
    public static let topicDeletionDisabled = Self(73, "TOPIC_DELETION_DISABLED", false)
    // our epoch is old: refresh metadata
    /// `FENCED_LEADER_EPOCH` (74).
    public static let fencedLeaderEpoch = Self(74, "FENCED_LEADER_EPOCH", true)
    // broker is behind us: wait and retry
    /// `UNKNOWN_LEADER_EPOCH` (75).
    public static let unknownLeaderEpoch = Self(75, "UNKNOWN_LEADER_EPOCH", true)
    /// `UNSUPPORTED_COMPRESSION_TYPE` (76).
    public static let unsupportedCompressionType = Self(76, "UNSUPPORTED_COMPRESSION_TYPE", false)
    // inter-broker only
    /// `STALE_BROKER_EPOCH` (77).
    public static let staleBrokerEpoch = Self(77, "STALE_BROKER_EPOCH", false)
    // new leader's high watermark not caught up yet
    /// `OFFSET_NOT_AVAILABLE` (78).
    public static let offsetNotAvailable = Self(78, "OFFSET_NOT_AVAILABLE", true)
    // rejoin with the member id the broker returned
    /// `MEMBER_ID_REQUIRED` (79).
    public static let memberIDRequired = Self(79, "MEMBER_ID_REQUIRED", false)
    /// `PREFERRED_LEADER_NOT_AVAILABLE` (80).
    public static let preferredLeaderNotAvailable = Self(80, "PREFERRED_LEADER_NOT_AVAILABLE", true)
    /// `GROUP_MAX_SIZE_REACHED` (81).
    public static let groupMaxSizeReached = Self(81, "GROUP_MAX_SIZE_REACHED", false)
    /// `FENCED_INSTANCE_ID` (82).
    public static let fencedInstanceID = Self(82, "FENCED_INSTANCE_ID", false)
    /// `ELIGIBLE_LEADERS_NOT_AVAILABLE` (83).
    public static let eligibleLeadersNotAvailable = Self(83, "ELIGIBLE_LEADERS_NOT_AVAILABLE", true)
    // InvalidMetadataException subclass in Java
    /// `ELECTION_NOT_NEEDED` (84).
    public static let electionNotNeeded = Self(84, "ELECTION_NOT_NEEDED", true)
    /// `NO_REASSIGNMENT_IN_PROGRESS` (85).
    public static let noReassignmentInProgress = Self(85, "NO_REASSIGNMENT_IN_PROGRESS", false)
    /// `GROUP_SUBSCRIBED_TO_TOPIC` (86).
    public static let groupSubscribedToTopic = Self(86, "GROUP_SUBSCRIBED_TO_TOPIC", false)
    // the broker rejected the record itself
    /// `INVALID_RECORD` (87).
    public static let invalidRecord = Self(87, "INVALID_RECORD", false)
    // pending transactional commit will settle
    /// `UNSTABLE_OFFSET_COMMIT` (88).
    public static let unstableOffsetCommit = Self(88, "UNSTABLE_OFFSET_COMMIT", true)
    // retry after the throttle time
    /// `THROTTLING_QUOTA_EXCEEDED` (89).
    public static let throttlingQuotaExceeded = Self(89, "THROTTLING_QUOTA_EXCEEDED", true)
    // a newer producer owns the transactional id
    /// `PRODUCER_FENCED` (90).
    public static let producerFenced = Self(90, "PRODUCER_FENCED", false)
    /// `RESOURCE_NOT_FOUND` (91).
    public static let resourceNotFound = Self(91, "RESOURCE_NOT_FOUND", false)
    /// `DUPLICATE_RESOURCE` (92).
    public static let duplicateResource = Self(92, "DUPLICATE_RESOURCE", false)
    /// `UNACCEPTABLE_CREDENTIAL` (93).
    public static let unacceptableCredential = Self(93, "UNACCEPTABLE_CREDENTIAL", false)
    /// `INCONSISTENT_VOTER_SET` (94).
    public static let inconsistentVoterSet = Self(94, "INCONSISTENT_VOTER_SET", false)
    /// `INVALID_UPDATE_VERSION` (95).
    public static let invalidUpdateVersion = Self(95, "INVALID_UPDATE_VERSION", false)
    /// `FEATURE_UPDATE_FAILED` (96).
    public static let featureUpdateFailed = Self(96, "FEATURE_UPDATE_FAILED", false)
    /// `PRINCIPAL_DESERIALIZATION_FAILURE` (97).
    public static let principalDeserializationFailure = Self(97, "PRINCIPAL_DESERIALIZATION_FAILURE", false)
    /// `SNAPSHOT_NOT_FOUND` (98).
    public static let snapshotNotFound = Self(98, "SNAPSHOT_NOT_FOUND", false)
    /// `POSITION_OUT_OF_RANGE` (99).
    public static let positionOutOfRange = Self(99, "POSITION_OUT_OF_RANGE", false)
    // metadata may lag topic creation
    /// `UNKNOWN_TOPIC_ID` (100).
    public static let unknownTopicID = Self(100, "UNKNOWN_TOPIC_ID", true)
    /// `DUPLICATE_BROKER_REGISTRATION` (101).
    public static let duplicateBrokerRegistration = Self(101, "DUPLICATE_BROKER_REGISTRATION", false)
    /// `BROKER_ID_NOT_REGISTERED` (102).
    public static let brokerIDNotRegistered = Self(102, "BROKER_ID_NOT_REGISTERED", false)
    // topic was recreated: refresh metadata
    /// `INCONSISTENT_TOPIC_ID` (103).
    public static let inconsistentTopicID = Self(103, "INCONSISTENT_TOPIC_ID", true)
    /// `INCONSISTENT_CLUSTER_ID` (104).
    public static let inconsistentClusterID = Self(104, "INCONSISTENT_CLUSTER_ID", false)
    /// `TRANSACTIONAL_ID_NOT_FOUND` (105).
    public static let transactionalIDNotFound = Self(105, "TRANSACTIONAL_ID_NOT_FOUND", false)
    // start a new fetch session
    /// `FETCH_SESSION_TOPIC_ID_ERROR` (106).
    public static let fetchSessionTopicIDError = Self(106, "FETCH_SESSION_TOPIC_ID_ERROR", true)
    /// `INELIGIBLE_REPLICA` (107).
    public static let ineligibleReplica = Self(107, "INELIGIBLE_REPLICA", false)
    /// `NEW_LEADER_ELECTED` (108).
    public static let newLeaderElected = Self(108, "NEW_LEADER_ELECTED", false)
    // needs a remote read, not a resend
    /// `OFFSET_MOVED_TO_TIERED_STORAGE` (109).
    public static let offsetMovedToTieredStorage = Self(109, "OFFSET_MOVED_TO_TIERED_STORAGE", false)
    // member must rejoin
    /// `FENCED_MEMBER_EPOCH` (110).
    public static let fencedMemberEpoch = Self(110, "FENCED_MEMBER_EPOCH", false)
    /// `UNRELEASED_INSTANCE_ID` (111).
    public static let unreleasedInstanceID = Self(111, "UNRELEASED_INSTANCE_ID", false)
    /// `UNSUPPORTED_ASSIGNOR` (112).
    public static let unsupportedAssignor = Self(112, "UNSUPPORTED_ASSIGNOR", false)
    /// `STALE_MEMBER_EPOCH` (113).
    public static let staleMemberEpoch = Self(113, "STALE_MEMBER_EPOCH", false)
    /// `MISMATCHED_ENDPOINT_TYPE` (114).
    public static let mismatchedEndpointType = Self(114, "MISMATCHED_ENDPOINT_TYPE", false)
    /// `UNSUPPORTED_ENDPOINT_TYPE` (115).
    public static let unsupportedEndpointType = Self(115, "UNSUPPORTED_ENDPOINT_TYPE", false)
    /// `UNKNOWN_CONTROLLER_ID` (116).
    public static let unknownControllerID = Self(116, "UNKNOWN_CONTROLLER_ID", false)
    /// `UNKNOWN_SUBSCRIPTION_ID` (117).
    public static let unknownSubscriptionID = Self(117, "UNKNOWN_SUBSCRIPTION_ID", false)
    /// `TELEMETRY_TOO_LARGE` (118).
    public static let telemetryTooLarge = Self(118, "TELEMETRY_TOO_LARGE", false)
    /// `INVALID_REGISTRATION` (119).
    public static let invalidRegistration = Self(119, "INVALID_REGISTRATION", false)
    // abort the transaction, then carry on
    /// `TRANSACTION_ABORTABLE` (120).
    public static let transactionAbortable = Self(120, "TRANSACTION_ABORTABLE", false)
    /// `INVALID_RECORD_STATE` (121).
    public static let invalidRecordState = Self(121, "INVALID_RECORD_STATE", false)
    // start a new share session
    /// `SHARE_SESSION_NOT_FOUND` (122).
    public static let shareSessionNotFound = Self(122, "SHARE_SESSION_NOT_FOUND", true)
    // start a new share session
    /// `INVALID_SHARE_SESSION_EPOCH` (123).
    public static let invalidShareSessionEpoch = Self(123, "INVALID_SHARE_SESSION_EPOCH", true)
    /// `FENCED_STATE_EPOCH` (124).
    public static let fencedStateEpoch = Self(124, "FENCED_STATE_EPOCH", false)
    /// `INVALID_VOTER_KEY` (125).
    public static let invalidVoterKey = Self(125, "INVALID_VOTER_KEY", false)
    /// `DUPLICATE_VOTER` (126).
    public static let duplicateVoter = Self(126, "DUPLICATE_VOTER", false)
    /// `VOTER_NOT_FOUND` (127).
    public static let voterNotFound = Self(127, "VOTER_NOT_FOUND", false)
    /// `INVALID_REGULAR_EXPRESSION` (128).
    public static let invalidRegularExpression = Self(128, "INVALID_REGULAR_EXPRESSION", false)
    // the client must rebootstrap, not resend
    /// `REBOOTSTRAP_REQUIRED` (129).
    public static let rebootstrapRequired = Self(129, "REBOOTSTRAP_REQUIRED", false)
    /// `STREAMS_INVALID_TOPOLOGY` (130).
    public static let streamsInvalidTopology = Self(130, "STREAMS_INVALID_TOPOLOGY", false)
    /// `STREAMS_INVALID_TOPOLOGY_EPOCH` (131).
    public static let streamsInvalidTopologyEpoch = Self(131, "STREAMS_INVALID_TOPOLOGY_EPOCH", false)
    /// `STREAMS_TOPOLOGY_FENCED` (132).
    public static let streamsTopologyFenced = Self(132, "STREAMS_TOPOLOGY_FENCED", false)
    // sessions free up over time
    /// `SHARE_SESSION_LIMIT_REACHED` (133).
    public static let shareSessionLimitReached = Self(133, "SHARE_SESSION_LIMIT_REACHED", true)
}
