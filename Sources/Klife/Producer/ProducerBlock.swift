import KlifeIO
import KlifeProtocol
import Synchronization

/// What settles one awaited record of a ``ProducerBlock``: where it lies in the batch, its
/// CreateTime, and who waits for it. Records nobody waits for have no ticket.
struct BlockTicket {
    var offsetDelta: Int32
    var timestamp: Int64
    var completion: DeliveryCompletion
}

/// Records of one partition written in their wire form as they were produced: one RecordBatch
/// in the making, and the tickets of the records someone waits for.
///
/// A block travels through the engine as a single descriptor (a ``PendingRecord`` whose
/// ``PendingRecord/block`` is set): it is buffered, sent, retried, resent with its sequence
/// numbers, moved to another leader or another reactor and expired whole, like a sealed batch.
/// Sending it is a header patch and a CRC over bytes already in place
/// (``AppendingRecordBatch/frame(producerID:producerEpoch:baseSequence:isTransactional:)``):
/// its records are never encoded again, and one acknowledgement settles all of them — their
/// tickets called in order, one counter update for the block.
///
/// Life: taken from its session's pool and opened for a partition, appended to under that
/// partition's lock (``PartitionLog``), sealed, handed to the reactor, then completed or
/// failed exactly once, which gives it back to the pool.
final class ProducerBlock: @unchecked Sendable {
    // `@exclusivity(unchecked)`: appended to under its partition log's lock, then read and
    // settled by one reactor at a time (docs/DESIGN.md, performance rules).
    @exclusivity(unchecked) var batch: AppendingRecordBatch
    @exclusivity(unchecked) private(set) var tickets: [BlockTicket] = []
    /// The records' sizes as admitted (zero-delta sizes), given back to the buffer counter.
    @exclusivity(unchecked) private(set) var admittedBytes = 0
    /// Monotonic time the block was opened (its first record's arrival: linger and delivery
    /// deadline count from it).
    @exclusivity(unchecked) private(set) var openedAt: UInt64 = 0
    /// The counter the records were admitted to. Unowned: the client outlives its records.
    unowned(unsafe) private(set) var tracker: OutstandingCounter
    /// The pool the block goes back to once settled. Unowned: the session owns it.
    unowned(unsafe) let pool: ProducerBlockPool
    /// Counts the block's openings (never 0 once opened): a notice names the opening it is
    /// about, so a block reused since is not taken for the one the notice saw. Atomic: a
    /// reactor reads it under the lock of the log its notice names, which is not the lock a
    /// reused block is written under.
    private let openings = Atomic<UInt32>(0)
    /// The opening a producing thread sealed and handed to the reactor's ring (0: none since).
    private let handedOverOpening = Atomic<UInt32>(0)

    init(limit: Int, pool: ProducerBlockPool) {
        batch = AppendingRecordBatch(limit: limit, baseTimestamp: 0)
        tracker = OutstandingCounter.vacated
        self.pool = pool
    }

    /// Number of records in the block.
    var recordCount: Int { batch.recordCount }

    /// Starts the block afresh for records counted by `tracker`, the first of them at
    /// `timestamp`, arriving at monotonic time `now`.
    func open(timestamp: Int64, now: UInt64, tracker: OutstandingCounter) {
        batch.reopen(baseTimestamp: timestamp)
        tickets.removeAll(keepingCapacity: true)
        admittedBytes = 0
        openedAt = now
        self.tracker = tracker
        let next = generation == .max ? 1 : generation &+ 1
        openings.store(next, ordering: .relaxed)
    }

    /// This opening's number (see ``PendingRecord/noticeOf``).
    var generation: UInt32 { openings.load(ordering: .relaxed) }

    /// Notes that a producing thread sealed this opening and is handing its descriptor to the
    /// reactor's ring (under its log's lock, before the push).
    func markHandedOver() { handedOverOpening.store(generation, ordering: .relaxed) }

    /// Whether opening `generation` was sealed and handed over by a producing thread.
    func wasHandedOver(opening generation: UInt32) -> Bool {
        handedOverOpening.load(ordering: .relaxed) == generation && self.generation == generation
    }

