import KlifeIO
import KlifeProtocol

/// The producer id and epoch an idempotent producer stamps on every batch.
///
/// Obtained once at connect (InitProducerId without a transactional id). When the broker
/// loses the producer's state (`UNKNOWN_PRODUCER_ID`), reports a sequence gap the client
/// cannot explain, or a sequenced batch fails for good, the epoch is bumped (KIP-360) and
/// every partition's sequence restarts at 0. While a bump is under way nothing is sent.
final class ProducerIdentity: Sendable {
    struct Value: Sendable, Equatable {
        var producerID: Int64 = -1
        var epoch: Int16 = -1
        /// True while an epoch bump is under way: engines hold every batch.
        var bumping = false
        var isValid: Bool { producerID >= 0 && !bumping }
    }

    private let state = Locked(Value())

    var current: Value { state.withLock { $0 } }

    func set(producerID: Int64, epoch: Int16) {
        state.withLock { $0 = Value(producerID: producerID, epoch: epoch, bumping: false) }
    }

    /// Marks a bump as started; false when one already is.
    func beginBump() -> Bool {
        state.withLock { s in
            if s.bumping { return false }
            s.bumping = true
            return true
        }
    }

    /// Ends a failed bump attempt without changing the id (a later failure retries it).
    func abandonBump() { state.withLock { $0.bumping = false } }
}

/// Per-partition sequence numbers for idempotent production, shared by all reactors so a
/// partition's state survives a leader moving to a broker owned by another reactor.
///
/// Locked once per batch, never per record. A batch takes its sequence numbers the first
/// time it is sent and keeps them (and its exact boundaries) across retries, so the broker
/// can recognise a retry of a batch it already wrote and drop the duplicate.
///
/// Order rule: while a sequenced batch of a partition waits to be resent — in a sink's sealed
/// list, parked for fresh metadata, or on its way to another reactor — no newer batch of that
/// partition may take sequence numbers. A broker that lost the producer's state after a leader
/// move (or one that does not check sequences at all) would write the newer batch first.
final class SequenceRegistry: Sendable {
    struct Partition {
        /// Sequence of the next record never sent before.
        var next: Int32 = 0
        /// Batches of this partition sent and not yet answered, over all reactors.
        var inFlight = 0
        /// Highest acknowledged sequence (-1: none yet under this epoch).
        var lastAcked: Int32 = -1
        /// Sequenced batches of the current numbering that failed and wait to be resent.
        var awaitingResend = 0
    }

    /// The producer id and epoch the current numbering belongs to.
    struct Numbering: Equatable {
        var producerID: Int64 = -1
        var epoch: Int16 = -1
    }

    private struct State {
        var partitions: [TopicPartition: Partition] = [:]
        var numbering = Numbering()
    }

    private let state = Locked(State())

    /// Reserves `count` new sequence numbers for a batch about to be sent.
    /// - Returns: the base sequence, or `nil` when `maxInFlight` batches are out already or an
    ///   older batch of the partition waits to be resent.
    func reserveNew(_ tp: TopicPartition, count: Int, maxInFlight: Int) -> Int32? {
        state.withLock { s in
            var p = s.partitions[tp, default: Partition()]
            guard p.inFlight < maxInFlight, p.awaitingResend == 0 else { return nil }
            let base = p.next
            // Sequences wrap from Int32.max to 0, as the broker expects.
            p.next = Int32(truncatingIfNeeded: (Int64(base) + Int64(count)) & 0x7fff_ffff)
            p.inFlight += 1
            s.partitions[tp] = p
            return base
        }
    }

    /// A sequenced batch of `tp` stamped with `producerID`/`epoch` failed and will be resent:
    /// until it is (``beginRetry(_:)``), the partition takes no new sequence numbers. Batches of
    /// an older numbering are not counted (they lose their sequences when they are routed).
    func willResend(_ tp: TopicPartition, producerID: Int64, epoch: Int16) {
        state.withLock { s in
            guard s.numbering == Numbering(producerID: producerID, epoch: epoch) else { return }
            s.partitions[tp, default: Partition()].awaitingResend += 1
        }
    }

    /// A batch counted by ``willResend(_:producerID:epoch:)`` was dropped instead of resent
    /// (it expired); the gap it leaves is healed by a new epoch.
    func droppedResend(_ tp: TopicPartition, batches: Int = 1) {
        state.withLock { s in
            guard var p = s.partitions[tp] else { return }
            p.awaitingResend = max(p.awaitingResend - batches, 0)
            s.partitions[tp] = p
        }
    }

    /// Starts resending an already-sequenced batch: only when nothing else of the partition
    /// is in flight, so retries reach the broker strictly in sequence order.
    func beginRetry(_ tp: TopicPartition) -> Bool {
        state.withLock { s in
            var p = s.partitions[tp, default: Partition()]
            guard p.inFlight == 0 else { return false }
            p.inFlight = 1
            p.awaitingResend = max(p.awaitingResend - 1, 0)
            s.partitions[tp] = p
            return true
        }
    }

    /// Whether the partition has batches in flight.
    func hasInFlight(_ tp: TopicPartition) -> Bool {
        state.withLock { $0.partitions[tp]?.inFlight ?? 0 > 0 }
    }

    /// A batch's answer arrived (or its connection failed).
    func finished(_ tp: TopicPartition) {
        state.withLock { s in
            guard var p = s.partitions[tp] else { return }
            p.inFlight = max(p.inFlight - 1, 0)
            s.partitions[tp] = p
        }
    }

    /// Records the broker acknowledged `count` records starting at `base`.
    func acknowledged(_ tp: TopicPartition, base: Int32, count: Int) {
        state.withLock { s in
            guard var p = s.partitions[tp] else { return }
            p.lastAcked = Int32(truncatingIfNeeded: (Int64(base) + Int64(count) - 1) & 0x7fff_ffff)
            s.partitions[tp] = p
        }
    }

    /// Whether `base` is the very next sequence the broker should expect for `tp`: an
    /// OUT_OF_ORDER answer for that batch means the broker lost our state.
    func isNextExpected(_ tp: TopicPartition, base: Int32) -> Bool {
        state.withLock { s in
            let last = s.partitions[tp]?.lastAcked ?? -1
            return base == Int32(truncatingIfNeeded: (Int64(last) + 1) & 0x7fff_ffff)
        }
    }

    /// Batches in flight over all partitions.
    var totalInFlight: Int { state.withLock { $0.partitions.values.reduce(0) { $0 + $1.inFlight } } }

    /// Starts a new numbering for `producerID`/`epoch` (at connect, or after an epoch bump):
    /// every sequence restarts at 0 and no batch waits to be resent (waiting batches lose their
    /// sequences when the engines learn the new identity). In-flight counts are kept so the
    /// batches still out are accounted for when they return.
    func restart(producerID: Int64, epoch: Int16) {
        state.withLock { s in
            s.numbering = Numbering(producerID: producerID, epoch: epoch)
            for key in s.partitions.keys {
                s.partitions[key]!.next = 0
                s.partitions[key]!.lastAcked = -1
                s.partitions[key]!.awaitingResend = 0
            }
        }
    }
}
