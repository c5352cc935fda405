// RecordBatch v2: steady-state encode (the producer's per-record hot path), exact
// record sizing, and decode.
//
// Per-record numbers: every benchmark here runs `scalingFactor` records per measured
// iteration (e.g. 10 batches x 100 records for `.kilo`), so the scaled (`*`) wall
// clock is ns per record and throughput is records per second.

import Benchmark
import BenchmarkFixtures
import KlifeProtocol

/// What an encode iteration needs: the records (built once) and the writer reused
/// across every iteration, as a connection reuses its outbound buffer.
final class EncodeState {
    let records: [SampleRecord]
    let box: WriterBox
    let batchesPerIteration: Int

    init(records: [SampleRecord], batchesPerIteration: Int) {
        self.records = records
        self.batchesPerIteration = batchesPerIteration
        box = WriterBox(capacity: 4096)
        // Grow the writer to its steady-state size and fault its pages in.
        _ = box.with { encodeBatch(records, into: &$0) }
    }
}

/// The measured work: one RecordBatch of `records`, written from the start of `writer`.
/// Same calls, same order, as the producer's `ProduceBatch.encodeUncompressed`.
@inline(__always)
func encodeBatch(_ records: [SampleRecord], into w: inout ByteWriter) -> Int {
    w.removeAll()
    var batch = RecordBatchEncoder(writer: &w, baseTimestamp: Fixtures.baseTimestamp)
    for r in records {
        batch.append(into: &w, timestamp: Fixtures.baseTimestamp &+ r.timestampDelta, key: r.key, value: r.value,
                     headers: r.headers)
    }
    return batch.finish(into: &w)
}

/// The same records laid out in one slab: key/value as offsets into contiguous bytes,
/// passed to the pointer form of `append` (no optional-array unwrapping, no per-field
/// retain/release). Separates the encoder's own cost from the cost of the record
/// representation around it.
final class SlabState {
    struct Entry {
        var keyOffset: Int, keyCount: Int  // keyCount -1: null key
        var valueOffset: Int, valueCount: Int
        var timestampDelta: Int64
        /// The record's headers in wire form in the slab (as the client's payload chunks hold them).
        var headersOffset = 0, headersCount = 0, headersBytes = 0
    }

    let slab: UnsafeMutableRawBufferPointer
    let entries: [Entry]
    let headers: [RecordHeader]
    let box = WriterBox(capacity: 4096)
    let batchesPerIteration: Int

    init(records: [SampleRecord], batchesPerIteration: Int) {
        let total = records.reduce(0) {
            $0 + ($1.key?.count ?? 0) + ($1.value?.count ?? 0) + RecordBatchLayout.headerBytes($1.headers)
        }
        let slab = UnsafeMutableRawBufferPointer.allocate(byteCount: max(total, 1), alignment: 16)
        self.slab = slab
        var offset = 0
        var entries: [Entry] = []
        for r in records {
            var e = Entry(keyOffset: offset, keyCount: -1, valueOffset: 0, valueCount: 0, timestampDelta: r.timestampDelta)
            if let k = r.key {
                k.withUnsafeBytes { (slab.baseAddress! + offset).copyMemory(from: $0.baseAddress!, byteCount: k.count) }
                e.keyCount = k.count
                offset += k.count
            }
            let v = r.value ?? []
            v.withUnsafeBytes { (slab.baseAddress! + offset).copyMemory(from: $0.baseAddress!, byteCount: v.count) }
            e.valueOffset = offset
            e.valueCount = v.count
            offset += v.count
            e.headersOffset = offset
            e.headersCount = r.headers.count
            let headersStart = slab.baseAddress! + offset
            e.headersBytes = headersStart.distance(to: RecordBatchLayout.writeHeaders(r.headers, at: headersStart))
            offset += e.headersBytes
            entries.append(e)
        }
        self.entries = entries
        headers = records.first?.headers ?? []
        self.batchesPerIteration = batchesPerIteration
        // Both forms write the same bytes: one warm-up grows the writer for either.
        _ = box.with { encodeSlabBatch(self, encodedHeaders: false, into: &$0) }
    }

    deinit { slab.deallocate() }
}

/// One batch from the slab through the pointer form of `append`: the headers as
/// `[RecordHeader]`, or (`encodedHeaders`) already in wire form read from the slab
/// (`EncodedHeaders`, as the client reads them from a record's payload chunk), so encoding
/// copies their bytes instead of walking header values.
@inline(__always)
func encodeSlabBatch(_ state: SlabState, encodedHeaders: Bool, into w: inout ByteWriter) -> Int {
    w.removeAll()
    let base = UnsafeRawPointer(state.slab.baseAddress!)
    let headers = state.headers
    var batch = RecordBatchEncoder(writer: &w, baseTimestamp: Fixtures.baseTimestamp)
    state.entries.withUnsafeBufferPointer { entries in
        for e in entries {
            let key = e.keyCount < 0 ? nil : UnsafeRawBufferPointer(start: base + e.keyOffset, count: e.keyCount)
            let value = UnsafeRawBufferPointer(start: base + e.valueOffset, count: e.valueCount)
            let timestamp = Fixtures.baseTimestamp &+ e.timestampDelta
            if encodedHeaders {
                let wire = UnsafeRawBufferPointer(start: base + e.headersOffset, count: e.headersBytes)
                batch.append(into: &w, timestamp: timestamp, key: key, value: value,
                             headers: EncodedHeaders(count: e.headersCount, bytes: wire))
            } else {
                batch.append(into: &w, timestamp: timestamp, key: key, value: value, headers: headers)
            }
        }
    }
    return batch.finish(into: &w)
}

