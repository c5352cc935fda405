// Encode at append across two threads: what a record would cost on the path the producer
// is moving to (docs/DESIGN.md, "Performance"), measured without a network.
//
// A producing thread appends 100-byte records, sticky to one of 6 partitions at a time, to
// that partition's open batch under the partition's lock, in their final wire form
// (`AppendingRecordBatch`, 16 KiB). A full batch is handed to a second thread — the
// reactor's part — through a ring of batch references, with a wakeup only when that thread
// sleeps; it frames the batch (header patch, CRC-32C over its bytes), copies it into an
// outbound buffer as the kernel's send would, and returns its block to the producing
// thread's pool. Per record that leaves a lock, an encode and a share of the framing; no
// descriptor, no chunk, no per-record completion. Compare with `klife bench produce
// --borrowed` against the sink broker (docs/benchmarks.md), which does all of that and
// talks to a socket: the difference is what the move can take off per record.
//
// 1,000,000 records per measured iteration (`*` values are per record); the measurement
// ends when the second thread has framed every record's batch.

import Benchmark
import BenchmarkFixtures
import Glibc
import KlifeIO
import KlifeProtocol
import Synchronization

/// One block of the pool: a batch and the partition it was opened for.
final class BatchBlock: @unchecked Sendable {
    @exclusivity(unchecked) var batch = AppendingRecordBatch(limit: 16_384, baseTimestamp: 0)
    var partition = 0
}

/// A partition's open batch, guarded by its lock.
struct OpenBatch: @unchecked Sendable {
    var block: Unmanaged<BatchBlock>?
}

/// One partition: its lock and open batch.
final class PartitionLog: Sendable {
    let open = Mutex(OpenBatch())
}

/// Sleeps a thread until another posts, registering first so the poster knows to post.
final class Sleeper: @unchecked Sendable {
    private let waiting = Atomic<Bool>(false)
    private var semaphore = sem_t()

    init() { sem_init(&semaphore, 0, 0) }

    /// Sleeps unless `stillEmpty` turns false after registering.
    func sleep(if stillEmpty: () -> Bool) {
        waiting.store(true, ordering: .sequentiallyConsistent)
        if stillEmpty() { while sem_wait(&semaphore) != 0 {} } else { _ = waiting.exchange(false, ordering: .relaxed) }
    }

    /// Wakes the thread if it registered.
    func wake() {
        if waiting.load(ordering: .sequentiallyConsistent), waiting.exchange(false, ordering: .sequentiallyConsistent) {
            sem_post(&semaphore)
        }
    }
}

/// The two threads' shared state.
final class Pipeline: @unchecked Sendable {
    static let partitionCount = 6
    static let valueBytes = 100

    private let partitionObjects = (0..<partitionCount).map { _ in PartitionLog() }
    /// The partitions, lent (`partitionObjects` keeps them): no retain per record.
    let partitions: [Unmanaged<PartitionLog>]
    /// Full batches, producing thread → framing thread.
    let full = MPSCRing<Unmanaged<BatchBlock>>(capacity: 1024)
    /// Framed blocks, framing thread → producing thread.
    let free = MPSCRing<Unmanaged<BatchBlock>>(capacity: 1024)
    let framer = Sleeper()
    let framedRecords = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let value = UnsafeMutableRawBufferPointer.allocate(byteCount: valueBytes, alignment: 16)
    var sticky = 0
    var thread = pthread_t()
    private var blocks: [BatchBlock] = []

