import KlifeIO
import KlifeProtocol

/// The producer half of one reactor: routes records to broker sinks and turns
/// each sink's buffers into one Produce request per broker.
///
///     app threads ──push──► MPSCRing ──drain (iteration hook)──► route ──► BrokerSink(leader)
///                                                                           │ flush: every ready partition
///                                                                           ▼
///                      connection.outbound ◄── ProduceRequestWriter + RecordBatchEncoder (one pass)
///
/// While a broker has `maxInFlightPerBroker` requests outstanding, new records keep
/// accumulating in its sink and leave together in the next request (dynamic batching).
/// Confined to the reactor thread.
final class ProducerEngine {
    // unowned(unsafe): the context owns this engine and outlives it.
    private unowned(unsafe) let context: ReactorContext
    private let config: ProducerConfiguration
    private var sinks: [Int32: BrokerSink] = [:]
    /// Records waiting for metadata (unknown topic, partition or leader).
    private var parked: [PendingRecord] = []
    private var lingerTimer: TimerHandle?
    private var lingerTimerDeadline: UInt64 = .max
    private var housekeepingTimer: TimerHandle?
    /// Where compressed batches are built before they are copied into a request.
    private var scratch = ByteWriter(capacity: 64 << 10)
    /// Emptied record arrays from answered requests, reused by the next batches.
    private var arrayPool: [[PendingRecord]] = []
    private let lingerNanos: UInt64
    private let backoffNanos: UInt64
    private let ackTimeoutMs: Int32

    init(context: ReactorContext) {
        self.context = context
        self.config = context.configuration.producer
        self.lingerNanos = config.linger.nanoseconds
        self.backoffNanos = max(config.retryBackoff.nanoseconds, 1_000_000)
        self.ackTimeoutMs = config.ackTimeout.int32Milliseconds
    }

    // MARK: Intake

    /// Drains the record ring and flushes ready sinks. Runs once per reactor iteration.
    func runIteration() {
        let ring = context.records
        let now = Reactor.monotonicNanoseconds()
        while ring.drain(maxCount: 4096, { self.route($0, now: now) }) == 4096 {}
        flushAll(now: now)
    }

    /// Routes records submitted as one batch (they are flushed together by the next iteration).
    func routeMany(_ records: [PendingRecord]) {
        let now = Reactor.monotonicNanoseconds()
        for r in records { route(r, now: now) }
    }

    /// Puts a record in its leader's sink, forwards it to the reactor owning that leader,
    /// or parks it until metadata knows where it goes.
    func route(_ record: PendingRecord, now: UInt64) {
        var record = record
        guard let route = context.snapshot.routes[record.topic] else {
            park(record)
            return
        }
        let count = route.partitionCount
        if record.partition < 0 {
            record.partition = context.choosePartition(topic: record.topic, key: record.key, value: record.value,
                                                       partitionCount: count)
            if record.partition < 0 || record.partition >= count {
                record.fail(.invalidArgument("the partitioner for \(record.topic) chose partition \(record.partition) of \(count)"))
                return
            }
        } else if record.partition >= count {
            record.fail(.unknownTopicOrPartition(record.topic, partition: record.partition))
            return
        }
        guard let leader = route.leader(record.partition) else {
            park(record)
            return
        }
        let owner = context.owningContext(forNode: leader)
        if owner !== context {
            owner.accept(record)
            return
        }
        sink(for: leader).append(record, now: now)
        ensureHousekeeping()
    }

    private func park(_ record: PendingRecord) {
        parked.append(record)
        context.requestMetadataRefresh(topic: record.topic)
        ensureHousekeeping()
    }

    private func sink(for node: Int32) -> BrokerSink {
        if let s = sinks[node] { return s }
        let s = BrokerSink(nodeID: node)
        sinks[node] = s
        return s
    }

    // MARK: Metadata changes

    /// Re-routes parked records and records buffered for brokers that no longer lead their partition.
    func metadataChanged() {
        let now = Reactor.monotonicNanoseconds()
        let metadata = context.snapshot.metadata
        var moved: [PendingRecord] = []
        for sink in sinks.values {
            moved += sink.removeMisplaced { metadata.leader(topic: $0, partition: $1) == sink.nodeID }
        }
        let waiting = parked
        parked.removeAll()
        for r in moved + waiting { route(r, now: now) }
    }

    /// Fails every waiting record of a topic the cluster says does not exist.
    func failUnknownTopic(_ name: String) {
        var keep: [PendingRecord] = []
        for r in parked {
            if r.topic == name { r.fail(.unknownTopicOrPartition(name)) } else { keep.append(r) }
        }
        parked = keep
    }

    // MARK: Flushing

