import Glibc
import Synchronization

/// A single-threaded event loop: one epoll instance, one thread, timers, a task ring and
/// per-iteration hooks. Every ``TCPChannel`` belongs to one reactor and is used only on
/// its thread.
///
/// One loop iteration: wait for events (timeout from the earliest timer, 0 when tasks
/// are ready) → dispatch socket events → fire due timers → run submitted tasks → run
/// iteration hooks.
///
/// Lifecycle: ``init(name:cpuAffinity:taskCapacity:busyPollNanoseconds:)`` → ``start()`` → ``shutdown()``.
/// A started reactor keeps itself alive (its thread holds it) until it is shut down.
/// `init` sets SIGPIPE to "ignore" if it still has the default disposition, because
/// writes use `writev`, which has no per-call `MSG_NOSIGNAL`: a write to a connection the
/// peer reset then fails with EPIPE instead of killing the process.
public final class Reactor: @unchecked Sendable {
    // @unchecked Sendable is sound because the stored state falls in three groups:
    // 1. Immutable after init (`name`, `cpuAffinity`, `selector`, `tasks`), and the
    //    objects behind them are safe to use from any thread for the operations other
    //    threads perform (`Selector.wakeup`, `ReactorTasks.tryEnqueue/wakeup`).
    // 2. Synchronized: `stopRequested`, `loopThread` (atomics) and `lifecycle` (a Mutex).
    // 3. Loop-confined (`timers`, `hooks`, `registrations`, `liveChannels`, counters):
    //    touched only on the loop thread. The public entry points that reach them
    //    (`scheduleTimer`, `cancelTimer`, `addIterationHook`, `TCPChannel`) check
    //    `isInReactorThread` with a precondition; before the thread starts and after it
    //    has been joined (pthread_join orders memory) no other thread can be using them.
    /// The name given at init; also the loop thread's name (first 15 bytes).
    public let name: String
    let cpuAffinity: [Int]?
    /// How long the loop keeps polling instead of blocking after its last event (0: it
    /// blocks as soon as it has nothing to do).
    let busyPollNanoseconds: UInt64
    let selector: Selector
    let tasks: ReactorTasks
    private let stopRequested = Atomic<Bool>(false)
    /// The running loop thread's `pthread_t`, 0 when no loop runs.
    private let loopThread = Atomic<UInt>(0)
    private let lifecycle = Locked(Lifecycle.idle)

    private enum Lifecycle {
        case idle
        case running(pthread_t)
        case joining
        case stopped
    }

    // Loop-confined state.
    var timers = TimerHeap()
    private var hooks: [() -> Void] = []
    private var registrations: [Registration?] = []
    private var nextRegistrationID: UInt32 = 1
    private var liveChannels: [ObjectIdentifier: TCPChannel] = [:]
    /// Set while the loop closes channels at shutdown; new connects fail right away.
    private(set) var isShuttingDown = false
    /// Set on the loop thread when pinning failed at start (after init's validation passed).
    private(set) var affinityError: IOError?
    /// Events dropped because their registration id no longer matched the fd (tests).
    private(set) var staleEventCount = 0

    private struct Registration {
        let id: UInt32
        let channel: TCPChannel
    }

    /// Creates a reactor; its thread starts with ``start()``.
    /// - Parameters:
    ///   - name: Used for the thread name and in messages.
    ///   - cpuAffinity: CPU ids the loop thread is pinned to, or `nil` to leave it unpinned.
    ///   - taskCapacity: Capacity of the cross-thread task ring (rounded up to a power of two).
    ///   - busyPollNanoseconds: After an event (a socket ready, a wakeup), the loop keeps
    ///     polling — `epoll_wait` with no timeout, its tasks and hooks — for this long before it
    ///     blocks: the next event is then seen without the thread (and, in a virtual machine,
    ///     its idle CPU) being woken, at the price of a core busy while events keep coming
    ///     within the window. 0 (the default) blocks as soon as there is nothing to do.
    /// - Throws: ``IOError`` when epoll/eventfd cannot be created, or when `cpuAffinity` is
    ///   invalid: empty, naming a CPU that does not exist, or one this process may not run
    ///   on (kind `.syscall(name: "sched_setaffinity", errno: EINVAL)`, with the reason in
    ///   the description). Validating here means ``start()`` does not normally fail to
    ///   pin; if it still does (the cpuset changed in between), the loop runs unpinned and
    ///   the error is written to stderr.
    public init(name: String, cpuAffinity: [Int]? = nil, taskCapacity: Int = 4096,
                busyPollNanoseconds: UInt64 = 0) throws(IOError) {
        if let cpus = cpuAffinity, let problem = OSThread.affinityProblem(cpus) {
            throw IOError(.syscall(name: "sched_setaffinity", errno: EINVAL),
                          context: "pinning reactor '\(name)' to CPUs \(cpus) (\(problem))")
        }
        self.name = name
        self.cpuAffinity = cpuAffinity
        self.busyPollNanoseconds = busyPollNanoseconds
        self.selector = try Selector()
        self.tasks = ReactorTasks(capacity: max(1, taskCapacity), selector: selector)
        _ = Reactor.sigpipeIgnored
    }

