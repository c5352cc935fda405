import KlifeIO
import KlifeProtocol

/// Records appended on the producing thread: each one written once, in its wire form, into
/// its partition's open ``ProducerBlock``; the reactor gets whole blocks.
///
/// Taken when the client has one reactor, the metadata snapshot knows the topic (and the
/// partition, when one is given), and no earlier record of the session is still on its way
/// to a reactor by the ring (``OutstandingCounter/inTransit``). Otherwise a record takes the
/// ring as before: it is copied into the payload arena and its reactor encodes it at send
/// time. docs/DESIGN.md ("Records appended on the producing thread") gives the protocol and
/// why no record overtakes another of its producer.
extension KlifeClient {
    /// Whether a record of `session` may be appended on this thread now (cheap: no lock).
    @inline(__always)
    func appendsOnProducingThread(_ session: ProducerSession) -> Bool {
        appendOnProducingThread && session.outstanding.inTransit.load(ordering: .acquiring) == 0
    }

    /// Appends an admitted record (zero-delta size `size`) to its partition's open block.
    /// - Returns: `true` once appended (its completion, if any, taken into the block); `false`
    ///   when it must take the ring instead (the topic or partition is not known yet, or the
    ///   ring had no room for the block's notice), with `completion` untouched.
    func appendOnProducingThread(topic: String, partition partitionGiven: Int32?, timestamp: Int64?,
                                 key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, headers: [RecordHeader],
                                 size: Int, completion: inout DeliveryCompletion, session: ProducerSession) -> Bool {
        let handle = TopicTable.shared.handle(for: topic)
        guard let logs = topicLogs(handle, session: session) else { return false }
        let log: Unmanaged<PartitionLog>? = logs._withUnsafeGuaranteedRef { logs in
            let partition: Int32
            if let partitionGiven {
                guard partitionGiven < logs.partitionCount else { return nil }
                partition = partitionGiven
            } else {
                partition = partitions.choose(topic: topic, keyBytes: key, valueBytes: value, partitionCount: logs.partitionCount)
                guard partition >= 0 && partition < logs.partitionCount else { return nil }
            }
            return logs.unretainedLogs[Int(partition)]
        }
        guard let log else { return false }
        let createTime = timestamp ?? currentTimeMilliseconds()
        if headers.isEmpty {
            return append(to: log, timestamp: createTime, key: key, value: value, headers: .none, size: size,
                          completion: &completion, session: session)
        }
        let headerBytes = RecordBatchLayout.headerBytes(headers)
        return withUnsafeTemporaryAllocation(byteCount: headerBytes, alignment: 1) { wire in
            _ = RecordBatchLayout.writeHeaders(headers, at: wire.baseAddress!)
            return append(to: log, timestamp: createTime, key: key, value: value,
                          headers: EncodedHeaders(count: headers.count, bytes: UnsafeRawBufferPointer(wire)),
                          size: size, completion: &completion, session: session)
        }
    }

    /// The session's logs of `topic` as of the published metadata, made from the snapshot on
    /// first use (and after each metadata change); `nil` while the snapshot does not know it.
    @inline(__always)
    private func topicLogs(_ topic: TopicHandle, session: ProducerSession) -> Unmanaged<TopicLogs>? {
        // Lent, not retained: the client keeps its store, the session its table.
        unowned(unsafe) let store = metadataStore
        let version = store.publishedVersion.load(ordering: .acquiring)
        let found = session.unretainedLogs._withUnsafeGuaranteedRef { $0.logs(for: topic, version: version) }
        return found ?? makeTopicLogs(topic, session: session)
    }

    @inline(never)
    private func makeTopicLogs(_ topic: TopicHandle, session: ProducerSession) -> Unmanaged<TopicLogs>? {
        let snapshot = metadataStore.snapshot
        guard let route = snapshot.routes[topic.name], route.partitionCount > 0 else {
            noteTopicOfInterest(topic.name)
            return nil
        }
        return session.logs.logs(for: topic, version: snapshot.version, partitionCount: route.partitionCount)
    }

