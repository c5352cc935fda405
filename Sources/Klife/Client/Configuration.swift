public import KlifeProtocol

/// How a client connects, how many reactors it runs, and how its producer batches.
///
/// Every field has a working default; only ``bootstrapServers`` is required.
/// ``validate()`` runs when a client is created and names the first bad field.
///
/// ```swift
/// var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:9092"])
/// config.reactorCount = 2
/// config.reactorCPUAffinity = [[0], [1]]
/// config.producer.linger = .milliseconds(2)
/// let client = try await KlifeClient.connect(config)
/// ```
public struct KlifeConfiguration: Sendable {
    /// `host:port` entries used to discover the cluster (`[::1]:9092` for IPv6 literals).
    public var bootstrapServers: [String]
    /// The client id sent in every request header.
    public var clientID: String = "klife-swift"
    /// Number of reactor threads. Each broker connection belongs to exactly one reactor.
    ///
    /// One by default: a second reactor only pays off with a core of its own beyond the
    /// producing threads and at least as many brokers (see `docs/producer.md`, Reactors).
    public var reactorCount: Int = 1
    /// Optional CPU ids per reactor (index `i` pins reactor `i`). `nil` leaves threads unpinned.
    public var reactorCPUAffinity: [[Int]]? = nil
    /// How long a reactor keeps polling for work after its last event before it sleeps, in
    /// microseconds (0...100,000; 0, the default, sleeps at once).
    ///
    /// Trades CPU for latency: a reactor that polls sees the next record, acknowledgement or
    /// fetched batch without being woken — a wake-up that costs tens of microseconds on a
    /// virtual machine whose idle CPUs halt — but keeps a core busy while events arrive within
    /// the window. For latency-sensitive services at moderate rates; see `docs/producer.md`,
    /// "Busy polling".
    public var reactorBusyPollMicroseconds: Int = 0
    /// Time allowed for a TCP connect (including name resolution).
    public var connectTimeout: Duration = .seconds(10)
    /// Time allowed for one request/response round trip before the connection is failed.
    public var requestTimeout: Duration = .seconds(30)
    /// How often cluster metadata is refreshed even when nothing went wrong.
    public var metadataMaxAge: Duration = .seconds(300)
    /// Whether Metadata requests may create missing topics (on brokers that allow it).
    /// Off by default: producing to a missing topic fails with `unknownTopicOrPartition`.
    public var allowAutoTopicCreation = false
    /// Largest response frame accepted from a broker; larger sizes fail the connection.
    public var maxResponseBytes: Int = 256 << 20
    /// Producer settings.
    public var producer = ProducerConfiguration()
    /// Receives the client's log events (connection losses, retries, epoch bumps, metadata
    /// problems). Called on reactor threads and tasks: keep it quick and thread-safe.
    public var logHandler: (@Sendable (LogEvent) -> Void)? = nil
    /// Events below this level are not built at all.
    public var logLevel: LogLevel = .info
    /// SASL authentication for every connection (`nil`: none). See ``SASLConfiguration``:
    /// without ``tls``, `.plain` sends the password in clear text.
    public var sasl: SASLConfiguration? = nil
    /// The transactional producer pool (`nil`: no transactions). See ``TransactionConfiguration``.
    public var transactions: TransactionConfiguration? = nil
    /// TLS for every connection (`nil`: plain TCP). With ``sasl`` as well this is Kafka's
    /// `SASL_SSL`: SASL runs inside the TLS session. See ``TLSConfiguration``.
    public var tls: TLSConfiguration? = nil

    /// Creates a configuration for the given bootstrap servers.
    public init(bootstrapServers: [String]) {
        self.bootstrapServers = bootstrapServers
    }

