import Glibc
import Synchronization

/// The reactor's task queues and its coalesced wakeup.
///
/// - Tasks from other threads go into a bounded ``MPSCRing`` (backpressure when full)
///   and run on the reactor thread in FIFO order.
/// - Tasks submitted on the reactor thread itself go into a plain array (`local`), so a
///   reactor callback can never block on its own full ring; they run in the same drain,
///   after the ring's tasks, FIFO among themselves.
/// - Wakeups are coalesced by a pending flag: only the submitter that flips it from
///   `false` to `true` writes the eventfd. The reactor flips it back only when it is about to
///   block (``armWakeup()``), then looks once more at everything a submission fills (tasks
///   and its iteration hooks' rings) before it blocks: a submission made before the flag went
///   back is seen by that last look, one made after it writes the eventfd, so no wakeup is
///   lost. While the reactor stays busy the flag stays set, and submissions write nothing
///   (clearing it on every wakeup instead cost a `write(2)`, an `epoll_wait` and a `read(2)`
///   per reactor iteration whenever the producing thread was the slower side: ≈ 120,000 each
///   per million produced records).
/// - With the flag, the reactor publishes when it will wake by itself (`wakesBy`: its next
///   timer, or never). A submitter that can wait that long (``wakeup(unlessAwakeBy:)``: a
///   record lingers anyway) leaves the loop asleep; the loop publishes again, and looks once
///   more, before it blocks past the time it published.
final class ReactorTasks: @unchecked Sendable {
    // @unchecked Sendable is sound because: `ring` is itself thread-safe (MPSC, and only the
    // reactor thread pops); `wake`, `eventfdWrites` and `deferredWakeups` are atomics; `selector` is
    // only used through `wakeup()`, a single write(2) on an immutable descriptor; `local`
    // and `running` are touched only on the reactor thread (callers assert it) or, after
    // the reactor thread was joined, by the thread that joined it.
    let ring: MPSCRing<@Sendable () -> Void>
    private let selector: Selector
    /// Whether an eventfd write is pending and when the loop wakes by itself, alone on a
    /// 128-byte block: submitters read them on every push, and the reactor writes `local` and
    /// `running` (which would share their cache line inside this object) on every iteration.
    private let wake: UnsafeMutablePointer<WakeState>
    /// eventfd writes caused by submissions and explicit wakeups (tests check coalescing).
    let eventfdWrites = Atomic<Int>(0)
    /// Submissions that left the loop asleep because it wakes by itself in time
    /// (``wakeup(unlessAwakeBy:)``; tests and statistics).
    let deferredWakeups = Atomic<Int>(0)
    private var local: [() -> Void] = []
    private var running: [() -> Void] = []

