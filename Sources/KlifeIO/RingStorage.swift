public import Synchronization

/// The memory shared by ``MPSCRing`` and ``SPSCRing``: a power-of-two array of element
/// slots plus two cursors, each on its own 128-byte block (a cache line and its
/// prefetch buddy) so producers and the consumer do not false-share.
///
///     cursor block (128-byte aligned)
///     [ producer position : Atomic<Int> | producer's cache : Int | ... pad ... ]  written by producers
///     [ consumer position : Atomic<Int> | consumer's cache : Int | ... pad ... ]  written by the consumer
///
/// Positions grow without bound and wrap with `&+`; a position maps to slot `position & mask`.
/// This type only allocates and frees; which slots hold initialized elements is the
/// owning ring's knowledge, so the owner must deinitialize them before this is dropped.
@usableFromInline
struct RingStorage<Element>: ~Copyable {
    /// Number of slots, a power of two.
    @usableFromInline let capacity: Int
    /// `capacity - 1`.
    @usableFromInline let mask: Int
    /// Slot memory; a slot is initialized only between a push and the matching pop.
    @usableFromInline let elements: UnsafeMutablePointer<Element>
    /// Next position producers write.
    @usableFromInline let producerPosition: UnsafeMutablePointer<Atomic<Int>>
    /// Producer-private cache (SPSC: last consumer position seen).
    @usableFromInline let producerCache: UnsafeMutablePointer<Int>
    /// Next position the consumer reads.
    @usableFromInline let consumerPosition: UnsafeMutablePointer<Atomic<Int>>
    /// Consumer-private cache (SPSC: last producer position seen).
    @usableFromInline let consumerCache: UnsafeMutablePointer<Int>
    private let cursorBlock: UnsafeMutableRawPointer

    private static var lineSize: Int { 128 }

    /// The capacity actually used for a request: the next power of two, at least 1.
    static func roundedCapacity(_ requested: Int) -> Int {
        precondition(requested >= 1 && requested <= 1 << 40, "ring capacity must be in 1...2^40, got \(requested)")
        var capacity = 1
        while capacity < requested { capacity <<= 1 }
        return capacity
    }

    /// Allocates storage; both cursors start at `start` (tests use large values to cross `Int.max`).
    init(capacity requested: Int, start: Int) {
        capacity = Self.roundedCapacity(requested)
        mask = capacity &- 1
        elements = .allocate(capacity: capacity)
        let line = Self.lineSize
        cursorBlock = .allocate(byteCount: 2 * line, alignment: line)
        producerPosition = cursorBlock.bindMemory(to: Atomic<Int>.self, capacity: 1)
        producerPosition.initialize(to: Atomic(start))
        producerCache = (cursorBlock + MemoryLayout<Atomic<Int>>.stride).bindMemory(to: Int.self, capacity: 1)
        producerCache.initialize(to: start)
        consumerPosition = (cursorBlock + line).bindMemory(to: Atomic<Int>.self, capacity: 1)
        consumerPosition.initialize(to: Atomic(start))
        consumerCache = (cursorBlock + line + MemoryLayout<Atomic<Int>>.stride).bindMemory(to: Int.self, capacity: 1)
        consumerCache.initialize(to: start)
    }

    /// Elements between consumer and producer positions, clamped to `0...capacity`
    /// (the two relaxed loads are not a snapshot, hence "approximate").
    @inlinable
    var approximateCount: Int {
        let produced = producerPosition.pointee.load(ordering: .relaxed)
        let consumed = consumerPosition.pointee.load(ordering: .relaxed)
        return min(max(produced &- consumed, 0), capacity)
    }

    deinit {
        producerPosition.deinitialize(count: 1)
        consumerPosition.deinitialize(count: 1)
        cursorBlock.deallocate()
        elements.deallocate()
    }
}

/// What the bounded rings share: a single consumer pops elements in FIFO order.
public protocol ConsumableRing: AnyObject {
    /// The element type.
    associatedtype Element
    /// Removes the oldest element, or returns `nil` when empty. Single consumer only.
    func pop() -> Element?
}

extension ConsumableRing {
    /// Pops up to `maxCount` elements, oldest first, calling `body` for each. Single consumer only.
    /// - Parameters:
    ///   - maxCount: Upper bound on elements taken in this call.
    ///   - body: Called with each element, in FIFO order; it owns the element (no copy).
    /// - Returns: How many elements were taken.
    @inlinable @discardableResult
    public func drain(maxCount: Int, _ body: (consuming Element) -> Void) -> Int {
        var taken = 0
        while taken < maxCount, let element = pop() {
            body(consume element)
            taken &+= 1
        }
        return taken
    }
}
