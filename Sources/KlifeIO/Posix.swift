import CKlifeShim
import Glibc

/// The outcome of a non-blocking system call that did not fail.
enum IOResult<Value> {
    /// The call did its work and returned `Value` (a byte count, a descriptor, ...).
    case processed(Value)
    /// The call would have blocked (EAGAIN/EWOULDBLOCK); try again after readiness.
    case wouldBlock
}

/// Thin wrappers around the system calls KlifeIO makes, in the manner of NIO's `Posix`.
///
/// Every wrapper is `@inline(never)` (so profiles name the call), retries `EINTR`
/// (except `close`, see there), reports would-block as ``IOResult/wouldBlock`` rather than
/// as an error, and throws ``IOError`` with ``IOError/Kind/syscall(name:errno:)`` for any
/// other failure. `EBADF` and `EFAULT` mean KlifeIO passed a dead descriptor or a bad
/// pointer: that is a bug in this library, and it traps instead of throwing.
enum Posix {
    // MARK: Error plumbing

    /// Runs `body` until it does not fail with EINTR. Non-negative results are returned as
    /// `.processed`; EAGAIN becomes `.wouldBlock`; EBADF/EFAULT trap; others throw.
    @inline(__always)
    private static func retrying(_ name: StaticString, _ body: () -> Int) throws(IOError) -> IOResult<Int> {
        while true {
            let result = body()
            if result >= 0 { return .processed(result) }
            let code = Glibc.errno
            switch code {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case EBADF, EFAULT: misuse(name, code)
            default: throw IOError(.syscall(name: "\(name)", errno: code))
            }
        }
    }

    /// Like ``retrying(_:_:)`` for calls where would-block is impossible or an error.
    @inline(__always)
    private static func retryingBlocking(_ name: StaticString, _ body: () -> Int) throws(IOError) -> Int {
        switch try retrying(name, body) {
        case .processed(let value): return value
        case .wouldBlock: throw IOError(.syscall(name: "\(name)", errno: EAGAIN))
        }
    }

    private static func misuse(_ name: StaticString, _ code: Int32) -> Never {
        preconditionFailure("KlifeIO bug: \(name) failed with \(IOError.message(forErrno: code)) (errno \(code))")
    }

    // MARK: Sockets

    /// `socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)`.
    @inline(never)
    static func streamSocket(domain: Int32) throws(IOError) -> Int32 {
        let type = Int32(SOCK_STREAM.rawValue) | klife_sock_nonblock_cloexec()
        return Int32(try retryingBlocking("socket") { Int(Glibc.socket(domain, type, 0)) })
    }

    /// Starts a non-blocking connect.
    /// - Returns: `true` when already connected, `false` when in progress (EINPROGRESS;
    ///   completion is signalled by writability and `SO_ERROR`).
    /// - Throws: ``IOError`` such as ECONNREFUSED when the kernel fails it at once.
    @inline(never)
    static func connect(_ fd: Int32, to address: SocketAddress) throws(IOError) -> Bool {
        let result = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if result == 0 { return true }
        let code = Glibc.errno
        switch code {
        // EINTR on a non-blocking connect: the attempt goes on asynchronously, like EINPROGRESS.
        case EINPROGRESS, EINTR: return false
        case EBADF, EFAULT: misuse("connect", code)
        default: throw IOError(.syscall(name: "connect", errno: code))
        }
    }

    /// Closes a descriptor. EINTR is not retried: on Linux the descriptor is released even
    /// then, and retrying could close a descriptor another thread just got. Errors other
    /// than EBADF (e.g. a deferred EIO) are ignored because nothing useful can follow.
    @inline(never)
    static func close(_ fd: Int32) {
        if Glibc.close(fd) != 0, Glibc.errno == EBADF { misuse("close", EBADF) }
    }

