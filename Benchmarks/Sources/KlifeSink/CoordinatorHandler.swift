import KlifeProtocol

extension SinkBroker {
    /// FindCoordinator v0: names the sink itself. The sink runs no groups or transactions;
    /// the API is advertised because librdkafka enables LZ4 produce only for brokers that
    /// list it.
    ///
    ///     request:  key:STRING
    ///     response: error_code:INT16 node_id:INT32 host:STRING port:INT32
    func handleFindCoordinator(_ request: inout ByteReader, version: Int16, into body: inout ByteWriter) {
        _ = request.readString()
        guard request.error == nil else { return }
        body.writeInt16(SinkErrorCode.none)
        body.writeInt32(nodeID)
        body.writeString(host)
        body.writeInt32(port)
    }
}
