import Klife
import KlifeProtocol
import Synchronization
import Glibc

/// Shared pieces of `klife bench produce` and `klife bench consume`: options, the process
/// CPU clock, latency percentiles, per-thread CPU and the one-line JSON result.
enum BenchSupport {
    /// Options both modes accept (`-b`, `-X`, the workload, SASL and TLS).
    static let commonSpecs: [OptionSpec] = [
        OptionSpec(["-b", "--bootstrap", "--brokers"], value: "HOST:PORT[,...]",
                   help: "Bootstrap servers (default: $KLIFE_BROKERS)"),
        OptionSpec(["-X", "--property"], value: "KEY=VALUE",
                   help: "Client setting, repeatable (as for 'klife produce')", repeatable: true),
        OptionSpec(["-t", "--topic"], value: "TOPIC", help: "Topic (required)"),
        OptionSpec(["-n", "--records"], value: "N", help: "Records in the measured section (default 1000000)"),
        OptionSpec(["-s", "--record-size"], value: "BYTES", help: "Value size of each record (default 100)"),
        OptionSpec(["-P", "--partitions"], value: "P",
                   help: "Partitions; produce creates the topic with P partitions if missing (default 1)"),
        OptionSpec(["--threads"], help: "Print CPU time per thread over the measured section on stderr (/proc/self/task)"),
    ] + ClientOptions.securitySpecs

    /// `true`/`false` for `--idempotent`, or a usage error.
    static func bool(_ parsed: ParsedArguments, _ key: String) throws(UsageError) -> Bool? {
        guard let text = parsed.value(key) else { return nil }
        switch text {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw parsed.usageError("invalid value '\(text)' for \(key): expected true or false")
        }
    }

