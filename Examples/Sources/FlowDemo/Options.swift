import Klife

/// How the consumer's delivery is paced while it writes into PostgreSQL.
enum FlowMode: String, CaseIterable, Sendable {
    /// No limit: `run(_:)` hands out a partition's next batch when its handler returned, so
    /// the database's pace is the consumer's pace.
    case none
    /// A fixed rate limit (`--rate`), as an operator would set one (docs/flow-control.md).
    case manual
    /// The adaptive limit on records in flight (no rate limit): it halves when a batch takes
    /// `--tolerance` times longer per record than the lowest seen, and grows back by
    /// `--increase` records per limit's worth of records finished normally.
    case adaptive

    /// Puts the mode's settings into the consumer's configuration.
    func configure(_ settings: inout ConsumerConfiguration, _ options: Options) {
        switch self {
        case .none:
            settings.rateLimit = nil
        case .manual:
            // A bucket of one second holds at least one whole batch (no batch goes into debt).
            let burst = max(1.0, Double(options.maxRecords) / options.rate)
            settings.rateLimit = ConsumerRateLimit(recordsPerSecond: options.rate,
                                                   burst: .milliseconds(Int64(burst * 1000)))
        case .adaptive:
            settings.rateLimit = nil
            settings.adaptiveLimit = options.adaptiveLimit
        }
    }
}

/// How the database struggles for a while.
enum StruggleKind: String, CaseIterable, Sendable {
    /// Saturated storage: every insert statement waits its turn (one at a time, behind an
    /// advisory lock taken by a trigger) and then costs `--row-cost-ms` per row, so the database
    /// absorbs at most 1000 / row-cost rows per second whatever the number of connections.
    case slow
    /// A migration or `CREATE INDEX` without CONCURRENTLY: another connection holds
    /// `LOCK TABLE … IN EXCLUSIVE MODE`, and every insert waits until it commits.
    case lock
}

/// Command line of `flow-demo`.
struct Options: Sendable {
    var bootstrap = "127.0.0.1:9092"
    var postgresURL = "postgresql://postgres@127.0.0.1:5432/postgres"
    var records = 300_000
    var partitions: Int32 = 6
    var maxRecords = 500
    var mode = FlowMode.adaptive
    var rate = 20_000.0
    // Adaptive mode (see adaptiveLimit): bounds in records in flight; 0 = derived from
    // --partitions and --max-records.
    var limitMinimum = 0
    var limitMaximum = 0
    var limitInitial = 0
    var tolerance = 3.0
    var targetMicroseconds = 400.0
    var increase = 100
    var struggle = StruggleKind.slow
    var struggleAt = 0.4
    var struggleSeconds = 10.0
    var rowCostMs = 0.5
    var restartAt = 0.15
    var csvPath = "flow-demo.csv"
    var sampleMs = 500
    var timeoutSeconds = 300.0

    static let usage = """
        usage: flow-demo --bootstrap HOST:PORT --postgres URL [options]

        Produces N records into a new topic, then a group consumer's run { batch in … } handler
        bulk-inserts every batch into PostgreSQL (INSERT … ON CONFLICT DO NOTHING on the primary
        key (topic, partition, offset), counting conflicts as duplicates). The database struggles
        for a while; the consumer is closed and reopened in the same group once. At the end it
        checks the table against what was produced and prints one line of figures:
          records=N rows=N lost=0 duplicated=0 rebalances=N before_rate=… min_rate=… recovered_rate=…
        and writes a timeline CSV (one row per sample). `rebalances` counts the group's rebalances
        after each consumer's own first join: the struggle must cause none.

          --bootstrap HOST:PORT      Kafka bootstrap server (default 127.0.0.1:9092)
          --postgres URL             postgresql://USER@HOST:PORT/DATABASE (trust auth, no TLS)
          --records N                records to produce and consume (default 300000)
          --partitions N             partitions of the topic (default 6)
          --max-records N            records per batch (default 500)
          --mode adaptive|manual|none
                                     pacing (default adaptive): the adaptive limit on records
                                     in flight, a fixed rate limit, or nothing
          --rate R                   manual mode: records per second (default 20000)
          --limit-min N              adaptive: lowest limit (default max-records / 5)
          --limit-max N              adaptive: highest limit (default partitions × max-records)
          --limit-initial N          adaptive: limit at the start (default the highest)
          --target-us X              adaptive: congestion above X µs per record (default 400;
                                     0: learn the baseline instead, see --tolerance)
          --tolerance X              adaptive with --target-us 0: congestion above X × the
                                     learned latency per record (default 3)
          --increase N               adaptive: records added per limit's worth finished
                                     normally (default 100)
          --struggle slow|lock       how the database struggles (default slow):
                                     slow: inserts one at a time and --row-cost-ms per row
                                     lock: another connection holds an EXCLUSIVE table lock
          --struggle-at F            starts when this fraction of the records is in (default 0.4)
          --struggle-seconds S       how long it lasts (default 10)
          --row-cost-ms X            slow: milliseconds per inserted row (default 0.5)
          --restart-at F             close and reopen the consumer when this fraction is in
                                     (default 0.15; 0: no restart)
          --csv PATH                 timeline CSV (default flow-demo.csv)
          --sample-ms N              timeline sample interval (default 500)
          --timeout S                give up after S seconds of consuming (default 300)
        """