    /// Appends to `log`'s open block; a full block is sealed and handed to the reactor, and a
    /// new one opened, its notice handed over — both pushes under the log's lock.
    @inline(__always)
    private func append(to log: Unmanaged<PartitionLog>, timestamp: Int64, key: UnsafeRawBufferPointer?,
                        value: UnsafeRawBufferPointer?, headers: EncodedHeaders, size: Int,
                        completion: inout DeliveryCompletion, session: ProducerSession) -> Bool {
        let service = unretainedProducers[0]
        var wake = WakeAfterAppend.none
        let appended = log._withUnsafeGuaranteedRef { log in
            log.withOpenBlock { open -> Bool in
                if let block = open {
                    let taken = block._withUnsafeGuaranteedRef {
                        $0.append(timestamp: timestamp, key: key, value: value, headers: headers, size: size,
                                  completion: &completion)
                    }
                    if taken { return true }
                    // Full: sealed and handed over (with the log's reference); a new block takes the record.
                    open = nil
                    let descriptor = block._withUnsafeGuaranteedRef {
                        $0.markHandedOver()
                        return $0.sealedDescriptor(log: log, slot: session.slot, deliveryTimeoutNanos: deliveryTimeoutNanos)
                    }
                    block.release()
                    handOver(descriptor, to: service)
                    wake = .now
                }
                return openBlock(in: log, open: &open, timestamp: timestamp, key: key, value: value, headers: headers,
                                 size: size, completion: &completion, session: session, service: service, wake: &wake)
            }
        }
        service._withUnsafeGuaranteedRef { service in
            switch wake {
            case .none: break
            case .now: service.reactor.wakeup()
            case .by(let time): lingerNanos > 0 ? service.reactor.wakeup(unlessAwakeBy: time) : service.reactor.wakeup()
            }
        }
        return appended
    }

    /// Opens a block for `log` (lock held) with the record, after handing its notice to the
    /// reactor. - Returns: `false` when the ring had no room for the notice (nothing opened).
    @inline(never)
    private func openBlock(in log: PartitionLog, open: inout Unmanaged<ProducerBlock>?, timestamp: Int64,
                           key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, headers: EncodedHeaders,
                           size: Int, completion: inout DeliveryCompletion, session: ProducerSession,
                           service: Unmanaged<ProducerService>, wake: inout WakeAfterAppend) -> Bool {
        let block = session.blocks.take()
        let now = Reactor.monotonicNanoseconds()
        block.open(timestamp: timestamp, now: now, tracker: session.outstanding)
        let notice = block.notice(log: log, slot: session.slot, deliveryTimeoutNanos: deliveryTimeoutNanos)
        guard service._withUnsafeGuaranteedRef({ $0.records.offer(notice) }) == nil else {
            session.blocks.giveBack(block)
            return false
        }
        _ = block.append(timestamp: timestamp, key: key, value: value, headers: headers, size: size, completion: &completion)
        open = Unmanaged.passRetained(block)
        if case .none = wake { wake = .by(now &+ lingerNanos) }
        return true
    }

    /// Puts a sealed block's descriptor into the reactor's ring, waiting for room while the
    /// ring is full (the partition's lock is held: the order of blocks depends on it); past
    /// `maxBlock` its records fail with `queueFull`.
    private func handOver(_ descriptor: PendingRecord, to service: Unmanaged<ProducerService>) {
        guard let refused = service._withUnsafeGuaranteedRef({ $0.records.offer(descriptor) }) else { return }
        if let error = pushWaiting(refused, into: service.takeUnretainedValue()) {
            refused.complete(.failure(error))
        }
    }

    /// What the reactor needs after an append: nothing, a wake now (a sealed block), or a wake
    /// by the end of a new block's linger.
    enum WakeAfterAppend {
        case none
        case now
        case by(UInt64)
    }
}

extension ProducerBlock {
    /// The descriptor of this block, sealed, for `log`'s partition: it holds a reference to
    /// the block of its own.
    func sealedDescriptor(log: PartitionLog, slot: UInt8, deliveryTimeoutNanos: UInt64) -> PendingRecord {
        PendingRecord(topic: log.topic, partition: log.partition, timestamp: batch.baseTimestamp,
                      deadline: openedAt &+ deliveryTimeoutNanos, size: Int32(truncatingIfNeeded: batch.byteCount),
                      awaited: hasTickets, slot: slot, tracker: tracker, block: Unmanaged.passRetained(self))
    }

    /// The notice that this block was just opened for `log`'s partition (the block is not
    /// retained by it: the log holds the block while it is open).
    func notice(log: PartitionLog, slot: UInt8, deliveryTimeoutNanos: UInt64) -> PendingRecord {
        PendingRecord(topic: log.topic, partition: log.partition, timestamp: batch.baseTimestamp,
                      deadline: openedAt &+ deliveryTimeoutNanos, slot: slot, tracker: tracker,
                      block: Unmanaged.passUnretained(self), noticeOf: generation)
    }
}
