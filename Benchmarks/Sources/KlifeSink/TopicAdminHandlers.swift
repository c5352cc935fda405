import KlifeProtocol

extension SinkBroker {
    /// CreateTopics v2–4: creates each topic with its partition count (the default for -1,
    /// the number of assignments when they are given); replication factor and configs are
    /// ignored. `validate_only` creates nothing.
    ///
    ///     request:  topics:[name:STRING num_partitions:INT32 replication_factor:INT16
    ///                       assignments:[partition_index:INT32 broker_ids:[INT32]]
    ///                       configs:[name:STRING value:NULLABLE_STRING]] timeout_ms:INT32 validate_only:BOOL
    ///     response: throttle_time_ms:INT32 topics:[name:STRING error_code:INT16 error_message:NULLABLE_STRING]
    func handleCreateTopics(_ request: inout ByteReader, version: Int16, into body: inout ByteWriter) {
        var wanted: [(name: String, partitions: Int32)] = []
        let topicCount = request.readArrayCount(flexible: false, minimumElementSize: 16)
        for _ in 0..<topicCount where request.error == nil {
            let name = request.readString()
            var partitions = request.readInt32()
            _ = request.readInt16()                      // replication_factor
            let assignments = request.readArrayCount(flexible: false, minimumElementSize: 8)
            for _ in 0..<assignments where request.error == nil {
                _ = request.readInt32()
                request.skip(4 * request.readArrayCount(flexible: false, minimumElementSize: 4))
            }
            if assignments > 0 { partitions = Int32(assignments) }
            let configs = request.readArrayCount(flexible: false, minimumElementSize: 4)
            for _ in 0..<configs where request.error == nil {
                _ = request.readString()
                _ = request.readNullableString()
            }
            wanted.append((name, partitions))
        }
        _ = request.readInt32()                          // timeout_ms
        let validateOnly = request.readBool()
        guard request.error == nil else { return }

        body.writeInt32(0)                               // throttle_time_ms
        body.writeInt32(Int32(wanted.count))
        for topic in wanted {
            body.writeString(topic.name)
            if topic.name.isEmpty || topic.partitions == 0 || topic.partitions < -1
                || topic.partitions > SinkCatalog.maxPartitions {
                body.writeInt16(SinkErrorCode.invalidPartitions)
                body.writeNullableString(topic.name.isEmpty ? "empty topic name" : "partition count \(topic.partitions)")
            } else if validateOnly ? catalog.partitionCount(topic.name) != nil
                                   : !catalog.create(topic.name, partitions: topic.partitions) {
                body.writeInt16(SinkErrorCode.topicAlreadyExists)
                body.writeNullableString("topic '\(topic.name)' already exists")
            } else {
                body.writeInt16(SinkErrorCode.none)
                body.writeNullableString(nil)
            }
        }
    }

    /// DeleteTopics v1–3: forgets each topic (its offsets start over if it is created again).
    ///
    ///     request:  topic_names:[STRING] timeout_ms:INT32
    ///     response: throttle_time_ms:INT32 responses:[name:STRING error_code:INT16]
    func handleDeleteTopics(_ request: inout ByteReader, version: Int16, into body: inout ByteWriter) {
        var names: [String] = []
        let count = request.readArrayCount(flexible: false, minimumElementSize: 2)
        for _ in 0..<count where request.error == nil { names.append(request.readString()) }
        _ = request.readInt32()                          // timeout_ms
        guard request.error == nil else { return }
        body.writeInt32(0)                               // throttle_time_ms
        body.writeInt32(Int32(names.count))
        for name in names {
            body.writeString(name)
            body.writeInt16(catalog.delete(name) ? SinkErrorCode.none : SinkErrorCode.unknownTopicOrPartition)
        }
    }
}
