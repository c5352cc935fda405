import KlifeProtocol

extension SinkBroker {
    /// Produce v3–8: every batch is acknowledged without being stored. Only the topic,
    /// partition and each RecordBatch header's LastOffsetDelta are read (record count =
    /// LastOffsetDelta + 1); the partition's base offset then moves by that count. A partition
    /// this node does not lead is answered NOT_LEADER_OR_FOLLOWER and not counted.
    /// - Returns: `false` for acks=0, which gets no response.
    ///
    ///     request:  transactional_id:NULLABLE_STRING acks:INT16 timeout_ms:INT32
    ///               topics:[name:STRING partitions:[index:INT32 records:NULLABLE_BYTES]]
    ///     response: responses:[name:STRING partitions:[index:INT32 error_code:INT16 base_offset:INT64
    ///               log_append_time_ms:INT64 log_start_offset:INT64 (v5+)
    ///               record_errors:[…] (v8+) error_message:NULLABLE_STRING (v8+)]] throttle_time_ms:INT32
    func handleProduce(_ request: inout ByteReader, version: Int16, into body: inout ByteWriter) -> Bool {
        _ = request.readNullableString()                 // transactional_id
        let acks = request.readInt16()
        _ = request.readInt32()                          // timeout_ms
        let topicCount = request.readArrayCount(flexible: false, minimumElementSize: 6)
        body.writeInt32(Int32(topicCount))
        for _ in 0..<topicCount where request.error == nil {
            let name = request.readString()
            body.writeString(name)
            let partitionCount = request.readArrayCount(flexible: false, minimumElementSize: 8)
            body.writeInt32(Int32(partitionCount))
            for _ in 0..<partitionCount where request.error == nil {
                let partition = request.readInt32()
                var records: Int64 = 0
                if let length = request.readNullableBytesLength(flexible: false),
                   let bytes = request.readRawBytes(count: length) {
                    guard let counted = Self.recordCount(in: bytes) else {
                        request.fail(.invalidLength, "RecordBatch headers in \(name)-\(partition) do not add up")
                        return false
                    }
                    records = counted
                }
                guard request.error == nil else { return false }
                body.writeInt32(partition)
                if catalog.partitionCount(name) != nil, partition >= 0, !leads(partition) {
                    body.writeInt16(SinkErrorCode.notLeaderOrFollower)
                    body.writeInt64(-1)
                } else if case .offset(let base) = catalog.append(name, partition, records: records) {
                    body.writeInt16(SinkErrorCode.none)
                    body.writeInt64(base)
                } else {
                    body.writeInt16(SinkErrorCode.unknownTopicOrPartition)
                    body.writeInt64(-1)
                }
                body.writeInt64(-1)                       // log_append_time_ms: create time in use
                if version >= 5 { body.writeInt64(0) }    // log_start_offset
                if version >= 8 {
                    body.writeInt32(0)                    // record_errors
                    body.writeNullableString(nil)         // error_message
                }
            }
        }
        body.writeInt32(0)                                // throttle_time_ms
        return acks != 0
    }

    /// The number of records in consecutive RecordBatch v2 `bytes`, from each header's
    /// LastOffsetDelta (bytes 23–26) and BatchLength (bytes 8–11), or `nil` when a header
    /// is cut short or a length points past the end.
    static func recordCount(in bytes: UnsafeRawBufferPointer) -> Int64? {
        var position = 0
        var total: Int64 = 0
        while position < bytes.count {
            guard bytes.count - position >= 61 else { return nil }
            let batchLength = Int(Int32(bigEndian: bytes.loadUnaligned(fromByteOffset: position + 8, as: Int32.self)))
            let lastOffsetDelta = Int32(bigEndian: bytes.loadUnaligned(fromByteOffset: position + 23, as: Int32.self))
            guard batchLength >= 49, batchLength <= bytes.count - position - 12, lastOffsetDelta >= 0 else { return nil }
            total += Int64(lastOffsetDelta) + 1
            position += 12 + batchLength
        }
        return total
    }
}
