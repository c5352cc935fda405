import KlifeProtocol
import Synchronization

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

    private let state = Mutex(Value())

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
final class SequenceRegistry: Sendable {
    struct Partition {
        /// Sequence of the next record never sent before.
        var next: Int32 = 0
        /// Batches of this partition sent and not yet answered, over all reactors.
        var inFlight = 0
        /// Highest acknowledged sequence (-1: none yet under this epoch).
        var lastAcked: Int32 = -1
    }

    private let partitions = Mutex<[TopicPartition: Partition]>([:])

    /// Reserves `count` new sequence numbers for a batch about to be sent.
    /// - Returns: the base sequence, or `nil` when `maxInFlight` batches are out already.
    func reserveNew(_ tp: TopicPartition, count: Int, maxInFlight: Int) -> Int32? {
        partitions.withLock { all in
            var p = all[tp, default: Partition()]
            guard p.inFlight < maxInFlight else { return nil }
            let base = p.next
            // Sequences wrap from Int32.max to 0, as the broker expects.
            p.next = Int32(truncatingIfNeeded: (Int64(base) + Int64(count)) & 0x7fff_ffff)
            p.inFlight += 1
            all[tp] = p
            return base
        }
    }

    /// Starts resending an already-sequenced batch: only when nothing else of the partition
    /// is in flight, so retries reach the broker strictly in sequence order.
    func beginRetry(_ tp: TopicPartition) -> Bool {
        partitions.withLock { all in
            var p = all[tp, default: Partition()]
            guard p.inFlight == 0 else { return false }
            p.inFlight = 1
            all[tp] = p
            return true
        }
    }

    /// Whether the partition has batches in flight.
    func hasInFlight(_ tp: TopicPartition) -> Bool {
        partitions.withLock { $0[tp]?.inFlight ?? 0 > 0 }
    }

    /// A batch's answer arrived (or its connection failed).
    func finished(_ tp: TopicPartition) {
        partitions.withLock { all in
            guard var p = all[tp] else { return }
            p.inFlight = max(p.inFlight - 1, 0)
            all[tp] = p
        }
    }

    /// Records the broker acknowledged `count` records starting at `base`.
    func acknowledged(_ tp: TopicPartition, base: Int32, count: Int) {
        partitions.withLock { all in
            guard var p = all[tp] else { return }
            p.lastAcked = Int32(truncatingIfNeeded: (Int64(base) + Int64(count) - 1) & 0x7fff_ffff)
            all[tp] = p
        }
    }

    /// Whether `base` is the very next sequence the broker should expect for `tp`: an
    /// OUT_OF_ORDER answer for that batch means the broker lost our state.
    func isNextExpected(_ tp: TopicPartition, base: Int32) -> Bool {
        partitions.withLock { all in
            let last = all[tp]?.lastAcked ?? -1
            return base == Int32(truncatingIfNeeded: (Int64(last) + 1) & 0x7fff_ffff)
        }
    }

    /// Batches in flight over all partitions.
    var totalInFlight: Int { partitions.withLock { $0.values.reduce(0) { $0 + $1.inFlight } } }

    /// Forgets every sequence (after an epoch bump, numbering restarts at 0), keeping
    /// in-flight counts so the batches still out are accounted for when they return.
    func resetSequences() {
        partitions.withLock { all in
            for key in all.keys {
                all[key]!.next = 0
                all[key]!.lastAcked = -1
            }
        }
    }
}
