import KlifeProtocol

extension SinkBroker {
    /// InitProducerId v0–1: a new producer id with epoch 0 for every request. Sequence
    /// numbers are never checked.
    ///
    ///     request:  transactional_id:NULLABLE_STRING transaction_timeout_ms:INT32
    ///     response: throttle_time_ms:INT32 error_code:INT16 producer_id:INT64 producer_epoch:INT16
    func handleInitProducerId(_ request: inout ByteReader, version: Int16, into body: inout ByteWriter) {
        _ = request.readNullableString()
        _ = request.readInt32()
        guard request.error == nil else { return }
        body.writeInt32(0)
        body.writeInt16(SinkErrorCode.none)
        body.writeInt64(catalog.nextProducerID())
        body.writeInt16(0)
    }
}
