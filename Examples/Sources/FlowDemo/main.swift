// flow-demo: a Kafka group consumer writing into a PostgreSQL that struggles for a while.
// See Options.usage, and docs/flow-control.md ("Demo: a struggling PostgreSQL").
import Foundation
import Klife

func log(_ message: String) {
    FileHandle.standardError.write(Data("flow-demo: \(message)\n".utf8))
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func median(_ values: [Double]) -> Double? {
    Timeline.quantile(values.sorted(), 0.5)
}

/// Connects, retrying while the broker is still starting.
func connect(_ bootstrap: String) async throws -> KlifeClient {
    var config = KlifeConfiguration(bootstrapServers: [bootstrap])
    config.logLevel = .warning
    config.connectTimeout = .seconds(2)
    config.producer.linger = .milliseconds(5)
    let clock = ContinuousClock()
    let deadline = clock.now + .seconds(30)
    while true {
        do {
            return try await KlifeClient.connect(config)
        } catch {
            if clock.now > deadline { throw error }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

/// Produces `count` records (a JSON value with a sequence number, keyed by customer) and
/// returns each partition's end offset.
func produce(_ client: KlifeClient, topic: String, count: Int) async throws -> [Int32: Int64] {
    var ends: [Int32: Int64] = [:]
    let chunk = 10_000
    var next = 0
    while next < count {
        let upper = min(count, next + chunk)
        let records = (next..<upper).map { seq in
            ProducerRecord(topic: topic, key: "customer-\(seq % 997)",
                           value: #"{"seq":\#(seq),"customer":"customer-\#(seq % 997)","amount_cents":\#((seq &* 7919) % 100_000),"currency":"EUR"}"#)
        }
        for result in await client.produceBatch(records) {
            let meta = try result.get()
            ends[meta.partition] = max(ends[meta.partition] ?? 0, meta.offset + 1)
        }
        next = upper
    }
    return ends
}

func runDemo(_ options: Options) async throws -> Int32 {
    let pgURL = try PostgresURL(options.postgresURL)
    let database = Database(pgURL)
    defer { database.shutdown() }
    try await database.prepare()

    let client = try await connect(options.bootstrap)
    let suffix = String(UInt64(Date().timeIntervalSince1970 * 1000), radix: 36)
    let topic = "flow-demo-\(suffix)"
    let group = "flow-demo-\(suffix)"
    try await client.createTopic(topic, partitions: options.partitions)

    let clock = ContinuousClock()
    let produceStart = clock.now
    let endOffsets = try await produce(client, topic: topic, count: options.records)
    await client.flush()
    log("produced \(options.records) records into \(topic) (\(options.partitions) partitions) in "
        + String(format: "%.2f s", seconds(clock.now - produceStart)))

    var settings = ConsumerConfiguration()
    settings.groupID = group
    settings.topics = [topic]
    settings.offsetReset = .earliest
    settings.maxRecords = options.maxRecords
    settings.autoCommitInterval = .seconds(1)
    // Tansu holds a first JoinGroup for about half the session timeout: keep it short.
    settings.sessionTimeout = .seconds(6)
    settings.heartbeatInterval = .seconds(1)
    options.mode.configure(&settings, options)

    let progress = Progress()
    let handler: @Sendable (ConsumerBatch) async throws -> Void = { batch in
        let started = ContinuousClock.now
        let inserted = try await database.insert(batch)
        progress.record(handled: batch.records.count, inserted: inserted,
                        milliseconds: seconds(ContinuousClock.now - started) * 1000)
    }

    let timeline = Timeline()
    let started = clock.now
    let sampler = Task {
        await timeline.run(progress, interval: .milliseconds(options.sampleMs), started: started, total: options.records)
    }

    func start() throws -> (KlifeConsumer, Task<Void, any Error>) {
        let consumer = try client.consumer(settings)
        timeline.watch(consumer)
        return (consumer, Task { try await consumer.run(handler) })
    }

    var rebalances = 0
    var (consumer, running) = try start()
    var restarted = options.restartAt <= 0
    var restartMark: Int?
    var struggleStart: ContinuousClock.Instant?
    var struggleEnd: ContinuousClock.Instant?
    var lockTask: Task<Void, any Error>?
    var struggleWindow: (start: Double, end: Double)?
    var restartTime: Double?
    var timedOut = false
    let deadline = started + .seconds(options.timeoutSeconds)

    func endStruggle() async throws {
        guard let s = struggleStart, struggleEnd == nil else { return }
        switch options.struggle {
        case .slow: try await database.setRowCost(milliseconds: 0)
        case .lock: try await lockTask?.value
        }
        struggleEnd = clock.now
        struggleWindow = (seconds(s - started), seconds(clock.now - started))
        progress.phase = .recovery
        log("struggle over: the database is back to normal")
    }

    while true {
        let inserted = progress.inserted
        if inserted >= options.records { break }
        if clock.now > deadline {
            timedOut = true
            log("timed out after \(options.timeoutSeconds) s with \(inserted) of \(options.records) records in")
            break
        }
        if inserted > 0, progress.phase == .joining { progress.phase = .normal }
        if let mark = restartMark, inserted > mark {
            restartMark = nil
            progress.phase = struggleEnd != nil ? .recovery : .normal
        }
        if !restarted, inserted >= Int(options.restartAt * Double(options.records)), struggleStart == nil || struggleEnd != nil {
            restarted = true
            restartTime = seconds(clock.now - started)
            progress.phase = .restarting
            log("closing the consumer (commits what is processed) and opening a new one in group \(group)")
            await consumer.close()
            try await running.value
            rebalances += max(0, consumer.statistics().group.rebalances - 1)  // after its own first join
            (consumer, running) = try start()
            restartMark = progress.inserted
        }
        // The struggle starts once the consumer is writing (not while it joins the group).
        if struggleStart == nil, inserted >= Int(options.struggleAt * Double(options.records)),
           progress.phase != .joining, progress.phase != .restarting {
            struggleStart = clock.now
            progress.phase = .struggle
            switch options.struggle {
            case .slow:
                log("struggle: inserts one at a time, \(options.rowCostMs) ms per row, for \(options.struggleSeconds) s")
                try await database.setRowCost(milliseconds: options.rowCostMs)
            case .lock:
                log("struggle: another connection holds an EXCLUSIVE lock on the table for \(options.struggleSeconds) s")
                lockTask = Task { try await database.holdExclusiveLock(for: .seconds(options.struggleSeconds)) }
            }
        }
        if let s = struggleStart, struggleEnd == nil, clock.now - s >= .seconds(options.struggleSeconds) {
            try await endStruggle()
        }
        try await Task.sleep(for: .milliseconds(20))
    }
    try await endStruggle()
    let consumeTime = seconds(clock.now - started)
    await consumer.close()
    try await running.value
    rebalances += max(0, consumer.statistics().group.rebalances - 1)  // after its own first join
    timeline.watch(nil)
    sampler.cancel()
    await sampler.value

    // What the table holds, and what the group committed.
    let contents = try await database.contents(topic: topic, records: options.records)
    let committed = try await client.committedOffsets(groupID: group)
    await client.close()
    var commitsRight = true
    for (partition, end) in endOffsets.sorted(by: { $0.key < $1.key }) {
        let c = committed[TopicPartition(topic: topic, partition: partition)] ?? -1
        if c != end {
            commitsRight = false
            log("partition \(partition): committed \(c), end offset \(end)")
        }
    }

    // Rates from the timeline: a sample counts for a phase when the one before it was in it too
    // (its whole interval lies inside the phase).
    let samples = timeline.all
    var before: [Double] = [], during: [Double] = [], after: [Double] = []
    for (i, s) in samples.enumerated() where i > 0 {
        let prev = samples[i - 1]
        guard prev.phase == s.phase, s.inserted < options.records, prev.inserted > 0 || s.phase != .normal else { continue }
        switch s.phase {
        case .normal: before.append(s.recordsPerSecond)
        case .struggle: during.append(s.recordsPerSecond)
        case .recovery: after.append(s.recordsPerSecond)
        case .joining, .restarting: break
        }
    }
    // A short phase may have no whole interval (a fast run, a small --records): then every
    // sample of it with some progress.
    func partial(_ phase: Phase) -> [Double] {
        samples.filter { $0.phase == phase && $0.recordsPerSecond > 0 && $0.inserted < options.records }.map(\.recordsPerSecond)
    }
    if before.isEmpty { before = partial(.normal) }
    if during.isEmpty { during = samples.filter { $0.phase == .struggle }.map(\.recordsPerSecond) }
    if after.isEmpty { after = partial(.recovery) }
    func rate(_ v: Double?) -> String { v.map { String(format: "%.0f", $0) } ?? "n/a" }

    try timeline.writeCSV(to: options.csvPath)
    // The phases, for the plot: one comment-free side file next to the CSV.
    var marks = "event,time_s\n"
    if let w = struggleWindow { marks += "struggle_start,\(w.start)\nstruggle_end,\(w.end)\n" }
    if let r = restartTime { marks += "restart,\(r)\n" }
    marks += "done,\(consumeTime)\n"
    try marks.write(toFile: options.csvPath + ".events", atomically: true, encoding: .utf8)

    let lost = options.records - contents.distinctSeqs
    let duplicated = progress.conflicts + contents.repeatedSeqs
    let figures = "records=\(options.records) rows=\(contents.rows) lost=\(lost) duplicated=\(duplicated) "
        + "rebalances=\(rebalances) before_rate=\(rate(median(before))) min_rate=\(rate(during.min())) "
        + "recovered_rate=\(rate(median(after)))"
    log(String(format: "consumed in %.1f s; mode %@; struggle %@ for %.0f s; timeline in %@",
               consumeTime, options.mode.rawValue, options.struggle.rawValue, options.struggleSeconds, options.csvPath))
    log(commitsRight ? "commits: every partition's committed offset is its end offset"
                     : "commits: WRONG (see above)")
    print(figures)
    let ok = !timedOut && lost == 0 && duplicated == 0 && contents.rows == options.records && commitsRight
    return ok ? 0 : 3
}

let status: Int32
do {
    let options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
    status = try await runDemo(options)
} catch let error as UsageError {
    if !error.description.isEmpty { log(error.description) }
    FileHandle.standardError.write(Data((Options.usage + "\n").utf8))
    status = error.description.isEmpty ? 0 : 2
} catch {
    log("failed: \(String(reflecting: error))")
    status = 1
}
exit(status)
