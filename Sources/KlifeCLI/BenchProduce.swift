import KlifeIO
import Klife
import KlifeProtocol
import Synchronization
import Glibc

/// `klife bench produce`: produces N records of a fixed size and reports throughput, CPU
/// per record and latency as one JSON line.
///
/// Each record gets its own value buffer (a copy of a template with the record's index in
/// its first 8 bytes), the same work the librdkafka peer does with `RD_KAFKA_MSG_F_COPY`.
/// The throughput run uses `enqueue` (suspends while the buffer is full) with one shared
/// delivery callback; every `--latency-every`th record gets a callback that also records
/// its enqueue→acknowledgement time. `--sync` produces one record at a time and times each.
/// `--rate N` is the open-loop form (``OpenLoopProduce``): records are scheduled at a fixed
/// offered load and every record is timed from its scheduled time to its acknowledgement.
enum BenchProduce {
    static let spec = CommandSpec(
        path: "bench produce",
        synopsis: "-b HOST:PORT -t TOPIC [-n N] [-s BYTES] [-P P] [--acks all|1|0] [-z CODEC] [--linger-ms N] "
            + "[--idempotent true|false] [--sync | --rate N [--duration S]] [--warmup N]",
        summary: """
            Produces N records of BYTES value bytes (no key, default partitioner) and prints one
            JSON line: records/s, MB/s, process CPU ns per record, and latency percentiles.
            """,
        options: BenchSupport.commonSpecs + [
            OptionSpec(["--acks"], value: "all|1|0", help: "Acknowledgement level (default all)"),
            OptionSpec(["-z", "--compression"], value: "CODEC", help: "\(CompressionCodec.cliNames) (default none)"),
            OptionSpec(["--linger-ms"], value: "N", help: "Producer linger (default 0)"),
            OptionSpec(["--idempotent"], value: "true|false",
                       help: "Idempotent production (default true with acks all, else false)"),
            OptionSpec(["--batch-bytes"], value: "N", help: "Largest batch per partition (default 1048576)"),
            OptionSpec(["--max-buffered"], value: "N",
                       help: "Records accepted but not yet acknowledged, at most (default 1000000)"),
            OptionSpec(["--sync"], help: "Produce one record at a time, waiting for each acknowledgement"),
            OptionSpec(["--warmup"], value: "N", help: "Records produced and flushed before measuring (default 0)"),
            OptionSpec(["--borrowed"],
                       help: "Asynchronous and open-loop runs: produce borrowed bytes (enqueue/produce(topic:value:), no array per record)"),
            OptionSpec(["--no-callback"],
                       help: "With --borrowed, asynchronous runs: enqueue without a callback (outcomes counted in statistics)"),
            OptionSpec(["--shared-value"],
                       help: "Give every record the same value array (no per-record copy; for profiling)"),
            OptionSpec(["--latency-every"], value: "K",
                       help: "Asynchronous runs: time every K-th record's delivery (default 64; 0 = none)"),
            OptionSpec(["--rate"], value: "N",
                       help: "Open loop: schedule N records a second and time every record from its scheduled time"),
            OptionSpec(["--duration"], value: "S",
                       help: "Open loop: measured seconds (default 5; -n N measures N records instead)"),
        ],
        details: """
            The measured section runs from the first measured record to the moment every
            record is acknowledged (flush plus the last callbacks). Exit status 1 if any
            record fails.

            With --rate N (open loop) record i is due at start + i/N seconds; a generator
            thread produces each record when it is due (without waiting for earlier ones)
            and its latency runs from that scheduled time to its acknowledgement, so a
            stalled producer cannot hide latency. The first 0.5 s are a warm-up, not
            measured. The line adds p99.9, max, target_rate and how late the generator
            handed records over (send_lag_*); records_per_sec is the achieved rate.

            Examples:
              klife bench produce -b 127.0.0.1:9092 -t bench-1 -n 1000000 -s 100 -P 6 --linger-ms 5
              klife bench produce -b 127.0.0.1:9092 -t bench-2 -P 6 --rate 200000 --duration 5
            """)

