import KlifeProtocol

/// The command line of `klife-sink`.
struct SinkOptions {
    /// Loopback port of node 0; 0 lets the kernel pick a free one. Node `i` listens on
    /// `port + i`, or on a free port when `port` is 0.
    var port: UInt16 = 0
    /// Brokers the sink plays (node ids `0..<nodes`, each on its own port).
    var nodes: Int = 1
    /// Topics that exist from the start, with their partition counts.
    var topics: [(name: String, partitions: Int32)] = []
    /// Partition count of topics created by Metadata or by CreateTopics without a count.
    var defaultPartitions: Int32 = 6
    /// Records every partition holds for Fetch (0: Fetch finds nothing).
    var fetchRecords: Int64 = 0
    /// Value size of the prepared records, in bytes.
    var fetchRecordSize: Int = 100
    /// Codec of the prepared batches.
    var fetchCompression: CompressionCodec = .none
    /// Records per prepared batch; `nil` picks about 1 MB of records per batch.
    var fetchBatchRecords: Int?

    static let usage = """
        usage: klife-sink [--port P] [--nodes N] [--topic NAME:PARTITIONS]... [--default-partitions N]
                          [--fetch-records N] [--fetch-record-size B]
                          [--fetch-compression none|gzip|snappy|lz4|zstd] [--fetch-batch-records K]

        A Kafka-speaking sink for benchmarks: brokers on 127.0.0.1 (one by default, node 0) that
        acknowledge Produce without storing anything and serve Fetch from one record set prepared
        at start-up (N records of B-byte values in every partition). With --nodes N, node ids
        0..N-1 each listen on their own port and partition p of every topic is led by node p mod N.
        Prints `listening 127.0.0.1:PORT` (node 0) as its first line of output, then
        `node I listening 127.0.0.1:PORT` for every further node.

          --port P                 port of node 0 (default 0: a free one; node i gets P+i)
          --nodes N                brokers to play, 1-64 (default 1)
          --topic NAME:PARTITIONS  a topic that exists from the start (repeatable)
          --default-partitions N   partitions of topics created on demand (default 6)
          --fetch-records N        records every partition holds for consumers (default 0)
          --fetch-record-size B    value bytes of those records (default 100)
          --fetch-compression C    codec of the prepared batches (default none)
          --fetch-batch-records K  records per prepared batch (default: about 1 MB of records)
        """

    /// Parses `arguments` (without the program name).
    /// - Throws: ``SinkOptionsError`` with a message for the user.
    static func parse(_ arguments: [String]) throws(SinkOptionsError) -> SinkOptions {
        var options = SinkOptions()
        var rest = arguments[...]
        func value(_ flag: String) throws(SinkOptionsError) -> String {
            guard let next = rest.popFirst() else { throw SinkOptionsError("\(flag) needs a value") }
            return next
        }
        func integer<T: FixedWidthInteger>(_ flag: String, _: T.Type, minimum: T) throws(SinkOptionsError) -> T {
            let text = try value(flag)
            guard let number = T(text), number >= minimum else {
                throw SinkOptionsError("\(flag): '\(text)' is not an integer >= \(minimum)")
            }
            return number
        }
        while let flag = rest.popFirst() {
            switch flag {
            case "--port": options.port = try integer(flag, UInt16.self, minimum: 0)
            case "--nodes":
                options.nodes = try integer(flag, Int.self, minimum: 1)
                guard options.nodes <= 64 else { throw SinkOptionsError("--nodes: at most 64") }
            case "--default-partitions":
                options.defaultPartitions = min(try integer(flag, Int32.self, minimum: 1), SinkCatalog.maxPartitions)
            case "--fetch-records": options.fetchRecords = try integer(flag, Int64.self, minimum: 0)
            case "--fetch-record-size": options.fetchRecordSize = try integer(flag, Int.self, minimum: 0)
            case "--fetch-batch-records": options.fetchBatchRecords = try integer(flag, Int.self, minimum: 1)
            case "--fetch-compression":
                let name = try value(flag)
                guard let codec = [CompressionCodec.none, .gzip, .snappy, .lz4, .zstd].first(where: { $0.description == name })
                else { throw SinkOptionsError("--fetch-compression: unknown codec '\(name)'") }
                options.fetchCompression = codec
            case "--topic":
                let spec = try value(flag)
                guard let colon = spec.lastIndex(of: ":"), colon != spec.startIndex,
                      let count = Int32(spec[spec.index(after: colon)...]), (1...SinkCatalog.maxPartitions).contains(count)
                else { throw SinkOptionsError("--topic: '\(spec)' is not NAME:PARTITIONS") }
                options.topics.append((String(spec[..<colon]), count))
            case "-h", "--help": throw SinkOptionsError(usage, isHelp: true)
            default: throw SinkOptionsError("unknown option '\(flag)' (see --help)")
            }
        }
        if options.port != 0, Int(options.port) + options.nodes - 1 > Int(UInt16.max) {
            throw SinkOptionsError("--port \(options.port) leaves no room for \(options.nodes) consecutive ports")
        }
        return options
    }
}

/// A command line `klife-sink` cannot run with, or a request for the usage text.
struct SinkOptionsError: Error {
    /// What to print.
    var message: String
    /// The user asked for help: print to stdout and exit 0.
    var isHelp = false

    init(_ message: String, isHelp: Bool = false) {
        self.message = message
        self.isHelp = isHelp
    }
}