    /// Reads into `buffer`.
    /// - Returns: `.processed(n)` with `n > 0` bytes, `.processed(0)` at end of stream, or `.wouldBlock`.
    @inline(never)
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> IOResult<Int> {
        try retrying("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Gathers `count` iovecs into one `writev`.
    /// - Returns: bytes written (possibly fewer than offered) or `.wouldBlock`.
    @inline(never)
    static func writev(_ fd: Int32, _ iov: UnsafePointer<iovec>, count: Int32) throws(IOError) -> IOResult<Int> {
        try retrying("writev") { Glibc.writev(fd, iov, count) }
    }

    /// `setsockopt` with an `Int32` value.
    @inline(never)
    static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32) throws(IOError) {
        var value = value
        _ = try retryingBlocking("setsockopt") {
            Int(Glibc.setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)))
        }
    }

    /// `getsockopt` with an `Int32` value.
    @inline(never)
    static func getOption(_ fd: Int32, level: Int32, name: Int32) throws(IOError) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = try retryingBlocking("getsockopt") { Int(Glibc.getsockopt(fd, level, name, &value, &length)) }
        return value
    }

    /// Turns Nagle's algorithm off: Kafka requests are whole frames, sent as soon as flushed.
    static func setNoDelay(_ fd: Int32) throws(IOError) {
        try setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
    }

    /// The pending socket error (`SO_ERROR`), 0 when none; reading it clears it.
    static func pendingSocketError(_ fd: Int32) throws(IOError) -> Int32 {
        try getOption(fd, level: SOL_SOCKET, name: SO_ERROR)
    }

    // MARK: epoll and eventfd

    /// `epoll_create1(EPOLL_CLOEXEC)`.
    @inline(never)
    static func epollCreate() throws(IOError) -> Int32 {
        Int32(try retryingBlocking("epoll_create1") { Int(CKlifeShim.epoll_create1(Int32(EPOLL_CLOEXEC))) })
    }

    /// `epoll_ctl` with the events mask and the 64-bit user data (registration id and fd).
    @inline(never)
    static func epollControl(_ epfd: Int32, _ op: Int32, fd: Int32, events: UInt32, data: UInt64) throws(IOError) {
        var event = epoll_event()
        klife_epoll_event_set(&event, events, data)
        _ = try retryingBlocking("epoll_ctl") { Int(CKlifeShim.epoll_ctl(epfd, op, fd, &event)) }
    }

    /// `epoll_wait`. An EINTR returns 0 events (rather than retrying with a stale timeout)
    /// so the loop recomputes its timer deadline.
    @inline(never)
    static func epollWait(_ epfd: Int32, _ events: UnsafeMutablePointer<epoll_event>, capacity: Int32,
                          timeoutNanoseconds: Int64) throws(IOError) -> Int {
        let n = klife_epoll_wait_ns(epfd, events, capacity, timeoutNanoseconds)
        if n >= 0 { return Int(n) }
        let code = Glibc.errno
        switch code {
        case EINTR: return 0
        case EBADF, EFAULT, EINVAL: misuse("epoll_wait", code)
        default: throw IOError(.syscall(name: "epoll_wait", errno: code))
        }
    }

    /// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`.
    @inline(never)
    static func eventfd() throws(IOError) -> Int32 {
        Int32(try retryingBlocking("eventfd") { Int(CKlifeShim.eventfd(0, klife_efd_nonblock_cloexec())) })
    }

    /// Adds 1 to an eventfd counter. Would-block (counter at its maximum) still means the
    /// reader will wake, so it is not an error.
    @inline(never)
    static func eventfdSignal(_ fd: Int32) throws(IOError) {
        var one: UInt64 = 1
        _ = try retrying("eventfd write") { Glibc.write(fd, &one, 8) }
    }

    /// Reads (and so resets) an eventfd counter.
    /// - Returns: the counter value, or `.wouldBlock` when it was already zero.
    @inline(never)
    static func eventfdDrain(_ fd: Int32) throws(IOError) -> IOResult<UInt64> {
        var value: UInt64 = 0
        switch try retrying("eventfd read", { Glibc.read(fd, &value, 8) }) {
        case .processed: return .processed(value)
        case .wouldBlock: return .wouldBlock
        }
    }
}
