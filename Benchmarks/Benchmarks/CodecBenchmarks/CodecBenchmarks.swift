// Byte-level codecs under the record path: CRC-32C (AVX-512 folding where the CPU has it,
// the SSE4.2 crc32 instruction, and the table fallback),
// zig-zag varints, and Kafka's four compression codecs.

import Benchmark
import BenchmarkFixtures
import CKlifeShim
import KlifeProtocol

/// Bytes that stay at one address for the life of the benchmark.
final class Bytes {
    let array: [UInt8]
    init(_ array: [UInt8]) { self.array = array }
}

final class VarintState {
    let values: [Int32]
    let encoded: [UInt8]
    let box = WriterBox(capacity: 8192)

    init(values: [Int32]) {
        self.values = values
        var w = ByteWriter(capacity: 8192)
        for v in values { w.writeVarint(v) }
        encoded = w.bytes
        box.with { w in for v in values { w.writeVarint(v) } }
    }
}

final class CompressionState {
    let input: [UInt8]
    let compressed: [UInt8]
    let box: WriterBox

    init(codec: CompressionCodec, input: [UInt8]) {
        self.input = input
        compressed = (try? Compression.compress(codec, input)) ?? []
        precondition(!compressed.isEmpty, "\(codec) compression failed")
        box = WriterBox(capacity: 2 * input.count + 1024)
    }
}

/// Passes `bytes` through once it is known the hardware CRC path is in use.
func requireHardwareCRC(_ bytes: Bytes) -> Bytes {
    precondition(CRC32C.isHardwareAccelerated, "no SSE4.2: the hardware benchmark would measure the fallback")
    return bytes
}

/// The CRC-32C paths measured: `hardware` is what `CRC32C.checksum` does (AVX-512 folding
/// where the CPU has it); `streams` the crc32-instruction path alone (three interleaved
/// streams), which `hardware` takes on CPUs without AVX-512 VPCLMULQDQ and for buffers under
/// 256 bytes; `software` the table fallback.
enum CRCPath: String, CaseIterable {
    case hardware, streams, software

    /// One checksum of `raw` by this path (a switch the measured loop hoists, not a call
    /// through a closure, which added ≈ 3 ns to a 1 KiB checksum).
    @inline(__always)
    func checksum(_ raw: UnsafeRawBufferPointer) -> UInt32 {
        switch self {
        case .hardware: CRC32C.checksum(raw)
        case .streams: klife_crc32c_streams(0, raw.baseAddress, raw.count)
        case .software: klife_crc32c_software(0, raw.baseAddress, raw.count)
        }
    }
}

/// Values the way record fields spread them: mostly 1-byte (lengths, small deltas),
/// some 2-3 bytes (1 KiB values, offsets in a batch), a few full-width.
func mixedVarints(count: Int) -> [Int32] {
    var rng = SplitMix64(seed: 99)
    return (0..<count).map { _ in
        let roll = rng.next(below: 100)
        let magnitude: Int = roll < 70 ? 64 : roll < 90 ? 8_192 : roll < 98 ? 1_000_000 : Int(Int32.max)
        let v = Int32(truncatingIfNeeded: rng.next(below: magnitude))
        return rng.next(below: 2) == 0 ? v : -v
    }
}

let benchmarks: @Sendable () -> Void = {
    let exactMallocs: [BenchmarkMetric: BenchmarkThresholds] = [.mallocCountTotal: .init(absolute: [.p90: 0])]
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]

    // MARK: CRC-32C

    // 1 KiB: 1,000 checksums per measured iteration (`*` = per checksum).
    // 1 MiB: one checksum per iteration.
    for (label, size, scaling) in [("1KiB", 1024, BenchmarkScalingFactor.kilo), ("1MiB", 1 << 20, .one)] {
        for path in CRCPath.allCases {
            Benchmark(
                "CRC32C.\(path.rawValue).\(label)",
                configuration: .init(metrics: metrics, scalingFactor: scaling, thresholds: exactMallocs)
            ) { benchmark, bytes in
                var crc: UInt32 = 0
                bytes.array.withUnsafeBytes { raw in
                    benchmark.startMeasurement()
                    for _ in benchmark.scaledIterations { crc ^= path.checksum(raw) }
                    benchmark.stopMeasurement()
                }
                blackHole(crc)
            } setup: { () -> Bytes in
                let bytes = Bytes(Fixtures.randomBytes(count: size, seed: 1))
                return path == .software ? bytes : requireHardwareCRC(bytes)
            }
        }
    }

    // MARK: Varints (1,000 per measured iteration: `*` = per varint)

    for (label, values) in [("1byte", { (0..<1000).map { Int32($0 % 64) - 32 } }),
                            ("mixed", { mixedVarints(count: 1000) })] {
        Benchmark(
            "Varint.write.\(label)",
            configuration: .init(metrics: metrics, scalingFactor: .kilo, thresholds: exactMallocs)
        ) { benchmark, state in
            benchmark.startMeasurement()
            let count = state.box.with { w in
                w.removeAll()
                for v in state.values { w.writeVarint(v) }
                return w.count
            }
            benchmark.stopMeasurement()
            blackHole(count)
        } setup: {
            VarintState(values: values())
        }

        Benchmark(
            "Varint.read.\(label)",
            configuration: .init(metrics: metrics, scalingFactor: .kilo, thresholds: exactMallocs)
        ) { benchmark, state in
            var sum: Int32 = 0
            state.encoded.withUnsafeBytes { raw in
                benchmark.startMeasurement()
                var reader = ByteReader(raw)
                for _ in benchmark.scaledIterations { sum &+= reader.readVarint() }
                benchmark.stopMeasurement()
                precondition(reader.isAtEnd)
            }
            blackHole(sum)
        } setup: {
            VarintState(values: values())
        }
    }

    // MARK: Compression (one 64 KiB batch per measured iteration)

    // The records section of a RecordBatch of keyed JSON events, exactly 64 KiB: what
    // the producer hands the codec. "compressed bytes" shows the ratio.
    let compressedBytes = BenchmarkMetric.custom("compressed bytes", polarity: .prefersSmaller, useScalingFactor: false)
    let input = Fixtures.jsonRecordsSection(byteCount: 64 << 10)
    for codec in [CompressionCodec.gzip, .snappy, .lz4, .zstd] {
        Benchmark(
            "Compression.\(codec).compress.64KiB",
            configuration: .init(metrics: metrics + [compressedBytes], units: [compressedBytes: .count],
                                 thresholds: exactMallocs)
        ) { benchmark, state in
            benchmark.startMeasurement()
            let written = state.box.with { w in
                w.removeAll()
                return state.input.withUnsafeBytes { raw in
                    (try? Compression.compress(codec, raw, level: nil, into: &w)) ?? -1
                }
            }
            benchmark.stopMeasurement()
            precondition(written > 0)
            benchmark.measurement(compressedBytes, written)
        } setup: {
            CompressionState(codec: codec, input: input)
        }

        Benchmark(
            "Compression.\(codec).decompress.64KiB",
            configuration: .init(metrics: metrics, thresholds: exactMallocs)
        ) { benchmark, state in
            benchmark.startMeasurement()
            let written = state.box.with { w in
                w.removeAll()
                return state.compressed.withUnsafeBytes { raw in
                    (try? Compression.decompress(codec, raw, into: &w, maxOutputBytes: 1 << 20)) ?? -1
                }
            }
            benchmark.stopMeasurement()
            precondition(written == state.input.count)
        } setup: {
            CompressionState(codec: codec, input: input)
        }
    }
}
