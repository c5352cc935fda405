// Deterministic test data for the benchmarks. Everything here runs in setup, outside
// the measured regions, so it favours clarity over speed.

public import KlifeProtocol

/// SplitMix64: a tiny deterministic generator, so every run measures the same bytes.
public struct SplitMix64: Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// One record to encode, shaped the way the producer holds it (`PendingRecord`):
/// optional key and value byte arrays plus headers.
public struct SampleRecord: Sendable {
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [RecordHeader]
    /// Milliseconds after the batch's base timestamp.
    public var timestampDelta: Int64
}

/// Shape of the records of an encode benchmark.
public struct RecordShape: Sendable {
    public var valueSize: Int
    public var withKey: Bool
    public var withHeaders: Bool

    public init(valueSize: Int, withKey: Bool, withHeaders: Bool) {
        self.valueSize = valueSize
        self.withKey = withKey
        self.withHeaders = withHeaders
    }

    /// `100B`, `1KiB`, ... plus `+key`, `+hdrs`.
    public var label: String {
        let size = valueSize % 1024 == 0 ? "\(valueSize / 1024)KiB" : "\(valueSize)B"
        return size + (withKey ? "+key" : "") + (withHeaders ? "+hdrs" : "")
    }
}

public enum Fixtures {
    /// Base timestamp of every generated batch (ms since epoch).
    public static let baseTimestamp: Int64 = 1_718_000_000_000

    /// The two headers of the `+hdrs` shapes: a trace id and a content type
    /// (11/12-byte names, 19/16-byte values, typical of tracing propagation).
    public static let standardHeaders: [RecordHeader] = [
        RecordHeader(key: "traceparent", value: Array("00-4bf92f3577b34da6".utf8)),
        RecordHeader(key: "content-type", value: Array("application/json".utf8)),
    ]

    /// Bytes that look like nothing in particular (incompressible).
    public static func randomBytes(count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    /// A 16-byte key such as `user-0000048213`.
    public static func key(_ n: Int) -> [UInt8] {
        let digits = String(n)
        return Array(("user-" + String(repeating: "0", count: max(0, 11 - digits.count)) + digits).utf8)
    }

    /// `count` records of `shape`; values are random bytes, timestamps advance 1 ms
    /// every 8 records (several records per millisecond, as under load).
    public static func records(count: Int, shape: RecordShape, seed: UInt64 = 42) -> [SampleRecord] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { i in
            SampleRecord(
                key: shape.withKey ? key(rng.next(below: 1_000_000)) : nil,
                value: randomBytes(count: shape.valueSize, seed: rng.next()),
                headers: shape.withHeaders ? standardHeaders : [],
                timestampDelta: Int64(i / 8))
        }
    }

    /// One structured log/event line (about 250 bytes of JSON), the kind of value
    /// Kafka topics mostly carry; realistic for compression ratios.
    public static func jsonEvent(_ rng: inout SplitMix64, sequence: Int) -> [UInt8] {
        let services = ["checkout", "cart", "search", "payments", "inventory", "auth"]
        let events = ["cart.add", "cart.remove", "page.view", "search.query", "order.placed", "login.ok"]
        let levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN"]
        let hex = Array("0123456789abcdef".utf8)
        var session = [UInt8]()
        for _ in 0..<16 { session.append(hex[rng.next(below: 16)]) }
        let line = #"{"ts":\#(baseTimestamp + Int64(sequence * 3 + rng.next(below: 3))),"#
            + #""level":"\#(levels[rng.next(below: levels.count)])","#
            + #""service":"\#(services[rng.next(below: services.count)])","#
            + #""host":"ip-10-0-\#(rng.next(below: 8))-\#(rng.next(below: 250))","#
            + #""user_id":\#(rng.next(below: 100_000)),"#
            + #""session":"\#(String(decoding: session, as: UTF8.self))","#
            + #""event":"\#(events[rng.next(below: events.count)])","#
            + #""sku":"SKU-\#(100_000 + rng.next(below: 5_000))","qty":\#(1 + rng.next(below: 4)),"#
            + #""price_cents":\#(99 + rng.next(below: 20_000)),"latency_ms":\#(rng.next(below: 400))}"#
        return Array(line.utf8)
    }