    private func flushAll(now: UInt64) {
        for sink in sinks.values where sink.bufferedRecordCount > 0 {
            flush(sink, now: now)
        }
    }

    private func flush(_ sink: BrokerSink, now: UInt64) {
        while sink.bufferedRecordCount > 0 && sink.inFlightRequests < config.maxInFlightPerBroker {
            guard now >= sink.reconnectNotBefore, !sink.awaitingConnection,
                  let connection = context.connection(forNode: sink.nodeID) else { return }
            guard connection.isReady else {
                sink.awaitingConnection = true
                connection.whenReady { [unowned self] result in
                    sink.awaitingConnection = false
                    if case .failure = result {
                        sink.reconnectNotBefore = Reactor.monotonicNanoseconds() &+ backoffNanos
                        context.requestMetadataRefresh(topic: nil)
                    }
                    flush(sink, now: Reactor.monotonicNanoseconds())
                }
                return
            }
            guard let batch = takeReady(from: sink, now: now) else { return }
            send(batch, to: sink, on: connection)
        }
    }

    /// Removes the partitions that may be sent now, up to the request size limit.
    private func takeReady(from sink: BrokerSink, now: UInt64) -> ProduceBatch? {
        let batch = ProduceBatch()
        var requestBytes = 64
        var nextDeadline = UInt64.max
        for topic in sink.topics.keys.sorted() {
            var partitions = sink.topics[topic]!
            for (index, var buffer) in partitions {
                let lingerDue = buffer.firstAppendNanos &+ lingerNanos
                let ready = now >= buffer.retryNotBefore
                    && (lingerNanos == 0 || now >= lingerDue || buffer.estimatedBytes >= config.maxBatchBytes)
                guard ready else {
                    nextDeadline = min(nextDeadline, max(lingerDue, buffer.retryNotBefore))
                    continue
                }
                guard requestBytes + RecordBatchLayout.headerSize + 64 <= config.maxRequestBytes || batch.isEmpty else { break }
                let budget = min(config.maxBatchBytes, max(config.maxRequestBytes - requestBytes, RecordBatchLayout.headerSize + 1))
                var spare = arrayPool.popLast() ?? []
                let records = buffer.takePrefix(maxBytes: budget, spare: &spare)
                if spare.capacity > 0 { arrayPool.append(spare) }
                requestBytes += records.reduce(RecordBatchLayout.headerSize + 32) { $0 + PartitionBuffer.estimatedSize($1) }
                sink.bufferedRecordCount -= records.count
                batch.append(topic: topic, partition: index, records: records)
                if !buffer.records.isEmpty { buffer.firstAppendNanos = now }
                partitions[index] = buffer.records.isEmpty ? nil : buffer
            }
            sink.topics[topic] = partitions.isEmpty ? nil : partitions
        }
        if nextDeadline != .max { armLingerTimer(at: nextDeadline) }
        return batch.isEmpty ? nil : batch
    }

    private func send(_ batch: ProduceBatch, to sink: BrokerSink, on connection: BrokerConnection) {
        let version: Int16
        do {
            version = try connection.negotiatedVersion(ProduceRequest.self)
        } catch {
            batch.failAll(error)
            return
        }
        let acks = config.acks
        let options = BatchEncodingOptions(version: version, acks: acks.rawValue, timeoutMs: ackTimeoutMs,
                                           compression: config.compression, compressionLevel: config.compressionLevel)
        sink.inFlightRequests += 1
        connection.sendFrame(
            apiKey: .produce, version: version, flexible: ProduceRequest.isFlexible(version),
            responseHeaderVersion: ProduceRequest.responseHeaderVersion(version), expectsResponse: acks != .none,
            encodeBody: { writer in batch.encode(into: &writer, scratch: &scratch, options: options) },
            handler: { [unowned self] result in
                sink.inFlightRequests -= 1
                handleResponse(result, batch: batch, version: version, sink: sink, broker: connection.address.description)
                batch.recycle(into: &arrayPool, maxPooled: 256, maxCapacity: 1 << 16)
                flush(sink, now: Reactor.monotonicNanoseconds())
            })
    }

    // MARK: Responses

