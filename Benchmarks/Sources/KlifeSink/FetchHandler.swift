import Glibc
import KlifeProtocol

extension SinkBroker {
    /// Longest a Fetch that finds no records is held, whatever the request's max_wait_ms.
    static let maxFetchWaitMilliseconds: Int32 = 1000

    /// Fetch v4–11, served from the prepared record set: at offset `o` the batches starting
    /// with the one that holds `o`, up to the partition's and the request's max bytes (at
    /// least one batch per response, as Kafka does); the high watermark is the partition's.
    /// No fetch sessions (session id 0: every request is a full fetch). When no partition has
    /// records the answer waits max_wait_ms (at most ``maxFetchWaitMilliseconds``), as a
    /// broker would for new data. A partition this node does not lead is answered
    /// NOT_LEADER_OR_FOLLOWER without records.
    ///
    ///     request:  replica_id:INT32 max_wait_ms:INT32 min_bytes:INT32 max_bytes:INT32 isolation_level:INT8
    ///               session_id:INT32 session_epoch:INT32 (v7+)
    ///               topics:[topic:STRING partitions:[partition:INT32 current_leader_epoch:INT32 (v9+)
    ///                       fetch_offset:INT64 log_start_offset:INT64 (v5+) partition_max_bytes:INT32]]
    ///               forgotten_topics_data:[topic:STRING partitions:[INT32]] (v7+) rack_id:STRING (v11+)
    ///     response: throttle_time_ms:INT32 error_code:INT16 session_id:INT32 (v7+)
    ///               responses:[topic:STRING partitions:[partition_index:INT32 error_code:INT16
    ///               high_watermark:INT64 last_stable_offset:INT64 log_start_offset:INT64 (v5+)
    ///               aborted_transactions:[…] preferred_read_replica:INT32 (v11+) records:BYTES]]
    func handleFetch(_ request: inout ByteReader, version: Int16, into response: inout ResponseFrame) {
        _ = request.readInt32()                          // replica_id
        let maxWait = request.readInt32()
        _ = request.readInt32()                          // min_bytes
        let maxBytes = request.readInt32()
        _ = request.readInt8()                           // isolation_level
        if version >= 7 { request.skip(8) }              // session_id, session_epoch
        var wanted: [(topic: String, partitions: [(partition: Int32, offset: Int64, maxBytes: Int32)])] = []
        let topicCount = request.readArrayCount(flexible: false, minimumElementSize: 6)
        for _ in 0..<topicCount where request.error == nil {
            let topic = request.readString()
            let partitionCount = request.readArrayCount(flexible: false, minimumElementSize: 16)
            var partitions: [(partition: Int32, offset: Int64, maxBytes: Int32)] = []
            for _ in 0..<partitionCount where request.error == nil {
                let partition = request.readInt32()
                if version >= 9 { request.skip(4) }      // current_leader_epoch
                let offset = request.readInt64()
                if version >= 5 { request.skip(8) }      // log_start_offset
                partitions.append((partition, offset, request.readInt32()))
            }
            wanted.append((topic, partitions))
        }
        if version >= 7 {
            let forgotten = request.readArrayCount(flexible: false, minimumElementSize: 6)
            for _ in 0..<forgotten where request.error == nil {
                _ = request.readString()
                let count = request.readArrayCount(flexible: false, minimumElementSize: 4)
                request.skip(4 * count)
            }
        }
        if version >= 11 { _ = request.readString() }    // rack_id
        guard request.error == nil else { return }

        let anyRecords = wanted.contains { topic in
            let partitionCount = catalog.partitionCount(topic.topic) ?? 0
            return topic.partitions.contains { wish in
                wish.partition >= 0 && Int(wish.partition) < partitionCount
                    && wish.offset >= 0 && wish.offset < records.recordCount && leads(wish.partition)
            }
        }
        if !anyRecords, maxWait > 0 {
            usleep(UInt32(min(maxWait, Self.maxFetchWaitMilliseconds)) * 1000)
        }

        var budget = Int(max(maxBytes, 0))
        var wroteRecords = false
        response.body.writeInt32(0)                      // throttle_time_ms
        if version >= 7 {
            response.body.writeInt16(SinkErrorCode.none)
            response.body.writeInt32(0)                  // session_id: no session
        }
        response.body.writeInt32(Int32(wanted.count))
        for topic in wanted {
            response.body.writeString(topic.topic)
            response.body.writeInt32(Int32(topic.partitions.count))
            for wish in topic.partitions {
                response.body.writeInt32(wish.partition)
                var error = SinkErrorCode.none
                var highWatermark: Int64 = -1
                var slice = UnsafeRawBufferPointer(start: nil, count: 0)
                switch catalog.highWatermark(topic.topic, wish.partition) {
                case .unknown:
                    error = SinkErrorCode.unknownTopicOrPartition
                case .offset(let mark) where leads(wish.partition):
                    highWatermark = mark
                    if wish.offset < 0 || wish.offset > mark {
                        error = SinkErrorCode.offsetOutOfRange
                    } else {
                        slice = records.batches(from: wish.offset, maxBytes: min(Int(max(wish.maxBytes, 0)), budget),
                                                atLeastOne: !wroteRecords)
                    }
                case .offset:
                    error = SinkErrorCode.notLeaderOrFollower
                }
                response.body.writeInt16(error)
                response.body.writeInt64(highWatermark)
                response.body.writeInt64(highWatermark)  // last_stable_offset
                if version >= 5 { response.body.writeInt64(error == SinkErrorCode.unknownTopicOrPartition ? -1 : 0) }
                response.body.writeInt32(0)              // aborted_transactions: none
                if version >= 11 { response.body.writeInt32(-1) }   // preferred_read_replica
                response.writeRecords(slice)
                if slice.count > 0 {
                    wroteRecords = true
                    budget = max(budget - slice.count, 0)
                }
            }
        }
    }
}
