import Klife
import KlifeProtocol

/// `klife bench produce|consume`: a throughput and CPU-per-record measurement that ends
/// with one JSON line on stdout (the same line `Benchmarks/peers/rdkafka_bench` prints for
/// librdkafka, so `Benchmarks/compare.sh` can put the two side by side).
enum BenchCommand: Subcommand {
    static let name = "bench"
    static let summary = "Measure produce or consume throughput and CPU per record (one JSON line)"

    static let help = """
        Usage: klife bench produce|consume -b HOST:PORT -t TOPIC [options]

        Runs a fixed workload against a broker and prints one JSON line on stdout:
          {"client":"klife","mode":"produce","records":N,"record_size":B,"partitions":P,
           "seconds":S,"records_per_sec":R,"mb_per_sec":M,"cpu_ns_per_record":C,
           "p50_us":L50,"p99_us":L99,...}
        CPU is getrusage(RUSAGE_SELF) (every thread, user + system) over the measured section.

        Modes:
          produce   N records of B value bytes (no key), creating the topic with P partitions
                    if missing. See 'klife bench produce --help'.
          consume   Reads N records from the beginning of every partition with fetch and
                    decodes them; with --group GROUP as a member of a consumer group (join
                    time apart, as "join_seconds"), with --assign through the consumer with
                    partitions assigned by hand. See 'klife bench consume --help'.

        Compare against librdkafka with Benchmarks/compare.sh (results in docs/benchmarks.md).
        """

    static func main(_ arguments: [String]) async throws -> Int32 {
        guard let mode = arguments.first else {
            throw UsageError("missing mode: produce or consume", command: "bench")
        }
        let rest = Array(arguments.dropFirst())
        switch mode {
        case "-h", "--help": throw HelpRequest(text: help)
        case "produce": return try await BenchProduce.main(rest)
        case "consume": return try await BenchConsume.main(rest)
        default: throw UsageError("unknown bench mode '\(mode)' (expected produce or consume)", command: "bench")
        }
    }
}
