// The bounded lock-free rings records and tasks travel through to the reactor thread:
// single-thread push+pop cost, and MPSC under two real producer threads.

import Benchmark
import BenchmarkFixtures
import Glibc
import KlifeIO

/// A class reference, so push/pop pay ARC, not malloc (what a ring of records paid while
/// records held references; `PendingRecord` is now a plain value).
final class Token: Sendable {}

let benchmarks: @Sendable () -> Void = {
    let exactMallocs: [BenchmarkMetric: BenchmarkThresholds] = [.mallocCountTotal: .init(absolute: [.p90: 0])]
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]

    // MARK: Single thread (1,000 operations per measured iteration: `*` = per push+pop)

    Benchmark(
        "SPSCRing.pushPop.Int",
        configuration: .init(metrics: metrics, scalingFactor: .kilo, thresholds: exactMallocs)
    ) { benchmark, ring in
        benchmark.startMeasurement()
        var sum = 0
        for i in benchmark.scaledIterations {
            _ = ring.tryPush(i)
            sum &+= ring.pop()!
        }
        benchmark.stopMeasurement()
        blackHole(sum)
    } setup: {
        SPSCRing<Int>(capacity: 1024)
    }

    Benchmark(
        "MPSCRing.pushPop.Int",
        configuration: .init(metrics: metrics, scalingFactor: .kilo, thresholds: exactMallocs)
    ) { benchmark, ring in
        benchmark.startMeasurement()
        var sum = 0
        for i in benchmark.scaledIterations {
            _ = ring.tryPush(i)
            sum &+= ring.pop()!
        }
        benchmark.stopMeasurement()
        blackHole(sum)
    } setup: {
        MPSCRing<Int>(capacity: 1024)
    }

    Benchmark(
        "MPSCRing.pushPop.Object",
        configuration: .init(metrics: metrics, scalingFactor: .kilo, thresholds: exactMallocs)
    ) { benchmark, ring in
        let token = Token()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            _ = ring.tryPush(token)
            blackHole(ring.pop())
        }
        benchmark.stopMeasurement()
    } setup: {
        MPSCRing<Token>(capacity: 1024)
    }

    // A burst: the producer fills 1,000 slots, the consumer drains them in one call,
    // as the reactor does once per loop turn.
    Benchmark(
        "MPSCRing.burst1000.drain.Int",
        configuration: .init(metrics: metrics, scalingFactor: .kilo, thresholds: exactMallocs)
    ) { benchmark, ring in
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations { _ = ring.tryPush(i) }
        var sum = 0
        let drained = ring.drain(maxCount: .max) { sum &+= $0 }
        benchmark.stopMeasurement()
        precondition(drained == benchmark.scaledIterations.count)
        blackHole(sum)
    } setup: {
        MPSCRing<Int>(capacity: 1024)
    }

    // MARK: Two producer threads, one consumer (1,000,000 elements per iteration)

    // Two threads push 500,000 each into a 65,536-slot ring (the producer's default
    // queue capacity), spinning with sched_yield while it is full; this thread pops all
    // of them. On a 2-core machine three busy threads share two cores, so this measures
    // contention and scheduling as much as the ring. Thread creation is in the measured
    // region (a fixed handful of mallocs per iteration, independent of the element count).
    Benchmark(
        "MPSCRing.2producers.Int",
        configuration: .init(metrics: metrics + [.cpuTotal], scalingFactor: .mega, maxDuration: .seconds(3),
                             thresholds: exactMallocs)
    ) { benchmark, ring in
        let perProducer = benchmark.scaledIterations.count / 2
        benchmark.startMeasurement()
        let producers = (0..<2).map { p in
            spawnThread {
                var i = 0
                while i < perProducer {
                    if ring.tryPush(p &* perProducer &+ i) { i &+= 1 } else { sched_yield() }
                }
            }
        }
        var popped = 0
        var sum = 0
        while popped < 2 * perProducer {
            if let v = ring.pop() {
                sum &+= v
                popped &+= 1
            } else {
                sched_yield()
            }
        }
        for t in producers { pthread_join(t, nil) }
        benchmark.stopMeasurement()
        precondition(sum == (2 * perProducer) * (2 * perProducer - 1) / 2, "lost or duplicated elements")
    } setup: {
        MPSCRing<Int>(capacity: 1 << 16)
    }

    // MARK: The producer's partition buffers (1,000 records per measured iteration)

    // A backlog of 4,096 record-sized values appended to a ChunkedQueue, then moved out in
    // batches of 512 into a reused array, as a partition buffer fills and drains: the cost
    // per record of buffering, and no allocation once the pool holds the chunks.
    Benchmark(
        "ChunkedQueue.appendMoveOut.record",
        configuration: .init(metrics: metrics, scalingFactor: .kilo, thresholds: exactMallocs)
    ) { benchmark, backlog in
        benchmark.startMeasurement()
        var moved = 0
        for i in benchmark.scaledIterations {
            backlog.queue.append(BufferedRecord(index: i, chunk: backlog.chunk), pool: backlog.pool)
            if backlog.queue.count == 4096 {
                while !backlog.queue.isEmpty {
                    backlog.batch.removeAll(keepingCapacity: true)
                    backlog.queue.moveFront(512, appendingTo: &backlog.batch, pool: backlog.pool)
                    moved &+= backlog.batch.count
                }
            }
        }
        benchmark.stopMeasurement()
        blackHole(moved)
    } setup: {
        RecordBacklog()
    }
}

/// Stands in for the producer's `PendingRecord` in a partition buffer: the same shape, a
/// fixed-size value with no references (an interned topic and a payload chunk as addresses,
/// offsets, sizes, times), so moving it is a memory copy.
struct BufferedRecord: BitwiseCopyable {
    var topic: UInt = 0
    var partition: Int32 = 0
    var payloadChunk: UInt
    var payloadOffset: Int32 = 0
    var timestamp: Int64 = 0
    var deadline: UInt64 = 0
    var batchBase: Int32 = -1
    var sequenceEpoch: Int16 = -1
    var size: Int32 = 100
    var slot: UInt8 = 0
    var routedAt: UInt64 = 0
    var tracker: UInt = 0

    init(index: Int, chunk: UInt) {
        payloadChunk = chunk
        payloadOffset = Int32(truncatingIfNeeded: index &* 160)
    }
}

/// A queue, its chunk pool (warmed with enough chunks for the whole backlog) and the reused
/// batch array.
final class RecordBacklog {
    var queue = ChunkedQueue<BufferedRecord>()
    let pool = ChunkPool<BufferedRecord>(chunkCapacity: 512, limit: 64)
    var batch: [BufferedRecord] = []
    let chunk: UInt = 0x1000

    init() {
        for i in 0..<4096 { queue.append(BufferedRecord(index: i, chunk: chunk), pool: pool) }
        queue.removeAll(appendingTo: &batch, pool: pool)
        batch.removeAll(keepingCapacity: true)
        batch.reserveCapacity(4096)
    }
}
