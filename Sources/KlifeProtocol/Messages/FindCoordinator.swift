/// FindCoordinator request (key 10), versions 0–6; flexible from v3.
///
///     v0:   key:STRING
///     v1–3: key:STRING key_type:INT8 <tags v3>
///     v4+:  key_type:INT8 coordinator_keys:[COMPACT_STRING] <tags>
///
/// From v4 the request is batched; this type always asks for one key.
/// v5 adds the `TRANSACTION_ABORTABLE` error, v6 the share-group key type.
public struct FindCoordinatorRequest: KafkaRequest, Equatable {
    /// Answered by ``FindCoordinatorResponse``.
    public typealias Response = FindCoordinatorResponse
    /// Key 10.
    public static let apiKey = ApiKey.findCoordinator
    /// v0 through v6.
    public static let supportedVersions: ClosedRange<Int16> = 0...6
    /// v3.
    public static let firstFlexibleVersion: Int16 = 3

    /// ``keyType`` for a consumer group id.
    public static let groupKeyType: Int8 = 0
    /// ``keyType`` for a transactional id.
    public static let transactionKeyType: Int8 = 1
    /// ``keyType`` for a share group id (v6+).
    public static let shareKeyType: Int8 = 2

    /// The group id or transactional id.
    public var key: String
    /// What ``key`` names (v1+; v0 only knows groups).
    public var keyType: Int8

    /// Creates the request.
    public init(key: String, keyType: Int8 = 0) {
        self.key = key
        self.keyType = keyType
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 3
        if version <= 3 { writer.writeString(key, flexible: flexible) }
        if version >= 1 { writer.writeInt8(keyType) }
        if version >= 4 {
            writer.writeArrayCount(1, flexible: true)
            writer.writeCompactString(key)
        }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }
}

/// FindCoordinator response (key 10), versions 0–6.
///
///     v0:   error_code:INT16 node_id:INT32 host:STRING port:INT32
///     v1–3: throttle_time_ms:INT32 error_code:INT16 error_message:NULLABLE_STRING
///           node_id:INT32 host:STRING port:INT32 <tags v3>
///     v4+:  throttle_time_ms:INT32 coordinators:[key:COMPACT_STRING node_id:INT32 host:COMPACT_STRING
///           port:INT32 error_code:INT16 error_message:COMPACT_NULLABLE_STRING <tags>] <tags>
///
/// Versions 0–3 answer for a single key; that answer is normalised into one
/// ``Coordinator`` whose ``Coordinator/key`` is `""` (the wire does not repeat the key).
public struct FindCoordinatorResponse: KafkaResponse, Equatable {
    /// Quota throttle time (v1+; 0 otherwise).
    public var throttleTimeMs: Int32
    /// One entry per key asked for (exactly one for v0–3).
    public var coordinators: [Coordinator]

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, coordinators: [Coordinator] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.coordinators = coordinators
    }

    /// Decodes the body at `version`.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 3
        throttleTimeMs = version >= 1 ? reader.readInt32() : 0
        if version >= 4 {
            let n = reader.readArrayCount(flexible: true, minimumElementSize: 14)
            coordinators = reader.readArray(count: n) { r in
                let c = Coordinator(key: r.readCompactString(), nodeID: r.readInt32(), host: r.readCompactString(),
                                    port: r.readInt32(), errorCode: r.readInt16(),
                                    errorMessage: r.readCompactNullableString())
                r.skipTaggedFields()
                return c
            }
        } else {
            let errorCode = reader.readInt16()
            let errorMessage = version >= 1 ? reader.readNullableString(flexible: flexible) : nil
            let c = Coordinator(key: "", nodeID: reader.readInt32(), host: reader.readString(flexible: flexible),
                                port: reader.readInt32(), errorCode: errorCode, errorMessage: errorMessage)
            coordinators = reader.error == nil ? [c] : []
        }
        reader.skipTaggedFields(flexible: flexible)
    }

    /// The coordinator for one key.
    public struct Coordinator: Sendable, Hashable {
        /// The key this answers for; `""` in v0–3 (see ``FindCoordinatorResponse``).
        public var key: String
        /// The coordinator's broker id.
        public var nodeID: Int32
        /// The coordinator's host.
        public var host: String
        /// The coordinator's port.
        public var port: Int32
        /// Error, e.g. `COORDINATOR_NOT_AVAILABLE` (15).
        public var errorCode: Int16
        /// Error details (v1+), if any.
        public var errorMessage: String?

        /// Creates an entry.
        public init(key: String, nodeID: Int32, host: String, port: Int32, errorCode: Int16 = 0,
                    errorMessage: String? = nil) {
            self.key = key
            self.nodeID = nodeID
            self.host = host
            self.port = port
            self.errorCode = errorCode
            self.errorMessage = errorMessage
        }
    }
}