    /// Checks every field; the error names the first invalid one.
    /// - Throws: ``KlifeError`` with code ``KlifeError/Code/invalidConfiguration``.
    public func validate() throws(KlifeError) {
        if bootstrapServers.isEmpty { throw .invalidConfiguration("bootstrapServers", "must list at least one host:port") }
        for server in bootstrapServers {
            guard BrokerAddress(parsing: server) != nil else {
                throw .invalidConfiguration("bootstrapServers", "'\(server)' is not host:port")
            }
        }
        if reactorCount < 1 || reactorCount > 64 { throw .invalidConfiguration("reactorCount", "must be 1...64, got \(reactorCount)") }
        if reactorBusyPollMicroseconds < 0 || reactorBusyPollMicroseconds > 100_000 {
            throw .invalidConfiguration("reactorBusyPollMicroseconds", "must be 0...100000, got \(reactorBusyPollMicroseconds)")
        }
        if let affinity = reactorCPUAffinity {
            if affinity.count != reactorCount {
                throw .invalidConfiguration("reactorCPUAffinity", "needs one CPU list per reactor (\(reactorCount)), got \(affinity.count)")
            }
            for list in affinity where list.isEmpty || list.contains(where: { $0 < 0 }) {
                throw .invalidConfiguration("reactorCPUAffinity", "each reactor needs a non-empty list of CPU ids >= 0")
            }
        }
        if connectTimeout <= .zero { throw .invalidConfiguration("connectTimeout", "must be positive") }
        if requestTimeout <= .zero { throw .invalidConfiguration("requestTimeout", "must be positive") }
        if metadataMaxAge <= .zero { throw .invalidConfiguration("metadataMaxAge", "must be positive") }
        if maxResponseBytes < 1024 { throw .invalidConfiguration("maxResponseBytes", "must be at least 1024") }
        try sasl?.validate()
        try tls?.validate()
        try producer.validate()
        try transactions?.validate(producer: producer)
    }
}

/// Acknowledgement level for produced records.
public enum Acks: Int16, Sendable {
    /// No acknowledgement; the broker sends no response (offsets are unknown, reported as -1).
    case none = 0
    /// The partition leader wrote the records.
    case leader = 1
    /// All in-sync replicas have the records (the default).
    case all = -1
}

/// Producer batching and delivery settings.
public struct ProducerConfiguration: Sendable {
    /// Acknowledgement level (default: all in-sync replicas).
    public var acks: Acks = .all
    /// How long a partition's first buffered record may wait for more before its batch is sent.
    /// Zero sends as soon as the reactor runs; records arriving while the broker's in-flight
    /// limit is reached still accumulate into the next batch (dynamic batching).
    ///
    /// With a linger, a record produced while its reactor sleeps until a timer due within the
    /// record's linger does not wake it: the reactor takes the record when the timer wakes
    /// it, counting the record's linger (and its CreateTime) from the produce call. At
    /// moderate rates that saves a wakeup per record (see `docs/producer.md`, "Linger").
    public var linger: Duration = .zero
    /// Largest RecordBatch per partition in one request, in bytes.
    public var maxBatchBytes: Int = 1 << 20
    /// Whether a record is written in its wire form on the producing thread, straight into its
    /// partition's open batch (on by default; with one reactor). The reactor then sends whole
    /// batches: no per-record work on it, no per-record descriptor between the threads.
    /// Off, every record goes to the reactor through its ring and is encoded there at send time
    /// (the partitioner then runs on the reactor too). See `docs/producer.md`, "Where records
    /// are encoded".
    public var appendOnProducingThread: Bool = true
    /// Largest Produce request per broker, in bytes.
    public var maxRequestBytes: Int = 8 << 20
    /// Largest single record accepted (encoded size); larger records fail at once.
    public var maxRecordBytes: Int = 1 << 20
    /// Produce requests a broker connection may have awaiting responses at once.
    public var maxInFlightPerBroker: Int = 5
    /// Time from `produce` until a record must be acknowledged, retries included (counted from
    /// when the reactor takes the record off its queue, microseconds after `produce` unless the
    /// queue was full).
    public var deliveryTimeout: Duration = .seconds(120)
    /// Pause before retrying a partition whose batch failed with a retriable error.
    public var retryBackoff: Duration = .milliseconds(100)
    /// Broker-side time allowed to satisfy `acks` (the request's timeout field).
    public var ackTimeout: Duration = .seconds(30)
    /// Slots in each reactor's record ring (rounded up to a power of two). A full ring
    /// makes `produce` wait (see ``maxBlock``) instead of growing memory.
    public var queueCapacity: Int = 1 << 16
    /// How long `produce` waits for ring space before failing with ``KlifeError/Code/queueFull``.
    public var maxBlock: Duration = .seconds(30)
    /// How long records for a topic the cluster does not know wait (for it to be created or
    /// for metadata to catch up) before they fail with `unknownTopicOrPartition`.
    public var unknownTopicTimeout: Duration = .seconds(1)
    /// Upper bound of the exponential, jittered retry backoff (which starts at ``retryBackoff``).
    public var retryBackoffMax: Duration = .seconds(1)
    /// Codec for produced batches.
    public var compression: CompressionCodec = .none
    /// Codec-specific level (`nil`: the codec's default).
    public var compressionLevel: Int32? = nil
    /// Idempotent production (on by default): the broker drops duplicates of retried
    /// batches and keeps each partition in order. Needs `acks = .all` and at most 5 in flight.
    public var idempotent: Bool = true
    /// Records accepted but not yet acknowledged, at most; beyond it `produce` reports backpressure.
    public var maxBufferedRecords: Int = 1_000_000
    /// Bytes (keys, values and headers) accepted but not yet acknowledged, at most.
    public var maxBufferedBytes: Int = 512 << 20
    /// The partitioner for records without an explicit partition, unless the topic has its own.
    public var partitioner: any Partitioner = DefaultPartitioner()
    /// Partitioners for particular topics, overriding ``partitioner``.
    public var topicPartitioners: [String: any Partitioner] = [:]

