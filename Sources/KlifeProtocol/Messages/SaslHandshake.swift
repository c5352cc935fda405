/// SaslHandshake request (key 17), versions 0–1; never flexible.
///
///     mechanism:STRING
///
/// Names the SASL mechanism the client wants (`PLAIN`, `SCRAM-SHA-256`, ...). With v0 the
/// SASL tokens that follow travel as raw size-prefixed frames; with v1 they travel inside
/// ``SaslAuthenticateRequest``s. The encoding of both versions is identical.
public struct SaslHandshakeRequest: KafkaRequest, Equatable {
    /// Answered by ``SaslHandshakeResponse``.
    public typealias Response = SaslHandshakeResponse
    /// Key 17.
    public static let apiKey = ApiKey.saslHandshake
    /// v0 and v1.
    public static let supportedVersions: ClosedRange<Int16> = 0...1
    /// Never flexible (KAFKA-9577 keeps v1 the last version), so past every supported version.
    public static let firstFlexibleVersion: Int16 = .max

    /// The SASL mechanism chosen by the client.
    public var mechanism: String

    /// Creates the request.
    public init(mechanism: String) {
        self.mechanism = mechanism
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        writer.writeString(mechanism)
    }
}

/// SaslHandshake response (key 17), versions 0–1.
///
///     error_code:INT16 mechanisms:[STRING]
///
/// On `UNSUPPORTED_SASL_MECHANISM` (33), `mechanisms` lists what the broker enables.
public struct SaslHandshakeResponse: KafkaResponse, Equatable {
    /// The error, 0 on success.
    public var errorCode: Int16
    /// The mechanisms enabled in the broker.
    public var mechanisms: [String]

    /// Creates a response (tests).
    public init(errorCode: Int16 = 0, mechanisms: [String]) {
        self.errorCode = errorCode
        self.mechanisms = mechanisms
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        errorCode = reader.readInt16()
        mechanisms = reader.readArray(count: reader.readArrayCount(flexible: false, minimumElementSize: 2)) {
            $0.readString()
        }
    }
}
