/// The API versions one broker supports, as reported by ``ApiVersionsResponse``,
/// and the version choice for each request type.
///
///     let table = ApiVersionTable(response.apiKeys)
///     let version = try table.negotiate(MetadataRequest.self)   // highest version both sides support
public struct ApiVersionTable: Sendable {
    /// Broker ranges indexed by API key (keys the broker did not list, or listed with
    /// `min > max`, are absent).
    private var ranges: [Int16: ClosedRange<Int16>]

    /// Builds the table from the `api_keys` of an ApiVersions response. A key listed
    /// twice keeps its last range.
    public init(_ ranges: [ApiVersionRange]) {
        var table: [Int16: ClosedRange<Int16>] = [:]
        for r in ranges where r.minVersion <= r.maxVersion {
            table[r.apiKey] = r.minVersion...r.maxVersion
        }
        self.ranges = table
    }

    /// Builds the table from a whole ApiVersions response (its error code is not checked).
    public init(_ response: ApiVersionsResponse) { self.init(response.apiKeys) }

    /// The versions the broker supports for `key`, or `nil` when it does not support the API.
    public func range(for key: ApiKey) -> ClosedRange<Int16>? { ranges[key.rawValue] }

    /// The highest version both the broker and this codec support for `R`.
    /// - Throws: ``UnsupportedVersionError`` when the broker lacks the API or the ranges are disjoint.
    public func negotiate<R: KafkaRequest>(_: R.Type) throws(UnsupportedVersionError) -> Int16 {
        try negotiate(R.self, within: R.supportedVersions)
    }

    /// The highest version for `R` that the broker supports, this codec supports, and that
    /// lies in `required`: for a feature that needs a minimum version, e.g.
    /// `negotiate(ListOffsetsRequest.self, within: 7...Int16.max)` for ``ListOffsetsRequest/maxTimestamp``.
    /// - Throws: ``UnsupportedVersionError`` (its client range narrowed to `required`) when no
    ///   such version exists.
    public func negotiate<R: KafkaRequest>(
        _: R.Type, within required: ClosedRange<Int16>
    ) throws(UnsupportedVersionError) -> Int16 {
        let ours = R.supportedVersions
        let broker = ranges[R.apiKey.rawValue]
        guard ours.overlaps(required) else {
            throw UnsupportedVersionError(api: R.apiKey, brokerRange: broker, clientRange: ours)
        }
        let usable = ours.clamped(to: required)
        guard let broker, broker.overlaps(usable) else {
            throw UnsupportedVersionError(api: R.apiKey, brokerRange: broker, clientRange: usable)
        }
        return min(broker.upperBound, usable.upperBound)
    }
}

extension ApiVersionTable: CustomStringConvertible {
    /// `Name vMin-vMax` for every API the broker lists, in key order (`key N` for keys this client does not know).
    public var description: String {
        ranges.sorted { $0.key < $1.key }.map { key, r in
            let name = ApiKey(rawValue: key).map(String.init(describing:)) ?? "key \(key)"
            return "\(name) v\(r.lowerBound)-\(r.upperBound)"
        }.joined(separator: ", ")
    }
}

/// No version of an API is supported by both the broker and this client.
public struct UnsupportedVersionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The API that cannot be used.
    public var api: ApiKey
    /// The broker's supported versions, or `nil` when the broker does not list the API at all.
    public var brokerRange: ClosedRange<Int16>?
    /// The versions this client can encode.
    public var clientRange: ClosedRange<Int16>

    /// Creates the error.
    public init(api: ApiKey, brokerRange: ClosedRange<Int16>?, clientRange: ClosedRange<Int16>) {
        self.api = api
        self.brokerRange = brokerRange
        self.clientRange = clientRange
    }

    /// For example `Fetch: broker supports v0-3, klife supports v4-17`.
    public var description: String {
        let broker = brokerRange.map { "broker supports v\($0.lowerBound)-\($0.upperBound)" } ?? "not supported by broker"
        return "\(api) (key \(api.rawValue)): \(broker), klife supports v\(clientRange.lowerBound)-\(clientRange.upperBound)"
    }
}
