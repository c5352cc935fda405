import CKlifeShim
import Glibc

// Edge- or level-triggered? LEVEL-TRIGGERED, on purpose.
//
// - Fairness: with LT a channel reads a bounded amount per readiness event (a few
//   `read`s into its buffer) and anything left is simply reported again on the next
//   `epoll_wait`. A broker streaming a large fetch response cannot starve other
//   connections, timers, submitted tasks or the producer's iteration hook, which is what
//   ET's "drain until EAGAIN" would demand of us.
// - Robustness: a handler may close or stop reading in the middle of a callback; with
//   LT no readiness is ever lost, so there is no "forgot to drain, never woken again"
//   class of bug.
// - Cost: LT's obligation is not to spin on EPOLLOUT (a connected socket is almost
//   always writable). KlifeIO therefore asks for EPOLLOUT only while a connect is in
//   progress or a write hit EAGAIN, and drops it (one `epoll_ctl`) as soon as the
//   outbound bytes are gone. In the common case (requests fit the socket buffer) a
//   channel's interest is EPOLLIN|EPOLLRDHUP for its whole life and flushes cost one
//   `writev` and no `epoll_ctl`.
// - The eventfd is level-triggered too and is read (reset to 0) whenever it fires.
//
// Each registration carries `(registrationID << 32) | fd` in `epoll_data.u64`; the
// reactor drops events whose id does not match the fd's current registration, which
// happens when a descriptor is closed and the number reused while events for the old
// one are still in the batch being processed.

/// What a registration wants to hear about. Errors and hang-ups are always reported.
struct Interest: OptionSet, Sendable {
    let rawValue: UInt8
    /// Readable data, or the peer shut down its sending side (EPOLLIN | EPOLLRDHUP).
    static let read = Interest(rawValue: 1)
    /// Writable, or a non-blocking connect completed (EPOLLOUT).
    static let write = Interest(rawValue: 2)

    var epollEvents: UInt32 {
        var events: UInt32 = 0
        if contains(.read) { events |= klife_epollin() | klife_epollrdhup() }
        if contains(.write) { events |= klife_epollout() }
        return events
    }
}

/// One ready descriptor from ``Selector/wait(timeoutNanoseconds:)``.
struct ReadyEvent {
    /// The token stored at registration (see ``Selector/token(fd:registrationID:)``).
    let token: UInt64
    /// The raw epoll flags (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP).
    let flags: UInt32

    var fd: Int32 { Int32(truncatingIfNeeded: UInt32(truncatingIfNeeded: token)) }
    var registrationID: UInt32 { UInt32(truncatingIfNeeded: token >> 32) }
    var isReadable: Bool { flags & (klife_epollin() | klife_epollrdhup() | klife_epollhup() | klife_epollerr()) != 0 }
    var isWritable: Bool { flags & klife_epollout() != 0 }
}

/// The epoll instance, its event array, and the eventfd used to wake it.
///
/// Thread use: ``wakeup()`` may be called from any thread (one `write(2)` on a
/// descriptor that stays open until this object is freed); everything else belongs to
/// the reactor thread. Both descriptors are closed only in `deinit`, never at shutdown,
/// so a late `wakeup()` from another thread can never write into a reused descriptor.
final class Selector {
    let epollFD: Int32
    let eventFD: Int32
    private let events: UnsafeMutablePointer<epoll_event>
    private let eventCapacity: Int

    /// The token of the eventfd registration (registration id 0 is never given to a channel).
    static let wakeupToken: UInt64 = 0

    /// Packs a registration id and a descriptor into the 64-bit epoll user data.
    static func token(fd: Int32, registrationID: UInt32) -> UInt64 {
        UInt64(registrationID) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    /// Creates the epoll instance and registers the eventfd for reading.
    /// - Parameter eventCapacity: Most events returned by one `epoll_wait`.
    /// - Throws: ``IOError`` from `epoll_create1`, `eventfd` or `epoll_ctl`.
    init(eventCapacity: Int = 256) throws(IOError) {
        let epollFD = try Posix.epollCreate()
        let eventFD: Int32
        do {
            eventFD = try Posix.eventfd()
        } catch {
            Posix.close(epollFD)
            throw error
        }
        do {
            try Posix.epollControl(epollFD, EPOLL_CTL_ADD, fd: eventFD, events: klife_epollin(), data: Self.wakeupToken)
        } catch {
            Posix.close(eventFD)
            Posix.close(epollFD)
            throw error
        }
        self.epollFD = epollFD
        self.eventFD = eventFD
        self.eventCapacity = eventCapacity
        self.events = .allocate(capacity: eventCapacity)
        self.events.initialize(repeating: epoll_event(), count: eventCapacity)
    }

    deinit {
        Posix.close(eventFD)
        Posix.close(epollFD)
        events.deinitialize(count: eventCapacity)
        events.deallocate()
    }

    /// Starts watching `fd`.
    func register(fd: Int32, registrationID: UInt32, interest: Interest) throws(IOError) {
        try Posix.epollControl(epollFD, EPOLL_CTL_ADD, fd: fd, events: interest.epollEvents,
                               data: Self.token(fd: fd, registrationID: registrationID))
    }

    /// Changes what `fd` is watched for.
    func reregister(fd: Int32, registrationID: UInt32, interest: Interest) throws(IOError) {
        try Posix.epollControl(epollFD, EPOLL_CTL_MOD, fd: fd, events: interest.epollEvents,
                               data: Self.token(fd: fd, registrationID: registrationID))
    }

    /// Stops watching `fd`; call before closing it. Failures (ENOENT) are ignored: closing
    /// the descriptor removes it from the epoll set anyway.
    func deregister(fd: Int32) {
        _ = try? Posix.epollControl(epollFD, EPOLL_CTL_DEL, fd: fd, events: 0, data: 0)
    }

    /// Waits for events.
    /// - Parameter timeoutNanoseconds: -1 waits forever, 0 polls. Kernels before 5.11 wait
    ///   whole milliseconds, rounded up (``wakesPrecisely``).
    /// - Returns: How many events are ready; read them with ``event(at:)``.
    func wait(timeoutNanoseconds: Int64) throws(IOError) -> Int {
        try Posix.epollWait(epollFD, events, capacity: Int32(eventCapacity), timeoutNanoseconds: timeoutNanoseconds)
    }

    /// Whether ``wait(timeoutNanoseconds:)`` honours timeouts to the nanosecond (else to the
    /// millisecond, rounded up).
    static var wakesPrecisely: Bool { klife_epoll_waits_precisely() != 0 }

    /// The `index`th event of the last ``wait(timeoutNanoseconds:)``.
    func event(at index: Int) -> ReadyEvent {
        // epoll_event is packed on x86_64: read it through the shim's accessors.
        ReadyEvent(token: klife_epoll_event_data(events + index), flags: klife_epoll_event_events(events + index))
    }

    /// Makes the next (or current) `epoll_wait` return. Any thread.
    func wakeup() {
        do {
            try Posix.eventfdSignal(eventFD)
        } catch {
            preconditionFailure("eventfd write failed: \(error)")
        }
    }

    /// Resets the eventfd counter after it fired.
    func drainWakeup() {
        _ = try? Posix.eventfdDrain(eventFD)
    }
}
