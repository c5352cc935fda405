import KlifeProtocol

extension SinkBroker {
    /// ListOffsets v1–5: earliest (-2) is 0, latest (-1) the high watermark, max timestamp
    /// (-3) the last offset; any real timestamp finds offset 0 (every prepared record carries
    /// the start-up time).
    ///
    ///     request:  replica_id:INT32 isolation_level:INT8 (v2+)
    ///               topics:[name:STRING partitions:[partition_index:INT32 current_leader_epoch:INT32 (v4+) timestamp:INT64]]
    ///     response: throttle_time_ms:INT32 (v2+) topics:[name:STRING partitions:[partition_index:INT32
    ///               error_code:INT16 timestamp:INT64 offset:INT64 leader_epoch:INT32 (v4+)]]
    func handleListOffsets(_ request: inout ByteReader, version: Int16, into body: inout ByteWriter) {
        _ = request.readInt32()                          // replica_id
        if version >= 2 { _ = request.readInt8() }       // isolation_level
        if version >= 2 { body.writeInt32(0) }           // throttle_time_ms
        let topicCount = request.readArrayCount(flexible: false, minimumElementSize: 6)
        body.writeInt32(Int32(topicCount))
        for _ in 0..<topicCount where request.error == nil {
            let name = request.readString()
            body.writeString(name)
            let partitionCount = request.readArrayCount(flexible: false, minimumElementSize: 12)
            body.writeInt32(Int32(partitionCount))
            for _ in 0..<partitionCount where request.error == nil {
                let partition = request.readInt32()
                if version >= 4 { request.skip(4) }      // current_leader_epoch
                let timestamp = request.readInt64()
                body.writeInt32(partition)
                guard case .offset(let highWatermark) = catalog.highWatermark(name, partition) else {
                    body.writeInt16(SinkErrorCode.unknownTopicOrPartition)
                    body.writeInt64(-1)
                    body.writeInt64(-1)
                    if version >= 4 { body.writeInt32(-1) }
                    continue
                }
                let offset: Int64 = switch timestamp {
                case -1: highWatermark
                case -3: max(highWatermark - 1, 0)
                default: 0
                }
                body.writeInt16(SinkErrorCode.none)
                body.writeInt64(-1)                      // timestamp
                body.writeInt64(offset)
                if version >= 4 { body.writeInt32(0) }   // leader_epoch
            }
        }
    }
}
