import Klife

/// `klife bench consume --group GROUP`: joins GROUP (a fresh group reads from the beginning)
/// subscribed to the topic and reads N records through the consumer's batches, touching every
/// value. The clock starts with the first batch, once the join is done; the join time goes to
/// stderr and into the JSON line as `join_seconds`.
enum BenchConsumeGroup {
    static func run(client: KlifeClient, topic: String, group: String, count: Int, sessionTimeout: Duration,
                    maxWait: Duration, partitions: Int, threads: Bool) async throws -> BenchResult {
        var settings = ConsumerConfiguration()
        settings.groupID = group
        settings.topics = [topic]
        settings.offsetReset = .earliest
        settings.sessionTimeout = sessionTimeout
        settings.heartbeatInterval = min(settings.heartbeatInterval, sessionTimeout / 3)
        settings.autoCommitInterval = nil
        // As the librdkafka peer's fetch.wait.max.ms: Tansu holds a fetch for its whole
        // maxWait once one of its partitions has nothing new, even when others have records.
        settings.fetchMaxWait = maxWait
        let subscribed = BenchSupport.monotonicNanoseconds()
        let consumer = try client.consumer(settings)
        var records = 0
        var bytes = 0
        var sum: UInt64 = 0
        var started: UInt64 = 0
        var cpuStarted: UInt64 = 0
        var threadsBefore = BenchSupport.threadCPU()
        while records < count {
            guard let batch = try await consumer.next() else { break }
            if started == 0 {
                threadsBefore = BenchSupport.threadCPU()
                started = BenchSupport.monotonicNanoseconds()
                cpuStarted = BenchSupport.processCPUNanoseconds()
            }
            for record in batch.records where records < count {
                if let value = record.value, let first = value.first, let last = value.last {
                    sum &+= UInt64(value.count) &+ UInt64(first) &+ UInt64(last)
                    bytes += value.count
                }
                records += 1
            }
        }
        let cpu = BenchSupport.processCPUNanoseconds() &- cpuStarted
        let elapsed = BenchSupport.monotonicNanoseconds() &- started
        if threads { BenchSupport.printThreadCPU(BenchSupport.threadCPUDelta(threadsBefore, BenchSupport.threadCPU()), records: count) }
        await consumer.close(timeout: .seconds(5))
        if records < count { throw CommandFailure("read \(records) of \(count) records") }
        let join = Double(started &- subscribed) / 1e9
        printError("klife bench: joined group '\(group)' after \(Format.fixed(join, digits: 2)) s; read \(records) records, \(bytes) value bytes, checksum \(sum)")
        var result = BenchResult(mode: "consume", records: records, recordSize: records > 0 ? bytes / records : 0,
                                 partitions: partitions, nanoseconds: elapsed, cpuNanoseconds: cpu, bytes: bytes)
        result.extra = [("join_seconds", Format.fixed(join, digits: 3))]
        return result
    }
}
