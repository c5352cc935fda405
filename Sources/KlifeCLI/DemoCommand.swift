import KlifeIO
import Klife
import KlifeProtocol
import KlifeTesting

/// `klife demo`: the one-command tour. Starts an embedded broker, creates a topic,
/// produces records three ways (batch, callback, awaited), reads everything back across
/// partitions, checks every record against its acknowledged offset, and prints a summary.
enum DemoCommand: Subcommand {
    static let name = "demo"
    static let summary = "One-command demo: embedded broker, produce, fetch back, verify"
    static let topic = "klife-demo"

    static let spec = CommandSpec(
        path: "demo",
        synopsis: "[--records N] [--partitions N]",
        summary: """
            Starts an embedded Tansu broker, creates topic '\(topic)', produces N small records
            (half with produceBatch, half with the callback produce), one more with the awaited
            produce, fetches every partition back, verifies count, keys, values and offsets,
            prints rates and sample records, and stops the broker. Exits 0 when all checks pass.
            """,
        options: [
            OptionSpec(["-n", "--records"], value: "N", help: "Records to produce (default 10000)"),
            OptionSpec(["-P", "--partitions"], value: "N", help: "Partitions of the demo topic (default 3)"),
        ])

    static func main(_ arguments: [String]) async throws -> Int32 {
        let parsed = try spec.parse(arguments)
        let total = try parsed.integer("--records", as: Int.self, in: 1...10_000_000) ?? 10_000
        let partitions = try parsed.integer("--partitions", as: Int32.self, in: 1...1000) ?? 3
        let signals = SignalWatcher.install()
        func checkInterrupted() throws {
            if let signal = signals.received { throw CommandFailure("interrupted by \(SignalWatcher.name(signal))") }
        }

        var out = OutputBuffer()
        try out.line("klife demo: embedded broker → produce → fetch → verify\n")
        try out.flush()

        let clock = ContinuousClock()
        var started = clock.now
        let broker = try await TestBroker.start()
        defer { broker.stop() }
        try step(&out, "broker", "Tansu on \(broker.bootstrapServers), ready in \(Format.elapsed(clock.now - started))")
        try checkInterrupted()

        var config = KlifeConfiguration(bootstrapServers: [broker.bootstrapServers])
        config.producer.linger = .milliseconds(2)
        let client = try await KlifeClient.connect(config)
        do {
            try await client.createTopic(topic, partitions: partitions)
            try step(&out, "topic", "\(topic), \(partitions) partition\(partitions == 1 ? "" : "s")")
            try checkInterrupted()

            // Produce: half in one produceBatch call, half with the callback produce, then flush.
            let acks = AckTable(count: total)
            let half = total / 2
            started = clock.now
            let batchResults = await client.produceBatch((0..<half).map(record))
            for (i, result) in batchResults.enumerated() { acks.set(i, result) }
            let batchTime = clock.now - started
            let asyncStarted = clock.now
            for i in half..<total {
                client.produce(record(i)) { acks.set(i, $0) }
            }
            await client.flush()
            await acks.waitUntilComplete()
            let asyncTime = clock.now - asyncStarted
            let produceTime = clock.now - started
            try step(&out, "produce", "\(Format.grouped(half)) records with produceBatch(_:) in \(Format.elapsed(batchTime))")
            try step(&out, "", "\(Format.grouped(total - half)) records with produce(_:onDelivery:) + flush() in \(Format.elapsed(asyncTime))")
            try step(&out, "", "\(Format.grouped(total)) acknowledged in \(Format.elapsed(produceTime)) → "
                + "\(Format.rate(total, produceTime)) records/s")
            let failed = acks.failures
            if !failed.isEmpty {
                throw CommandFailure("\(failed.count) records failed; first: record \(failed[0].0): \(failed[0].1)")
            }
            try checkInterrupted()

            // One awaited produce, to show the offset it returns.
            let syncRecord = ProducerRecord(topic: topic, key: "sync", value: "hello from klife demo")
            let syncMeta = try await client.produce(syncRecord)
            try step(&out, "sync", "produce(_:) → \(syncMeta) (timestamp \(syncMeta.timestamp))")

            // Fetch every partition from its start to its high watermark.
            started = clock.now
            var fetched: [TopicPartition: [Int64: ConsumerRecord]] = [:]
            var fetchedCount = 0
            for p in 0..<partitions {
                var offset = try await client.listOffset(topic: topic, partition: p, .earliest)
                let end = try await PartitionCursor.highWatermark(topic: topic, partition: p, earliest: offset, client: client)
                while offset < end {
                    let result = try await client.fetch(topic: topic, partition: p, offset: offset, maxWait: .milliseconds(10))
                    guard result.nextOffset > offset else {
                        throw CommandFailure("fetch of \(topic)/\(p) made no progress at offset \(offset) (end \(end))")
                    }
                    for r in result.records { fetched[TopicPartition(topic: topic, partition: p), default: [:]][r.offset] = r }
                    fetchedCount += result.records.count
                    offset = result.nextOffset
                }
            }
            let fetchTime = clock.now - started
            let spread = (0..<partitions).map { "\($0)=\(Format.grouped(fetched[TopicPartition(topic: topic, partition: $0)]?.count ?? 0))" }
            try step(&out, "fetch", "\(Format.grouped(fetchedCount)) records from \(partitions) partitions in \(Format.elapsed(fetchTime)) → "
                + "\(Format.rate(fetchedCount, fetchTime)) records/s")
            try step(&out, "", "per partition: \(spread.joined(separator: " "))")

            // Verify: every record is where its acknowledgement said, with its key and value.
            let problems = verify(acks: acks.results, sync: (syncMeta, syncRecord), fetched: fetched, fetchedCount: fetchedCount)
            if let first = problems.first {
                try out.flush()
                throw CommandFailure("verification failed (\(problems.count) problems); first: \(first)")
            }
            try step(&out, "verify", "ok: \(Format.grouped(fetchedCount)) records, each at its acknowledged offset with its key and value")

            let samples = (0..<partitions).compactMap { fetched[TopicPartition(topic: topic, partition: $0)]?[0] }.prefix(3)
            for (i, r) in samples.enumerated() {
                try step(&out, i == 0 ? "sample" : "", "\(r.topic)/\(r.partition)@\(r.offset)  key=\(r.keyString ?? "null")  "
                    + "value=\(r.valueString ?? "null")  headers=\(r.headers.map { "\($0.key)=\(String(decoding: $0.value ?? [], as: UTF8.self))" }.joined(separator: ","))")
            }
            await client.close()
        } catch {
            await client.close()
            throw error
        }

        started = clock.now
        broker.stop()
        try step(&out, "broker", "stopped in \(Format.elapsed(clock.now - started))")
        try out.line("\ndemo ok")
        try out.flush()
        return ExitStatus.success
    }

