public import Synchronization

/// A bounded lock-free multi-producer, single-consumer FIFO (Dmitry Vyukov's bounded
/// queue with a sequence number per slot).
///
/// Capacity is rounded up to a power of two. A full ring refuses pushes (``tryPush(_:)``
/// returns `false`): that is the backpressure signal; the ring never grows. Elements may
/// be ARC types: a slot holds an initialized element only between its push and its pop,
/// and elements still queued when the ring is freed are released exactly once.
///
/// Slot protocol (positions `p` grow forever, slot = `p & mask`, arithmetic wraps):
/// - sequence `2p`: empty, ready for the producer that claims position `p`;
/// - sequence `2p + 1`: full, ready for the consumer at position `p`;
/// - after the pop the slot gets `2(p + capacity)`: empty for the next lap.
/// Doubling the position keeps "full at p" and "empty for p + capacity" distinct even
/// for capacity 1, where Vyukov's original `p + 1` / `p + capacity` would coincide.
/// Producers claim a position with a CAS on the shared producer cursor, write the
/// element, then publish with a releasing store of the sequence; the consumer reads the
/// sequence with acquiring loads, so it sees the element fully written.
///
/// Per-producer order is preserved (each producer's claims are increasing and the
/// consumer pops in position order). A producer preempted between claim and publish
/// delays the consumer (``pop()`` returns `nil` until it publishes) but loses nothing.
public final class MPSCRing<Element>: ConsumableRing, @unchecked Sendable {
    // @unchecked Sendable is sound because: (1) the cursors and sequence numbers are
    // atomics, and every other stored property is immutable after init; (2) a slot's
    // element memory is touched by exactly one thread at a time: the producer that won
    // the CAS for its position until its releasing sequence store, then the single
    // consumer after its acquiring load, until its own releasing store hands the slot
    // back; (3) elements are accepted as `sending`, so a non-Sendable element cannot stay
    // reachable from the pushing thread while the consumer owns it. The one contract not
    // checked by the compiler is "single consumer": only one thread at a time may call
    // `pop`/`drain` (the reactor thread, for its task ring).
    @usableFromInline let storage: RingStorage<Element>
    @usableFromInline let sequences: UnsafeMutablePointer<Atomic<Int>>

    /// The number of slots (the requested capacity rounded up to a power of two).
    @inlinable public var capacity: Int { storage.capacity }

    /// Elements queued now; exact only when no push or pop runs concurrently.
    @inlinable public var approximateCount: Int { storage.approximateCount }

    /// Creates an empty ring.
    /// - Parameter capacity: Minimum number of elements it holds (1...2^40); rounded up to a power of two.
    public convenience init(capacity: Int) {
        self.init(capacity: capacity, startingAt: 0)
    }

    /// Creates an empty ring whose positions start at `start` (tests exercise wrap-around).
    init(capacity: Int, startingAt start: Int) {
        storage = RingStorage(capacity: capacity, start: start)
        let count = storage.capacity, mask = storage.mask
        sequences = .allocate(capacity: count)
        for slot in 0..<count {
            // The first position at or after `start` that maps to this slot.
            let position = start &+ ((slot &- start) & mask)
            (sequences + slot).initialize(to: Atomic(position &* 2))
        }
    }

    deinit {
        while pop() != nil {}
        sequences.deinitialize(count: storage.capacity)
        sequences.deallocate()
    }

    /// Appends an element unless the ring is full. Safe from any number of threads.
    /// - Parameter element: The element; ownership passes to the ring on success (and is
    ///   dropped on failure when the element is not `Sendable`, so retry only with
    ///   `Sendable` elements or re-create them).
    /// - Returns: `false` when the ring is full (backpressure), `true` once queued.
    @inlinable
    public func tryPush(_ element: sending Element) -> Bool {
        guard let position = claimPosition() else { return false }
        (storage.elements + (position & storage.mask)).initialize(to: element)
        publish(position)
        return true
    }

    /// Claims the next free position for one push, or returns `nil` when the ring is full.
    /// The caller must initialize the position's slot and then ``publish(_:)`` it.
    @inlinable
    func claimPosition() -> Int? {
        claimPosition(sequentiallyConsistent: false)
    }