    static func main(_ arguments: [String]) async throws -> Int32 {
        let parsed = try spec.parse(arguments)
        let config = try ClientOptions.configuration(from: parsed) { (config: inout KlifeConfiguration, adjust: inout ClientOptions.Adjustments) throws(UsageError) in
            try ProduceCommand.applyCodecAcksLinger(parsed, to: &config)
            if let batch = try parsed.integer("--batch-bytes", as: Int.self, in: 1024...(64 << 20)) {
                config.producer.maxBatchBytes = batch
                config.producer.maxRequestBytes = max(config.producer.maxRequestBytes, batch)
                config.producer.maxRecordBytes = min(config.producer.maxRecordBytes, batch)
            }
            if let idempotent = try BenchSupport.bool(parsed, "--idempotent") { adjust.idempotence = idempotent }
            if let limit = try parsed.integer("--max-buffered", as: Int.self, in: 1...100_000_000) {
                config.producer.maxBufferedRecords = limit
            }
        }
        let topic = try parsed.required("--topic")
        let threads = parsed.has("--threads")
        let count = try parsed.integer("--records", as: Int.self, in: 1...1_000_000_000) ?? 1_000_000
        let size = try parsed.integer("--record-size", as: Int.self, in: 0...(1 << 20)) ?? 100
        let partitions = try parsed.integer("--partitions", as: Int32.self, in: 1...10_000) ?? 1
        let warmup = try parsed.integer("--warmup", as: Int.self, in: 0...1_000_000_000) ?? 0
        let every = try parsed.integer("--latency-every", as: Int.self, in: 0...1_000_000_000) ?? 64
        let sync = parsed.has("--sync")
        let rate = try parsed.integer("--rate", as: Int.self, in: 1...10_000_000)
        let measuredForRate = try openLoopRecordCount(parsed, rate: rate, sync: sync, warmup: warmup)

        var result = try await ClientOptions.withClient(config) { client -> BenchResult in
            let actualPartitions = try await BenchSupport.ensureTopic(client, topic, partitions: partitions)
            let run = ProduceRun(client: client, topic: topic, size: size, shared: parsed.has("--shared-value"),
                                 borrowed: parsed.has("--borrowed"), noCallback: parsed.has("--no-callback"))
            if let rate, let measuredForRate {
                let openLoop = OpenLoopProduce(run: run, rate: rate, measured: measuredForRate)
                let result = try await openLoop.execute(partitions: actualPartitions, threads: threads)
                printStatistics(await client.statistics())
                return result
            }
            if warmup > 0 {
                _ = try await run.asynchronous(warmup, latencyEvery: 0)
            }
            let threadsBefore = BenchSupport.threadCPU()
            let started = BenchSupport.monotonicNanoseconds()
            let cpuStarted = BenchSupport.processCPUNanoseconds()
            let latencies = sync ? try await run.synchronous(count) : try await run.asynchronous(count, latencyEvery: every)
            let cpu = BenchSupport.processCPUNanoseconds() - cpuStarted
            let elapsed = BenchSupport.monotonicNanoseconds() - started
            if threads { BenchSupport.printThreadCPU(BenchSupport.threadCPUDelta(threadsBefore, BenchSupport.threadCPU()), records: count) }
            printStatistics(await client.statistics())
            return BenchResult(mode: "produce", records: count, recordSize: size, partitions: actualPartitions,
                               nanoseconds: elapsed, cpuNanoseconds: cpu, bytes: count * size, latencies: latencies.sorted())
        }
        result.extra += [
            ("acks", "\"\(config.producer.acks.cliName)\""),
            ("compression", "\"\(config.producer.compression)\""),
            ("linger_ms", String(config.producer.linger.components.seconds * 1000
                                 + config.producer.linger.components.attoseconds / 1_000_000_000_000_000)),
            ("idempotent", config.producer.idempotent ? "true" : "false"),
            ("sync", sync ? "true" : "false"),
        ]
        if parsed.has("--shared-value") { result.extra.append(("shared_value", "true")) }
        if parsed.has("--borrowed") && !sync { result.extra.append(("borrowed", "true")) }
        if parsed.has("--no-callback") && parsed.has("--borrowed") && !sync { result.extra.append(("callback", "false")) }
        try result.emit()
        return ExitStatus.success
    }

    /// The measured record count of an open-loop run (`nil` without `--rate`): `-n`, or
    /// `--duration` seconds (default 5) at the rate.
    private static func openLoopRecordCount(_ parsed: ParsedArguments, rate: Int?, sync: Bool,
                                            warmup: Int) throws(UsageError) -> Int? {
        guard let rate else {
            if parsed.has("--duration") { throw parsed.usageError("--duration needs --rate") }
            return nil
        }
        if sync { throw parsed.usageError("--rate and --sync exclude each other") }
        if warmup > 0 { throw parsed.usageError("--rate has its own 0.5 s warm-up; drop --warmup") }
        if let count = try parsed.integer("--records", as: Int.self, in: 1...1_000_000_000) {
            if parsed.has("--duration") { throw parsed.usageError("give -n or --duration, not both") }
            return count
        }
        let text = parsed.value("--duration") ?? "5"
        guard let seconds = Double(text), seconds >= 0.01, seconds <= 86_400 else {
            throw parsed.usageError("invalid value '\(text)' for --duration: expected seconds in 0.01...86400")
        }
        return max(1, Int((seconds * Double(rate)).rounded()))
    }

