import KlifeProtocol

/// The broker's side of Fetch, for ``FetchSessionProxy``: decoding requests and encoding
/// responses (the client's codec does the opposite). Round trips through the client's codec
/// check both (`FetchWireTests`).
extension FetchRequest {
    /// Decodes a request body at `version` (4–17); the reader's error reports bad bytes.
    static func decodeBody(from r: inout ByteReader, version: Int16) -> FetchRequest {
        let flexible = version >= 12
        let replicaID = version <= 14 ? r.readInt32() : -1
        let maxWait = r.readInt32()
        let minBytes = r.readInt32()
        let maxBytes = r.readInt32()
        let isolation = r.readInt8()
        let sessionID = version >= 7 ? r.readInt32() : 0
        let sessionEpoch = version >= 7 ? r.readInt32() : -1
        let topicCount = r.readArrayCount(flexible: flexible, minimumElementSize: 2)
        let topics: [Topic] = r.readArray(count: topicCount) { r in
            let name = version <= 12 ? r.readString(flexible: flexible) : ""
            let topicID = version >= 13 ? r.readUUID() : .zero
            let count = r.readArrayCount(flexible: flexible, minimumElementSize: 16)
            let partitions: [Partition] = r.readArray(count: count) { r in
                let partition = r.readInt32()
                let leaderEpoch = version >= 9 ? r.readInt32() : -1
                let offset = r.readInt64()
                let lastFetchedEpoch = version >= 12 ? r.readInt32() : -1
                let logStart = version >= 5 ? r.readInt64() : -1
                let limit = r.readInt32()
                r.skipTaggedFields(flexible: flexible)
                return Partition(partition: partition, currentLeaderEpoch: leaderEpoch, fetchOffset: offset,
                                 lastFetchedEpoch: lastFetchedEpoch, logStartOffset: logStart, partitionMaxBytes: limit)
            }
            r.skipTaggedFields(flexible: flexible)
            return Topic(name: name, topicID: topicID, partitions: partitions)
        }
        var forgotten: [ForgottenTopic] = []
        if version >= 7 {
            let count = r.readArrayCount(flexible: flexible, minimumElementSize: 2)
            forgotten = r.readArray(count: count) { r in
                let name = version <= 12 ? r.readString(flexible: flexible) : ""
                let topicID = version >= 13 ? r.readUUID() : .zero
                let n = r.readArrayCount(flexible: flexible, minimumElementSize: 4)
                let partitions: [Int32] = r.readArray(count: n) { $0.readInt32() }
                r.skipTaggedFields(flexible: flexible)
                return ForgottenTopic(name: name, topicID: topicID, partitions: partitions)
            }
        }
        let rack = version >= 11 ? r.readString(flexible: flexible) : ""
        r.skipTaggedFields(flexible: flexible)
        return FetchRequest(replicaID: replicaID, maxWaitMs: maxWait, minBytes: minBytes, maxBytes: maxBytes,
                            isolationLevel: isolation, sessionID: sessionID, sessionEpoch: sessionEpoch, topics: topics,
                            forgottenTopics: forgotten, rackID: rack)
    }
}

extension FetchResponse {
    /// Encodes the body at `version` (4–17). Leaders named in a partition's `current_leader`
    /// are written; ``nodeEndpoints`` are not (no test moves leaders through the proxy).
    func encodeBody(into w: inout ByteWriter, version: Int16) {
        let flexible = version >= 12
        w.writeInt32(throttleTimeMs)
        if version >= 7 {
            w.writeInt16(errorCode)
            w.writeInt32(sessionID)
        }
        w.writeArrayCount(responses.count, flexible: flexible)
        for topic in responses {
            if version >= 13 { w.writeUUID(topic.topicID) } else { w.writeString(topic.name, flexible: flexible) }
            w.writeArrayCount(topic.partitions.count, flexible: flexible)
            for p in topic.partitions {
                w.writeInt32(p.partitionIndex)
                w.writeInt16(p.errorCode)
                w.writeInt64(p.highWatermark)
                w.writeInt64(p.lastStableOffset)
                if version >= 5 { w.writeInt64(p.logStartOffset) }
                w.writeNullableArrayCount(p.abortedTransactions?.count, flexible: flexible)
                for t in p.abortedTransactions ?? [] {
                    w.writeInt64(t.producerID)
                    w.writeInt64(t.firstOffset)
                    w.writeEmptyTaggedFields(flexible: flexible)
                }
                if version >= 11 { w.writeInt32(p.preferredReadReplica) }
                w.writeNullableSizedBytes(p.records.isEmpty ? nil : p.records, flexible: flexible)
                if flexible {
                    if let leader = p.currentLeader {
                        w.writeUnsignedVarint(1)  // one tagged field
                        w.writeUnsignedVarint(1)  // tag 1: current_leader
                        w.writeUnsignedVarint(9)  // leader id, leader epoch, empty tags
                        w.writeInt32(leader.leaderID)
                        w.writeInt32(leader.leaderEpoch)
                        w.writeEmptyTaggedFields()
                    } else {
                        w.writeEmptyTaggedFields()
                    }
                }
            }
            w.writeEmptyTaggedFields(flexible: flexible)
        }
        w.writeEmptyTaggedFields(flexible: flexible)
    }
}
