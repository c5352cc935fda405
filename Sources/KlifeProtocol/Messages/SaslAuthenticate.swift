/// SaslAuthenticate request (key 36), versions 0–2; flexible from v2.
///
///     auth_bytes:BYTES <tags v2+>
///
/// Carries one client SASL token (for example a SCRAM client-first message) after a
/// successful ``SaslHandshakeRequest`` v1. v1 is encoded exactly like v0.
public struct SaslAuthenticateRequest: KafkaRequest, Equatable {
    /// Answered by ``SaslAuthenticateResponse``.
    public typealias Response = SaslAuthenticateResponse
    /// Key 36.
    public static let apiKey = ApiKey.saslAuthenticate
    /// v0 through v2.
    public static let supportedVersions: ClosedRange<Int16> = 0...2
    /// v2.
    public static let firstFlexibleVersion: Int16 = 2

    /// The SASL token from the client, as defined by the mechanism.
    public var authBytes: [UInt8]

    /// Creates the request.
    public init(authBytes: [UInt8]) {
        self.authBytes = authBytes
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 2
        writer.writeSizedBytes(authBytes, flexible: flexible)
        writer.writeEmptyTaggedFields(flexible: flexible)
    }
}

/// SaslAuthenticate response (key 36), versions 0–2.
///
///     error_code:INT16 error_message:NULLABLE_STRING auth_bytes:BYTES
///     session_lifetime_ms:INT64 (v1+) <tags v2+>
public struct SaslAuthenticateResponse: KafkaResponse, Equatable {
    /// The error, 0 on success (`SASL_AUTHENTICATION_FAILED` is 58).
    public var errorCode: Int16
    /// The broker's error message, or `nil`.
    public var errorMessage: String?
    /// The SASL token from the server, as defined by the mechanism.
    public var authBytes: [UInt8]
    /// How long the authenticated session lasts before the client must re-authenticate
    /// (KIP-368, v1+); 0 when the broker sets no limit or for v0.
    public var sessionLifetimeMs: Int64

    /// Creates a response (tests).
    public init(errorCode: Int16 = 0, errorMessage: String? = nil, authBytes: [UInt8], sessionLifetimeMs: Int64 = 0) {
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.authBytes = authBytes
        self.sessionLifetimeMs = sessionLifetimeMs
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 2
        errorCode = reader.readInt16()
        errorMessage = reader.readNullableString(flexible: flexible)
        authBytes = reader.readSizedBytes(flexible: flexible)
        sessionLifetimeMs = version >= 1 ? reader.readInt64() : 0
        reader.skipTaggedFields(flexible: flexible)
    }
}