    private static func printStatistics(_ stats: KlifeClient.Statistics) {
        printError("klife bench: \(stats.produceRequests) produce requests, \(stats.batchesSent) batches, "
            + "\(stats.retries) retries, \(stats.bytesSent) bytes sent, \(stats.reactorWakeups) reactor wakeups, "
            + "\(stats.wakeupsSaved) saved")
    }
}

/// Delivery outcomes of the throughput run, updated from reactor threads.
final class BenchDeliveries: Sendable {
    /// The one instance: the per-record callback reaches it without capturing anything, so
    /// the callback has no context to retain per record (see docs/producer.md).
    static let shared = BenchDeliveries()

    let delivered = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let firstError = Locked<KlifeError?>(nil)
    let latencies = Locked<[UInt64]>([])

    @inline(__always)
    func complete(_ result: Result<RecordMetadata, KlifeError>) {
        switch result {
        case .success: delivered.wrappingAdd(1, ordering: .relaxed)
        case .failure(let error):
            failed.wrappingAdd(1, ordering: .relaxed)
            firstError.withLock { if $0 == nil { $0 = error } }
        }
    }

    var completed: Int { delivered.load(ordering: .acquiring) + failed.load(ordering: .acquiring) }

    /// The callback of a sampled record: its latency from `sentAt` (monotonic nanoseconds) to
    /// the outcome, then the outcome counted.
    func timed(sentAt: UInt64) -> @Sendable (Result<RecordMetadata, KlifeError>) -> Void {
        { result in
            let took = BenchSupport.monotonicNanoseconds() &- sentAt
            self.latencies.withLock { $0.append(took) }
            self.complete(result)
        }
    }
}

/// One produce workload against one topic.
struct ProduceRun {
    let client: KlifeClient
    let topic: String
    let template: [UInt8]
    /// Every record shares `template` (a retain instead of a copy).
    let shared: Bool
    /// Asynchronous runs produce from one reused buffer through the borrowed-bytes form.
    let borrowed: Bool
    /// With `borrowed`: the form without a callback (no latency samples; outcomes from statistics).
    let noCallback: Bool

    init(client: KlifeClient, topic: String, size: Int, shared: Bool = false, borrowed: Bool = false,
         noCallback: Bool = false) {
        self.client = client
        self.topic = topic
        self.shared = shared
        self.borrowed = borrowed
        self.noCallback = noCallback
        // Printable filler so a peek at the topic shows something readable.
        self.template = (0..<size).map { UInt8(ascii: "a") + UInt8($0 % 26) }
    }