let benchmarks: @Sendable () -> Void = {
    // The allocation gate: p90 of mallocs per measured iteration may not move from the
    // stored value in Thresholds/ (0 for every encode benchmark), not even by one.
    let exactMallocs: [BenchmarkMetric: BenchmarkThresholds] = [.mallocCountTotal: .init(absolute: [.p90: 0])]
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]

    let shapes: [RecordShape] = [100, 1024].flatMap { size in
        [(false, false), (true, false), (true, true)].map {
            RecordShape(valueSize: size, withKey: $0.0, withHeaders: $0.1)
        }
    }

    // MARK: Encode

    for shape in shapes {
        for n in [1, 100, 10_000] {
            // Records per measured iteration: 1,000 (1 x 1,000 or 100 x 10 batches) or
            // 1,000,000 (10,000 x 100 batches), so `*` values are per record.
            let scaling: BenchmarkScalingFactor = n >= 10_000 ? .mega : .kilo
            Benchmark(
                "RecordBatch.encode.\(shape.label).x\(n)",
                configuration: .init(metrics: metrics, scalingFactor: scaling, maxDuration: .seconds(2),
                                     thresholds: exactMallocs)
            ) { benchmark, state in
                benchmark.startMeasurement()
                let bytes = state.box.with { w in
                    var total = 0
                    for _ in 0..<state.batchesPerIteration { total &+= encodeBatch(state.records, into: &w) }
                    return total
                }
                benchmark.stopMeasurement()
                blackHole(bytes)
            } setup: {
                EncodeState(records: Fixtures.records(count: n, shape: shape),
                            batchesPerIteration: scaling.rawValue / n)
            }
        }
    }

    // MARK: Encode from borrowed bytes (pointer form of `append`), and as the client does
    // (headers already in wire form, read from a payload chunk: only shapes with headers)

    for (form, encodedHeaders) in [("pointers", false), ("encodedHeaders", true)] {
        for shape in shapes where shape.valueSize == 100 && (shape.withHeaders || !encodedHeaders) {
            Benchmark(
                "RecordBatch.encode.\(shape.label).x100.\(form)",
                configuration: .init(metrics: metrics, scalingFactor: .kilo, thresholds: exactMallocs)
            ) { benchmark, state in
                benchmark.startMeasurement()
                let bytes = state.box.with { w in
                    var total = 0
                    for _ in 0..<state.batchesPerIteration {
                        total &+= encodeSlabBatch(state, encodedHeaders: encodedHeaders, into: &w)
                    }
                    return total
                }
                benchmark.stopMeasurement()
                blackHole(bytes)
            } setup: {
                SlabState(records: Fixtures.records(count: 100, shape: shape), batchesPerIteration: 10)
            }
        }
    }

    // MARK: Encode at append (the open batch of a partition: each record written in its
    // final form as it arrives, a batch framed and checksummed once it is full)

    for shape in shapes where shape.valueSize == 100 {
        Benchmark(
            "RecordBatch.append.\(shape.label).x100",
            configuration: .init(metrics: metrics, scalingFactor: .kilo, thresholds: exactMallocs)
        ) { benchmark, state in
            benchmark.startMeasurement()
            let bytes = state.appendAll()
            benchmark.stopMeasurement()
            blackHole(bytes)
        } setup: {
            AppendState(slab: SlabState(records: Fixtures.records(count: 100, shape: shape), batchesPerIteration: 10))
        }
    }

    // MARK: Exact sizing (the producer sizes every partition's batch before encoding it)

    for shape in [RecordShape(valueSize: 100, withKey: false, withHeaders: false),
                  RecordShape(valueSize: 100, withKey: true, withHeaders: true)] {
        Benchmark(
            "RecordBatchLayout.recordSize.\(shape.label)",
            configuration: .init(metrics: metrics, scalingFactor: .kilo, thresholds: exactMallocs)
        ) { benchmark, records in
            benchmark.startMeasurement()
            var size = RecordBatchLayout.headerSize
            for (i, r) in records.enumerated() {
                size &+= RecordBatchLayout.recordSize(offsetDelta: Int32(truncatingIfNeeded: i),
                                                      timestampDelta: r.timestampDelta, keyCount: r.key?.count,
                                                      valueCount: r.value?.count, headers: r.headers)
            }
            benchmark.stopMeasurement()
            blackHole(size)
        } setup: {
            Fixtures.records(count: 1000, shape: shape)
        }
    }

    // MARK: Decode (consumer side; allocates the record arrays it returns)

    for shape in [RecordShape(valueSize: 100, withKey: true, withHeaders: false),
                  RecordShape(valueSize: 100, withKey: true, withHeaders: true)] {
        Benchmark(
            "RecordBatch.decode.\(shape.label).x100",
            configuration: .init(metrics: metrics, scalingFactor: .kilo, thresholds: exactMallocs)
        ) { benchmark, batch in
            benchmark.startMeasurement()
            for _ in 0..<10 {  // 10 batches x 100 records
                let result = batch.withUnsafeBytes { raw in
                    try? RecordBatchDecoder.decode(raw)
                }
                blackHole(result)
            }
            benchmark.stopMeasurement()
        } setup: {
            Fixtures.encodeBatch(Fixtures.records(count: 100, shape: shape))
        }
    }
}
