/// EndTxn request (key 26), versions 0–3; flexible from v3.
///
///     transactional_id:STRING producer_id:INT64 producer_epoch:INT16 committed:BOOLEAN <tags v3+>
///
/// Commits (``committed`` `true`) or aborts (`false`) the ongoing transaction.
public struct EndTxnRequest: KafkaRequest, Equatable {
    /// Answered by ``EndTxnResponse``.
    public typealias Response = EndTxnResponse
    /// Key 26.
    public static let apiKey = ApiKey.endTxn
    /// v0 through v3.
    public static let supportedVersions: ClosedRange<Int16> = 0...3
    /// v3.
    public static let firstFlexibleVersion: Int16 = 3

    /// The transactional id of the transaction.
    public var transactionalID: String
    /// The producer id in use by the transactional id.
    public var producerID: Int64
    /// The epoch of ``producerID``.
    public var producerEpoch: Int16
    /// `true` to commit the transaction, `false` to abort it.
    public var committed: Bool

    /// Creates the request.
    public init(transactionalID: String, producerID: Int64, producerEpoch: Int16, committed: Bool) {
        self.transactionalID = transactionalID
        self.producerID = producerID
        self.producerEpoch = producerEpoch
        self.committed = committed
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 3
        writer.writeString(transactionalID, flexible: flexible)
        writer.writeInt64(producerID)
        writer.writeInt16(producerEpoch)
        writer.writeBool(committed)
        writer.writeEmptyTaggedFields(flexible: flexible)
    }
}

/// EndTxn response (key 26), versions 0–3.
///
///     throttle_time_ms:INT32 error_code:INT16 <tags v3+>
public struct EndTxnResponse: KafkaResponse, Equatable {
    /// Quota throttle time.
    public var throttleTimeMs: Int32
    /// The error, 0 on success.
    public var errorCode: Int16

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, errorCode: Int16 = 0) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        throttleTimeMs = reader.readInt32()
        errorCode = reader.readInt16()
        reader.skipTaggedFields(flexible: version >= 3)
    }
}