    deinit {
        // Reached when never started, after shutdown, or when the loop stopped itself
        // (shutdown() from the reactor thread) and nobody joined it.
        if case .running(let thread) = lifecycle.withLock({ $0 }) {
            if pthread_equal(thread, pthread_self()) != 0 { pthread_detach(thread) } else { OSThread.join(thread) }
        }
        tasks.dropAll()
    }

    // MARK: Lifecycle

    /// Starts the loop thread (named after the reactor, pinned when `cpuAffinity` was
    /// given). Calling it again, or after ``shutdown()``, does nothing.
    public func start() {
        lifecycle.withLock { state in
            guard case .idle = state else { return }
            do {
                state = .running(try OSThread.spawn(name: name, detached: false) { [self] in runLoop() })
            } catch {
                preconditionFailure("reactor '\(name)' cannot start its thread: \(error)")
            }
        }
    }

    /// Stops the loop. From another thread: requests the stop, lets the loop close every
    /// channel (handlers get `channelDidClose` with `.reactorShutdown`) and drop timers and
    /// hooks, joins the thread, then drops tasks still queued. Tasks queued before the stop
    /// request are run once more before the channels close; later submissions are dropped.
    /// From the reactor thread: only requests the stop (the current iteration finishes).
    /// Idempotent; concurrent callers all return after the loop thread has ended.
    public func shutdown() {
        stopRequested.store(true, ordering: .releasing)
        if isInReactorThread { return }
        enum Action { case join(pthread_t), wait, dropNeverStarted, none }
        let action: Action = lifecycle.withLock { state in
            switch state {
            case .idle: state = .stopped; return .dropNeverStarted
            case .running(let thread): state = .joining; return .join(thread)
            case .joining: return .wait
            case .stopped: return .none
            }
        }
        // Exactly one caller (the one that changed the state) drops queued tasks, so the
        // ring never has two consumers.
        switch action {
        case .join(let thread):
            selector.wakeup()  // uncoalesced: the loop must see the stop request
            OSThread.join(thread)
            tasks.dropAll()
            lifecycle.withLock { $0 = .stopped }
        case .wait:
            while lifecycle.withLock({ if case .stopped = $0 { return false } else { return true } }) {
                var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
                nanosleep(&pause, nil)
            }
        case .dropNeverStarted:
            tasks.dropAll()
        case .none:
            break
        }
    }

    /// Whether the caller runs on this reactor's loop thread.
    public var isInReactorThread: Bool {
        let thread = loopThread.load(ordering: .relaxed)
        return thread != 0 && pthread_equal(thread, pthread_self()) != 0
    }

    // MARK: Tasks

    /// Queues `task` to run on the reactor thread without waiting.
    /// - Returns: `false` when the task ring is full (backpressure) or the reactor is shut
    ///   down. On the reactor thread itself the task goes to an unbounded local queue and
    ///   this always returns `true`.
    public func trySubmit(_ task: @escaping @Sendable () -> Void) -> Bool {
        if isInReactorThread { tasks.enqueueLocal(task); return true }
        if stopRequested.load(ordering: .acquiring) { return false }
        return tasks.tryEnqueue(task)
    }

    /// Queues `task` to run on the reactor thread, waiting (spinning, then sleeping 50 µs at
    /// a time) while the ring is full. Tasks from one thread run in submission order.
    /// After ``shutdown()`` the task is dropped. Submitting from the reactor thread never
    /// waits (local queue). Before ``start()`` tasks queue up; a full ring then waits for
    /// `start()` or `shutdown()`.
    public func submit(_ task: @escaping @Sendable () -> Void) {
        if isInReactorThread { tasks.enqueueLocal(task); return }
        if stopRequested.load(ordering: .acquiring) { return }
        _ = tasks.enqueueWaiting(task) { stopRequested.load(ordering: .acquiring) }
    }

    /// Wakes the loop from `epoll_wait` (e.g. after pushing into a ring an iteration hook
    /// drains). Coalesced: while a wakeup is pending, further calls write nothing.
    public func wakeup() {
        tasks.wakeup()
    }

