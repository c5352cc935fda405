// Encode at append: the slab's records appended one at a time to an open batch of 16 KiB
// (the Java client's batch.size), as a producer would append each record when it is
// produced; a batch that refuses a record is framed (header, CRC-32C) and reopened in the
// same block. Per record: the exact-size check, the wire form, and a share of the framing.

import Benchmark
import BenchmarkFixtures
import KlifeProtocol

/// The open batch (reused across iterations, as a producer's pool of blocks is) and the
/// records of one measured iteration.
final class AppendState {
    let slab: SlabState
    /// Between iterations only: a measured iteration moves it into a local (a class's stored
    /// `var` would be checked for exclusive access at every record).
    var batch: AppendingRecordBatch?

    /// The batch limit: the Java client's default `batch.size`.
    static let batchBytes = 16_384

    init(slab: SlabState) {
        self.slab = slab
        batch = AppendingRecordBatch(limit: Self.batchBytes, baseTimestamp: Fixtures.baseTimestamp)
        _ = appendAll()  // fault in the block
    }

    /// Appends the slab's records `batchesPerIteration` times over, framing every full batch.
    /// - Returns: the bytes framed (kept from the optimizer).
    func appendAll() -> Int {
        let base = UnsafeRawPointer(slab.slab.baseAddress!)
        var framed = 0
        var batch = self.batch.take()!
        for _ in 0..<slab.batchesPerIteration {
            slab.entries.withUnsafeBufferPointer { entries in
                for e in entries {
                    let key = e.keyCount < 0 ? nil : UnsafeRawBufferPointer(start: base + e.keyOffset, count: e.keyCount)
                    let value = UnsafeRawBufferPointer(start: base + e.valueOffset, count: e.valueCount)
                    let headers = EncodedHeaders(count: e.headersCount,
                                                 bytes: UnsafeRawBufferPointer(start: base + e.headersOffset, count: e.headersBytes))
                    let timestamp = Fixtures.baseTimestamp &+ e.timestampDelta
                    if !batch.tryAppend(timestamp: timestamp, key: key, value: value, headers: headers) {
                        framed &+= batch.frame(producerID: 1, producerEpoch: 0, baseSequence: 0, isTransactional: false).count
                        batch.reopen(baseTimestamp: timestamp)
                        _ = batch.tryAppend(timestamp: timestamp, key: key, value: value, headers: headers)
                    }
                }
            }
        }
        self.batch = consume batch
        return framed
    }
}