    /// The adaptive mode's settings. The defaults, for 6 partitions of batches of 500:
    /// - maximum 3,000 = one whole batch in flight per partition, what `none` has at most: the
    ///   limit never holds back a healthy database;
    /// - initial = the maximum: it starts as `none` and only measured latency lowers it;
    /// - minimum 100 = one bulk insert still worth a round trip; at 0.5 ms per row a struggling
    ///   database then holds 50 ms of work from this consumer, not 1.5 s;
    /// - a target of 400 µs per record, not a learned baseline (`--target-us 0`): a learned
    ///   baseline settles near the 10th percentile of each size class and needs two slow batches
    ///   in a row, and with `--tolerance 3` the struggle is handled as well as with the target
    ///   (at 100 to its end), but healthy latency of split batches spreads widely (batches of
    ///   60–100 records: 3–10 ms at p50, 13–90 ms at p99), so once a decrease splits batches more
    ///   decreases follow: 2–12 before the struggle (down to 550 in one run), 37–57 after it,
    ///   the limit at 260–750 instead of 3,000; `--tolerance 2` is worse (62 before, at 350)
    ///   (docs/flow-control.md, "Demo"). A struggling batch takes at least 500 µs per record
    ///   (0.5 ms per row, one statement at a time), above the target whatever its size;
    /// - increase 100 per limit's worth: back from 100 to 3,000 in about 45,000 records
    ///   ((3000² − 100²) / (2 × 100)), a few seconds after the database is well again.
    var adaptiveLimit: AdaptiveLimit {
        let maximum = limitMaximum > 0 ? limitMaximum : Int(partitions) * maxRecords
        let minimum = limitMinimum > 0 ? limitMinimum : min(maximum, max(1, maxRecords / 5))
        let initial = limitInitial > 0 ? limitInitial : maximum
        let baseline: AdaptiveLimit.Baseline = targetMicroseconds > 0
            ? .target(perRecord: .nanoseconds(Int64(targetMicroseconds * 1000))) : .learned(tolerance: tolerance)
        return AdaptiveLimit(baseline: baseline, minimum: minimum, maximum: maximum,
                             initial: initial, decreaseFactor: 0.5, increasePerRoundTrip: max(1, increase))
    }

    static func parse(_ arguments: [String]) throws -> Options {
        var o = Options()
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < arguments.count else { throw UsageError("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        func number(_ text: String, _ name: String) throws -> Double {
            guard let v = Double(text), v.isFinite, v >= 0 else { throw UsageError("\(name): not a number ≥ 0: \(text)") }
            return v
        }
        while i < arguments.count {
            let arg = arguments[i]
            switch arg {
            case "--bootstrap": o.bootstrap = try value()
            case "--postgres": o.postgresURL = try value()
            case "--records": o.records = Int(try number(try value(), arg))
            case "--partitions": o.partitions = Int32(try number(try value(), arg))
            case "--max-records": o.maxRecords = Int(try number(try value(), arg))
            case "--mode":
                let v = try value()
                guard let m = FlowMode(rawValue: v) else {
                    throw UsageError("--mode: one of \(FlowMode.allCases.map(\.rawValue).joined(separator: ", ")), not \(v)")
                }
                o.mode = m
            case "--rate": o.rate = try number(try value(), arg)
            case "--limit-min": o.limitMinimum = Int(try number(try value(), arg))
            case "--limit-max": o.limitMaximum = Int(try number(try value(), arg))
            case "--limit-initial": o.limitInitial = Int(try number(try value(), arg))
            case "--tolerance": o.tolerance = try number(try value(), arg)
            case "--target-us": o.targetMicroseconds = try number(try value(), arg)
            case "--increase": o.increase = Int(try number(try value(), arg))
            case "--struggle":
                let v = try value()
                guard let s = StruggleKind(rawValue: v) else { throw UsageError("--struggle: slow or lock, not \(v)") }
                o.struggle = s
            case "--struggle-at": o.struggleAt = try number(try value(), arg)
            case "--struggle-seconds": o.struggleSeconds = try number(try value(), arg)
            case "--row-cost-ms": o.rowCostMs = try number(try value(), arg)
            case "--restart-at": o.restartAt = try number(try value(), arg)
            case "--csv": o.csvPath = try value()
            case "--sample-ms": o.sampleMs = Int(try number(try value(), arg))
            case "--timeout": o.timeoutSeconds = try number(try value(), arg)
            case "-h", "--help": throw UsageError("")
            default: throw UsageError("unknown argument \(arg)")
            }
            i += 1
        }
        guard o.records > 0, o.partitions > 0, o.maxRecords > 0, o.sampleMs >= 50 else {
            throw UsageError("--records, --partitions and --max-records must be > 0, --sample-ms ≥ 50")
        }
        guard o.mode != .manual || o.rate > 0 else { throw UsageError("--rate must be > 0") }
        if o.mode == .adaptive {
            do { try o.adaptiveLimit.validate() } catch { throw UsageError("adaptive limit: \(error)") }
        }
        guard o.struggleAt < 1, o.restartAt < 1 else { throw UsageError("--struggle-at and --restart-at are fractions below 1") }
        return o
    }
}

struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The parts of a `postgresql://USER@HOST:PORT/DATABASE` URL.
struct PostgresURL: Sendable {
    var user = "postgres"
    var host = "127.0.0.1"
    var port = 5432
    var database = "postgres"

    init(_ url: String) throws {
        var rest = Substring(url)
        for scheme in ["postgresql://", "postgres://"] where rest.hasPrefix(scheme) {
            rest = rest.dropFirst(scheme.count)
        }
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty { database = String(db) }
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") {
            user = String(rest[..<at].split(separator: ":").first ?? "postgres")
            rest = rest[rest.index(after: at)...]
        }
        if let colon = rest.lastIndex(of: ":") {
            guard let p = Int(rest[rest.index(after: colon)...]) else { throw UsageError("--postgres: bad port in \(url)") }
            port = p
            rest = rest[..<colon]
        }
        if !rest.isEmpty { host = String(rest) }
    }
}