    /// Wakes the loop unless it runs its tasks and hooks by `deadline` (monotonic
    /// nanoseconds) anyway: about to sleep, it said when its next timer wakes it, and a push
    /// that can wait until then (a produced record that lingers) saves the eventfd write and
    /// the wakeup.
    public func wakeup(unlessAwakeBy deadline: UInt64) {
        tasks.wakeup(unlessAwakeBy: deadline)
    }

    /// Wakeups written by other threads so far (`eventfd` writes).
    public var wakeupCount: Int { tasks.eventfdWrites.load(ordering: .relaxed) }

    /// Submissions so far that left the loop asleep for the wake it had planned
    /// (``wakeup(unlessAwakeBy:)``).
    public var deferredWakeupCount: Int { tasks.deferredWakeups.load(ordering: .relaxed) }

    /// Whether the loop may be asleep (no wakeup pending): a submitter then decides between
    /// ``wakeup()`` and ``wakeup(unlessAwakeBy:)``. While it is `false` the loop runs its
    /// hooks again before it blocks.
    public var mayBeAsleep: Bool { tasks.mayBeAsleep }

    /// Runs `task` on the reactor thread in this or the next iteration (reactor thread only).
    func runSoon(_ task: @escaping () -> Void) {
        tasks.enqueueLocal(task)
    }

    // MARK: Timers and hooks

    /// Schedules `callback` on the reactor thread after a delay. Reactor thread only.
    /// - Parameters:
    ///   - afterNanoseconds: Delay from now; the loop wakes at the earliest deadline
    ///     (rounded up to whole milliseconds), so a timer never fires early.
    ///   - callback: Runs once, unless cancelled first.
    /// - Returns: A handle for ``cancelTimer(_:)``.
    public func scheduleTimer(afterNanoseconds: UInt64, _ callback: @escaping () -> Void) -> TimerHandle {
        precondition(isInReactorThread, "scheduleTimer must be called on the reactor thread")
        let (deadline, overflow) = Reactor.monotonicNanoseconds().addingReportingOverflow(afterNanoseconds)
        return timers.schedule(deadline: overflow ? .max : deadline, callback)
    }

    /// Cancels a timer; it will not fire. Unknown or already fired handles are ignored.
    /// Reactor thread only.
    public func cancelTimer(_ handle: TimerHandle) {
        precondition(isInReactorThread, "cancelTimer must be called on the reactor thread")
        timers.cancel(handle)
    }

    /// Adds a closure run once per loop iteration, after events, timers and tasks (the
    /// producer drains its record rings and flushes batches here). Hooks live until
    /// shutdown. Reactor thread only.
    public func addIterationHook(_ hook: @escaping () -> Void) {
        precondition(isInReactorThread, "addIterationHook must be called on the reactor thread")
        hooks.append(hook)
    }

