import KlifeIO
import KlifeProtocol

/// The producer half of one reactor for one ``ProducerSession``: routes the session's
/// records to broker sinks and turns each sink's buffers into one Produce request per broker.
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
    // unowned(unsafe): the service owns this engine and outlives it.
    unowned(unsafe) let service: ProducerService
    /// The identity, sequences and failure state this engine's batches are stamped with.
    let session: ProducerSession
    let config: ProducerConfiguration
    // `@exclusivity(unchecked)` here and below: one thread owns this object, and the runtime's
    // access checks cost more than the per-record work (docs/DESIGN.md, performance rules).
    @exclusivity(unchecked) private var sinks: [Int32: BrokerSink] = [:]
    /// Records waiting for metadata (unknown topic, partition or leader).
    @exclusivity(unchecked) private var parked: [PendingRecord] = []
    private var lingerTimer: TimerHandle?
    private var lingerTimerDeadline: UInt64 = .max
    private var housekeepingTimer: TimerHandle?
    /// Where compressed batches are built before they are copied into a request.
    @exclusivity(unchecked) private var scratch = ByteWriter(capacity: 64 << 10)
    /// Emptied record arrays from answered requests, reused by the next batches.
    @exclusivity(unchecked) private var arrayPool: [[PendingRecord]] = []
    /// Empty chunks the partition buffers of every sink grow from.
    private let chunkPool = RecordChunkPool()
    private let idempotent: Bool
    /// The identity batches are stamped with; `identityReady` is false until InitProducerId
    /// answered and during an epoch bump, and then nothing is sent.
    private var producerID: Int64 = -1
    @exclusivity(unchecked) private var epoch: Int16 = -1
    private var identityReady = false
    let lingerNanos: UInt64
    /// The client's buffer counter: producers waiting on it for room mean the buffer is full.
    let bufferCounter: OutstandingCounter
    /// Whether producers waited for room when the current flush began: batches then go without
    /// waiting out the linger, as the Java client's do when its buffer memory is exhausted —
    /// lingering cannot fill them any more, it only holds back the room the producers need.
    @exclusivity(unchecked) private var bufferExhausted = false
    private let backoffMaxNanos: UInt64
    /// Counters for ``KlifeClient/statistics()``.
    @exclusivity(unchecked) private(set) var counters = ProducerCounters()
    /// Consecutive retries per partition, for the exponential backoff; cleared on success.
    private var retryAttempts: [TopicPartition: Int] = [:]
    private let backoffNanos: UInt64
    private let ackTimeoutMs: Int32

    init(service: ProducerService, session: ProducerSession) {
        self.service = service
        self.session = session
        self.config = service.configuration.producer
        self.lingerNanos = config.linger.nanoseconds
        self.bufferCounter = session.outstanding.root
        self.backoffNanos = max(config.retryBackoff.nanoseconds, 1_000_000)
        self.backoffMaxNanos = config.retryBackoffMax.nanoseconds
        self.ackTimeoutMs = config.ackTimeout.int32Milliseconds
        self.idempotent = session.idempotent
        self.transactionalID = session.transactionalID
        self.partitions = service.partitions
        self.reactorCount = service.configuration.reactorCount
        self.reactorIndex = service.index
        let identity = session.identity.current
        if identity.isValid {
            producerID = identity.producerID
            epoch = identity.epoch
            identityReady = true
        }
    }

    private let transactionalID: String?
    /// The sink used last, lent without a retain on the per-record path (`sinks` keeps it).
    @exclusivity(unchecked) private var lastSinkNode: Int32 = -1
    @exclusivity(unchecked) private var lastSink: Unmanaged<BrokerSink>?
    /// The route of the topic routed last, as plain values: records come in runs of one
    /// topic, and comparing the name is far cheaper than hashing it (and than the reference
    /// counting of reaching the snapshot through the hub). Cleared by `metadataChanged`,
    /// which runs for every snapshot the hub installs.
    @exclusivity(unchecked) private var cachedRoute: CachedRoute?
    private let partitions: PartitionChooser
    private let reactorCount: Int
    private let reactorIndex: Int
    /// The blocks producing threads opened for this engine's session, as their notices told
    /// (`ProducerEngine+Blocks.swift`).
    @exclusivity(unchecked) var expected = ExpectedBlocks()

    // MARK: Intake

    /// Puts a record in its leader's sink, forwards it to the reactor owning that leader,
    /// or parks it until metadata knows where it goes.
    /// - Parameter lingerFrom: When the record's linger started (`now` unless the record waited
    ///   in the ring for this reactor's own wake).
    func route(_ record: consuming PendingRecord, now: UInt64, lingerFrom: UInt64? = nil) {
        if record.noticeOf != 0 {
            noteOpened(record)
            return
        }
        if !expected.isEmpty, let block = record.block {
            // A block's descriptor: whatever waited for it follows it.
            let released = expected.arrived(block, at: OpenBlockKey(topic: record.topic, partition: record.partition))
            routeOne(record, now: now, lingerFrom: lingerFrom)
            for r in released { route(r, now: now) }
            return
        }
        routeOne(record, now: now, lingerFrom: lingerFrom)
    }

    private func routeOne(_ record: consuming PendingRecord, now: UInt64, lingerFrom: UInt64?) {
        if cachedRoute?.topic != record.topic { cacheRoute(of: record.topic) }
        guard let count = cachedRoute?.partitionCount else {
            parkAtOwner(consume record, ownerChangedAt: nil)
            return
        }
        if record.partition < 0 {
            let chosen = partitions.choose(record, partitionCount: count)
            if chosen < 0 || chosen >= count {
                record.fail(.invalidArgument("the partitioner for \(record.topic) chose partition \(chosen) of \(count)"))
                return
            }
            record.partition = chosen
        } else if record.partition >= count {
            // Maybe partitions were added and metadata has not caught up: wait a bounded time.
            if now &- (record.deadline &- config.deliveryTimeout.nanoseconds) >= config.unknownTopicTimeout.nanoseconds {
                record.fail(.unknownTopicOrPartition(record.topic.name, partition: record.partition))
            } else {
                parkAtOwner(consume record, ownerChangedAt: nil)
            }
            return
        }
        let index = Int(record.partition)
        let leader = cachedRoute.unsafelyUnwrapped.leaders[index]
        guard leader >= 0 else {
            parkAtOwner(consume record, ownerChangedAt: cachedRoute.unsafelyUnwrapped.ownerChangedAt[index])
            return
        }
        if reactorCount > 1 {
            if ReactorHub.index(forNode: leader, reactorCount: reactorCount) != reactorIndex {
                service.forward(consume record, toNode: leader)
                return
            }
            if service.handsOff
                && service.mustHold(routedAt: record.routedAt, batchBase: record.batchBase,
                                    ownerChangedAt: cachedRoute.unsafelyUnwrapped.ownerChangedAt[index]) {
                service.hold(consume record)
                return
            }
        }
        if record.inTransit {
            // Fresh from a producing thread: what that thread appended to the partition's open
            // block before is older, so the block goes first. (Records routed again — moved,
            // retried, released — are older than any open block, and go in front of it.)
            if !expected.isEmpty && waitsBehindBlock(record, now: now) { return }
            record.leftTransit()
        }
        let sink = leader == lastSinkNode ? lastSink.unsafelyUnwrapped : Unmanaged.passUnretained(self.sink(for: leader))
        sink._withUnsafeGuaranteedRef { $0.append(record, now: lingerFrom ?? now, epoch: epoch) }
        ensureHousekeeping()
    }

    /// Reads `topic`'s route from the reactor's snapshot into ``cachedRoute`` (`nil` leaders
    /// when the snapshot does not know the topic).
    @inline(never)
    private func cacheRoute(of topic: TopicHandle) {
        if let route = service.snapshot.routes[topic.name] {
            cachedRoute = CachedRoute(topic: topic, partitionCount: route.partitionCount, leaders: route.leaders,
                                      ownerChangedAt: route.ownerChangedAt)
        } else {
            cachedRoute = CachedRoute(topic: topic, partitionCount: nil, leaders: [], ownerChangedAt: [])
        }
    }

    /// Parks a record no leader can take yet on the reactor that owns such records (reactor 0,
    /// where producing threads send them too), held like any record whose partition changed
    /// owner: parking it wherever it happens to be would let newer records of its partition,
    /// parked on reactor 0, be routed before it once a leader is known.
    private func parkAtOwner(_ record: consuming PendingRecord, ownerChangedAt: UInt64?) {
        if service.handsOff {
            if service.index != TopicRoute.leaderlessOwner {
                service.forward(consume record, toReactor: TopicRoute.leaderlessOwner)
                return
            }
            if let ownerChangedAt,
               service.mustHold(routedAt: record.routedAt, batchBase: record.batchBase, ownerChangedAt: ownerChangedAt) {
                service.hold(consume record)
                return
            }
        }
        park(consume record)
    }

    private func park(_ record: consuming PendingRecord) {
        let topic = record.topic.name
        parked.append(consume record)
        service.requestMetadataRefresh(topic: topic)
        ensureHousekeeping()
    }

    /// The sink of broker `node`, if it has one.
    func existingSink(for node: Int32) -> BrokerSink? { sinks[node] }

    /// The sink of broker `node`, created on first use (the last one is kept at hand: records
    /// come in runs for one leader).
    private func sink(for node: Int32) -> BrokerSink {
        if node == lastSinkNode, let cached = lastSink { return cached.takeUnretainedValue() }
        let found: BrokerSink
        if let existing = sinks[node] {
            found = existing
        } else {
            found = BrokerSink(nodeID: node, lingerNanos: lingerNanos, maxBatchBytes: config.maxBatchBytes, pool: chunkPool)
            sinks[node] = found
        }
        lastSinkNode = node
        lastSink = Unmanaged.passUnretained(found)
        return found
    }

    // MARK: Metadata changes

    /// Re-routes parked records and records buffered for brokers that no longer lead their partition.
    func metadataChanged() {
        cachedRoute = nil
        let now = Reactor.monotonicNanoseconds()
        let metadata = service.snapshot.metadata
        var moved: [PendingRecord] = []
        for sink in sinks.values {
            moved += sink.removeMisplaced { metadata.leader(topic: $0, partition: $1) == sink.nodeID }
        }
        // Parked records first: a retried record waits there while newer ones of its
        // partition may be in a sink.
        let waiting = parked
        parked.removeAll()
        for r in waiting + moved { route(r, now: now) }
    }

    /// A new producer identity (after InitProducerId or an epoch bump), or a bump starting
    /// (`bumping`): sends pause until a valid identity arrives. On a new epoch every sealed
    /// batch loses its sequences.
    func identityChanged(_ value: ProducerIdentity.Value) {
        identityReady = value.isValid
        guard value.isValid else { return }
        if value.epoch != epoch || value.producerID != producerID {
            producerID = value.producerID
            epoch = value.epoch
            for sink in sinks.values { sink.unsealAll() }
            // Parked batches lose their sequences too (a new producer id may restart at the
            // same epoch number, so the epoch check in `append` alone would not catch them),
            // and go back to their sinks now: under the new identity nothing holds newer
            // records of their partitions back, so they must be in front of them before the
            // flush below (a leader still unknown parks them again, ahead of newer records).
            var resent = false
            for i in parked.indices where parked[i].batchBase >= 0 {
                parked[i].batchBase = -1
                parked[i].sequenceEpoch = PendingRecord.sentUnderVoidIdentity
                resent = true
            }
            if resent {
                let waiting = parked
                parked.removeAll()
                let now = Reactor.monotonicNanoseconds()
                for r in waiting { route(r, now: now) }
            }
        }
        for sink in sinks.values { sink.nothingDueBefore = 0 }
        flushAll(now: Reactor.monotonicNanoseconds())
    }

    /// Fails the waiting records of a topic the cluster says does not exist, once they have
    /// waited `unknownTopicTimeout` (a topic just created may not be in metadata yet).
    func failUnknownTopic(_ name: String) {
        let now = Reactor.monotonicNanoseconds()
        let deliveryTimeout = config.deliveryTimeout.nanoseconds
        let wait = config.unknownTopicTimeout.nanoseconds
        let failed = failParked(.unknownTopicOrPartition(name)) { r in
            r.topic.name == name && now &- (r.deadline &- deliveryTimeout) >= wait
        }
        if failed > 0 { service.log(.error, "topic \(name) does not exist: failed \(failed) records") }
        if !parked.isEmpty { ensureHousekeeping() }
    }

    /// Fails the parked records matching `condition`. A sequenced batch waiting to be resent is
    /// failed whole when any of its records matches (resending part of it would break its
    /// boundaries), its place in the resend count is given back, and the gap it leaves is healed.
    /// - Returns: how many records failed.
    private func failParked(_ error: KlifeError, where condition: (PendingRecord) -> Bool) -> Int {
        var doomedBatches = Set<SequencedBatchKey>()
        for r in parked where r.batchBase >= 0 && condition(r) { doomedBatches.insert(SequencedBatchKey(r)) }
        var keep: [PendingRecord] = []
        var failed = 0
        for r in parked {
            if (r.batchBase >= 0 && doomedBatches.contains(SequencedBatchKey(r))) || (r.batchBase < 0 && condition(r)) {
                r.fail(error)
                failed += 1
            } else {
                keep.append(r)
            }
        }
        parked = keep
        for key in doomedBatches { session.sequences.droppedResend(key.tp) }
        if !doomedBatches.isEmpty { recoverSequences(after: error) }
        return failed
    }

    // MARK: Flushing

    func flushAll(now: UInt64) {
        for sink in sinks.values where sink.bufferedRecordCount > 0 {
            flush(sink, now: now)
        }
    }

    private func flush(_ sink: BrokerSink, now: UInt64) {
        bufferExhausted = lingerNanos > 0 && bufferCounter.waitingCount > 0
        while sink.bufferedRecordCount > 0 && sink.inFlightRequests < config.maxInFlightPerBroker {
            guard now >= sink.reconnectNotBefore, !sink.awaitingConnection,
                  let connection = service.connection(forNode: sink.nodeID) else { return }
            guard connection.isReady else {
                sink.awaitingConnection = true
                connection.whenReady { [unowned self] result in
                    sink.awaitingConnection = false
                    if case .failure = result {
                        sink.reconnectNotBefore = Reactor.monotonicNanoseconds() &+ backoffNanos
                        service.requestMetadataRefresh(topic: nil)
                    }
                    flush(sink, now: Reactor.monotonicNanoseconds())
                }
                return
            }
            if now < sink.nothingDueBefore && !bufferExhausted {
                armLingerTimer(at: sink.nothingDueBefore)
                return
            }
            guard let batch = takeReady(from: sink, now: now) else { return }
            send(batch, to: sink, on: connection)
        }
    }

    /// Removes the partitions that may be sent now, up to the request size limit.
    ///
    /// With idempotence a partition sends either its oldest sealed batch (a retry, only
    /// when nothing else of it is in flight, so retries land in sequence order) or, when
    /// it has none, new records under freshly reserved sequence numbers.
    private func takeReady(from sink: BrokerSink, now: UInt64) -> ProduceBatch? {
        if idempotent && !identityReady { return nil }
        let batch = ProduceBatch()
        var requestBytes = 64
        var nextDeadline = UInt64.max
        var full = false
        // Whatever takes no decision below (blocked on sequences in flight, or a request
        // that filled up) is looked at again when a response arrives or on the next pass.
        var recheckNow = false
        for topic in sink.topicOrder where !full {
            // Buffers are changed in place through their topic's class instance: a copy would
            // make the first mutation copy the whole backlog (and retain every record in it).
            let buffers = sink.buffers(for: topic)
            for index in buffers.partitions.indices where !full && buffers.partitions[index].recordCount > 0 {
                full = !take(from: &buffers.partitions[index], topic: topic, index: Int32(index), into: batch, sink: sink,
                             requestBytes: &requestBytes, nextDeadline: &nextDeadline, now: now)
                if full { recheckNow = true }
            }
        }
        if nextDeadline != .max { armLingerTimer(at: nextDeadline) }
        sink.nothingDueBefore = recheckNow ? 0 : nextDeadline
        return batch.isEmpty ? nil : batch
    }

    /// Moves what one partition may send now into `batch`.
    /// - Returns: false when the request is full and no other partition should be tried.
    private func take(from buffer: inout PartitionBuffer, topic: String, index: Int32, into batch: ProduceBatch,
                      sink: BrokerSink, requestBytes: inout Int, nextDeadline: inout UInt64, now: UInt64) -> Bool {
        guard now >= buffer.retryNotBefore else {
            nextDeadline = min(nextDeadline, buffer.retryNotBefore)
            return true
        }
        guard requestBytes + RecordBatchLayout.headerSize + 64 <= config.maxRequestBytes || batch.isEmpty else { return false }
        if idempotent && !buffer.sealed.isEmpty {
            let tp = TopicPartition(topic: topic, partition: index)
            guard session.sequences.beginRetry(tp) else {
                recheckSoon(sink, now: now, nextDeadline: &nextDeadline)
                return true
            }
            let records = buffer.sealed.removeFirst()
            requestBytes += records.reduce(RecordBatchLayout.headerSize + 32) { $0 + PartitionBuffer.estimatedSize($1) }
            sink.bufferedRecordCount -= records.count
            batch.append(topic: topic, partition: index, records: records, baseSequence: records[0].batchBase)
            return true
        }
        guard buffer.hasUnsent else { return true }
        let lingerDue = buffer.firstAppendNanos &+ lingerNanos
        guard lingerNanos == 0 || now >= lingerDue || buffer.estimatedBytes >= config.maxBatchBytes || bufferExhausted
                || buffer.hasBlocks else {
            nextDeadline = min(nextDeadline, lingerDue)
            return true
        }
        let budget = min(config.maxBatchBytes, max(config.maxRequestBytes - requestBytes, RecordBatchLayout.headerSize + 1))
        var spare = arrayPool.popLast() ?? []
        var (records, recordBytes) = buffer.takePrefix(maxBytes: budget, spare: &spare, pool: chunkPool)
        var baseSequence: Int32 = -1
        if idempotent {
            let tp = TopicPartition(topic: topic, partition: index)
            guard let base = session.sequences.reserveNew(tp, count: PendingRecord.recordCount(of: records),
                                                          maxInFlight: config.maxInFlightPerBroker) else {
                buffer.putBack(records, pool: chunkPool)
                recheckSoon(sink, now: now, nextDeadline: &nextDeadline)
                return true
            }
            baseSequence = base
            for i in records.indices {
                records[i].batchBase = base
                records[i].sequenceEpoch = epoch
            }
        }
        requestBytes += RecordBatchLayout.headerSize + 32 + recordBytes
        sink.bufferedRecordCount -= records.count
        batch.append(topic: topic, partition: index, records: records, baseSequence: baseSequence)
        if buffer.hasUnsent {
            buffer.firstAppendNanos = now
            let due = buffer.estimatedBytes >= config.maxBatchBytes || buffer.hasBlocks
            nextDeadline = min(nextDeadline, due ? now : now &+ lingerNanos)
        }
        return true
    }

    /// A partition held back by the shared sequence registry (batches of it in flight, or an
    /// older batch waiting to be resent) becomes sendable when that batch is answered. When the
    /// batch is this sink's, its answer rechecks the sink; when it is another sink's (the leader
    /// moved, or another reactor owns the new leader), nothing here would, so look again shortly.
    private func recheckSoon(_ sink: BrokerSink, now: UInt64, nextDeadline: inout UInt64) {
        if sink.inFlightRequests == 0 { nextDeadline = min(nextDeadline, now &+ 2_000_000) }
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
                                           transactionalID: transactionalID,
                                           producerID: idempotent ? producerID : -1, producerEpoch: idempotent ? epoch : -1,
                                           isTransactional: transactionalID != nil,
                                           compression: config.compression, compressionLevel: config.compressionLevel)
        sink.inFlightRequests += 1
        let stamp = SequenceRegistry.Numbering(producerID: producerID, epoch: epoch)
        let sentAt = Reactor.monotonicNanoseconds()
        var bytes = 0
        connection.sendFrame(
            apiKey: .produce, version: version, flexible: ProduceRequest.isFlexible(version),
            responseHeaderVersion: ProduceRequest.responseHeaderVersion(version), expectsResponse: acks != .none,
            encodeBody: { writer in
                let start = writer.count
                batch.encode(into: &writer, scratch: &scratch, options: options)
                bytes = writer.count - start
            },
            handler: { [unowned self] result in
                sink.inFlightRequests -= 1
                // Sequences and in-flight slots were freed: partitions held back may go now.
                sink.nothingDueBefore = 0
                counters.latency.record(nanoseconds: Reactor.monotonicNanoseconds() &- sentAt)
                if case .failure = result { counters.errorsByBroker[sink.nodeID, default: 0] += 1 }
                handleResponse(result, batch: batch, version: version, sink: sink, broker: connection.address.description,
                               stamp: stamp)
                batch.recycle(into: &arrayPool, maxPooled: 256, maxCapacity: 1 << 16)
                flush(sink, now: Reactor.monotonicNanoseconds())
            })
        counters.produceRequests += 1
        counters.batchesSent += batch.partitions.count
        counters.bytesSent += bytes
    }

    // MARK: Responses

    private func handleResponse(_ result: Result<ByteReader, KlifeError>, batch: ProduceBatch, version: Int16,
                                sink: BrokerSink, broker: String, stamp: SequenceRegistry.Numbering) {
        if idempotent {
            for entry in batch.partitions where entry.baseSequence >= 0 { session.sequences.finished(entry.tp) }
        }
        guard case .success(var reader) = result else {
            if case .failure(let error) = result { retryOrFail(batch.partitions, error: error, sink: sink, leadershipChanged: true, stamp: stamp) }
            return
        }
        if config.acks == .none {
            batch.completeWithoutOffsets()
            return
        }
        let response = ProduceResponse(from: &reader, version: version)
        if let error = reader.error {
            retryOrFail(batch.partitions, error: .malformed(error, broker: broker), sink: sink, leadershipChanged: false, stamp: stamp)
            return
        }
        var answered = Set<TopicPartition>()
        for topic in response.topics {
            for p in topic.partitions {
                let tp = TopicPartition(topic: topic.name, partition: p.index)
                guard let entry = batch.partitions.first(where: { $0.tp == tp }), answered.insert(tp).inserted else { continue }
                handlePartition(p, entry: entry, sink: sink, stamp: stamp)
            }
        }
        let missing = batch.partitions.filter { !answered.contains($0.tp) }
        if !missing.isEmpty {
            let error = KlifeError.malformed(DecodeError(.invalidValue, offset: 0, detail: "partition missing from Produce response"),
                                             broker: broker)
            retryOrFail(missing, error: error, sink: sink, leadershipChanged: false, stamp: stamp)
        }
    }

    private func handlePartition(_ p: ProduceResponse.Partition, entry: ProduceBatch.Entry, sink: BrokerSink,
                                 stamp: SequenceRegistry.Numbering) {
        let code = KafkaErrorCode(rawValue: p.errorCode)
        let sequenced = entry.baseSequence >= 0
        // DUPLICATE_SEQUENCE_NUMBER: the broker already has this batch (our earlier attempt
        // was written but its answer lost), so the records are delivered.
        if code == .none || (sequenced && code == .duplicateSequenceNumber) {
            retryAttempts[entry.tp] = nil
            if sequenced {
                session.sequences.acknowledged(entry.tp, base: entry.baseSequence,
                                               count: PendingRecord.recordCount(of: entry.records))
            }
            let known = code == .none
            let topic = entry.tp.topic
            let partition = entry.tp.partition
            if entry.block != nil {
                entry.records[0].completeBlock(topic: topic, partition: partition, baseOffset: known ? p.baseOffset : -1,
                                               logAppendTime: p.logAppendTimeMs)
                return
            }
            // Each record read where it lies: iterating the array would copy every record.
            entry.records.withUnsafeBufferPointer { records in
                guard !records.isEmpty else { return }
                var bytes = 0
                PendingRecord.forEach(in: records, prefetching: { $0.pointee.prefetchCompletion() }) { i, record in
                    bytes += Int(record.pointee.size)
                    guard record.pointee.awaited else { return }
                    let timestamp = p.logAppendTimeMs >= 0 ? p.logAppendTimeMs : record.pointee.timestamp
                    PendingRecord.deliver(at: record, .success(RecordMetadata(topic: topic, partition: partition,
                                                                              offset: known ? p.baseOffset + Int64(i) : -1,
                                                                              timestamp: timestamp)))
                }
                PendingRecord.releasePayloads(records)
                // Every record of a batch belongs to this engine's session: one counter update.
                session.outstanding.completed(count: records.count, bytes: bytes, success: true)
            }
            return
        }
        let message = p.errorMessage ?? p.recordErrors.first?.message
        let error = KlifeError.broker(code, "produce to \(entry.tp)", message: message)
        counters.errorsByBroker[sink.nodeID, default: 0] += 1
        if transactionalID != nil && (ProducerSession.isFencing(code) || code == .unknownProducerID
                                      || code == .outOfOrderSequenceNumber) {
            // A transactional producer never bumps its own epoch mid-transaction: fenced is
            // fatal, lost sequence state makes the transaction abort (and re-initialise).
            let failure: KlifeError = ProducerSession.isFencing(code) ? .producerFenced(session.transactionalID ?? "", code: code) : error
            for r in entry.records { r.fail(failure) }
            if ProducerSession.isFencing(code) { session.markFatal(failure) } else { session.markAbortable(failure) }
            return
        }
        if sequenced {
            // The broker lost this producer's state, or a gap it cannot fill: start a new epoch,
            // after which the batch is resent under fresh sequence numbers.
            let lostState = code == .unknownProducerID
                || (code == .outOfOrderSequenceNumber && session.sequences.isNextExpected(entry.tp, base: entry.baseSequence))
            if lostState {
                recoverSequences(after: error)
                retryOrFail([entry], error: error, sink: sink, leadershipChanged: false, stamp: stamp)
                return
            }
            // An earlier batch of the partition failed and is being resent: this one follows it.
            if code == .outOfOrderSequenceNumber {
                retryOrFail([entry], error: error, sink: sink, leadershipChanged: false, stamp: stamp)
                return
            }
        }
        if code.isRetriable {
            let leadership = code == .notLeaderOrFollower || code == .leaderNotAvailable
                || code == .unknownTopicOrPartition || code == .fencedLeaderEpoch
            retryOrFail([entry], error: error, sink: sink, leadershipChanged: leadership, stamp: stamp)
        } else {
            for r in entry.records { r.fail(error) }
            // A sequenced batch that will never be written leaves a gap later batches cannot pass.
            if sequenced { recoverSequences(after: error) }
        }
    }

    /// Retries records still within their delivery deadline; fails the rest with `error`.
    /// A sequenced batch is retried or failed whole, never split, so its boundaries hold.
    /// A sequenced batch that is retried counts as waiting to be resent (`stamp`: the identity
    /// it was sent under), which holds newer batches of its partition back until it goes.
    private func retryOrFail(_ entries: [ProduceBatch.Entry], error: KlifeError, sink: BrokerSink, leadershipChanged: Bool,
                             stamp: SequenceRegistry.Numbering) {
        let now = Reactor.monotonicNanoseconds()
        for entry in entries {
            var retry: [PendingRecord] = []
            if entry.baseSequence >= 0 {
                if entry.records.contains(where: { $0.deadline <= now }) {
                    for r in entry.records { r.fail(error) }
                    recoverSequences(after: error)
                    continue
                }
                retry = entry.records
                session.sequences.willResend(entry.tp, producerID: stamp.producerID, epoch: stamp.epoch)
            } else {
                for r in entry.records {
                    if r.deadline <= now { r.fail(error) } else { retry.append(r) }
                }
            }
            guard !retry.isEmpty else { continue }
            counters.retries += 1
            service.log(.info, "retrying \(retry.count) records of \(entry.tp) after: \(error)")
            let backoff = nextBackoff(entry.tp)
            if leadershipChanged {
                // Leadership may have moved: wait for fresh metadata, then route again.
                parked.append(contentsOf: retry)
                service.requestMetadataRefresh(topic: entry.tp.topic)
            } else {
                sink.requeueFront(retry, tp: entry.tp, notBefore: now &+ backoff, epoch: epoch)
                armLingerTimer(at: now &+ backoff)
            }
        }
        ensureHousekeeping()
    }

    /// A sequenced batch failed for good or the broker lost this producer's sequence state:
    /// the idempotent producer bumps its epoch; a transactional one must abort the
    /// transaction (its next transaction starts under a new epoch).
    private func recoverSequences(after error: KlifeError) {
        if session.isTransactional {
            session.markAbortable(error)
        } else {
            service.requestEpochBump()
        }
    }

    /// Exponential backoff per partition (retryBackoff doubling up to retryBackoffMax),
    /// with ±20 % jitter so many producers do not retry in lockstep.
    private func nextBackoff(_ tp: TopicPartition) -> UInt64 {
        let attempt = retryAttempts[tp, default: 0]
        retryAttempts[tp] = attempt + 1
        let exponential = backoffNanos << UInt64(min(attempt, 20))
        let capped = min(exponential, max(backoffMaxNanos, backoffNanos))
        let jitter = Double.random(in: 0.8...1.2)
        return UInt64(Double(capped) * jitter)
    }

    // MARK: Timers

    func armLingerTimer(at deadline: UInt64) {
        if lingerTimer != nil && lingerTimerDeadline <= deadline { return }
        if let t = lingerTimer { service.reactor.cancelTimer(t) }
        let now = Reactor.monotonicNanoseconds()
        lingerTimerDeadline = deadline
        lingerTimer = service.reactor.scheduleTimer(afterNanoseconds: deadline > now ? deadline - now : 0) { [unowned self] in
            lingerTimer = nil
            lingerTimerDeadline = .max
            // Nothing to flush here: the timer only wakes the loop. Its iteration hook runs
            // next (`ProducerService.iterate`) and first takes the records waiting in the ring
            // (produced while the loop slept until this timer), then flushes what is due. A
            // flush from here sent the batch without them, and then them alone.
        }
    }

    /// A slow tick (100 ms) that expires records past their delivery deadline and retries
    /// sinks waiting on reconnect backoff. Runs only while records are waiting.
    private func ensureHousekeeping() {
        guard housekeepingTimer == nil else { return }
        housekeepingTimer = service.reactor.scheduleTimer(afterNanoseconds: 100_000_000) { [unowned self] in
            housekeepingTimer = nil
            let now = Reactor.monotonicNanoseconds()
            if parked.contains(where: { $0.deadline <= now }) {
                _ = failParked(.timedOut("delivery of records (waiting for metadata)")) { $0.deadline <= now }
            }
            for sink in sinks.values {
                let dropped = sink.expire(now: now)
                guard !dropped.isEmpty else { continue }
                for (tp, batches) in dropped { session.sequences.droppedResend(tp, batches: batches) }
                recoverSequences(after: .timedOut("delivery of a sequenced batch"))
            }
            if !parked.isEmpty { service.requestMetadataRefresh(topic: parked[0].topic.name) }
            flushAll(now: now)
            if !parked.isEmpty || sinks.values.contains(where: { $0.bufferedRecordCount > 0 || $0.inFlightRequests > 0 }) {
                ensureHousekeeping()
            }
        }
    }

    /// Fails every buffered and parked record (client shutdown).
    func failAll(_ error: KlifeError) {
        for r in expected.removeAll() { r.fail(error) }
        session.failOpenBlocks(error)
        for r in parked { r.fail(error) }
        parked.removeAll()
        for sink in sinks.values { for r in sink.removeAll() { r.fail(error) } }
    }
}

/// Identifies one sequenced batch among parked records: its partition, base sequence and epoch.
private struct SequencedBatchKey: Hashable {
    let tp: TopicPartition
    let base: Int32
    let epoch: Int16

    init(_ record: borrowing PendingRecord) {
        tp = TopicPartition(topic: record.topic.name, partition: record.partition)
        base = record.batchBase
        epoch = record.sequenceEpoch
    }
}

/// What ``ProducerEngine/route(_:now:lingerFrom:)`` needs of one topic's route, copied out of the snapshot.
private struct CachedRoute {
    let topic: TopicHandle
    /// `nil` when the snapshot does not know the topic.
    let partitionCount: Int32?
    /// Leader per partition (-1 when unknown).
    let leaders: [Int32]
    let ownerChangedAt: [UInt64]
}
