import Dispatch
import Glibc
@testable import KlifeIO
import Synchronization
import XCTest

final class ReactorTests: XCTestCase {
    func testTasksFromOneThreadRunInFIFOOrder() throws {
        let reactor = try startedReactor(taskCapacity: 256)  // small ring: submit() must wait at times
        defer { reactor.shutdown() }
        let log = LockedBox<[Int]>([])
        let total = 20_000
        let allRan = DispatchSemaphore(value: 0)
        _ = waitOrFail(runThread {
            for i in 0..<total {
                reactor.submit {
                    precondition(reactor.isInReactorThread)
                    log.withLock { $0.append(i) }
                    if i == total - 1 { allRan.signal() }
                }
            }
        }, "submitter")
        guard waitOrFail(allRan, "tasks") else { return }
        XCTAssertEqual(log.withLock { $0 }, Array(0..<total))
    }

    func testTasksFromManyThreadsKeepPerThreadOrder() throws {
        let reactor = try startedReactor(taskCapacity: 64)
        defer { reactor.shutdown() }
        let threads = 4, perThread = 5_000
        let log = LockedBox<[[Int]]>(Array(repeating: [], count: threads))
        let ran = Counter()
        let allRan = DispatchSemaphore(value: 0)
        for t in 0..<threads {
            runThread {
                for i in 0..<perThread {
                    reactor.submit {
                        log.withLock { $0[t].append(i) }
                        if ran.value.add(1, ordering: .relaxed).newValue == threads * perThread { allRan.signal() }
                    }
                }
            }
        }
        guard waitOrFail(allRan, "tasks") else { return }
        XCTAssertEqual(log.withLock { $0 }, Array(repeating: Array(0..<perThread), count: threads))
    }