    /// Exactly `byteCount` bytes of RecordBatch v2 records (what a codec compresses:
    /// the bytes after the 61-byte header) made of keyed JSON events.
    public static func jsonRecordsSection(byteCount: Int, seed: UInt64 = 7) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        var writer = ByteWriter(capacity: byteCount + 4096)
        var batch = RecordBatchEncoder(writer: &writer, baseTimestamp: baseTimestamp)
        var i = 0
        while batch.byteCount(in: writer) < RecordBatchLayout.headerSize + byteCount {
            batch.append(into: &writer, timestamp: baseTimestamp + Int64(i * 3), key: key(rng.next(below: 100_000)),
                         value: jsonEvent(&rng, sequence: i), headers: [])
            i += 1
        }
        batch.finish(into: &writer)
        let all = writer.bytes
        return Array(all[RecordBatchLayout.headerSize..<(RecordBatchLayout.headerSize + byteCount)])
    }

    /// One complete RecordBatch v2 holding `records`, as a broker would return it.
    public static func encodeBatch(_ records: [SampleRecord], baseOffset: Int64 = 0) -> [UInt8] {
        var writer = ByteWriter(capacity: 4096)
        var batch = RecordBatchEncoder(writer: &writer, baseOffset: baseOffset, partitionLeaderEpoch: 5,
                                       baseTimestamp: baseTimestamp)
        for r in records {
            batch.append(into: &writer, timestamp: baseTimestamp + r.timestampDelta, key: r.key, value: r.value,
                         headers: r.headers)
        }
        batch.finish(into: &writer)
        return writer.bytes
    }

    /// A Fetch response body (after the response header) at `version` (12...17) with one
    /// topic of `partitions` partitions, each holding `batchesPerPartition` batches of
    /// `recordsPerBatch` records of `shape`.
    public static func fetchResponse(
        version: Int16, partitions: Int, batchesPerPartition: Int, recordsPerBatch: Int, shape: RecordShape
    ) -> [UInt8] {
        precondition(version >= 12, "flexible versions only")
        var records: [[UInt8]] = []
        for p in 0..<partitions {
            var bytes: [UInt8] = []
            for b in 0..<batchesPerPartition {
                let batch = Self.records(count: recordsPerBatch, shape: shape, seed: UInt64(p * 1000 + b))
                bytes += encodeBatch(batch, baseOffset: Int64(b * recordsPerBatch))
            }
            records.append(bytes)
        }
        var w = ByteWriter(capacity: records.reduce(0) { $0 + $1.count } + 1024)
        w.writeInt32(0)                       // throttle_time_ms
        w.writeInt16(0)                       // error_code
        w.writeInt32(12345)                   // session_id
        w.writeArrayCount(1, flexible: true)  // responses
        if version >= 13 {
            w.writeUUID(KafkaUUID(high: 0x1234_5678_9abc_def0, low: 0x0fed_cba9_8765_4321))
        } else {
            w.writeCompactString("events")
        }
        w.writeArrayCount(partitions, flexible: true)
        for (p, bytes) in records.enumerated() {
            let lastOffset = Int64(batchesPerPartition * recordsPerBatch)
            w.writeInt32(Int32(p))            // partition_index
            w.writeInt16(0)                   // error_code
            w.writeInt64(lastOffset)          // high_watermark
            w.writeInt64(lastOffset)          // last_stable_offset
            w.writeInt64(0)                   // log_start_offset
            w.writeUnsignedVarint(0)          // aborted_transactions: null
            w.writeInt32(-1)                  // preferred_read_replica
            w.writeCompactBytes(bytes)        // records
            w.writeEmptyTaggedFields()
        }
        w.writeEmptyTaggedFields()            // topic
        w.writeEmptyTaggedFields()            // response
        return w.bytes
    }
}

/// Owns one ``ByteWriter`` for the life of a benchmark, the way a connection owns its
/// outbound buffer: iterations reuse its memory (`removeAll()`), so the measured loop
/// sees the steady state, not the first growth.
public final class WriterBox {
    public var writer: ByteWriter

    public init(capacity: Int) { writer = ByteWriter(capacity: capacity) }

    /// Runs `body` with the writer (one exclusivity check per call, none in the loop inside).
    @inlinable
    public func with<R>(_ body: (inout ByteWriter) -> R) -> R { body(&writer) }
}
