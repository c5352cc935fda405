import KlifeProtocol

/// The APIs and version ranges the sink implements, as advertised in ApiVersions.
///
/// Non-flexible versions where the clients allow it (no compact types, no tagged fields),
/// each range overlapping what both klife and librdkafka 2.16 send:
///
/// | API | sink | klife | librdkafka | why |
/// | --- | --- | --- | --- | --- |
/// | ApiVersions | 0–3 | 0–3 | 0–3 | both clients start with v3 (flexible) |
/// | Metadata | 1–8 | 1–12 | 0–13 | v9 is the first flexible version |
/// | Produce | 3–8 | 3–12 | 3+ | v3 = RecordBatch v2; v7+ lets librdkafka use zstd; v9 is flexible |
/// | Fetch | 4–11 | 4–17 | 4+ | v4 = RecordBatch v2; v10+ lets librdkafka use zstd; v12 is flexible |
/// | ListOffsets | 1–5 | 1–9 | 0–7 | v6 is flexible |
/// | FindCoordinator | 0 | 0–6 | 0–2 | only advertised because librdkafka ties LZ4 produce to it |
/// | CreateTopics | 2–4 | 2–7 | 0–4 | v5 is flexible |
/// | DeleteTopics | 1–3 | 1–6 | 0–4 | v4 is flexible |
/// | InitProducerId | 0–1 | 0–5 | 0–4 | v2 is flexible |
enum SupportedApis {
    /// Every implemented API with its version range.
    static let ranges: [(key: ApiKey, versions: ClosedRange<Int16>)] = [
        (.produce, 3...8),
        (.fetch, 4...11),
        (.listOffsets, 1...5),
        (.metadata, 1...8),
        (.findCoordinator, 0...0),
        (.apiVersions, 0...3),
        (.createTopics, 2...4),
        (.deleteTopics, 1...3),
        (.initProducerId, 0...1),
    ]

    /// The range for `key`, or `nil` when the sink does not implement the API.
    static func versions(for key: ApiKey) -> ClosedRange<Int16>? {
        ranges.first { $0.key == key }?.versions
    }

    /// Writes an ApiVersions response body at `version` (0–3). For a version the sink does
    /// not know, `version` is `nil`: Kafka's rule is a v0 body with UNSUPPORTED_VERSION and
    /// the ranges, so that the client retries at a version it finds there.
    static func writeApiVersions(version: Int16?, into body: inout ByteWriter) {
        let flexible = (version ?? 0) >= 3
        body.writeInt16(version == nil ? SinkErrorCode.unsupportedVersion : SinkErrorCode.none)
        body.writeArrayCount(ranges.count, flexible: flexible)
        for (key, versions) in ranges {
            body.writeInt16(key.rawValue)
            body.writeInt16(versions.lowerBound)
            body.writeInt16(versions.upperBound)
            body.writeEmptyTaggedFields(flexible: flexible)
        }
        if let version, version >= 1 { body.writeInt32(0) }   // throttle_time_ms
        body.writeEmptyTaggedFields(flexible: flexible)
    }
}
