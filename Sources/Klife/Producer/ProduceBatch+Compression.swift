import KlifeProtocol

extension ProduceBatch {
    /// One partition's batch, compressed: built in `scratch`, then copied into the request.
    ///
    /// The records are appended uncompressed to `scratch` with the ordinary encoder,
    /// then compressed once into `scratch`'s tail (``RecordBatchEncoder/finishCompressed(into:codec:level:)``);
    /// only then is the batch's size known, which flexible Produce versions write
    /// before the bytes. The batch goes out uncompressed instead, never dropped, when:
    ///
    /// - the codec fails (it should not; the records are what matter), or
    /// - compression does not make it smaller (tiny or incompressible batches;
    ///   librdkafka does the same), which also spares consumers a decompression.
    ///
    /// Zstd needs Produce v7+ (brokers answer UNSUPPORTED_COMPRESSION_TYPE below it);
    /// on an older negotiated version the batch is compressed with lz4 instead, which
    /// every broker speaking RecordBatch v2 (Produce v3+) accepts, so the bytes saved
    /// are mostly kept.
    func encodeCompressed(_ entry: Entry, request: inout ProduceRequestWriter, into writer: inout ByteWriter,
                          scratch: inout ByteWriter, options: BatchEncodingOptions) {
        let codec = Self.effectiveCodec(options.compression, version: options.version)
        scratch.removeAll()
        // Read where they lie, as in the uncompressed path (`for r in records` would copy
        // every record).
        let batch = entry.records.withUnsafeBufferPointer { records in
            var batch = RecordBatchEncoder(writer: &scratch, baseTimestamp: records[0].timestamp,
                                           producerID: options.producerID, producerEpoch: options.producerEpoch,
                                           baseSequence: entry.baseSequence, isTransactional: options.isTransactional)
            Self.append(records, to: &batch, into: &scratch)
            return batch
        }
        let range = batch.finishCompressedIfSmaller(into: &scratch, codec: codec, level: options.compressionLevel)
        request.beginPartition(into: &writer, index: entry.tp.partition, recordsByteCount: range.count)
        scratch.withUnsafeBytes { writer.writeBytes(UnsafeRawBufferPointer(rebasing: $0[range])) }
        request.endPartition(into: &writer)
    }

    /// The codec actually used at Produce `version`: zstd falls back to lz4 below v7.
    static func effectiveCodec(_ codec: CompressionCodec, version: Int16) -> CompressionCodec {
        codec == .zstd && version < 7 ? .lz4 : codec
    }
}
