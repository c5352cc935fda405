public import KlifeProtocol
import KlifeIO

/// Every error the client reports.
///
/// A struct wrapping a private enum so new cases can be added without breaking
/// callers. Match on ``code`` and read ``kafkaErrorCode`` for broker errors.
public struct KlifeError: Error, Sendable, CustomStringConvertible {
    /// A stable, comparable category for the error.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// No bootstrap server answered.
        public static let bootstrapUnreachable = Code("bootstrapUnreachable")
        /// The topic or partition does not exist on the cluster.
        public static let unknownTopicOrPartition = Code("unknownTopicOrPartition")
        /// A record (or request) is larger than the configured or broker limit.
        public static let recordTooLarge = Code("recordTooLarge")
        /// An operation did not finish within its time limit.
        public static let timedOut = Code("timedOut")
        /// The broker answered with a Kafka error code; see ``KlifeError/kafkaErrorCode``.
        public static let brokerError = Code("brokerError")
        /// The connection failed (refused, reset, closed by the peer).
        public static let connectionFailed = Code("connectionFailed")
        /// The broker sent bytes that do not decode: the connection was closed.
        public static let malformedResponse = Code("malformedResponse")
        /// The broker lacks an API or version this operation needs.
        public static let unsupportedVersion = Code("unsupportedVersion")
        /// A configuration value is invalid; the message names the field.
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// An argument to a call is invalid.
        public static let invalidArgument = Code("invalidArgument")
        /// The client was closed before the operation completed.
        public static let clientClosed = Code("clientClosed")
        /// The submission queue stayed full for longer than the configured wait.
        public static let queueFull = Code("queueFull")
        /// The producer already holds `maxBufferedRecords` or `maxBufferedBytes` of
        /// unacknowledged records: back off, or use a suspending produce.
        public static let bufferFull = Code("bufferFull")
        /// The calling task was cancelled while waiting.
        public static let cancelled = Code("cancelled")
        /// SASL authentication failed: the broker rejected the credentials
        /// (`SASL_AUTHENTICATION_FAILED`), or the broker could not prove it knows them
        /// (bad SCRAM server signature). Not retriable: fix the credentials.
        public static let authenticationFailed = Code("authenticationFailed")
        /// Another producer instance took over this producer's transactional id (it called
        /// InitProducerId with the same id later), so this one may never write again
        /// (`PRODUCER_FENCED`, `INVALID_PRODUCER_EPOCH`, or an authorization failure on the id).
        /// Fatal for that transactional producer; see ``KlifeError/kafkaErrorCode``.
        public static let producerFenced = Code("producerFenced")
        /// The transaction could not commit and was aborted (a record failed, the
        /// transaction outlived its timeout, or the coordinator refused); the message says why.
        public static let transactionAborted = Code("transactionAborted")
        /// TLS could not be established with a broker: its certificate did not verify
        /// (`certificate verify failed: unable to get local issuer certificate`, `…: hostname
        /// mismatch`), it rejected ours (`tlsv13 alert certificate required`), the two sides
        /// share no protocol version or cipher, or it closed the connection during the
        /// handshake (a port that does not speak TLS). Not retriable: fix the configuration.
        public static let tlsHandshakeFailed = Code("tlsHandshakeFailed")
        /// A consumer group has active members, so the administrative operation that needs it
        /// idle (resetting its offsets, deleting it) was refused: by the client after describing
        /// the group, or by the coordinator (`NON_EMPTY_GROUP`). Stop the group's consumers first.
        public static let groupNotEmpty = Code("groupNotEmpty")
        /// A consumed record failed every attempt the consumer's ``FailurePolicy`` allows, and no
        /// retry or dead-letter topic took it: its partition stopped at that record (nothing
        /// after it is handed out or committed) until ``KlifeConsumer/seek(_:to:)``.
        public static let recordFailed = Code("recordFailed")
        /// The group coordinator refused offsets sent in a transaction because the consumer
        /// group member they were sent for is no longer the partitions' owner: its generation
        /// (or member epoch) is gone (`ILLEGAL_GENERATION`, `FENCED_MEMBER_EPOCH`), the group no
        /// longer knows it (`UNKNOWN_MEMBER_ID`), or another member took its static instance id
        /// (`FENCED_INSTANCE_ID`). The member is a zombie: the transaction is aborted, the
        /// transactional producer stays usable, and the member has lost its partitions; see
        /// ``KlifeError/kafkaErrorCode``.
        public static let groupMemberFenced = Code("groupMemberFenced")
        /// The name of the code.
        public var description: String { name }
    }

    private enum Kind: Sendable {
        case bootstrapUnreachable(servers: [String], lastError: String)
        case unknownTopicOrPartition(topic: String, partition: Int32?)
        case recordTooLarge(size: Int, limit: Int, limitName: String)
        case timedOut(operation: String)
        case broker(KafkaErrorCode, context: String, message: String?)
        case connection(IOError, broker: String)
        case malformed(DecodeError, broker: String)
        case unsupported(String)
        case invalidConfiguration(field: String, reason: String)
        case invalidArgument(String)
        case clientClosed
        case queueFull
        case bufferFull(records: Int, bytes: Int)
        case cancelled
        case authenticationFailed(broker: String, detail: String)
        case producerFenced(transactionalID: String, code: KafkaErrorCode)
        case transactionAborted(transactionalID: String, reason: String)
        case tlsHandshakeFailed(broker: String, failure: TLSFailure)
        case groupNotEmpty(groupID: String, operation: String, detail: String)
        case recordFailed(TopicPartition, offset: Int64, attempts: Int, error: String)
        case groupMemberFenced(groupID: String, generation: Int32, code: KafkaErrorCode)
    }

    private let kind: Kind

    private init(_ kind: Kind) { self.kind = kind }

    /// The category of this error.
    public var code: Code {
        switch kind {
        case .bootstrapUnreachable: .bootstrapUnreachable
        case .unknownTopicOrPartition: .unknownTopicOrPartition
        case .recordTooLarge: .recordTooLarge
        case .timedOut: .timedOut
        case .broker(let code, _, _):
            code == .unknownTopicOrPartition ? .unknownTopicOrPartition
                : code == .messageTooLarge || code == .recordListTooLarge ? .recordTooLarge : .brokerError
        case .connection: .connectionFailed
        case .malformed: .malformedResponse
        case .unsupported: .unsupportedVersion
        case .invalidConfiguration: .invalidConfiguration
        case .invalidArgument: .invalidArgument
        case .clientClosed: .clientClosed
        case .queueFull: .queueFull
        case .bufferFull: .bufferFull
        case .cancelled: .cancelled
        case .authenticationFailed: .authenticationFailed
        case .producerFenced: .producerFenced
        case .transactionAborted: .transactionAborted
        case .tlsHandshakeFailed: .tlsHandshakeFailed
        case .groupNotEmpty: .groupNotEmpty
        case .recordFailed: .recordFailed
        case .groupMemberFenced: .groupMemberFenced
        }
    }

    /// The Kafka error code when the broker reported one; `NON_EMPTY_GROUP` for every
    /// ``Code/groupNotEmpty`` error, also when the client refused before asking the broker.
    public var kafkaErrorCode: KafkaErrorCode? {
        switch kind {
        case .broker(let code, _, _): code
        case .producerFenced(_, let code): code
        case .groupNotEmpty: .nonEmptyGroup
        case .groupMemberFenced(_, _, let code): code
        default: nil
        }
    }

    /// Whether retrying the same operation later may succeed.
    public var isRetriable: Bool {
        switch kind {
        case .broker(let code, _, _): code.isRetriable
        case .connection, .timedOut, .malformed, .queueFull, .bufferFull: true
        case .unknownTopicOrPartition: true
        default: false
        }
    }

    /// A one-line description that names what failed.
    public var description: String {
        switch kind {
        case .bootstrapUnreachable(let servers, let last):
            "no bootstrap server reachable (\(servers.joined(separator: ", "))): \(last)"
        case .unknownTopicOrPartition(let topic, let partition):
            partition.map { "unknown partition \(topic)/\($0)" } ?? "unknown topic \(topic)"
        case .recordTooLarge(let size, let limit, let name):
            "record of \(size) bytes exceeds \(name) (\(limit) bytes)"
        case .timedOut(let operation):
            "\(operation) timed out"
        case .broker(let code, let context, let message):
            "\(context): broker error \(code)" + (message.map { ": \($0)" } ?? "")
        case .connection(let error, let broker):
            "connection to \(broker) failed: \(error)"
        case .malformed(let error, let broker):
            "malformed response from \(broker): \(error)"
        case .unsupported(let text):
            text
        case .invalidConfiguration(let field, let reason):
            "invalid configuration \(field): \(reason)"
        case .invalidArgument(let text):
            "invalid argument: \(text)"
        case .clientClosed:
            "client is closed"
        case .queueFull:
            "submission queue is full"
        case .cancelled:
            "cancelled while waiting"
        case .bufferFull(let records, let bytes):
            "producer buffer is full (\(records) records, \(bytes) bytes unacknowledged)"
        case .authenticationFailed(let broker, let detail):
            "SASL authentication to \(broker) failed: \(detail)"
        case .producerFenced(let id, let code):
            "transactional producer '\(id)' is fenced (\(code)): another instance with the same transactional id took over; this producer can no longer write"
        case .transactionAborted(let id, let reason):
            "transaction of '\(id)' aborted: \(reason)"
        case .tlsHandshakeFailed(let broker, let failure):
            "TLS handshake with \(broker) failed: \(failure)"
        case .groupNotEmpty(let id, let operation, let detail):
            "cannot \(operation) group '\(id)': \(detail); stop its consumers first"
        case .recordFailed(let tp, let offset, let attempts, let error):
            "record \(tp.topic)/\(tp.partition) at offset \(offset) failed after \(attempts) attempt\(attempts == 1 ? "" : "s"): \(error); its partition stopped"
        case .groupMemberFenced(let id, let generation, let code):
            "group '\(id)' refused transactional offsets of generation \(generation) (\(code)): the member no longer owns its partitions"
        }
    }

    // MARK: Constructors (internal)

    static func bootstrapUnreachable(_ servers: [String], lastError: String) -> KlifeError {
        KlifeError(.bootstrapUnreachable(servers: servers, lastError: lastError))
    }
    static func unknownTopicOrPartition(_ topic: String, partition: Int32? = nil) -> KlifeError {
        KlifeError(.unknownTopicOrPartition(topic: topic, partition: partition))
    }
    static func recordTooLarge(size: Int, limit: Int, limitName: String) -> KlifeError {
        KlifeError(.recordTooLarge(size: size, limit: limit, limitName: limitName))
    }
    static func timedOut(_ operation: String) -> KlifeError { KlifeError(.timedOut(operation: operation)) }
    static func broker(_ code: KafkaErrorCode, _ context: String, message: String? = nil) -> KlifeError {
        KlifeError(.broker(code, context: context, message: message))
    }
    /// A closed channel's error: TLS failures while establishing the session become
    /// `tlsHandshakeFailed`, everything else `connectionFailed`.
    static func connection(_ error: IOError, broker: String) -> KlifeError {
        if case .tls(let failure) = error.kind, failure.stage == .handshake {
            return KlifeError(.tlsHandshakeFailed(broker: broker, failure: failure))
        }
        return KlifeError(.connection(error, broker: broker))
    }
    static func malformed(_ error: DecodeError, broker: String) -> KlifeError {
        KlifeError(.malformed(error, broker: broker))
    }
    static func unsupported(_ text: String) -> KlifeError { KlifeError(.unsupported(text)) }
    static func invalidConfiguration(_ field: String, _ reason: String) -> KlifeError {
        KlifeError(.invalidConfiguration(field: field, reason: reason))
    }
    static func invalidArgument(_ text: String) -> KlifeError { KlifeError(.invalidArgument(text)) }
    static let clientClosed = KlifeError(.clientClosed)
    static let queueFull = KlifeError(.queueFull)
    static let cancelled = KlifeError(.cancelled)
    static func bufferFull(records: Int, bytes: Int) -> KlifeError { KlifeError(.bufferFull(records: records, bytes: bytes)) }
    static func producerFenced(_ transactionalID: String, code: KafkaErrorCode) -> KlifeError {
        KlifeError(.producerFenced(transactionalID: transactionalID, code: code))
    }
    static func transactionAborted(_ transactionalID: String, reason: String) -> KlifeError {
        KlifeError(.transactionAborted(transactionalID: transactionalID, reason: reason))
    }
    static func recordFailed(_ tp: TopicPartition, offset: Int64, attempts: Int, error: String) -> KlifeError {
        KlifeError(.recordFailed(tp, offset: offset, attempts: attempts, error: error))
    }
    static func groupNotEmpty(_ groupID: String, operation: String, detail: String) -> KlifeError {
        KlifeError(.groupNotEmpty(groupID: groupID, operation: operation, detail: detail))
    }
    static func groupMemberFenced(_ groupID: String, generation: Int32, code: KafkaErrorCode) -> KlifeError {
        KlifeError(.groupMemberFenced(groupID: groupID, generation: generation, code: code))
    }
    static func authenticationFailed(_ detail: String, broker: String) -> KlifeError {
        KlifeError(.authenticationFailed(broker: broker, detail: detail))
    }
}
