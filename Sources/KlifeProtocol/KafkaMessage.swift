/// A request message body that knows how to encode itself at a given version.
///
/// The header and the 4-byte size prefix are written by ``KafkaFrame``.
public protocol KafkaRequest: Sendable {
    /// The response type this request is answered with.
    associatedtype Response: KafkaResponse
    /// The API this request belongs to.
    static var apiKey: ApiKey { get }
    /// The versions this codec can encode and decode.
    static var supportedVersions: ClosedRange<Int16> { get }
    /// The first flexible version (KIP-482 compact types and tagged fields).
    static var firstFlexibleVersion: Int16 { get }
    /// Encodes the body at `version`, which lies in ``supportedVersions``.
    func encode(into writer: inout ByteWriter, version: Int16)
}

/// A response message body that decodes itself from a ``ByteReader``.
///
/// Decoding never traps: problems are recorded in the reader's sticky error and the
/// caller checks it once (see ``KafkaFrame/decodeResponse(_:from:version:)``).
public protocol KafkaResponse: Sendable {
    /// Decodes the body at `version`. Check `reader.error` afterwards.
    init(from reader: inout ByteReader, version: Int16)
}

extension KafkaRequest {
    /// Whether `version` uses the flexible (KIP-482) encoding.
    @inlinable
    public static func isFlexible(_ version: Int16) -> Bool { version >= firstFlexibleVersion }

    /// The request header version for `version`: 2 when flexible, else 1.
    @inlinable
    public static func requestHeaderVersion(_ version: Int16) -> Int16 { isFlexible(version) ? 2 : 1 }

    /// The response header version: 1 when flexible, else 0. ApiVersions is always 0.
    @inlinable
    public static func responseHeaderVersion(_ version: Int16) -> Int16 {
        apiKey == .apiVersions ? 0 : (isFlexible(version) ? 1 : 0)
    }
}

/// Writing whole request frames and reading response headers.
///
///     ┌ size:INT32 ┬ api_key:INT16 ┬ api_version:INT16 ┬ correlation_id:INT32 ┬ client_id:NULLABLE_STRING ┬ [tags] ┬ body ┐
///
/// `size` counts every byte after itself. Request header v2 adds the tagged-field
/// section but keeps `client_id` as a non-compact INT16 string.
public enum KafkaFrame {
    /// Appends a complete request frame (size, header, body) to `writer`.
    /// - Returns: the number of bytes appended.
    @discardableResult
    public static func encodeRequest<R: KafkaRequest>(
        _ request: R, version: Int16, correlationID: Int32, clientID: String?, into writer: inout ByteWriter
    ) -> Int {
        let start = beginRequest(R.apiKey, version: version, correlationID: correlationID, clientID: clientID,
                                 flexible: R.isFlexible(version), into: &writer)
        request.encode(into: &writer, version: version)
        return endRequest(start: start, into: &writer)
    }

    /// Writes the size placeholder and request header; returns the frame start for ``endRequest(start:into:)``.
    /// Used directly by encoders that stream their body (Produce).
    @inlinable
    public static func beginRequest(
        _ apiKey: ApiKey, version: Int16, correlationID: Int32, clientID: String?, flexible: Bool,
        into writer: inout ByteWriter
    ) -> Int {
        let start = writer.reserve(4)
        writer.writeInt16(apiKey.rawValue)
        writer.writeInt16(version)
        writer.writeInt32(correlationID)
        writer.writeNullableString(clientID)
        writer.writeEmptyTaggedFields(flexible: flexible)
        return start
    }

    /// Patches the size prefix of a frame begun at `start`; returns the frame's total length.
    @inlinable
    @discardableResult
    public static func endRequest(start: Int, into writer: inout ByteWriter) -> Int {
        let total = writer.count - start
        writer.patchInt32(Int32(total - 4), at: start)
        return total
    }

    /// Reads a response header (after the size prefix) and returns its correlation id.
    public static func decodeResponseHeader(from reader: inout ByteReader, headerVersion: Int16) -> Int32 {
        let correlationID = reader.readInt32()
        if headerVersion >= 1 { reader.skipTaggedFields() }
        return correlationID
    }

    /// Decodes a response body, turning the reader's sticky error into a thrown one.
    public static func decodeResponse<R: KafkaRequest>(
        _: R.Type, from reader: inout ByteReader, version: Int16
    ) throws(DecodeError) -> R.Response {
        let response = R.Response(from: &reader, version: version)
        if let error = reader.error { throw error }
        return response
    }
}
