import Klife
import KlifeProtocol

/// Where `klife consume` starts reading each partition (`-o`).
enum StartPosition: Equatable, Sendable {
    case beginning
    case end
    /// An absolute offset.
    case offset(Int64)
    /// `-N`: N records before the end (clamped to the beginning).
    case fromEnd(Int64)
    /// `@MS` / `s@MS`: the first record at or after a timestamp (ms since epoch).
    case timestamp(Int64)

    /// Parses `beginning`, `end`, `N`, `-N`, `@MS` or `s@MS`; `nil` when malformed.
    init?(parsing text: String) {
        switch text {
        case "beginning", "earliest", "start": self = .beginning
        case "end", "latest": self = .end
        default:
            if text.hasPrefix("@") || text.hasPrefix("s@") {
                guard let ms = Int64(text.drop { $0 != "@" }.dropFirst()), ms >= 0 else { return nil }
                self = .timestamp(ms)
            } else if text.hasPrefix("-") {
                guard let n = Int64(text.dropFirst()), n >= 0 else { return nil }
                self = .fromEnd(n)
            } else {
                guard let n = Int64(text), n >= 0 else { return nil }
                self = .offset(n)
            }
        }
    }
}

/// One partition's reading state in the fetch loop.
struct PartitionCursor: Sendable {
    let partition: Int32
    /// The next offset to fetch.
    var position: Int64
    /// The high watermark from the latest answer (ListOffsets at start, then each Fetch).
    var highWatermark: Int64
    /// With `-e`: reached the end.
    var done = false
    /// Consecutive empty fetches below the high watermark (with `-e`).
    var stalls = 0

    /// Resolves `start` for `partition` against its earliest and latest offsets.
    /// - Throws: ``CommandFailure`` when an absolute offset lies outside the partition.
    static func resolve(_ start: StartPosition, topic: String, partition: Int32,
                        client: KlifeClient) async throws -> PartitionCursor {
        let earliest = try await client.listOffset(topic: topic, partition: partition, .earliest)
        let latest = try await highWatermark(topic: topic, partition: partition, earliest: earliest, client: client)
        let position: Int64
        switch start {
        case .beginning: position = earliest
        case .end: position = latest
        case .fromEnd(let n): position = max(earliest, latest - n)
        case .offset(let n):
            guard (earliest...latest).contains(n) else {
                throw CommandFailure("offset \(n) is outside \(topic)/\(partition), which holds offsets \(earliest)..<\(latest)")
            }
            position = n
        case .timestamp(let ms):
            let found = try await client.listOffset(topic: topic, partition: partition, .timestamp(ms))
            position = found < 0 ? latest : found
        }
        return PartitionCursor(partition: partition, position: position, highWatermark: latest)
    }
}

extension PartitionCursor {
    /// The partition's high watermark: the larger of ListOffsets(latest) and the high
    /// watermark a Fetch reports. Tansu 0.6 answers ListOffsets(latest) with the base offset
    /// of the last batch rather than the log end, so the Fetch answer is the reliable one.
    static func highWatermark(topic: String, partition: Int32, earliest: Int64,
                              client: KlifeClient) async throws -> Int64 {
        let listed = try await client.listOffset(topic: topic, partition: partition, .latest)
        let probe = try await client.fetch(topic: topic, partition: partition, offset: max(earliest, listed),
                                           maxBytes: 1, maxWait: .milliseconds(1))
        return max(listed, probe.highWatermark)
    }
}

/// Why the fetch loop ended.
enum ConsumeStop: Sendable {
    /// `-e`: every partition reached its high watermark.
    case reachedEnd
    /// `-c`: the requested number of records was printed.
    case countReached
    /// SIGINT or SIGTERM.
    case signal(Int32)
}

