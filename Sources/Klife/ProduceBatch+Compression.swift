import KlifeProtocol

extension ProduceBatch {
    /// One partition's batch, compressed: built in `scratch`, then copied into the request.
    func encodeCompressed(_ entry: Entry, request: inout ProduceRequestWriter, into writer: inout ByteWriter,
                          scratch: inout ByteWriter, options: BatchEncodingOptions) {
        preconditionFailure("compression \(options.compression) is not implemented yet")
    }
}