    /// Appends a record (admitted with `size` bytes) if the block has room for it; its
    /// completion becomes a ticket when someone waits.
    /// - Returns: `false`, with nothing written and `completion` untouched, when the block is
    ///   full (its first record is always taken).
    @inline(__always)
    func append(timestamp: Int64, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, headers: EncodedHeaders,
                size: Int, completion: inout DeliveryCompletion) -> Bool {
        let offsetDelta = Int32(truncatingIfNeeded: batch.recordCount)
        guard batch.tryAppend(timestamp: timestamp, key: key, value: value, headers: headers) else { return false }
        admittedBytes &+= size
        if !completion.isNone {
            tickets.append(BlockTicket(offsetDelta: offsetDelta, timestamp: timestamp, completion: completion))
            completion = .none
        }
        return true
    }

    /// Whether someone waits for any record of the block.
    var hasTickets: Bool { !tickets.isEmpty }

    /// The block as one RecordBatch stamped with a producer identity, compressed with `codec`
    /// when that makes it smaller: valid until the block is framed again or settled.
    func framed(producerID: Int64, producerEpoch: Int16, baseSequence: Int32, isTransactional: Bool,
                codec: CompressionCodec, level: Int32?) -> UnsafeRawBufferPointer {
        batch.frameCompressedIfSmaller(producerID: producerID, producerEpoch: producerEpoch, baseSequence: baseSequence,
                                       isTransactional: isTransactional, codec: codec, level: level)
    }

    /// Settles every record as written at `baseOffset` (-1 when unknown: acks none, or a
    /// duplicate), calling the tickets in order, then gives the block back to its pool.
    func complete(topic: String, partition: Int32, baseOffset: Int64, logAppendTime: Int64) {
        forEachTicketMovedOut { ticket in
            let offset = baseOffset >= 0 ? baseOffset &+ Int64(ticket.offsetDelta) : -1
            let timestamp = logAppendTime >= 0 ? logAppendTime : ticket.timestamp
            ticket.completion.complete(.success(RecordMetadata(topic: topic, partition: partition, offset: offset,
                                                               timestamp: timestamp)))
        }
        settle(success: true)
    }

    /// Fails every record with `error`, then gives the block back to its pool.
    func fail(_ error: KlifeError) {
        forEachTicketMovedOut { $0.completion.complete(.failure(error)) }
        settle(success: false)
    }

    /// Calls `body` with each ticket in order, moved out of the array (`.none` left in its
    /// place): reading one copied its completion's closure, a retain and a release per record.
    @inline(__always)
    private func forEachTicketMovedOut(_ body: (borrowing BlockTicket) -> Void) {
        tickets.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            for i in buffer.indices {
                let ticket = (base + i).move()
                (base + i).initialize(to: BlockTicket(offsetDelta: 0, timestamp: 0, completion: .none))
                body(ticket)
            }
        }
    }

    /// One counter update for the whole block, its tickets dropped, the block pooled again.
    private func settle(success: Bool) {
        let count = batch.recordCount
        tickets.removeAll(keepingCapacity: true)
        tracker.completed(count: count, bytes: admittedBytes, success: success)
        tracker = OutstandingCounter.vacated
        pool.giveBack(self)
    }
}

/// The blocks of one producer session, reused: a settled block keeps its memory for the next.
final class ProducerBlockPool: @unchecked Sendable {
    /// The batch limit of every block (`producer.maxBatchBytes`).
    let blockBytes: Int
    /// Blocks kept at most; more are freed when given back.
    let maxPooled: Int
    private let free = Locked<[ProducerBlock]>([])

    init(blockBytes: Int, maxPooled: Int = 256) {
        self.blockBytes = blockBytes
        self.maxPooled = maxPooled
    }

    /// A block from the pool, or a new one.
    func take() -> ProducerBlock {
        free.withLock { $0.popLast() } ?? ProducerBlock(limit: blockBytes, pool: self)
    }

    /// Puts a settled block back.
    func giveBack(_ block: ProducerBlock) {
        free.withLock { if $0.count < maxPooled { $0.append(block) } }
    }

    /// Blocks waiting in the pool (tests).
    var pooledCount: Int { free.withLock { $0.count } }
}
