public import Synchronization

/// A bounded lock-free single-producer, single-consumer FIFO.
///
/// Capacity is rounded up to a power of two; a full ring refuses pushes (backpressure,
/// never growth). Elements may be ARC types: a slot holds an initialized element only
/// between its push and its pop; elements still queued when the ring is freed are
/// released exactly once.
///
/// The producer owns the producer position and a cached copy of the consumer position;
/// the consumer owns the consumer position and a cached copy of the producer position
/// (see ``RingStorage``). Each side re-reads the other's position (acquiring) only when
/// its cache says full/empty, and publishes its own with a releasing store after it has
/// written (producer) or moved out (consumer) the element.
public final class SPSCRing<Element>: ConsumableRing, @unchecked Sendable {
    // @unchecked Sendable is sound because: the two positions are atomics published with
    // release/acquire; each cache is read and written by one side only (the producer's
    // by the producer, the consumer's by the consumer); a slot is written by the
    // producer only while it lies outside [consumer, producer) and read by the consumer
    // only while it lies inside, with the position stores ordering the hand-over; and
    // elements arrive as `sending`. Not checked by the compiler: at most one thread
    // pushes and at most one thread pops at a time.
    @usableFromInline let storage: RingStorage<Element>

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
    }

    deinit {
        while pop() != nil {}
    }

    /// Appends an element unless the ring is full. Single producer only.
    /// - Parameter element: The element; ownership passes to the ring on success.
    /// - Returns: `false` when the ring is full (backpressure), `true` once queued.
    @inlinable
    public func tryPush(_ element: sending Element) -> Bool {
        let position = storage.producerPosition.pointee.load(ordering: .relaxed)
        let cachedConsumer = storage.producerCache
        if position &- cachedConsumer.pointee == storage.capacity {
            cachedConsumer.pointee = storage.consumerPosition.pointee.load(ordering: .acquiring)
            if position &- cachedConsumer.pointee == storage.capacity { return false }
        }
        (storage.elements + (position & storage.mask)).initialize(to: element)
        storage.producerPosition.pointee.store(position &+ 1, ordering: .releasing)
        return true
    }

    /// Removes the oldest element. Single consumer only.
    /// - Returns: The element, or `nil` when the ring is empty.
    @inlinable
    public func pop() -> Element? {
        let position = storage.consumerPosition.pointee.load(ordering: .relaxed)
        let cachedProducer = storage.consumerCache
        if position == cachedProducer.pointee {
            cachedProducer.pointee = storage.producerPosition.pointee.load(ordering: .acquiring)
            if position == cachedProducer.pointee { return nil }
        }
        let element = (storage.elements + (position & storage.mask)).move()
        storage.consumerPosition.pointee.store(position &+ 1, ordering: .releasing)
        return element
    }

}