/// The fetch loop: visits the partitions round robin, each cursor tracking its own next
/// offset, and prints records as they arrive.
///
/// While records flow (and always with `-e`), fetches let the broker wait only `drainWait`;
/// after a round with no records (tailing), each fetch waits up to `idleWait / partitions`
/// for new data, so an idle topic costs a few requests per second and new records appear
/// within about `idleWait`.
struct ConsumeLoop {
    let client: KlifeClient
    let topic: String
    let formatter: RecordFormatter
    /// `-e`: stop once every partition is at its high watermark.
    let exitAtEnd: Bool
    /// `-c`: stop after this many records.
    let limit: Int?
    let signals: SignalWatcher
    var maxBytes: Int32 = 1 << 20
    var idleWait: Duration = .milliseconds(500)
    /// Wait used while records flow. Not zero: Tansu answers a zero-wait Fetch without the
    /// partition, which the client reports as a malformed response.
    var drainWait: Duration = .milliseconds(10)
    /// Transient errors tolerated in a row before the loop gives up.
    var retryLimit = 10
    /// `--isolation`: read_committed hides aborted transactions and ends at the last stable offset.
    var isolation: IsolationLevel = .readUncommitted

    /// Runs until a stop condition; returns why it stopped and how many records it printed.
    func run(_ cursors: inout [PartitionCursor], out: inout OutputBuffer) async throws -> (ConsumeStop, Int) {
        var consumed = 0
        if let limit, limit == 0 { return (.countReached, 0) }
        if exitAtEnd {
            for i in cursors.indices where cursors[i].position >= cursors[i].highWatermark { cursors[i].done = true }
        }
        let wait = max(.milliseconds(20), idleWait / max(1, cursors.count))
        var previousRoundHadRecords = true

        while cursors.contains(where: { !$0.done }) {
            var roundHadRecords = false
            for i in cursors.indices where !cursors[i].done {
                if let signal = signals.received { return (.signal(signal), consumed) }
                let result = try await fetch(cursors[i], maxWait: exitAtEnd || previousRoundHadRecords ? drainWait : wait)
                for record in result.records {
                    try formatter.write(record, to: &out)
                    consumed += 1
                    if let limit, consumed >= limit {
                        try out.flush()
                        return (.countReached, consumed)
                    }
                }
                try out.flush()
                roundHadRecords = roundHadRecords || !result.records.isEmpty
                advance(&cursors[i], result)
            }
            previousRoundHadRecords = roundHadRecords
        }
        return (.reachedEnd, consumed)
    }

    /// One fetch, retried with growing pauses while the error is transient (leader moved,
    /// connection reset), up to ``retryLimit`` times.
    private func fetch(_ cursor: PartitionCursor, maxWait: Duration) async throws(KlifeError) -> FetchResult {
        var attempt = 0
        while true {
            do {
                return try await client.fetch(topic: topic, partition: cursor.partition, offset: cursor.position,
                                              maxBytes: maxBytes, maxWait: maxWait, isolation: isolation)
            } catch {
                attempt += 1
                guard error.isRetriable, attempt <= retryLimit else { throw error }
                reportWarning("fetch \(topic)/\(cursor.partition) at offset \(cursor.position) failed, retrying: \(error)")
                try? await Task.sleep(for: .milliseconds(100 * attempt))
            }
        }
    }

    private func advance(_ cursor: inout PartitionCursor, _ result: FetchResult) {
        let moved = result.nextOffset > cursor.position
        cursor.position = max(cursor.position, result.nextOffset)
        // With read_committed the end is the last stable offset: nothing past it can be read yet.
        let end = isolation == .readCommitted && result.lastStableOffset >= 0 ? result.lastStableOffset : result.highWatermark
        if end >= 0 { cursor.highWatermark = end }
        guard exitAtEnd else { return }
        if cursor.position >= cursor.highWatermark {
            cursor.done = true
        } else if moved {
            cursor.stalls = 0
        } else {
            // Below the high watermark yet nothing returned (e.g. only control records): give up eventually.
            cursor.stalls += 1
            if cursor.stalls >= 20 {
                reportWarning("\(topic)/\(cursor.partition) returns no records at offset \(cursor.position) "
                    + "below its high watermark \(cursor.highWatermark); treating it as finished")
                cursor.done = true
            }
        }
    }
}
