import KlifeIO
import KlifeProtocol

/// One producer identity and everything stamped with it: the producer id and epoch,
/// per-partition sequence numbers, and the count of records not yet completed.
///
/// A client has the idempotent session (slot 0), used by `produce`, and one session per
/// member of its transactional pool (slots 1...poolSize). Every reactor runs one
/// ``ProducerEngine`` per session it has seen records for; records carry their session's
/// slot through the rings, so records of different sessions never share a RecordBatch
/// (a batch has exactly one producer id) and transactional batches leave in Produce
/// requests that name their transactional id.
final class ProducerSession: Sendable {
    /// Index into the client's sessions and each reactor's engines (0: the idempotent producer).
    let slot: UInt8
    /// The transactional id (`nil` for the idempotent session).
    let transactionalID: String?
    /// Whether batches carry a producer id and sequence numbers.
    let idempotent: Bool
    let identity = ProducerIdentity()
    let sequences = SequenceRegistry()
    /// Records of this session accepted and not yet completed; forwards to the client's counter.
    let outstanding: OutstandingCounter
    /// The partitions' open blocks, for records appended on the producing thread.
    let logs = PartitionLogTable()
    /// `logs`, lent (the session keeps it): reading it per record takes no reference.
    var unretainedLogs: Unmanaged<PartitionLogTable> { Unmanaged.passUnretained(logs) }
    /// Blocks of this session, reused.
    let blocks: ProducerBlockPool
    /// A transactional session's failure state, set from reactor threads and read by the
    /// transaction that owns the session.
    private let failure = Locked(Failure())

    struct Failure {
        /// The transaction can no longer commit (a record failed or the producer's sequence
        /// state was lost); it must abort.
        var abortable: KlifeError?
        /// The producer is fenced or otherwise unusable for good.
        var fatal: KlifeError?
    }

    init(slot: UInt8, transactionalID: String?, idempotent: Bool, clientCounter: OutstandingCounter?,
         blockBytes: Int = ProducerConfiguration().maxBatchBytes) {
        self.slot = slot
        self.blocks = ProducerBlockPool(blockBytes: blockBytes)
        self.transactionalID = transactionalID
        self.idempotent = idempotent
        self.outstanding = clientCounter.map { OutstandingCounter(parent: $0) } ?? OutstandingCounter()
    }

    /// The idempotent session, whose counter is the client's own.
    init(defaultWith counter: OutstandingCounter, idempotent: Bool, blockBytes: Int = ProducerConfiguration().maxBatchBytes) {
        self.slot = 0
        self.blocks = ProducerBlockPool(blockBytes: blockBytes)
        self.transactionalID = nil
        self.idempotent = idempotent
        self.outstanding = counter
    }

    var isTransactional: Bool { transactionalID != nil }

    /// Fails the records of every open block of this session (shutdown, an aborted
    /// transaction): they were never handed to a reactor.
    func failOpenBlocks(_ error: KlifeError) {
        for log in logs.allLogs {
            guard let block = log.takeOpen() else { continue }
            let descriptor = block._withUnsafeGuaranteedRef { $0.sealedDescriptor(log: log, slot: slot, deliveryTimeoutNanos: 0) }
            block.release()
            descriptor.complete(.failure(error))
        }
    }

    /// Takes a new producer id and epoch (at connect or after a bump): sequences restart at 0
    /// under it first, then the identity engines read is replaced.
    func adopt(producerID: Int64, epoch: Int16) {
        sequences.restart(producerID: producerID, epoch: epoch)
        identity.set(producerID: producerID, epoch: epoch)
    }

    // MARK: Failure state (transactional sessions)

    /// Marks the running transaction as unable to commit; the first reason is kept.
    func markAbortable(_ error: KlifeError) {
        failure.withLock { if $0.abortable == nil { $0.abortable = error } }
    }

    /// Marks the producer as unusable for good (fenced); the first reason is kept.
    func markFatal(_ error: KlifeError) {
        failure.withLock { if $0.fatal == nil { $0.fatal = error } }
    }

    var abortableError: KlifeError? { failure.withLock { $0.abortable } }
    var fatalError: KlifeError? { failure.withLock { $0.fatal } }

    /// Clears the abortable state when a new transaction begins.
    func clearAbortable() { failure.withLock { $0.abortable = nil } }

    /// Whether a Produce error code means another instance took over this producer's
    /// transactional id (or this producer lost the right to write): fatal, never retried.
    static func isFencing(_ code: KafkaErrorCode) -> Bool {
        code == .producerFenced || code == .invalidProducerEpoch || code == .transactionalIDAuthorizationFailed
            || code == .transactionCoordinatorFenced
    }
}