    /// The demo's record number `i`: key `key-i`, value `record-i`, one header.
    static func record(_ i: Int) -> ProducerRecord {
        ProducerRecord(topic: topic, key: "key-\(i)", value: "record-\(i)",
                       headers: [RecordHeader(key: "source", value: Array("klife-demo".utf8))])
    }

    /// One aligned summary line: `  label     text`.
    private static func step(_ out: inout OutputBuffer, _ label: String, _ text: String) throws {
        try out.line("  " + label + String(repeating: " ", count: max(1, 10 - label.count)) + text)
        try out.flush()
    }

    /// Compares what was fetched with what was acknowledged; returns one line per problem.
    static func verify(acks: [Result<RecordMetadata, KlifeError>?], sync: (RecordMetadata, ProducerRecord),
                       fetched: [TopicPartition: [Int64: ConsumerRecord]], fetchedCount: Int) -> [String] {
        var problems: [String] = []
        let expectedCount = acks.count + 1
        if fetchedCount != expectedCount {
            problems.append("fetched \(fetchedCount) records, expected \(expectedCount)")
        }
        func check(_ meta: RecordMetadata, key: [UInt8]?, value: [UInt8]?, what: String) {
            guard let got = fetched[TopicPartition(topic: meta.topic, partition: meta.partition)]?[meta.offset] else {
                problems.append("\(what) acknowledged at \(meta) but not fetched")
                return
            }
            if got.key != key || got.value != value {
                problems.append("\(what) at \(meta) has key \(got.keyString ?? "null") value \(got.valueString ?? "null")")
            }
        }
        for (i, ack) in acks.enumerated() {
            guard case .success(let meta)? = ack else {
                problems.append("record \(i) has no successful acknowledgement")
                continue
            }
            let expected = record(i)
            check(meta, key: expected.key, value: expected.value, what: "record \(i)")
        }
        check(sync.0, key: sync.1.key, value: sync.1.value, what: "sync record")
        return problems
    }
}

/// Acknowledgements by record number, filled from batch results and delivery callbacks.
final class AckTable: Sendable {
    private let slots: Locked<[Result<RecordMetadata, KlifeError>?]>
    private let count: Int

    init(count: Int) {
        self.count = count
        slots = Locked(Array(repeating: nil, count: count))
    }

    func set(_ index: Int, _ result: Result<RecordMetadata, KlifeError>) {
        slots.withLock { $0[index] = result }
    }

    var results: [Result<RecordMetadata, KlifeError>?] { slots.withLock { $0 } }

    /// `(index, error)` of every failed record, in index order.
    var failures: [(Int, KlifeError)] {
        slots.withLock { slots in
            slots.enumerated().compactMap { i, r in
                if case .failure(let error)? = r { return (i, error) }
                return nil
            }
        }
    }

    /// Waits until every slot is filled (callbacks may trail `flush()` slightly), at most 5 s.
    func waitUntilComplete() async {
        let deadline = ContinuousClock.now + .seconds(5)
        while slots.withLock({ $0.contains { $0 == nil } }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(1))
        }
    }
}