    init(capacity: Int, selector: Selector) {
        ring = MPSCRing(capacity: capacity)
        self.selector = selector
        wake = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128)
            .bindMemory(to: WakeState.self, capacity: 1)
        wake.initialize(to: WakeState())
    }

    deinit {
        wake.deinitialize(count: 1)
        UnsafeMutableRawPointer(wake).deallocate()
    }

    // MARK: Producers (any thread)

    /// Pushes a task from a non-reactor thread and wakes the reactor if needed.
    /// - Returns: `false` when the ring is full.
    func tryEnqueue(_ task: @escaping @Sendable () -> Void) -> Bool {
        guard ring.tryPush(task) else { return false }
        wakeup()
        return true
    }

    /// Pushes a task from a non-reactor thread, waiting while the ring is full: first
    /// yielding the CPU a number of times, then sleeping 50 µs at a time.
    /// - Parameter isStopped: Checked while waiting; when it turns `true` the task is dropped.
    /// - Returns: `true` when queued, `false` when dropped.
    func enqueueWaiting(_ task: @escaping @Sendable () -> Void, isStopped: () -> Bool) -> Bool {
        var attempts = 0
        while !tryEnqueue(task) {
            if isStopped() { return false }
            attempts += 1
            if attempts < 128 {
                sched_yield()
            } else {
                var pause = timespec(tv_sec: 0, tv_nsec: 50_000)
                nanosleep(&pause, nil)
            }
        }
        return true
    }

    /// Makes the reactor thread run its loop soon; a write to the eventfd happens only if
    /// none is already pending.
    func wakeup() {
        // Store-buffering: the caller's push must be ordered before this read of the flag, as
        // the reactor's clear is before its last look (the fence in `armWakeup`). Reading
        // before exchanging keeps the flag's line shared while a wakeup is pending, so a burst
        // of pushes writes it once.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if wake.pointee.pending.load(ordering: .relaxed) { return }
        announce()
    }

    /// As ``wakeup()``, for a submission that can wait until `deadline` (monotonic
    /// nanoseconds): when the loop, about to block, published a wake of its own by then,
    /// nothing is written and the loop finds the submission when it wakes.
    func wakeup(unlessAwakeBy deadline: UInt64) {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if wake.pointee.pending.load(ordering: .relaxed) { return }
        // Read after the fence, like the flag: a time published before the loop's last look.
        if wake.pointee.wakesBy.load(ordering: .relaxed) <= deadline {
            deferredWakeups.wrappingAdd(1, ordering: .relaxed)
            return
        }
        announce()
    }

    /// Whether no wakeup is pending (the loop may be blocked or about to block). A hint: the
    /// flag may change right after.
    var mayBeAsleep: Bool { !wake.pointee.pending.load(ordering: .relaxed) }

    @inline(__always)
    private func announce() {
        if !wake.pointee.pending.exchange(true, ordering: .acquiringAndReleasing) {
            eventfdWrites.wrappingAdd(1, ordering: .relaxed)
            selector.wakeup()
        }
    }

    // MARK: Reactor thread

    /// Queues a task from the reactor thread itself (never blocks, never fails).
    func enqueueLocal(_ task: @escaping () -> Void) {
        local.append(task)
    }

    /// Called when the eventfd fired: resets it. The flag stays set (the reactor is awake and
    /// drains before it blocks again): submissions meanwhile write nothing.
    func acknowledgeWakeup() {
        selector.drainWakeup()
    }

    /// Called when the loop is about to block until `wakesBy` (monotonic nanoseconds, `.max`
    /// for no timeout) at the latest: the next submission writes the eventfd, unless it can
    /// wait until then (``wakeup(unlessAwakeBy:)``). The loop must then drain tasks and run its hooks
    /// once more before blocking (what was pushed before this call is found there), and call
    /// this again before it blocks past `wakesBy`. Store-buffering: the clear and the time are
    /// ordered before that last look, as a submitter's push is before its reads of them.
    func armWakeup(wakesBy: UInt64) {
        wake.pointee.wakesBy.store(wakesBy, ordering: .sequentiallyConsistent)
        wake.pointee.pending.store(false, ordering: .sequentiallyConsistent)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
    }

    /// Whether a drain now would run something (decides a zero `epoll_wait` timeout).
    var hasRunnableWork: Bool { !local.isEmpty || ring.hasPoppableElement }

    /// Runs up to one ring's worth of cross-thread tasks, then the local tasks that were
    /// queued before this call (ones they queue run in the next iteration).
    func runPending() {
        ring.drain(maxCount: ring.capacity) { task in task() }
        guard !local.isEmpty else { return }
        swap(&local, &running)
        for task in running { task() }
        running.removeAll(keepingCapacity: true)
    }

    /// Drops every queued task without running it (after the reactor stopped).
    func dropAll() {
        while ring.pop() != nil {}
        local.removeAll()
        running.removeAll()
    }
}

/// The wakeup flag and the loop's own next wake, read by every submitter.
private struct WakeState: ~Copyable {
    /// Whether an eventfd write is pending (the loop will run its tasks and hooks again).
    let pending = Atomic<Bool>(false)
    /// When the loop, armed and about to block, wakes by itself at the latest (monotonic
    /// nanoseconds; `.max`: only an event wakes it).
    let wakesBy = Atomic<UInt64>(.max)
}
