import KlifeProtocol

extension SinkBroker {
    /// FindCoordinator v0: names node 0, whichever node is asked. The sink runs no groups or transactions;
    /// the API is advertised because librdkafka enables LZ4 produce only for brokers that
    /// list it.
    ///
    ///     request:  key:STRING
    ///     response: error_code:INT16 node_id:INT32 host:STRING port:INT32
    func handleFindCoordinator(_ request: inout ByteReader, version: Int16, into body: inout ByteWriter) {
        _ = request.readString()
        guard request.error == nil else { return }
        body.writeInt16(SinkErrorCode.none)
        body.writeInt32(nodes.coordinatorID)
        body.writeString(SinkNodes.host)
        body.writeInt32(nodes.port(of: nodes.coordinatorID))
    }
}