    /// Creates default producer settings.
    public init() {}

    func validate() throws(KlifeError) {
        if linger < .zero { throw .invalidConfiguration("producer.linger", "must not be negative") }
        if maxBatchBytes < 1024 { throw .invalidConfiguration("producer.maxBatchBytes", "must be at least 1024") }
        if maxRequestBytes < maxBatchBytes {
            throw .invalidConfiguration("producer.maxRequestBytes", "must be >= producer.maxBatchBytes (\(maxBatchBytes))")
        }
        if maxRecordBytes < 64 || maxRecordBytes > maxBatchBytes {
            throw .invalidConfiguration("producer.maxRecordBytes", "must be 64...producer.maxBatchBytes (\(maxBatchBytes))")
        }
        if maxInFlightPerBroker < 1 { throw .invalidConfiguration("producer.maxInFlightPerBroker", "must be at least 1") }
        if deliveryTimeout <= .zero { throw .invalidConfiguration("producer.deliveryTimeout", "must be positive") }
        if retryBackoff < .zero { throw .invalidConfiguration("producer.retryBackoff", "must not be negative") }
        if ackTimeout <= .zero { throw .invalidConfiguration("producer.ackTimeout", "must be positive") }
        if queueCapacity < 2 || queueCapacity > 1 << 24 {
            throw .invalidConfiguration("producer.queueCapacity", "must be 2...16777216")
        }
        if maxBlock < .zero { throw .invalidConfiguration("producer.maxBlock", "must not be negative") }
        if unknownTopicTimeout < .zero { throw .invalidConfiguration("producer.unknownTopicTimeout", "must not be negative") }
        if retryBackoffMax < retryBackoff {
            throw .invalidConfiguration("producer.retryBackoffMax", "must be >= producer.retryBackoff")
        }
        if idempotent && acks != .all {
            throw .invalidConfiguration("producer.idempotent", "needs acks = .all (or set idempotent = false)")
        }
        if idempotent && maxInFlightPerBroker > 5 {
            throw .invalidConfiguration("producer.maxInFlightPerBroker", "must be 1...5 with idempotence, got \(maxInFlightPerBroker)")
        }
        if maxBufferedRecords < 1 { throw .invalidConfiguration("producer.maxBufferedRecords", "must be at least 1") }
        if maxBufferedBytes < maxRecordBytes {
            throw .invalidConfiguration("producer.maxBufferedBytes", "must be >= producer.maxRecordBytes (\(maxRecordBytes))")
        }
    }
}

/// A parsed `host:port`.
public struct BrokerAddress: Hashable, Sendable, CustomStringConvertible {
    /// Host name or IP literal (IPv6 without brackets).
    public var host: String
    /// TCP port.
    public var port: Int

    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6]:port`; `nil` when malformed.
    public init?(parsing text: String) {
        let text = text.trimmingWhitespace()
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (1...65535).contains(port), !host.isEmpty else { return nil }
            self.init(host: host, port: port)
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            let host = String(text[..<colon])
            guard !host.isEmpty, !host.contains(":"), let port = Int(text[text.index(after: colon)...]),
                  (1...65535).contains(port) else { return nil }
            self.init(host: host, port: port)
        }
    }

    /// `host:port`, bracketing IPv6 literals.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}

extension Duration {
    /// Whole nanoseconds, saturating at zero for negatives.
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }

    /// Whole milliseconds, clamped to Int32 for protocol fields.
    var int32Milliseconds: Int32 {
        Int32(clamping: nanoseconds / 1_000_000)
    }
}