    /// User plus system CPU time of the whole process (every thread), in nanoseconds.
    static func processCPUNanoseconds() -> UInt64 {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func ns(_ t: timeval) -> UInt64 { UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_usec) * 1000 }
        return ns(usage.ru_utime) + ns(usage.ru_stime)
    }

    /// Monotonic nanoseconds (vDSO clock_gettime, no syscall).
    @inline(__always)
    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// The `q` quantile (0...1) of `samples` in microseconds (nearest rank), `nil` when empty.
    static func percentileMicros(_ sortedNanos: [UInt64], _ q: Double) -> Double? {
        guard !sortedNanos.isEmpty else { return nil }
        let rank = Int((q * Double(sortedNanos.count)).rounded(.up)) - 1
        let index = min(max(rank, 0), sortedNanos.count - 1)
        return Double(sortedNanos[index]) / 1000
    }

    /// CPU time of every live thread of this process: thread id → (name, nanoseconds).
    /// Read from `/proc/self/task/*/stat` (clock-tick resolution, usually 10 ms).
    static func threadCPU() -> [Int: (name: String, nanoseconds: UInt64)] {
        let ticks = UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))
        var threads: [Int: (name: String, nanoseconds: UInt64)] = [:]
        guard let dir = opendir("/proc/self/task") else { return [:] }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let tid = Int(name) else { continue }
            guard let text = readSmallFile("/proc/self/task/\(name)/stat"),
                  let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else { continue }
            let comm = String(text[text.index(after: open)..<close])
            // Fields after the ")": state(3) ppid(4) ... utime(14) stime(15).
            let rest = text[text.index(after: close)...].split(separator: " ")
            guard rest.count > 12, let user = UInt64(rest[11]), let system = UInt64(rest[12]) else { continue }
            threads[tid] = (comm, (user + system) * (1_000_000_000 / ticks))
        }
        return threads
    }

    /// CPU used per thread name between two ``threadCPU()`` snapshots, largest first.
    /// Thread ids that only appear in `after` count from zero.
    static func threadCPUDelta(_ before: [Int: (name: String, nanoseconds: UInt64)],
                               _ after: [Int: (name: String, nanoseconds: UInt64)]) -> [(String, UInt64)] {
        var byName: [String: UInt64] = [:]
        for (tid, thread) in after {
            let used = thread.nanoseconds - min(thread.nanoseconds, before[tid]?.nanoseconds ?? 0)
            byName[thread.name, default: 0] += used
        }
        return byName.sorted { $0.value > $1.value }.map { ($0.key, $0.value) }
    }

    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }

    /// Prints CPU per thread name over the measured section on stderr.
    static func printThreadCPU(_ usage: [(String, UInt64)], records: Int) {
        var text = "klife bench: CPU per thread over the measured section (clock-tick resolution):\n"
        for (name, ns) in usage where ns > 0 {
            let perRecord = records > 0 ? Double(ns) / Double(records) : 0
            text += "  \(name.padding(to: 20))  \(Format.fixed(Double(ns) / 1e9, digits: 3)) s  "
                + "\(Format.fixed(perRecord, digits: 1)) ns/record\n"
        }
        printError(String(text.dropLast()))
    }

    /// Creates `topic` with `partitions` partitions unless it exists; returns its partition
    /// count (the existing one when it was already there).
    static func ensureTopic(_ client: KlifeClient, _ topic: String, partitions: Int32) async throws -> Int {
        let metadata = try await client.metadata(topics: [topic])
        if let found = metadata.topics[topic], !found.partitions.isEmpty {
            if found.partitions.count != Int(partitions) {
                reportWarning("topic '\(topic)' exists with \(found.partitions.count) partitions (asked for \(partitions)); using it as is")
            }
            return found.partitions.count
        }
        do {
            try await client.createTopic(topic, partitions: partitions)
        } catch {
            // Created concurrently by someone else: fine.
            if error.kafkaErrorCode != .topicAlreadyExists { throw error }
        }
        // Wait until every partition has a leader.
        for _ in 0..<200 {
            let metadata = try await client.metadata(topics: [topic])
            if let found = metadata.topics[topic], found.partitions.count == Int(partitions),
               found.partitions.allSatisfy({ $0.leaderID >= 0 }) {
                return found.partitions.count
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw CommandFailure("topic '\(topic)' has no leaders 5 s after creation")
    }
}

/// The single JSON line a bench run ends with. Numbers are written with fixed decimals so
/// the output never depends on locale or Foundation.
struct BenchResult {
    var client = "klife"
    var mode: String
    var records: Int
    var recordSize: Int
    var partitions: Int
    var nanoseconds: UInt64
    var cpuNanoseconds: UInt64
    var bytes: Int
    /// Sorted latency samples in nanoseconds (empty: not measured, the fields are left out).
    var latencies: [UInt64] = []
    /// Extra `key: value` pairs (already JSON-encoded values), appended after the standard ones.
    var extra: [(String, String)] = []

    var line: String {
        let seconds = Double(nanoseconds) / 1e9
        let rate = seconds > 0 ? Double(records) / seconds : 0
        let mb = seconds > 0 ? Double(bytes) / 1_000_000 / seconds : 0
        let cpu = records > 0 ? Double(cpuNanoseconds) / Double(records) : 0
        var fields: [(String, String)] = [
            ("client", "\"\(client)\""),
            ("mode", "\"\(mode)\""),
            ("records", String(records)),
            ("record_size", String(recordSize)),
            ("partitions", String(partitions)),
            ("seconds", Format.fixed(seconds, digits: 6)),
            ("records_per_sec", Format.fixed(rate, digits: 1)),
            ("mb_per_sec", Format.fixed(mb, digits: 3)),
            ("cpu_ns_per_record", Format.fixed(cpu, digits: 1)),
        ]
        if let p50 = BenchSupport.percentileMicros(latencies, 0.50), let p99 = BenchSupport.percentileMicros(latencies, 0.99) {
            fields.append(("p50_us", Format.fixed(p50, digits: 1)))
            fields.append(("p99_us", Format.fixed(p99, digits: 1)))
            fields.append(("p999_us", Format.fixed(BenchSupport.percentileMicros(latencies, 0.999) ?? p99, digits: 1)))
            fields.append(("max_us", Format.fixed(Double(latencies[latencies.count - 1]) / 1000, digits: 1)))
            fields.append(("latency_samples", String(latencies.count)))
        }
        fields += extra
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    /// Writes the line on stdout.
    func emit() throws {
        var out = OutputBuffer()
        try out.line(line)
        try out.flush()
    }
}

extension String {
    /// Pads with spaces on the right to `width` characters.
    fileprivate func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

extension BenchSupport {
    /// How the pool of fetch buffers served this run (reused memory faults no pages in).
    static func fetchMemoryLine() -> String {
        let pool = ByteBlockPool.shared.statistics
        return "klife bench: fetch buffers: \(pool.reused) reused, \(pool.allocated) newly allocated, "
            + "\(pool.retainedBytes >> 20) MiB kept"
    }
}
