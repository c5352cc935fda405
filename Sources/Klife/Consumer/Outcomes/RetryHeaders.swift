import KlifeProtocol

/// The headers a record gains when it moves to a retry or dead-letter topic, and reading them
/// back. Values are UTF-8 text (decimal numbers), readable by any Kafka tool.
///
/// | Header | Value |
/// |---|---|
/// | `klife.original.topic` | the topic the record was first read from |
/// | `klife.original.partition` | its partition there |
/// | `klife.original.offset` | its offset there |
/// | `klife.original.timestamp` | its timestamp there (ms since the Unix epoch) |
/// | `klife.attempt` | attempts so far, over the whole chain |
/// | `klife.error` | the last failure (a handler's error or dead-letter reason) |
/// | `klife.first.failure` | when it first failed (ms since the Unix epoch) |
/// | `klife.due` | when a retry topic hands it out again (ms since the Unix epoch) |
public enum RetryHeaders {
    /// The topic the record was first read from.
    public static let originalTopic = "klife.original.topic"
    /// Its partition in the original topic.
    public static let originalPartition = "klife.original.partition"
    /// Its offset in the original topic.
    public static let originalOffset = "klife.original.offset"
    /// Its timestamp in the original topic.
    public static let originalTimestamp = "klife.original.timestamp"
    /// Attempts so far, over the whole chain.
    public static let attempt = "klife.attempt"
    /// The last failure.
    public static let error = "klife.error"
    /// When the record first failed.
    public static let firstFailure = "klife.first.failure"
    /// When a retry topic hands the record out again.
    public static let due = "klife.due"

    static let owned: Set<String> = [originalTopic, originalPartition, originalOffset, originalTimestamp,
                                     attempt, error, firstFailure, due]

    /// The value of header `name` of `record` as text (the last one of that name).
    static func text(_ name: String, of headers: [RecordHeader]) -> String? {
        guard let value = headers.last(where: { $0.key == name })?.value else { return nil }
        return String(decoding: value, as: UTF8.self)
    }

    /// When `record` is due (its `klife.due` header; 0, due at once, without one).
    static func dueTime(of record: ConsumerRecord) -> Int64 {
        text(due, of: record.headers).flatMap { Int64($0) } ?? 0
    }

    /// Attempts recorded on `record` by earlier moves (0 when read from its source topic).
    static func attempts(of headers: [RecordHeader]) -> Int {
        text(attempt, of: headers).flatMap { Int($0) } ?? 0
    }

    /// `record` as it is written to `topic`: key, value and its own headers kept, and the
    /// chain's headers set (the original place and first failure kept from an earlier move).
    static func moved(_ record: ConsumerRecord, to topic: String, attempts: Int, error: String,
                      firstFailure: Int64, due: Int64?) -> ProducerRecord {
        let incoming = record.headers
        var headers = incoming.filter { !owned.contains($0.key) }
        func add(_ name: String, _ value: String) { headers.append(RecordHeader(key: name, value: Array(value.utf8))) }
        add(originalTopic, text(originalTopic, of: incoming) ?? record.topic)
        add(originalPartition, text(originalPartition, of: incoming) ?? String(record.partition))
        add(originalOffset, text(originalOffset, of: incoming) ?? String(record.offset))
        add(originalTimestamp, text(originalTimestamp, of: incoming) ?? String(record.timestamp))
        add(Self.attempt, String(attempts))
        add(Self.error, String(decoding: Array(error.utf8.prefix(4096)), as: UTF8.self))
        add(Self.firstFailure, text(Self.firstFailure, of: incoming) ?? String(firstFailure))
        if let due { add(Self.due, String(due)) }
        return ProducerRecord(topic: topic, key: record.key.map { Array($0) }, value: record.value.map { Array($0) },
                              headers: headers)
    }
}
