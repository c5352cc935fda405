/// Identifies a timer scheduled with ``Reactor/scheduleTimer(afterNanoseconds:_:)`` so it
/// can be cancelled with ``Reactor/cancelTimer(_:)``.
public struct TimerHandle: Hashable, Sendable {
    let id: UInt64
}

/// A binary min-heap of timer deadlines with lazy cancellation. Reactor-thread only.
///
/// Entries are ordered by `(deadline, id)`; ids increase, so timers with equal deadlines
/// fire in scheduling order. Cancelling removes the callback from `callbacks`; the heap
/// entry stays until it reaches the top (then it is skipped) or until cancelled entries
/// outnumber live ones, when the heap is rebuilt. A timer fires only if its callback is
/// still present, so a cancelled timer never fires.
struct TimerHeap {
    private struct Entry {
        var deadline: UInt64
        var id: UInt64

        static func < (a: Entry, b: Entry) -> Bool {
            a.deadline != b.deadline ? a.deadline < b.deadline : a.id < b.id
        }
    }

    private var heap: [Entry] = []
    private var callbacks: [UInt64: () -> Void] = [:]
    private var nextID: UInt64 = 1

    /// Timers scheduled and neither fired nor cancelled.
    var count: Int { callbacks.count }

    /// Adds a timer.
    /// - Parameters:
    ///   - deadline: Monotonic time (``Reactor/monotonicNanoseconds()``) at which it is due.
    ///   - callback: Runs once on the reactor thread when due.
    /// - Returns: A handle for ``cancel(_:)``.
    mutating func schedule(deadline: UInt64, _ callback: @escaping () -> Void) -> TimerHandle {
        let id = nextID
        nextID &+= 1
        callbacks[id] = callback
        heap.append(Entry(deadline: deadline, id: id))
        siftUp(heap.count - 1)
        return TimerHandle(id: id)
    }

    /// Cancels a timer; unknown, fired or already cancelled handles are ignored.
    mutating func cancel(_ handle: TimerHandle) {
        guard callbacks.removeValue(forKey: handle.id) != nil else { return }
        if heap.count > 64 && heap.count > 2 * callbacks.count { rebuild() }
    }

    /// The earliest live deadline, dropping cancelled entries from the top first.
    mutating func nextDeadline() -> UInt64? {
        dropCancelledTop()
        return heap.first?.deadline
    }

    /// Removes and returns the callback of the earliest live timer if it is due at `now`
    /// and was scheduled no later than `limitID` (so callbacks that schedule zero-delay
    /// timers cannot keep one loop iteration busy forever).
    mutating func popExpired(now: UInt64, limitID: UInt64) -> (() -> Void)? {
        dropCancelledTop()
        guard let top = heap.first, top.deadline <= now, top.id <= limitID else { return nil }
        removeTop()
        return callbacks.removeValue(forKey: top.id)
    }

    /// The id the next scheduled timer will get minus one: the bound for ``popExpired(now:limitID:)``.
    var lastAssignedID: UInt64 { nextID &- 1 }

    /// Drops every timer without running it (reactor shutdown).
    mutating func removeAll() {
        heap.removeAll()
        callbacks.removeAll()
    }

    // MARK: Heap mechanics

    private mutating func dropCancelledTop() {
        while let top = heap.first, callbacks[top.id] == nil { removeTop() }
    }

    private mutating func removeTop() {
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
    }

    private mutating func rebuild() {
        heap.removeAll { callbacks[$0.id] == nil }
        var index = heap.count / 2
        while index > 0 {
            index -= 1
            siftDown(index)
        }
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child] < heap[parent] else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { return }
            let right = left + 1
            var smallest = heap[left] < heap[parent] ? left : parent
            if right < heap.count && heap[right] < heap[smallest] { smallest = right }
            guard smallest != parent else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