    /// ``claimPosition()`` whose winning compare-and-swap is sequentially consistent when asked.
    @inlinable
    func claimPosition(sequentiallyConsistent: Bool) -> Int? {
        let producer = storage.producerPosition
        var position = producer.pointee.load(ordering: .relaxed)
        while true {
            let slot = position & storage.mask
            let sequence = sequences[slot].load(ordering: .acquiring)
            let difference = sequence &- (position &* 2)
            if difference == 0 {
                let (won, current) = sequentiallyConsistent
                    ? producer.pointee.compareExchange(expected: position, desired: position &+ 1, ordering: .sequentiallyConsistent)
                    : producer.pointee.compareExchange(expected: position, desired: position &+ 1, ordering: .relaxed)
                if won { return position }
                position = current
            } else if difference < 0 {
                return nil  // the slot still holds the element from one lap ago: full
            } else {
                position = producer.pointee.load(ordering: .relaxed)  // another producer took it
            }
        }
    }

    /// Hands a claimed, initialized slot to the consumer.
    @inlinable
    func publish(_ position: Int) {
        sequences[position & storage.mask].store(position &* 2 &+ 1, ordering: .releasing)
    }

    /// Removes the oldest element. Single consumer only.
    /// - Returns: The element, or `nil` when the ring is empty (or the oldest claimed
    ///   position is not yet published by its producer).
    @inlinable
    public func pop() -> Element? {
        let consumer = storage.consumerPosition
        let position = consumer.pointee.load(ordering: .relaxed)
        let slot = position & storage.mask
        guard sequences[slot].load(ordering: .acquiring) == position &* 2 &+ 1 else { return nil }
        let element = (storage.elements + slot).move()
        sequences[slot].store((position &+ storage.capacity) &* 2, ordering: .releasing)
        consumer.pointee.store(position &+ 1, ordering: .relaxed)
        return element
    }


    /// How many positions producers have claimed so far, read with sequential consistency:
    /// every claim that is not counted here comes after this read in the cursor's order, so a
    /// producer using ``offer(_:placeholder:stillValid:)`` re-checks after it whatever was
    /// published before this read.
    public var claimedCount: Int {
        storage.producerPosition.pointee.load(ordering: .sequentiallyConsistent)
    }

    /// How many positions the consumer has popped (every element below it is gone). Consumer only.
    public var consumedCount: Int {
        storage.consumerPosition.pointee.load(ordering: .relaxed)
    }

    /// Whether the oldest element is published (the consumer could pop now). Consumer only.
    var hasPoppableElement: Bool {
        let position = storage.consumerPosition.pointee.load(ordering: .relaxed)
        return sequences[position & storage.mask].load(ordering: .acquiring) == position &* 2 &+ 1
    }
}

extension MPSCRing where Element: Sendable {
    /// Appends `element` unless the ring is full, taking ownership only on success: the
    /// element moves into its slot without a copy, and a refused element comes back to
    /// the caller intact (to retry, or to fail it).
    /// - Returns: `nil` once queued; the element itself when the ring is full.
    @inlinable
    public func offer(_ element: consuming Element) -> Element? {
        guard let position = claimPosition() else { return element }
        (storage.elements + (position & storage.mask)).initialize(to: element)
        publish(position)
        return nil
    }

    /// ``offer(_:)`` for a producer whose choice of ring may go stale: after claiming a slot
    /// (a sequentially consistent compare-and-swap) it asks `stillValid`, which should load
    /// with sequential consistency what a consumer checks before ``claimedCount``. When the
    /// choice went stale, the slot gets `placeholder` (the consumer skips it) and the element
    /// comes back to be offered elsewhere. So a consumer that saw the change and then read
    /// ``claimedCount`` knows that no element chosen with the old state is claimed past it.
    /// - Returns: `nil` once queued; otherwise the element, with `stale` false when the ring
    ///   was full and true when the choice went stale.
    @inlinable
    public func offer(_ element: consuming Element, placeholder: @autoclosure () -> Element,
                      stillValid: () -> Bool) -> (element: Element, stale: Bool)? {
        guard let position = claimPosition(sequentiallyConsistent: true) else { return (element, false) }
        let slot = storage.elements + (position & storage.mask)
        if stillValid() {
            slot.initialize(to: element)
            publish(position)
            return nil
        }
        slot.initialize(to: placeholder())
        publish(position)
        return (element, true)
    }
}