    func testIsInReactorThread() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        XCTAssertFalse(reactor.isInReactorThread)
        XCTAssertEqual(onReactor(reactor) { reactor.isInReactorThread }, true)
        let threadName = onReactor(reactor) { () -> String in
            let fd = open("/proc/thread-self/comm", O_RDONLY)
            defer { close(fd) }
            return String(decoding: readFully(fd, count: 64), as: UTF8.self)
        }
        XCTAssertEqual(threadName, "test-io\n", "the loop thread carries the reactor's name")
    }

    /// While the reactor is busy, N submissions cost one eventfd write, not N.
    func testWakeupsAreCoalesced() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        _ = onReactor(reactor) { true }  // the loop is up and idle in epoll_wait
        let busy = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        reactor.submit {
            busy.signal()
            release.wait()
        }
        guard waitOrFail(busy, "busy task") else { return }
        let before = reactor.tasks.eventfdWrites.load(ordering: .relaxed)
        let submissions = 1_000
        // Explicit wakeups after each submission coalesce the same way.
        let (submitted, allRan) = submitCounted(reactor, count: submissions, wakeups: true)
        _ = waitOrFail(submitted, "submitter")
        let writes = reactor.tasks.eventfdWrites.load(ordering: .relaxed) - before
        release.signal()
        _ = waitOrFail(allRan, "submitted tasks")
        // Normally exactly 1; 0 if the loop happened to pop the busy task before reading
        // the eventfd that announced it (the flag then stayed set for the whole burst).
        XCTAssertLessThanOrEqual(writes, 1, "\(2 * submissions) submissions/wakeups while busy should cost one eventfd write")
    }

    /// A loop that never runs out of work never blocks, so it never clears its wakeup flag: a
    /// stream of submissions spread over many of its iterations writes the eventfd not once.
    /// (Clearing the flag at every wakeup, as the loop once did, cost one write per iteration.)
    func testSubmissionsToALoopThatStaysBusyWriteNoEventfd() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let iterations = Counter(), stop = Counter()
        let spinning = DispatchSemaphore(value: 0)
        reactor.submit {
            // Re-queued on the reactor itself: there is always a local task, so the loop polls
            // without blocking and never arms its wakeup.
            @Sendable func again() {
                if iterations.value.add(1, ordering: .relaxed).newValue == 1 { spinning.signal() }
                if stop.current == 0 { reactor.runSoon(again) }
            }
            again()
        }
        guard waitOrFail(spinning, "busy loop") else { return }
        // The first submission may still find the flag cleared by the idle loop before it: after
        // it ran, the flag is set and stays set.
        let settled = DispatchSemaphore(value: 0)
        reactor.submit { settled.signal() }
        guard waitOrFail(settled, "first submission") else { return }
        let writesBefore = reactor.tasks.eventfdWrites.load(ordering: .relaxed)
        let iterationsBefore = iterations.current
        let submissions = 300
        // 50 µs apart: several loop iterations between two submissions.
        let (submitted, allRan) = submitCounted(reactor, count: submissions, wakeups: true, pauseMicroseconds: 50)
        _ = waitOrFail(submitted, "submitter")
        guard waitOrFail(allRan, "submitted tasks") else { return }
        let writes = reactor.tasks.eventfdWrites.load(ordering: .relaxed) - writesBefore
        let loops = iterations.current - iterationsBefore
        _ = stop.value.add(1, ordering: .relaxed)
        XCTAssertEqual(writes, 0, "\(submissions) submissions over \(loops) iterations of a busy loop")
        XCTAssertGreaterThan(loops, submissions, "the submissions were spread over many iterations")
    }

    /// The interleaving the wakeup protocol exists for, forced: in the loop's last busy
    /// iteration, after a hook drained its ring, another thread pushes into that ring and calls
    /// `wakeup()` while the flag is still set (so nothing is written). The loop must find the
    /// push in the look it takes after clearing the flag, before it blocks.
    func testAPushAfterTheLastDrainOfABusyIterationIsFoundBeforeTheLoopBlocks() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let queue = LockedBox<[Int]>([])
        let found = DispatchSemaphore(value: 0)
        let helperWrites = LockedBox<Int?>(nil)
        let installed: Bool? = onReactor(reactor) {
            reactor.addIterationHook {
                let items = queue.takeAll()
                if items.contains(2) { found.signal() }
                guard items.contains(1) else { return }
                let before = reactor.tasks.eventfdWrites.load(ordering: .relaxed)
                let pushed = DispatchSemaphore(value: 0)
                Thread {
                    queue.withLock { $0.append(2) }
                    reactor.wakeup()
                    pushed.signal()
                }.start()
                pushed.wait()
                helperWrites.withLock { $0 = reactor.tasks.eventfdWrites.load(ordering: .relaxed) - before }
            }
            return true
        }
        XCTAssertEqual(installed, true)
        // The loop must be idle first: right after `onReactor` it may still be finishing the
        // iteration that ran the task, its flag still set by that submission, and then its
        // hook could find 1 only in the look after it cleared the flag (where the helper's
        // wakeup rightly writes the eventfd).
        guard waitUntilAsleep(reactor) else { return }
        // Wakes the idle loop (its flag cleared): the hook then sees 1 and has 2 pushed behind it.
        queue.withLock { $0.append(1) }
        reactor.wakeup()
        guard waitOrFail(found, "the push made after the last drain") else { return }
        XCTAssertEqual(helperWrites.withLock { $0 }, 0, "the helper's wakeup found the flag set and wrote nothing")
    }

    /// A loop asleep until its next timer said so before blocking: a push that can wait until
    /// then writes no eventfd and is found when the timer wakes the loop; a push that cannot
    /// wait that long wakes it.
    func testAPushThatCanWaitForTheLoopsOwnWakeLeavesItAsleep() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let queue = LockedBox<[Int]>([])
        let found = LockedBox<[Int]>([])
        let foundFirst = DispatchSemaphore(value: 0)
        let foundSecond = DispatchSemaphore(value: 0)
        let timerFired = Counter()
        let armed: Bool? = onReactor(reactor) {
            reactor.addIterationHook {
                let items = queue.takeAll()
                found.withLock { $0 += items }
                if items.contains(1) { foundFirst.signal() }
                if items.contains(2) { foundSecond.signal() }
            }
            // The loop's own wake, far enough away that it cannot pass during the test's checks.
            _ = reactor.scheduleTimer(afterNanoseconds: 2_000_000_000) { _ = timerFired.value.add(1, ordering: .relaxed) }
            return true
        }
        XCTAssertEqual(armed, true)
        guard waitUntilAsleep(reactor) else { return }
        let writesBefore = reactor.tasks.eventfdWrites.load(ordering: .relaxed)
        let deferredBefore = reactor.deferredWakeupCount
        queue.withLock { $0.append(1) }
        reactor.wakeup(unlessAwakeBy: Reactor.monotonicNanoseconds() &+ 60_000_000_000)
        XCTAssertEqual(reactor.tasks.eventfdWrites.load(ordering: .relaxed) - writesBefore, 0, "left asleep")
        XCTAssertEqual(reactor.deferredWakeupCount - deferredBefore, 1)
        // Found in the loop's last look if the push came before it, else at the timer's wake.
        guard waitOrFail(foundFirst, "the deferred push") else { return }

        // No timer left: the loop sleeps until an event, and a push has to wake it.
        let deadline = DispatchTime.after(safetyTimeout)
        while timerFired.current == 0 && DispatchTime.now() < deadline { usleep(1_000) }
        XCTAssertEqual(timerFired.current, 1)
        let timerGone: Bool? = onReactor(reactor) { true }
        XCTAssertEqual(timerGone, true)
        guard waitUntilAsleep(reactor) else { return }
        queue.withLock { $0.append(2) }
        reactor.wakeup(unlessAwakeBy: Reactor.monotonicNanoseconds() &+ 60_000_000_000)
        guard waitOrFail(foundSecond, "the push to a loop with no wake of its own") else { return }
        XCTAssertEqual(reactor.deferredWakeupCount - deferredBefore, 1, "the second push woke the loop")
        XCTAssertEqual(found.value, [1, 2])
    }

    /// The interleaving the published wake time needs, forced: the loop's timer fired (the
    /// time it published is past), and after its hook drained, another thread pushes and
    /// calls `wakeup(unlessAwakeBy:)`, which reads that stale time and writes nothing. The
    /// loop, now without timers, must publish again and look once more before it blocks.
    func testAPushTrustingAPassedWakeIsFoundBeforeTheLoopBlocksLonger() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let queue = LockedBox<[Int]>([])
        let found = DispatchSemaphore(value: 0)
        let timerFired = Counter()
        let helped = Counter()
        let helperWrites = LockedBox<Int?>(nil)
        let helperDeferred = LockedBox<Int?>(nil)
        let armed: Bool? = onReactor(reactor) {
            reactor.addIterationHook {
                let items = queue.takeAll()
                if items.contains(1) { found.signal() }
                guard timerFired.current == 1, helped.value.add(1, ordering: .relaxed).newValue == 1 else { return }
                let writes = reactor.tasks.eventfdWrites.load(ordering: .relaxed)
                let deferred = reactor.deferredWakeupCount
                let pushed = DispatchSemaphore(value: 0)
                Thread {
                    queue.withLock { $0.append(1) }
                    reactor.wakeup(unlessAwakeBy: Reactor.monotonicNanoseconds() &+ 60_000_000_000)
                    pushed.signal()
                }.start()
                pushed.wait()
                helperWrites.withLock { $0 = reactor.tasks.eventfdWrites.load(ordering: .relaxed) - writes }
                helperDeferred.withLock { $0 = reactor.deferredWakeupCount - deferred }
            }
            _ = reactor.scheduleTimer(afterNanoseconds: 50_000_000) { _ = timerFired.value.add(1, ordering: .relaxed) }
            return true
        }
        XCTAssertEqual(armed, true)
        guard waitOrFail(found, "the push made after the timer's wake, trusting its time") else { return }
        XCTAssertEqual(helperWrites.value, 0, "the helper wrote no eventfd")
        XCTAssertEqual(helperDeferred.value, 1, "the helper trusted the wake time the loop had published")
    }

    /// A busy-polling loop keeps polling after an event instead of sleeping, so submissions
    /// within its window find it awake and write no eventfd, however far apart they are.
    func testABusyPollingLoopIsNotWokenWithinItsWindow() throws {
        let reactor = try startedReactor("test-poll", busyPollNanoseconds: 60_000_000_000)
        defer { reactor.shutdown() }
        let first = DispatchSemaphore(value: 0)
        reactor.submit { first.signal() }  // an event: the window starts
        guard waitOrFail(first, "first submission") else { return }
        let writesBefore = reactor.tasks.eventfdWrites.load(ordering: .relaxed)
        // 200 µs apart: long enough for a loop that sleeps to go to sleep.
        let (submitted, allRan) = submitCounted(reactor, count: 100, pauseMicroseconds: 200)
        _ = waitOrFail(submitted, "submitter")
        guard waitOrFail(allRan, "submitted tasks") else { return }
        XCTAssertEqual(reactor.tasks.eventfdWrites.load(ordering: .relaxed) - writesBefore, 0)
    }

    /// Once its window has passed with no event, a busy-polling loop goes to sleep like any
    /// other: the next submission has to wake it (an eventfd write).
    func testABusyPollingLoopSleepsOnceItsWindowPassed() throws {
        let reactor = try startedReactor("test-poll", busyPollNanoseconds: 2_000_000)
        defer { reactor.shutdown() }
        let first = DispatchSemaphore(value: 0)
        reactor.submit { first.signal() }
        guard waitOrFail(first, "first submission") else { return }
        let writesBefore = reactor.tasks.eventfdWrites.load(ordering: .relaxed)
        // Submissions do not renew the window (they find the loop awake and write nothing), so
        // within a few windows the loop sleeps and one of them has to write.
        var woke = false
        for _ in 0..<2_000 where !woke {
            let ran = DispatchSemaphore(value: 0)
            reactor.submit { ran.signal() }
            guard waitOrFail(ran, "submission") else { return }
            woke = reactor.tasks.eventfdWrites.load(ordering: .relaxed) > writesBefore
            usleep(1_000)
        }
        XCTAssertTrue(woke, "the loop never went to sleep after its window")
    }

    func testTrySubmitReportsFullRing() throws {
        let reactor = try startedReactor(taskCapacity: 4)
        defer { reactor.shutdown() }
        let busy = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        reactor.submit {
            busy.signal()
            release.wait()
        }
        guard waitOrFail(busy, "busy task") else { return }
        let ran = Counter()
        var accepted = 0
        while reactor.trySubmit({ _ = ran.value.add(1, ordering: .relaxed) }) { accepted += 1 }
        XCTAssertEqual(accepted, 4)
        release.signal()
        let done = DispatchSemaphore(value: 0)
        reactor.submit { done.signal() }
        _ = waitOrFail(done, "drain")
        XCTAssertEqual(ran.current, 4)
        // From the reactor thread, submission never fails (local queue).
        XCTAssertEqual(onReactor(reactor) { (0..<100).allSatisfy { _ in reactor.trySubmit {} } }, true)
    }

    func testTimersFireInDeadlineOrderAndCancelledOnesDoNot() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let fired = LockedBox<[String]>([])
        let last = DispatchSemaphore(value: 0)
        reactor.submit {
            func record(_ name: String) { fired.withLock { $0.append(name) } }
            let ms: UInt64 = 1_000_000
            _ = reactor.scheduleTimer(afterNanoseconds: 60 * ms) {
                record("60")
                last.signal()
            }
            let cancelledEarly = reactor.scheduleTimer(afterNanoseconds: 5 * ms) { record("cancelled-5") }
            let cancelledLater = reactor.scheduleTimer(afterNanoseconds: 40 * ms) { record("cancelled-40") }
            _ = reactor.scheduleTimer(afterNanoseconds: 20 * ms) {
                record("20a")
                reactor.cancelTimer(cancelledLater)  // cancelled from inside another timer
            }
            _ = reactor.scheduleTimer(afterNanoseconds: 50 * ms) { record("50") }
            _ = reactor.scheduleTimer(afterNanoseconds: 20 * ms) { record("20b") }
            _ = reactor.scheduleTimer(afterNanoseconds: 0) { record("0") }
            reactor.cancelTimer(cancelledEarly)
            reactor.cancelTimer(cancelledEarly)  // twice is harmless
        }
        guard waitOrFail(last, "last timer") else { return }
        XCTAssertEqual(fired.withLock { $0 }, ["0", "20a", "20b", "50", "60"])
    }

    func testTimerHeapOrderWithRandomCancellation() {
        var heap = TimerHeap()
        var generator = SystemRandomNumberGenerator()
        let order = LockedBox<[UInt64]>([])
        var expected: [(UInt64, UInt64)] = []  // (deadline, id)
        var handles: [TimerHandle] = []
        for _ in 0..<2_000 {
            let deadline = UInt64.random(in: 0..<500, using: &generator)
            let box = LockedBox<UInt64>(0)
            let handle = heap.schedule(deadline: deadline) { order.withLock { $0.append(box.withLock { $0 }) } }
            box.withLock { $0 = handle.id }
            handles.append(handle)
            expected.append((deadline, handle.id))
        }
        var cancelled = Set<UInt64>()
        for handle in handles where Bool.random(using: &generator) {
            heap.cancel(handle)
            cancelled.insert(handle.id)
        }
        XCTAssertEqual(heap.count, 2_000 - cancelled.count)
        while let callback = heap.popExpired(now: .max, limitID: heap.lastAssignedID) { callback() }
        let wanted = expected.filter { !cancelled.contains($0.1) }.sorted { $0 < $1 }.map(\.1)
        XCTAssertEqual(order.withLock { $0 }, wanted)
        XCTAssertNil(heap.nextDeadline())
    }

    func testIterationHookRunsAfterTasks() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let log = LockedBox<[String]>([])
        let sawHookAfterTask = DispatchSemaphore(value: 0)
        reactor.submit {
            reactor.addIterationHook {
                let entries = log.withLock { log -> [String] in
                    log.append("hook")
                    return log
                }
                if entries.suffix(2) == ["task", "hook"] { sawHookAfterTask.signal() }
            }
        }
        reactor.submit { log.withLock { $0.append("task") } }
        _ = waitOrFail(sawHookAfterTask, "hook after task")
    }

    func testCPUPinningFromInsideATask() throws {
        guard OSThread.allowedCPUs(statusFile: "/proc/self/status")?.contains(0) == true else {
            throw XCTSkip("this process may not run on CPU 0")
        }
        let reactor = try Reactor(name: "pinned", cpuAffinity: [0])
        reactor.start()
        defer { reactor.shutdown() }
        let mask = onReactor(reactor) { ReactorTests.schedGetaffinity() }
        XCTAssertEqual(mask, [0], "the loop thread must be pinned to CPU 0 (sched_getaffinity)")
        XCTAssertEqual(onReactor(reactor) { OSThread.currentAffinity() }, [0])
        XCTAssertNil(onReactor(reactor) { reactor.affinityError } ?? nil)
        // The test thread itself is not affected.
        XCTAssertEqual(OSThread.currentAffinity(), OSThread.allowedCPUs(statusFile: "/proc/self/status"))
    }

    func testInvalidCPUThrowsAtInit() {
        for bad in [[100_000], [-1], []] {
            XCTAssertThrowsError(try Reactor(name: "bad", cpuAffinity: bad)) { error in
                let ioError = error as? IOError
                XCTAssertEqual(ioError?.kind, .syscall(name: "sched_setaffinity", errno: EINVAL))
                XCTAssertTrue(ioError?.description.contains("cpuAffinity") ?? false, "\(error)")
            }
        }
    }

    /// shutdown() while the reactor is busy, with a full ring and a submitter waiting for space.
    func testShutdownWithPendingTasksDoesNotDeadlock() throws {
        let reactor = try startedReactor(taskCapacity: 8)
        let busy = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        reactor.submit {
            busy.signal()
            release.wait()
        }
        guard waitOrFail(busy, "busy task") else { return }
        let counter = Counter()
        while reactor.trySubmit({ counter.value.add(1, ordering: .relaxed) }) {}
        let waitingSubmitter = runThread {
            reactor.submit { counter.value.add(1000, ordering: .relaxed) }  // waits: ring is full
        }
        let shutdownDone = runThread { reactor.shutdown() }
        // shutdown() cannot finish while the loop is blocked in a task; release it.
        usleep(20_000)
        release.signal()
        _ = waitOrFail(shutdownDone, "shutdown")
        _ = waitOrFail(waitingSubmitter, "waiting submitter")
        XCTAssertEqual(counter.current % 1000, 8, "tasks queued before shutdown ran once")
        // After shutdown: dropped.
        XCTAssertFalse(reactor.trySubmit { counter.value.add(1, ordering: .relaxed) })
        reactor.submit { counter.value.add(1, ordering: .relaxed) }
        reactor.shutdown()  // idempotent
        XCTAssertEqual(counter.current % 1000, 8)
    }

    func testShutdownFromReactorThreadAndBeforeStart() throws {
        let idle = try Reactor(name: "idle")
        let ran = Counter()
        idle.submit { ran.value.add(1, ordering: .relaxed) }
        idle.shutdown()
        idle.start()  // no effect after shutdown
        usleep(10_000)
        XCTAssertEqual(ran.current, 0)

        let reactor = try startedReactor()
        let done = DispatchSemaphore(value: 0)
        reactor.submit {
            reactor.shutdown()  // only requests the stop
            done.signal()
        }
        _ = waitOrFail(done, "task")
        reactor.shutdown()  // joins
        XCTAssertFalse(reactor.isInReactorThread)
        XCTAssertFalse(reactor.trySubmit {})
    }

    func testReactorIsFreedAfterShutdown() throws {
        weak var weakReactor: Reactor?
        do {
            let reactor = try startedReactor()
            weakReactor = reactor
            _ = onReactor(reactor) { reactor.scheduleTimer(afterNanoseconds: 1_000_000_000_000) {} }
            reactor.shutdown()
        }
        XCTAssertNil(weakReactor, "the loop thread and timers must not keep the reactor alive after shutdown")
    }

    func testMonotonicClockAdvances() {
        let a = Reactor.monotonicNanoseconds()
        usleep(1_000)
        XCTAssertGreaterThan(Reactor.monotonicNanoseconds(), a)
    }

    /// `sched_getaffinity(0, ...)` of the calling thread, looked up with dlsym because Swift's
    /// Glibc module does not export this GNU function.
    static func schedGetaffinity() -> [Int] {
        typealias Fn = @convention(c) (pid_t, Int, UnsafeMutableRawPointer) -> Int32
        guard let symbol = dlsym(nil, "sched_getaffinity") else { return [] }
        let fn = unsafeBitCast(symbol, to: Fn.self)
        var mask = [UInt64](repeating: 0, count: 16)  // 1024 CPUs
        let rc = mask.withUnsafeMutableBytes { fn(0, $0.count, $0.baseAddress!) }
        guard rc == 0 else { return [] }
        return (0..<1024).filter { mask[$0 / 64] & (1 << UInt64($0 % 64)) != 0 }
    }
}