    init() {
        partitions = partitionObjects.map { Unmanaged.passUnretained($0) }
        for i in 0..<Self.valueBytes { value[i] = UInt8(truncatingIfNeeded: i) }
        for _ in 0..<256 {
            let block = BatchBlock()
            blocks.append(block)
            _ = free.tryPush(Unmanaged.passUnretained(block))
        }
        thread = spawnThread { [unowned self] in frameLoop() }
    }

    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        framer.wake()
        pthread_join(thread, nil)
        value.deallocate()
    }

    /// The framing thread: frame, "send", recycle.
    func frameLoop() {
        var outbound = ByteWriter(capacity: 1 << 20)
        while true {
            guard let block = full.pop() else {
                if stopping.load(ordering: .acquiring) { return }
                framer.sleep { full.approximateCount == 0 && !stopping.load(ordering: .acquiring) }
                continue
            }
            let records = block._withUnsafeGuaranteedRef { b in
                let wire = b.batch.frame(producerID: 1, producerEpoch: 0, baseSequence: 0, isTransactional: false)
                if outbound.count + wire.count > 1 << 20 { outbound.removeAll() }
                outbound.writeBytes(wire)
                return b.batch.recordCount
            }
            _ = free.tryPush(block)
            framedRecords.add(records, ordering: .releasing)
        }
    }

    /// A fresh block from the pool (the framing thread returns them).
    @inline(__always)
    func takeBlock(partition: Int, timestamp: Int64) -> Unmanaged<BatchBlock> {
        while true {
            if let block = free.pop() {
                block._withUnsafeGuaranteedRef {
                    $0.batch.reopen(baseTimestamp: timestamp)
                    $0.partition = partition
                }
                return block
            }
            sched_yield()
        }
    }

    @inline(__always)
    func handOver(_ block: Unmanaged<BatchBlock>) {
        while !full.tryPush(block) { sched_yield() }
        framer.wake()
    }

    /// One record, appended under its partition's lock; a refused record seals the batch,
    /// hands it over and moves the sticky partition on.
    @inline(__always)
    func produce(timestamp: Int64) {
        let value = UnsafeRawBufferPointer(self.value)
        let partition = sticky
        let sealed: Bool = partitions[partition]._withUnsafeGuaranteedRef { $0.open.withLock { open in
            if open.block == nil { open.block = takeBlock(partition: partition, timestamp: timestamp) }
            let appended = open.block!._withUnsafeGuaranteedRef {
                $0.batch.tryAppend(timestamp: timestamp, key: nil, value: value, headers: EncodedHeaders.none)
            }
            if appended { return false }
            handOver(open.block!)
            let next = takeBlock(partition: partition, timestamp: timestamp)
            next._withUnsafeGuaranteedRef {
                _ = $0.batch.tryAppend(timestamp: timestamp, key: nil, value: value, headers: EncodedHeaders.none)
            }
            open.block = next
            return true
        } }
        if sealed { sticky = (sticky &+ 1) % Self.partitionCount }
    }

    /// Seals every open batch (a flush).
    func flush() {
        for partition in partitions {
            partition._withUnsafeGuaranteedRef { $0.open.withLock { open in
                if let block = open.block { handOver(block) }
                open.block = nil
            } }
        }
    }
}

/// The pipeline whose framing thread the teardown stops.
let running = Mutex<Pipeline?>(nil)

let benchmarks: @Sendable () -> Void = {
    let recordsPerIteration = 1_000_000
    Benchmark(
        "AppendPipeline.100B.6p",
        configuration: .init(metrics: [.wallClock, .cpuTotal, .throughput], scalingFactor: .mega, maxDuration: .seconds(5),
                             maxIterations: 200)
    ) { (benchmark: Benchmark, pipeline: Pipeline) in
        let start = pipeline.framedRecords.load(ordering: .acquiring)
        benchmark.startMeasurement()
        // 1,000,000 records: `*` values are per record.
        for i in 0..<recordsPerIteration { pipeline.produce(timestamp: 1_700_000_000_000 &+ Int64(i >> 12)) }
        pipeline.flush()
        while pipeline.framedRecords.load(ordering: .acquiring) - start < recordsPerIteration { sched_yield() }
        benchmark.stopMeasurement()
    } setup: { () -> Pipeline in
        let pipeline = Pipeline()
        running.withLock { $0 = pipeline }
        return pipeline
    } teardown: {
        running.withLock { $0?.stop(); $0 = nil }
    }
}
