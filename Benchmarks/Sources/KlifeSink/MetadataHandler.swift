import KlifeProtocol

extension SinkBroker {
    /// Metadata v1–8: every node of the sink (node 0 the controller), partition `p` led (and
    /// only replicated) by node `p mod N`, whichever node is asked. A requested topic that does not exist is created with the default
    /// partition count when the request allows auto-creation (always below v4), otherwise
    /// answered with UNKNOWN_TOPIC_OR_PARTITION.
    ///
    ///     request:  topics:[name:STRING] (null = all) allow_auto_topic_creation:BOOL (v4+)
    ///               include_cluster_authorized_operations:BOOL include_topic_authorized_operations:BOOL (v8+)
    func handleMetadata(_ request: inout ByteReader, version: Int16, into body: inout ByteWriter) {
        var requested: [String]?
        if let count = request.readNullableArrayCount(flexible: false, minimumElementSize: 2) {
            requested = []
            for _ in 0..<count where request.error == nil { requested!.append(request.readString()) }
        }
        let allowAutoCreation = version >= 4 ? request.readBool() : true
        if version >= 8 { request.skip(2) }
        guard request.error == nil else { return }

        var topics: [(name: String, partitions: Int?)] = []
        if let requested {
            for name in requested {
                var count = catalog.partitionCount(name)
                if count == nil, allowAutoCreation, !name.isEmpty {
                    catalog.create(name, partitions: nil)
                    count = catalog.partitionCount(name)
                }
                topics.append((name, count))
            }
        } else {
            topics = catalog.allTopics().map { ($0.name, $0.partitions) }
        }

        if version >= 3 { body.writeInt32(0) }            // throttle_time_ms
        body.writeInt32(Int32(nodes.ports.count))         // brokers
        for id in nodes.ids {
            body.writeInt32(id)
            body.writeString(SinkNodes.host)
            body.writeInt32(nodes.port(of: id))
            body.writeNullableString(nil)                 // rack
        }
        if version >= 2 { body.writeNullableString("klife-sink") }   // cluster_id
        body.writeInt32(nodes.coordinatorID)              // controller_id
        body.writeInt32(Int32(topics.count))
        for topic in topics {
            body.writeInt16(topic.partitions == nil ? SinkErrorCode.unknownTopicOrPartition : SinkErrorCode.none)
            body.writeString(topic.name)
            body.writeBool(false)                         // is_internal
            let count = topic.partitions ?? 0
            body.writeInt32(Int32(count))
            for partition in 0..<count {
                let leader = nodes.leader(of: Int32(partition))
                body.writeInt16(SinkErrorCode.none)
                body.writeInt32(Int32(partition))
                body.writeInt32(leader)                   // leader_id
                if version >= 7 { body.writeInt32(0) }    // leader_epoch
                body.writeInt32(1); body.writeInt32(leader)   // replica_nodes
                body.writeInt32(1); body.writeInt32(leader)   // isr_nodes
                if version >= 5 { body.writeInt32(0) }    // offline_replicas
            }
            if version >= 8 { body.writeInt32(Int32.min) }   // topic_authorized_operations: not provided
        }
        if version >= 8 { body.writeInt32(Int32.min) }       // cluster_authorized_operations
    }
}