    /// Calls `body` with record `index`'s value in temporary memory instead of an array: the
    /// template with the index in its first bytes.
    @inline(__always)
    func withValueBytes<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeTemporaryAllocation(byteCount: max(template.count, 1), alignment: 8) { raw in
            template.withUnsafeBytes { raw.copyMemory(from: $0) }
            let value = UnsafeMutableRawBufferPointer(rebasing: raw[0..<template.count])
            Self.stampIndex(index, into: value)
            return body(UnsafeRawBufferPointer(value))
        }
    }

    /// Writes `index` (little-endian) over the first bytes of `value`, at most 8.
    @inline(__always)
    static func stampIndex(_ index: Int, into value: UnsafeMutableRawBufferPointer) {
        let n = min(8, value.count)
        guard n > 0 else { return }
        withUnsafeBytes(of: UInt64(truncatingIfNeeded: index).littleEndian) { src in
            value.baseAddress!.copyMemory(from: src.baseAddress!, byteCount: n)
        }
    }

    /// A fresh value buffer for record `index`: the template with the index in its first bytes.
    @inline(__always)
    func value(_ index: Int) -> [UInt8] {
        if shared { return template }
        var value = template
        value.withUnsafeMutableBytes { Self.stampIndex(index, into: $0) }
        return value
    }

    /// Enqueues `count` records and waits until all are acknowledged.
    /// - Returns: sampled enqueue→acknowledgement latencies in nanoseconds.
    func asynchronous(_ count: Int, latencyEvery: Int) async throws -> [UInt64] {
        let deliveries = BenchDeliveries.shared
        let (deliveredBefore, failedBefore) = (deliveries.delivered.load(ordering: .acquiring), deliveries.failed.load(ordering: .acquiring))
        deliveries.latencies.withLock { $0.removeAll() }
        let shared: @Sendable (Result<RecordMetadata, KlifeError>) -> Void = { BenchDeliveries.shared.complete($0) }
        if borrowed {
            // The librdkafka peer's way: one buffer, the index written into it, copied by the producer.
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(template.count, 1), alignment: 8)
            defer { buffer.deallocate() }
            template.withUnsafeBytes { buffer.copyMemory(from: $0) }
            let valueBuffer = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<template.count])
            let bytes = UnsafeRawBufferPointer(valueBuffer)
            if noCallback { return try await asynchronousWithoutCallbacks(count, buffer: valueBuffer) }
            for i in 0..<count {
                Self.stampIndex(i, into: valueBuffer)
                if latencyEvery > 0 && i % latencyEvery == 0 {
                    let sent = BenchSupport.monotonicNanoseconds()
                    try await client.enqueue(topic: topic, value: bytes, onDelivery: deliveries.timed(sentAt: sent))
                } else {
                    try await client.enqueue(topic: topic, value: bytes, onDelivery: shared)
                }
            }
            return try await finish(count, deliveredBefore: deliveredBefore, failedBefore: failedBefore)
        }
        for i in 0..<count {
            // Records are built in the call: a record bound to a local first is copied into
            // the call (a retain and release of each of its references).
            if latencyEvery > 0 && i % latencyEvery == 0 {
                let sent = BenchSupport.monotonicNanoseconds()
                try await client.enqueue(ProducerRecord(topic: topic, value: value(i)), onDelivery: deliveries.timed(sentAt: sent))
            } else {
                try await client.enqueue(ProducerRecord(topic: topic, value: value(i)), onDelivery: shared)
            }
        }
        return try await finish(count, deliveredBefore: deliveredBefore, failedBefore: failedBefore)
    }

    /// The callback-less form: `count` records enqueued, then `flush()`; the client's statistics
    /// say whether all were delivered. No latency samples.
    private func asynchronousWithoutCallbacks(_ count: Int, buffer: UnsafeMutableRawBufferPointer) async throws -> [UInt64] {
        let before = await client.statistics()
        let bytes = UnsafeRawBufferPointer(buffer)
        for i in 0..<count {
            Self.stampIndex(i, into: buffer)
            try await client.enqueue(topic: topic, value: bytes)
        }
        await client.flush()
        let after = await client.statistics()
        let delivered = after.recordsDelivered - before.recordsDelivered
        let failed = after.recordsFailed - before.recordsFailed
        if failed > 0 || delivered != count {
            throw CommandFailure("\(failed) of \(count) records failed, \(count - delivered - failed) never completed")
        }
        return []
    }

    /// Waits until the `count` records enqueued since the counts were `deliveredBefore` /
    /// `failedBefore` are acknowledged; throws when any failed.
    private func finish(_ count: Int, deliveredBefore: Int, failedBefore: Int) async throws -> [UInt64] {
        let deliveries = BenchDeliveries.shared
        await client.flush()
        // flush() can return just before the last callbacks ran.
        let deadline = BenchSupport.monotonicNanoseconds() + 10_000_000_000
        let before = deliveredBefore + failedBefore
        while deliveries.completed - before < count && BenchSupport.monotonicNanoseconds() < deadline {
            try await Task.sleep(for: .microseconds(100))
        }
        let failed = deliveries.failed.load(ordering: .acquiring) - failedBefore
        if failed > 0 || deliveries.completed - before < count {
            let first = deliveries.firstError.withLock { $0 }.map { ": first error: \($0)" } ?? ""
            throw CommandFailure("\(failed) of \(count) records failed, \(count - (deliveries.completed - before)) never completed\(first)")
        }
        return deliveries.latencies.withLock { $0 }
    }

    /// Produces `count` records one at a time.
    /// - Returns: every record's produce→acknowledgement latency in nanoseconds.
    func synchronous(_ count: Int) async throws -> [UInt64] {
        var latencies: [UInt64] = []
        latencies.reserveCapacity(count)
        for i in 0..<count {
            let record = ProducerRecord(topic: topic, value: value(i))
            let sent = BenchSupport.monotonicNanoseconds()
            _ = try await client.produce(record)
            latencies.append(BenchSupport.monotonicNanoseconds() &- sent)
        }
        return latencies
    }
}
