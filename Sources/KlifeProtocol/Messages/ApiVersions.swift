/// ApiVersions request (key 18), versions 0–3; flexible from v3.
///
/// The first request on every connection: the answer says which versions of every
/// other API the broker accepts (see ``ApiVersionTable``).
///
///     v0–2: (empty body)
///     v3:   client_software_name:COMPACT_STRING client_software_version:COMPACT_STRING _tagged_fields
///
/// The response header is always header v0 (no tagged fields), even for v3; ``KafkaFrame``
/// accounts for that.
public struct ApiVersionsRequest: KafkaRequest, Equatable {
    /// Answered by ``ApiVersionsResponse``.
    public typealias Response = ApiVersionsResponse
    /// Key 18.
    public static let apiKey = ApiKey.apiVersions
    /// v0 through v3.
    public static let supportedVersions: ClosedRange<Int16> = 0...3
    /// v3.
    public static let firstFlexibleVersion: Int16 = 3

    /// Sent from v3. Brokers require it to match `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
    public var clientSoftwareName: String
    /// Sent from v3, same character rules as ``clientSoftwareName``.
    public var clientSoftwareVersion: String

    /// Creates the request.
    public init(clientSoftwareName: String = "klife-swift", clientSoftwareVersion: String = "0.1.0") {
        self.clientSoftwareName = clientSoftwareName
        self.clientSoftwareVersion = clientSoftwareVersion
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        guard version >= 3 else { return }
        writer.writeCompactString(clientSoftwareName)
        writer.writeCompactString(clientSoftwareVersion)
        writer.writeEmptyTaggedFields()
    }
}

/// ApiVersions response (key 18), versions 0–3.
///
///     error_code:INT16 api_keys:[api_key:INT16 min_version:INT16 max_version:INT16 <tags v3+>]
///     throttle_time_ms:INT32 (v1+) <tags v3+>
///
/// **Version fallback.** A broker that does not support the requested ApiVersions version
/// answers with error 35 (`UNSUPPORTED_VERSION`) and a **v0-format** body whose `api_keys`
/// lists (at least) the ApiVersions range it does support. When decoding at v1+ fails or
/// leaves bytes over, the decoder therefore retries the same bytes as v0 and keeps that
/// result if it is a clean v0 body carrying error 35. The caller should then resend
/// ApiVersions at the highest version in `range(for: .apiVersions)` of that answer.
///
/// Tagged fields (supported and finalized features) are skipped.
public struct ApiVersionsResponse: KafkaResponse, Equatable {
    /// Top-level error; 35 (`UNSUPPORTED_VERSION`) means "retry at a lower version".
    public var errorCode: Int16
    /// The APIs the broker supports.
    public var apiKeys: [ApiVersionRange]
    /// Quota throttle time (v1+; 0 otherwise).
    public var throttleTimeMs: Int32

    /// Creates a response.
    public init(errorCode: Int16 = 0, apiKeys: [ApiVersionRange] = [], throttleTimeMs: Int32 = 0) {
        self.errorCode = errorCode
        self.apiKeys = apiKeys
        self.throttleTimeMs = throttleTimeMs
    }

    /// Decodes the body at `version`, falling back to v0 for an `UNSUPPORTED_VERSION` answer.
    public init(from reader: inout ByteReader, version: Int16) {
        let start = reader
        self.init(decoding: &reader, version: version)
        guard version > 0, reader.error != nil || !reader.isAtEnd else { return }
        var retry = start
        let v0 = Self(decoding: &retry, version: 0)
        if retry.isAtEnd && v0.errorCode == KafkaErrorCode.unsupportedVersion.rawValue {
            self = v0
            reader = retry
        }
    }

    private init(decoding reader: inout ByteReader, version: Int16) {
        let flexible = version >= 3
        errorCode = reader.readInt16()
        let n = reader.readArrayCount(flexible: flexible, minimumElementSize: flexible ? 7 : 6)
        apiKeys = reader.readArray(count: n) { r in
            let range = ApiVersionRange(apiKey: r.readInt16(), minVersion: r.readInt16(), maxVersion: r.readInt16())
            r.skipTaggedFields(flexible: flexible)
            return range
        }
        throttleTimeMs = version >= 1 ? reader.readInt32() : 0
        reader.skipTaggedFields(flexible: flexible)
    }
}

/// One API and the inclusive range of versions a broker supports for it.
public struct ApiVersionRange: Sendable, Hashable {
    /// The API key (an ``ApiKey`` raw value; brokers list keys this client does not know too).
    public var apiKey: Int16
    /// Lowest supported version.
    public var minVersion: Int16
    /// Highest supported version.
    public var maxVersion: Int16

    /// Creates a range entry.
    public init(apiKey: Int16, minVersion: Int16, maxVersion: Int16) {
        self.apiKey = apiKey
        self.minVersion = minVersion
        self.maxVersion = maxVersion
    }
}