    /// `CLOCK_MONOTONIC` in nanoseconds: the clock of timer deadlines.
    public static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }

    private static let sigpipeIgnored: Bool = {
        var current = sigaction()
        guard sigaction(SIGPIPE, nil, &current) == 0,
              current.sa_flags & SA_SIGINFO == 0, current.__sigaction_handler.sa_handler == nil
        else { return false }
        var ignore = sigaction()
        ignore.__sigaction_handler.sa_handler = SIG_IGN
        sigemptyset(&ignore.sa_mask)
        return sigaction(SIGPIPE, &ignore, nil) == 0
    }()

    // MARK: The loop

    private func runLoop() {
        loopThread.store(UInt(pthread_self()), ordering: .relaxed)
        if let cpus = cpuAffinity {
            let code = OSThread.pinCurrent(to: cpus)
            if code != 0 {
                let error = IOError(.syscall(name: "sched_setaffinity", errno: code),
                                    context: "pinning reactor '\(name)' to CPUs \(cpus)")
                affinityError = error
                let message = Array("klife: \(error); the loop runs unpinned\n".utf8)
                _ = message.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            }
        }
        // Whether the wakeup flag was cleared since the last eventfd: only then may the loop block.
        var armed = false
        // The wake time submitters were last told (`armWakeup`): the loop may block until then
        // without publishing again.
        var publishedWake: UInt64 = 0
        // Busy polling: the loop polls instead of blocking until then.
        var pollUntil: UInt64 = 0
        while !stopRequested.load(ordering: .acquiring) {
            let next = nextTimeout()
            var timeout = next.nanoseconds
            let wakesBy = next.wakesBy
            if timeout != 0 && busyPollNanoseconds > 0 && Reactor.monotonicNanoseconds() < pollUntil {
                timeout = 0
            }
            if timeout != 0 && (!armed || wakesBy > publishedWake) {
                // About to block: let the next submission write the eventfd (or wait for this
                // wake, if it can), and run one more pass first (what was pushed before the
                // clear is found there, not announced). Submitters that saw an earlier wake
                // time let their pushes wait for it: blocking past it needs this again.
                tasks.armWakeup(wakesBy: wakesBy)
                armed = true
                publishedWake = wakesBy
                timeout = 0
            }
            let ready: Int
            do {
                ready = try selector.wait(timeoutNanoseconds: timeout)
            } catch {
                preconditionFailure("reactor '\(name)': \(error)")
            }
            if ready > 0 && busyPollNanoseconds > 0 {
                pollUntil = Reactor.monotonicNanoseconds() &+ busyPollNanoseconds
            }
            for index in 0..<ready {
                let event = selector.event(at: index)
                if event.token == Selector.wakeupToken { armed = false }
                dispatch(event)
            }
            runDueTimers()
            tasks.runPending()
            var hook = 0
            while hook < hooks.count {
                hooks[hook]()
                hook += 1
            }
        }
        closeEverything()
        loopThread.store(0, ordering: .relaxed)
    }

    /// The wait's timeout — 0 when work is ready, -1 without timers, else nanoseconds to the
    /// earliest deadline — and when the loop then wakes by itself at the latest (that
    /// deadline, plus a millisecond where waits round up to milliseconds; `.max` without
    /// timers).
    private func nextTimeout() -> (nanoseconds: Int64, wakesBy: UInt64) {
        if tasks.hasRunnableWork || stopRequested.load(ordering: .relaxed) { return (0, 0) }
        guard let deadline = timers.nextDeadline() else { return (-1, .max) }
        let now = Reactor.monotonicNanoseconds()
        guard deadline > now else { return (0, 0) }
        return (Int64(min(deadline - now, UInt64(Int64.max))), Selector.wakesPrecisely ? deadline : deadline &+ 1_000_000)
    }

    /// Routes one event: the eventfd, a channel whose registration id matches, or nothing (stale).
    func dispatch(_ event: ReadyEvent) {
        if event.token == Selector.wakeupToken {
            tasks.acknowledgeWakeup()
            return
        }
        let fd = Int(event.fd)
        guard fd < registrations.count, let registration = registrations[fd],
              registration.id == event.registrationID else {
            staleEventCount += 1
            return
        }
        registration.channel.handle(event)
    }

    private func runDueTimers() {
        let now = Reactor.monotonicNanoseconds()
        let limit = timers.lastAssignedID
        while let callback = timers.popExpired(now: now, limitID: limit) { callback() }
    }

    /// The loop's last act: run what was queued before the stop, close every channel
    /// (handlers may react, even reconnect: those close too), drop timers and hooks.
    private func closeEverything() {
        isShuttingDown = true
        tasks.runPending()
        var rounds = 0
        while !liveChannels.isEmpty || tasks.hasRunnableWork, rounds < 100 {
            for channel in Array(liveChannels.values) {
                channel.close(error: IOError(.reactorShutdown, context: "connection to \(channel.remoteDescription)"))
            }
            tasks.runPending()
            rounds += 1
        }
        timers.removeAll()
        hooks.removeAll()
        registrations.removeAll()
        liveChannels.removeAll()
    }

    // MARK: Channel bookkeeping (reactor thread)

    func channelOpened(_ channel: TCPChannel) {
        liveChannels[ObjectIdentifier(channel)] = channel
    }

    func channelClosed(_ channel: TCPChannel) {
        liveChannels.removeValue(forKey: ObjectIdentifier(channel))
    }

    /// Adds `fd` to epoll for `channel`.
    /// - Returns: The registration id; events carrying another id for this fd are dropped.
    func register(_ channel: TCPChannel, fd: Int32, interest: Interest) throws(IOError) -> UInt32 {
        let id = nextRegistrationID
        nextRegistrationID = nextRegistrationID == .max ? 1 : nextRegistrationID + 1
        try selector.register(fd: fd, registrationID: id, interest: interest)
        let index = Int(fd)
        if index >= registrations.count {
            registrations.append(contentsOf: repeatElement(nil, count: index + 1 - registrations.count))
        }
        registrations[index] = Registration(id: id, channel: channel)
        return id
    }

    /// Changes the interest of a registered fd.
    func reregister(fd: Int32, registrationID: UInt32, interest: Interest) throws(IOError) {
        try selector.reregister(fd: fd, registrationID: registrationID, interest: interest)
    }

    /// Removes `fd` from epoll and from the table; call before closing it.
    func deregister(fd: Int32) {
        selector.deregister(fd: fd)
        if Int(fd) < registrations.count { registrations[Int(fd)] = nil }
    }
}
