/// InitProducerId request (key 22), versions 0–5; flexible from v2.
///
///     transactional_id:NULLABLE_STRING transaction_timeout_ms:INT32
///     producer_id:INT64 (v3+) producer_epoch:INT16 (v3+) <tags v2+>
///
/// Without a transactional id it asks for an idempotent producer id. With the current
/// `producerID`/`producerEpoch` (v3+, KIP-360) it bumps the epoch of an existing id, which
/// lets an idempotent producer recover from `UNKNOWN_PRODUCER_ID` or an unexpected
/// `OUT_OF_ORDER_SEQUENCE_NUMBER` without a new id.
public struct InitProducerIdRequest: KafkaRequest, Equatable {
    /// Answered by ``InitProducerIdResponse``.
    public typealias Response = InitProducerIdResponse
    /// Key 22.
    public static let apiKey = ApiKey.initProducerId
    /// v0 through v5.
    public static let supportedVersions: ClosedRange<Int16> = 0...5
    /// v2.
    public static let firstFlexibleVersion: Int16 = 2

    /// The transactional id, or `nil` for an idempotent-only producer.
    public var transactionalID: String?
    /// Transaction timeout the coordinator enforces (ignored without a transactional id).
    public var transactionTimeoutMs: Int32
    /// The current producer id when bumping an epoch (v3+), else -1.
    public var producerID: Int64
    /// The current epoch when bumping (v3+), else -1.
    public var producerEpoch: Int16

    /// Creates the request.
    public init(transactionalID: String? = nil, transactionTimeoutMs: Int32 = 60_000,
                producerID: Int64 = -1, producerEpoch: Int16 = -1) {
        self.transactionalID = transactionalID
        self.transactionTimeoutMs = transactionTimeoutMs
        self.producerID = producerID
        self.producerEpoch = producerEpoch
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 2
        writer.writeNullableString(transactionalID, flexible: flexible)
        writer.writeInt32(transactionTimeoutMs)
        if version >= 3 {
            writer.writeInt64(producerID)
            writer.writeInt16(producerEpoch)
        }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }
}

/// InitProducerId response (key 22), versions 0–5.
///
///     throttle_time_ms:INT32 error_code:INT16 producer_id:INT64 producer_epoch:INT16 <tags v2+>
public struct InitProducerIdResponse: KafkaResponse, Equatable {
    /// Quota throttle time.
    public var throttleTimeMs: Int32
    /// The error, 0 on success.
    public var errorCode: Int16
    /// The assigned producer id.
    public var producerID: Int64
    /// The assigned epoch.
    public var producerEpoch: Int16

    /// Creates a response (tests).
    public init(throttleTimeMs: Int32 = 0, errorCode: Int16 = 0, producerID: Int64, producerEpoch: Int16) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.producerID = producerID
        self.producerEpoch = producerEpoch
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        throttleTimeMs = reader.readInt32()
        errorCode = reader.readInt16()
        producerID = reader.readInt64()
        producerEpoch = reader.readInt16()
        reader.skipTaggedFields(flexible: version >= 2)
    }
}
