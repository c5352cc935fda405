// Whole Kafka messages on the hot paths: a Produce request framed the way the client
// writes it (sizes first, then header, body and batches streamed into one writer), and
// a Fetch response decoded the way the consumer reads it.

import Benchmark
import BenchmarkFixtures
import KlifeProtocol

/// The Produce version the client uses against a current broker (flexible encoding).
let produceVersion: Int16 = 12

/// One partition's records.
struct PartitionRecords {
    var partition: Int32
    var records: [SampleRecord]
}

final class ProduceState {
    let partitions: [PartitionRecords]
    let box = WriterBox(capacity: 4096)

    init(partitionCount: Int, recordsPerPartition: Int, shape: RecordShape) {
        partitions = (0..<partitionCount).map { p in
            PartitionRecords(partition: Int32(p),
                             records: Fixtures.records(count: recordsPerPartition, shape: shape, seed: UInt64(p)))
        }
        _ = box.with { writeProduceRequest(partitions, correlationID: 0, into: &$0) }
    }
}

/// The measured work: one complete Produce frame (size prefix, header v2, body, one
/// RecordBatch per partition), as `ProduceBatch.encode` + `KafkaFrame` produce it.
@inline(__always)
func writeProduceRequest(_ partitions: [PartitionRecords], correlationID: Int32, into w: inout ByteWriter) -> Int {
    w.removeAll()
    let start = KafkaFrame.beginRequest(.produce, version: produceVersion, correlationID: correlationID,
                                        clientID: "klife-bench", flexible: ProduceRequest.isFlexible(produceVersion),
                                        into: &w)
    var request = ProduceRequestWriter(writer: &w, version: produceVersion, transactionalID: nil, acks: -1,
                                       timeoutMs: 30_000, topicCount: 1)
    request.beginTopic(into: &w, name: "events", partitionCount: partitions.count)
    for entry in partitions {
        let records = entry.records
        // Exact batch size first: flexible versions prefix the records with its varint.
        var size = RecordBatchLayout.headerSize
        for (delta, r) in records.enumerated() {
            size &+= RecordBatchLayout.recordSize(offsetDelta: Int32(truncatingIfNeeded: delta),
                                                  timestampDelta: r.timestampDelta, keyCount: r.key?.count,
                                                  valueCount: r.value?.count, headers: r.headers)
        }
        request.beginPartition(into: &w, index: entry.partition, recordsByteCount: size)
        var batch = RecordBatchEncoder(writer: &w, baseTimestamp: Fixtures.baseTimestamp)
        for r in records {
            batch.append(into: &w, timestamp: Fixtures.baseTimestamp &+ r.timestampDelta, key: r.key, value: r.value,
                         headers: r.headers)
        }
        batch.finish(into: &w)
        request.endPartition(into: &w)
    }
    request.endTopic(into: &w)
    request.finish(into: &w)
    return KafkaFrame.endRequest(start: start, into: &w)
}

let benchmarks: @Sendable () -> Void = {
    let exactMallocs: [BenchmarkMetric: BenchmarkThresholds] = [.mallocCountTotal: .init(absolute: [.p90: 0])]
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]
    let keyed100 = RecordShape(valueSize: 100, withKey: true, withHeaders: false)

    // MARK: Produce request framing

    // 1,000 requests per measured iteration: `*` values are per request. Per record:
    // divide by 10 (1 partition) or 500 (50 partitions).
    for partitionCount in [1, 50] {
        Benchmark(
            "Produce.request.p\(partitionCount).x10.\(keyed100.label)",
            configuration: .init(metrics: metrics, scalingFactor: .kilo,
                                 maxDuration: .seconds(2), thresholds: exactMallocs)
        ) { benchmark, state in
            benchmark.startMeasurement()
            let bytes = state.box.with { w in
                var total = 0
                for i in benchmark.scaledIterations {
                    total &+= writeProduceRequest(state.partitions, correlationID: Int32(truncatingIfNeeded: i),
                                                  into: &w)
                }
                return total
            }
            benchmark.stopMeasurement()
            blackHole(bytes)
        } setup: {
            ProduceState(partitionCount: partitionCount, recordsPerPartition: 10, shape: keyed100)
        }
    }

    // MARK: Fetch response decode

    // v16 (topic ids, flexible): 1 topic, 6 partitions x 4 batches x 100 records of
    // 16-byte key + 100-byte value, about 300 KB, like a busy consumer's fetch.
    let fetchVersion: Int16 = 16
    let fetchSetup = {
        Fixtures.fetchResponse(version: fetchVersion, partitions: 6, batchesPerPartition: 4, recordsPerBatch: 100,
                               shape: keyed100)
    }

    // The response structure only: copies each partition's records bytes out.
    Benchmark(
        "Fetch.response.decode.v16.p6.x400",
        configuration: .init(metrics: metrics, thresholds: exactMallocs)
    ) { benchmark, bytes in
        benchmark.startMeasurement()
        let response = bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            return FetchResponse(from: &reader, version: fetchVersion)
        }
        benchmark.stopMeasurement()
        precondition(response.responses.first?.partitions.count == 6)
        blackHole(response)
    } setup: {
        fetchSetup()
    }

    // What a consumer does with it: the response, then every partition's batches.
    Benchmark(
        "Fetch.response.decode+records.v16.p6.x400",
        configuration: .init(metrics: metrics, thresholds: exactMallocs)
    ) { benchmark, bytes in
        benchmark.startMeasurement()
        var records = 0
        bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            let response = FetchResponse(from: &reader, version: fetchVersion)
            for topic in response.responses {
                for partition in topic.partitions {
                    if let decoded = try? RecordBatchDecoder.decode(partition.records) {
                        for batch in decoded.batches { records &+= batch.records.count }
                        blackHole(decoded)
                    }
                }
            }
        }
        benchmark.stopMeasurement()
        precondition(records == 2_400)
    } setup: {
        fetchSetup()
    }
}