    private func handleResponse(_ result: Result<ByteReader, KlifeError>, batch: ProduceBatch, version: Int16,
                                sink: BrokerSink, broker: String) {
        guard case .success(var reader) = result else {
            if case .failure(let error) = result { retryOrFail(batch.partitions, error: error, sink: sink, leadershipChanged: true) }
            return
        }
        if config.acks == .none {
            batch.completeWithoutOffsets()
            return
        }
        let response = ProduceResponse(from: &reader, version: version)
        if let error = reader.error {
            retryOrFail(batch.partitions, error: .malformed(error, broker: broker), sink: sink, leadershipChanged: false)
            return
        }
        var answered = Set<TopicPartition>()
        for topic in response.topics {
            for p in topic.partitions {
                let tp = TopicPartition(topic: topic.name, partition: p.index)
                guard let entry = batch.partitions.first(where: { $0.tp == tp }), answered.insert(tp).inserted else { continue }
                let code = KafkaErrorCode(rawValue: p.errorCode)
                if code == .none {
                    for (i, r) in entry.records.enumerated() {
                        let timestamp = p.logAppendTimeMs >= 0 ? p.logAppendTimeMs : r.timestamp
                        r.complete(.success(RecordMetadata(topic: r.topic, partition: r.partition,
                                                                      offset: p.baseOffset + Int64(i), timestamp: timestamp)))
                    }
                } else {
                    let message = p.errorMessage ?? p.recordErrors.first?.message
                    let error = KlifeError.broker(code, "produce to \(tp)", message: message)
                    if code.isRetriable {
                        let leadership = code == .notLeaderOrFollower || code == .leaderNotAvailable
                            || code == .unknownTopicOrPartition || code == .fencedLeaderEpoch
                        retryOrFail([entry], error: error, sink: sink, leadershipChanged: leadership)
                    } else {
                        for r in entry.records { r.fail(error) }
                    }
                }
            }
        }
        let missing = batch.partitions.filter { !answered.contains($0.tp) }
        if !missing.isEmpty {
            let error = KlifeError.malformed(DecodeError(.invalidValue, offset: 0, detail: "partition missing from Produce response"),
                                             broker: broker)
            retryOrFail(missing, error: error, sink: sink, leadershipChanged: false)
        }
    }

    /// Retries records still within their delivery deadline; fails the rest with `error`.
    private func retryOrFail(_ entries: [ProduceBatch.Entry], error: KlifeError, sink: BrokerSink, leadershipChanged: Bool) {
        let now = Reactor.monotonicNanoseconds()
        for entry in entries {
            var retry: [PendingRecord] = []
            for r in entry.records {
                if r.deadline <= now { r.fail(error) } else { retry.append(r) }
            }
            guard !retry.isEmpty else { continue }
            if leadershipChanged {
                // Leadership may have moved: wait for fresh metadata, then route again.
                parked.append(contentsOf: retry)
                context.requestMetadataRefresh(topic: entry.tp.topic)
            } else {
                sink.topics[entry.tp.topic, default: [:]][entry.tp.partition, default: PartitionBuffer()]
                    .requeueFront(retry, notBefore: now &+ backoffNanos)
                sink.bufferedRecordCount += retry.count
                armLingerTimer(at: now &+ backoffNanos)
            }
        }
        ensureHousekeeping()
    }

    // MARK: Timers

    private func armLingerTimer(at deadline: UInt64) {
        if lingerTimer != nil && lingerTimerDeadline <= deadline { return }
        if let t = lingerTimer { context.reactor.cancelTimer(t) }
        let now = Reactor.monotonicNanoseconds()
        lingerTimerDeadline = deadline
        lingerTimer = context.reactor.scheduleTimer(afterNanoseconds: deadline > now ? deadline - now : 0) { [unowned self] in
            lingerTimer = nil
            lingerTimerDeadline = .max
            flushAll(now: Reactor.monotonicNanoseconds())
        }
    }

    /// A slow tick (100 ms) that expires records past their delivery deadline and retries
    /// sinks waiting on reconnect backoff. Runs only while records are waiting.
    private func ensureHousekeeping() {
        guard housekeepingTimer == nil else { return }
        housekeepingTimer = context.reactor.scheduleTimer(afterNanoseconds: 100_000_000) { [unowned self] in
            housekeepingTimer = nil
            let now = Reactor.monotonicNanoseconds()
            var keep: [PendingRecord] = []
            for r in parked {
                if r.deadline <= now { r.fail(.timedOut("delivery of record to \(r.topic) (waiting for metadata)")) } else { keep.append(r) }
            }
            parked = keep
            for sink in sinks.values { sink.expire(now: now) }
            if !parked.isEmpty { context.requestMetadataRefresh(topic: parked[0].topic) }
            flushAll(now: now)
            if !parked.isEmpty || sinks.values.contains(where: { $0.bufferedRecordCount > 0 || $0.inFlightRequests > 0 }) {
                ensureHousekeeping()
            }
        }
    }

    /// Fails every buffered and parked record (client shutdown).
    func failAll(_ error: KlifeError) {
        for r in parked { r.fail(error) }
        parked.removeAll()
        for sink in sinks.values { for r in sink.removeAll() { r.fail(error) } }
    }
}
