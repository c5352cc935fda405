import KlifeIO
import Klife
import Glibc

/// Errors from starting a ``FaultProxy``.
public struct FaultProxyError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, in words.
    public let description: String
}

/// A TCP proxy on a free `127.0.0.1` port in front of one upstream `host:port`, that
/// breaks connections on request: abrupt kills (RST), random kills at arbitrary points of
/// the byte stream, stalls, and refused connections.
///
/// ```swift
/// let proxy = try FaultProxy.start(upstream: "127.0.0.1:9092")
/// defer { proxy.stop() }
/// // Point the client (and the broker's advertised address) at proxy.address.
/// proxy.setRandomKills(every: .milliseconds(50) ... .milliseconds(300), seed: 42)
/// // ... produce ...
/// proxy.setRandomKills(every: nil, seed: 0)
/// print(proxy.connectionsKilled)
/// ```
///
/// A Kafka client learns broker addresses from Metadata, so a proxy in front of the
/// bootstrap address alone is bypassed after the first request: the broker must
/// advertise the proxy's address (see ``TestBroker/startBehindProxy(readyTimeout:)``).
///
/// Faults:
/// - ``killAllConnections()`` closes both sides of every connection at once with
///   `SO_LINGER` 0, so both peers see a reset; bytes the proxy holds are dropped.
/// - ``setRandomKills(every:seed:)`` arms a kill at random intervals. An armed connection
///   forwards a random number of further bytes (0 ..< 32 KiB, in either direction, spread
///   log-uniformly so small frames are cut too) and is then reset: kills land mid-request,
///   mid-response, and between a request and its response. A connection that stays quiet
///   is reset 20 ms after arming. Intervals and byte counts come from a xorshift generator
///   seeded with `seed`: the same seed gives the same fault schedule (the traffic's own
///   timing still varies from run to run).
/// - ``pause()`` stops forwarding and accepting while keeping every socket open (a stall);
///   ``resume()`` delivers what was held back, late.
/// - ``setRefuseNewConnections(_:)`` closes the listening socket, so new connections are
///   refused (`ECONNREFUSED`); existing ones keep working. Turning it off listens again
///   on the same port.
///
/// One thread runs a `poll(2)` loop for the listener and every connection (at most 256
/// connections; more are reset at once). Plain sockets, independent of Klife's reactor.
/// ``stop()`` (also run by `deinit`) resets every connection and joins the thread.
/// All methods are safe from any thread; the fault controls take effect before they return.
public final class FaultProxy: Sendable {
    /// `127.0.0.1:PORT`, the address clients (and the broker's advertised listener) use.
    public let address: String
    /// The loopback port the proxy listens on.
    public let port: Int
    /// The `host:port` every connection is forwarded to.
    public let upstream: String
    private let core: ProxyCore

    private init(core: ProxyCore, upstream: String) {
        self.core = core
        self.port = core.port
        self.address = "127.0.0.1:\(core.port)"
        self.upstream = upstream
    }

    deinit { core.stop() }

    /// Starts a proxy in front of `upstream`.
    ///
    /// The upstream need not be listening yet: it is connected once per accepted
    /// connection, and a connection whose upstream refuses is reset.
    /// - Parameters:
    ///   - upstream: `host:port` to forward to (resolved once, now).
    ///   - port: A fixed local port, or `nil` for a free one.
    /// - Throws: ``FaultProxyError`` when `upstream` is malformed or unresolvable, or the
    ///   port cannot be bound.
    public static func start(upstream: String, port: Int? = nil) throws -> FaultProxy {
        guard let parsed = BrokerAddress(parsing: upstream) else {
            throw FaultProxyError(description: "upstream '\(upstream)' is not host:port")
        }
        let target = try ResolvedAddress.resolve(host: parsed.host, port: parsed.port)
        let core = try ProxyCore(port: port ?? 0, upstream: target)
        return FaultProxy(core: core, upstream: upstream)
    }

    /// Resets every open connection now (both sides see RST). New connections are still accepted.
    public func killAllConnections() {
        core.command { $0.killRequests &+= 1 }
    }

    /// Starts (or, with `nil`, stops) random kills: after each interval drawn uniformly from
    /// `every`, every open connection is armed and reset a random number of bytes later.
    /// Calling it again restarts the schedule from `seed`.
    public func setRandomKills(every: ClosedRange<Duration>?, seed: UInt64) {
        setRandomFaults(every: every, seed: seed, garble: false)
    }

    /// Starts (or, with `nil`, stops) random corruption of what the broker sends: after each
    /// interval drawn uniformly from `every`, every open connection gets 1–16 bytes of the
    /// broker's next bytes (a random distance into them) overwritten with random ones, and
    /// keeps forwarding. A client sees frames whose size, correlation id or contents are
    /// garbage — hostile input mid-stream, with requests in flight. Replaces a schedule of
    /// random kills (and vice versa). Bytes towards the broker are never changed.
    public func setRandomGarbling(every: ClosedRange<Duration>?, seed: UInt64) {
        setRandomFaults(every: every, seed: seed, garble: true)
    }

    /// Installs (or clears) the one random-fault schedule: kills or garbling.
    private func setRandomFaults(every: ClosedRange<Duration>?, seed: UInt64, garble: Bool) {
        core.command { s in
            if let every {
                let low = max(every.lowerBound.proxyNanoseconds, 1_000_000)
                let high = max(every.upperBound.proxyNanoseconds, low)
                s.randomKills = RandomKillSpec(lowNanos: low, highNanos: high, seed: seed, garble: garble)
            } else {
                s.randomKills = nil
            }
            s.randomGeneration &+= 1
        }
    }

    /// Bytes from the broker overwritten by random garbling so far.
    public var bytesGarbled: Int { core.state.withLock { $0.garbled } }

    /// Stops forwarding bytes and accepting connections; every socket stays open, so peers
    /// see a stall rather than a failure. Bytes sent meanwhile wait in socket buffers.
    public func pause() { core.command { $0.paused = true } }

    /// Forwards again, including everything held back during the pause.
    public func resume() { core.command { $0.paused = false } }

    /// Whether the proxy is paused.
    public var isPaused: Bool { core.state.withLock { $0.paused } }

    /// `true` closes the listening socket (new connections get `ECONNREFUSED`; open ones
    /// keep working); `false` listens on the same port again.
    public func setRefuseNewConnections(_ refuse: Bool) { core.command { $0.refusing = refuse } }

    /// Connections reset by a fault (``killAllConnections()`` or random kills) so far.
    public var connectionsKilled: Int { core.state.withLock { $0.killed } }

    /// The part of ``connectionsKilled`` cut while bytes were flowing: a random kill whose
    /// byte budget ran out mid-transfer, or a ``killAllConnections()`` that dropped bytes the
    /// proxy held. The rest were cut while quiet.
    public var connectionsKilledMidTransfer: Int { core.state.withLock { $0.killedMidTransfer } }

    /// Connections accepted so far (including those reset at once).
    public var connectionsAccepted: Int { core.state.withLock { $0.accepted } }

    /// Connections currently open through the proxy.
    public var activeConnections: Int { core.state.withLock { $0.active } }

    /// Bytes forwarded so far, both directions.
    public var bytesForwarded: Int { core.state.withLock { $0.bytesForwarded } }

    /// Resets every connection, closes the listener and joins the proxy thread. Idempotent.
    public func stop() { core.stop() }
}

// MARK: - Shared state

struct RandomKillSpec: Sendable {
    var lowNanos: UInt64
    var highNanos: UInt64
    var seed: UInt64
    /// Corrupt bytes towards the client instead of resetting the connection.
    var garble: Bool
}

/// State shared between the API (any thread) and the proxy thread.
struct ProxyState: Sendable {
    var paused = false
    var refusing = false
    var stopping = false
    var killRequests: UInt64 = 0
    var randomKills: RandomKillSpec?
    var randomGeneration: UInt64 = 0
    /// Commands issued by API calls / applied by the loop: a call returns once applied.
    var commandsIssued: UInt64 = 0
    var commandsApplied: UInt64 = 0
    var loopExited = false
    var thread: pthread_t?
    // Counters.
    var accepted = 0
    var killed = 0
    var killedMidTransfer = 0
    var active = 0
    var bytesForwarded = 0
    var garbled = 0
}

/// A resolved socket address, copied as bytes so it is `Sendable`.
struct ResolvedAddress: Sendable {
    var family: Int32
    var bytes: [UInt8]

    static func resolve(host: String, port: Int) throws -> ResolvedAddress {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw FaultProxyError(description: "cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(result) }
        let raw = UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen))
        return ResolvedAddress(family: first.pointee.ai_family, bytes: Array(raw))
    }
}

/// The proxy's engine: owns the thread; the public ``FaultProxy`` only forwards to it, so
/// the thread's reference never keeps the public object (and its `deinit`) alive.
final class ProxyCore: Sendable {
    let state = Locked(ProxyState())
    let port: Int
    let upstream: ResolvedAddress
    let wakeRead: Int32
    let wakeWrite: Int32
    /// The initial listening socket, handed to the loop (which owns it from then on).
    private let initialListener: Int32

    init(port requested: Int, upstream: ResolvedAddress) throws {
        self.upstream = upstream
        let (listener, port) = try ProxySocket.listen(port: requested)
        self.initialListener = listener
        self.port = port
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            close(listener)
            throw FaultProxyError(description: "pipe() failed: errno \(errno)")
        }
        for fd in fds { ProxySocket.makeNonBlocking(fd) }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { argument in
            let core = Unmanaged<ProxyCore>.fromOpaque(argument!).takeRetainedValue()
            core.run()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<ProxyCore>.fromOpaque(box).release()
            close(listener)     // the wake pipe is closed by deinit
            throw FaultProxyError(description: "pthread_create() failed: \(rc)")
        }
        state.withLock { $0.thread = thread }
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    /// Applies `change` and waits (at most 5 s) until the loop has acted on it.
    func command(_ change: (inout ProxyState) -> Void) {
        let ticket: UInt64? = state.withLock { s in
            change(&s)
            if s.loopExited { return nil }
            s.commandsIssued &+= 1
            return s.commandsIssued
        }
        guard let ticket else { return }
        wake()
        let deadline = ProxySocket.now() &+ 5_000_000_000
        while ProxySocket.now() < deadline {
            let done = state.withLock { $0.commandsApplied >= ticket || $0.loopExited }
            if done { return }
            usleep(100)
        }
    }

    func stop() {
        let thread: pthread_t? = state.withLock { s in
            s.stopping = true
            defer { s.thread = nil }
            return s.thread
        }
        wake()
        if let thread { pthread_join(thread, nil) }
    }

    // MARK: The loop (proxy thread only)

    private func run() {
        var loop = ProxyLoop(core: self, listener: initialListener)
        loop.run()
        state.withLock {
            $0.loopExited = true
            $0.active = 0
        }
    }
}

// MARK: - Sockets

enum ProxySocket {
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// A non-blocking listening socket on 127.0.0.1:`port` (0: any free port).
    static func listen(port: Int) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FaultProxyError(description: "socket() failed: errno \(errno)") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        guard bound == 0, Glibc.listen(fd, 128) == 0 else {
            let e = errno
            close(fd)
            throw FaultProxyError(description: "cannot listen on 127.0.0.1:\(port): errno \(e)")
        }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    /// Closes with `SO_LINGER` 0: the peer sees RST, not FIN.
    static func reset(_ fd: Int32) {
        guard fd >= 0 else { return }
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
    }

    static func makeNonBlocking(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
    }

    static func noDelay(_ fd: Int32) {
        var yes: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &yes, socklen_t(MemoryLayout<Int32>.size))
    }
}

/// xorshift64*: small, fast, and the same sequence for the same seed everywhere.
struct ProxyRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// Uniform-enough in `low...high`.
    mutating func next(in low: UInt64, _ high: UInt64) -> UInt64 {
        high <= low ? low : low &+ next() % (high - low &+ 1)
    }
}

/// Bytes read from one side and not yet written to the other.
struct ByteQueue {
    private var storage: [UInt8] = []
    private var head = 0

    var count: Int { storage.count - head }
    var isEmpty: Bool { count == 0 }

    mutating func append(_ bytes: UnsafeRawBufferPointer) { storage.append(contentsOf: bytes) }

    /// Overwrites queued bytes from `offset` (counted from the next byte to send) on; bytes
    /// past the end are ignored. Returns how many were overwritten.
    mutating func overwrite(at offset: Int, with bytes: [UInt8]) -> Int {
        var written = 0
        for (i, byte) in bytes.enumerated() where offset + i < count {
            storage[head + offset + i] = byte
            written += 1
        }
        return written
    }

    /// Sends at most `limit` bytes to `fd`; returns bytes sent, 0 on EAGAIN, -1 on error.
    mutating func send(to fd: Int32, limit: Int) -> Int {
        let n = min(count, limit)
        guard n > 0 else { return 0 }
        let sent = storage.withUnsafeBytes { raw in
            Glibc.send(fd, raw.baseAddress! + head, n, Int32(MSG_NOSIGNAL))
        }
        if sent < 0 { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1 }
        head += sent
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1 << 16 && head * 2 > storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return sent
    }
}

/// One proxied connection (proxy thread only).
final class ProxyConnection {
    var client: Int32
    var upstream: Int32
    var upstreamConnected = false
    var toUpstream = ByteQueue()
    var toClient = ByteQueue()
    var clientEOF = false
    var upstreamEOF = false
    var upstreamWriteShut = false
    var clientWriteShut = false
    /// Armed by a random kill: bytes still to forward before the reset, and the latest time for it.
    var killBudget: Int?
    var killDeadline: UInt64 = 0
    /// Armed by random garbling: how far into the next bytes towards the client to corrupt.
    var garbleOffset: Int?
    var closed = false

    init(client: Int32, upstream: Int32) {
        self.client = client
        self.upstream = upstream
    }
}

/// The `poll(2)` loop; runs on the proxy thread and owns every socket.
struct ProxyLoop {
    static let maxConnections = 256
    static let readChunk = 64 << 10
    static let maxBuffered = 1 << 20
    static let quietKillDelay: UInt64 = 20_000_000
    static let maxPollMillis: UInt64 = 50

    let core: ProxyCore
    var listener: Int32
    var connections: [ProxyConnection] = []
    var paused = false
    var seenKillRequests: UInt64 = 0
    var seenRandomGeneration: UInt64 = 0
    var random = ProxyRandom(seed: 1)
    var randomSpec: RandomKillSpec?
    var nextRandomKill: UInt64?
    var readBuffer = [UInt8](repeating: 0, count: ProxyLoop.readChunk)
    // Counter deltas published to the shared state once per iteration.
    var accepted = 0
    var killed = 0
    var killedMidTransfer = 0
    var forwarded = 0
    var garbled = 0

    init(core: ProxyCore, listener: Int32) {
        self.core = core
        self.listener = listener
    }

    mutating func run() {
        while true {
            let s = core.state.withLock { $0 }
            if s.stopping { break }
            apply(s)
            publish(applied: s.commandsIssued)

            let now = ProxySocket.now()
            if let at = nextRandomKill, now >= at, let spec = randomSpec {
                armRandomKill(now: now)
                nextRandomKill = now &+ random.next(in: spec.lowNanos, spec.highNanos)
            }
            for c in connections where !c.closed {
                if let _ = c.killBudget, now >= c.killDeadline { kill(c) }
            }
            sweep()
            pollOnce(now: now)
            sweep()
            publish(applied: nil)
        }
        for c in connections where !c.closed { kill(c, counted: false) }
        connections.removeAll()
        if listener >= 0 { close(listener) }
        listener = -1
        publish(applied: nil)
    }

    private mutating func apply(_ s: ProxyState) {
        if s.killRequests != seenKillRequests {
            seenKillRequests = s.killRequests
            for c in connections where !c.closed {
                kill(c, midTransfer: !c.toUpstream.isEmpty || !c.toClient.isEmpty)
            }
        }
        if s.randomGeneration != seenRandomGeneration {
            seenRandomGeneration = s.randomGeneration
            randomSpec = s.randomKills
            if let spec = s.randomKills {
                random = ProxyRandom(seed: spec.seed)
                nextRandomKill = ProxySocket.now() &+ random.next(in: spec.lowNanos, spec.highNanos)
            } else {
                nextRandomKill = nil
                for c in connections {
                    c.killBudget = nil
                    c.garbleOffset = nil
                }
            }
        }
        if s.refusing && listener >= 0 {
            close(listener)
            listener = -1
        } else if !s.refusing && listener < 0 {
            // Listen again on the same port; if it is momentarily unavailable, retry next iteration.
            if let (fd, _) = try? ProxySocket.listen(port: core.port) { listener = fd }
        }
        paused = s.paused
    }

    private mutating func publish(applied: UInt64?) {
        let active = connections.lazy.filter { !$0.closed }.count
        let (a, k, m, f, g) = (accepted, killed, killedMidTransfer, forwarded, garbled)
        accepted = 0
        killed = 0
        killedMidTransfer = 0
        forwarded = 0
        garbled = 0
        core.state.withLock { s in
            if let applied { s.commandsApplied = max(s.commandsApplied, applied) }
            s.accepted += a
            s.killed += k
            s.killedMidTransfer += m
            s.bytesForwarded += f
            s.garbled += g
            s.active = active
        }
    }

    private mutating func armRandomKill(now: UInt64) {
        if randomSpec?.garble == true {
            for c in connections where !c.closed && c.garbleOffset == nil {
                c.garbleOffset = Int(random.next(in: 0, 255))
            }
            return
        }
        for c in connections where !c.closed && c.killBudget == nil {
            // Log-uniform scale (16 B ... 32 KiB), then uniform below it: small frames get cut too.
            let scale = UInt64(1) << random.next(in: 4, 15)
            c.killBudget = Int(random.next(in: 0, scale - 1))
            c.killDeadline = now &+ Self.quietKillDelay
        }
    }

    /// Resets both sides. `counted`: an injected fault (versus a stop or a propagated error).
    private mutating func kill(_ c: ProxyConnection, counted: Bool = true, midTransfer: Bool = false) {
        guard !c.closed else { return }
        ProxySocket.reset(c.client)
        ProxySocket.reset(c.upstream)
        c.closed = true
        if counted { killed += 1 }
        if counted && midTransfer { killedMidTransfer += 1 }
    }

    /// Closes both sides gracefully (both directions finished).
    private func finish(_ c: ProxyConnection) {
        guard !c.closed else { return }
        close(c.client)
        close(c.upstream)
        c.closed = true
    }

    private mutating func sweep() {
        if connections.contains(where: { $0.closed }) { connections.removeAll { $0.closed } }
    }

    // MARK: poll

    private enum Slot { case wake, listener, client(ProxyConnection), upstream(ProxyConnection) }

    private mutating func pollOnce(now: UInt64) {
        var fds: [pollfd] = []
        var slots: [Slot] = []
        fds.append(pollfd(fd: core.wakeRead, events: Int16(POLLIN), revents: 0))
        slots.append(.wake)
        if !paused && listener >= 0 {
            fds.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0))
            slots.append(.listener)
        }
        if !paused {
            for c in connections where !c.closed {
                var ce: Int32 = 0
                if !c.clientEOF && c.toUpstream.count < Self.maxBuffered { ce |= Int32(POLLIN) }
                if !c.toClient.isEmpty { ce |= Int32(POLLOUT) }
                fds.append(pollfd(fd: c.client, events: Int16(ce), revents: 0))
                slots.append(.client(c))
                var ue: Int32 = 0
                if !c.upstreamConnected {
                    ue = Int32(POLLOUT)
                } else {
                    if !c.upstreamEOF && c.toClient.count < Self.maxBuffered { ue |= Int32(POLLIN) }
                    if !c.toUpstream.isEmpty { ue |= Int32(POLLOUT) }
                }
                fds.append(pollfd(fd: c.upstream, events: Int16(ue), revents: 0))
                slots.append(.upstream(c))
            }
        }
        var wait = Self.maxPollMillis * 1_000_000
        if let at = nextRandomKill { wait = min(wait, at > now ? at - now : 0) }
        for c in connections where c.killBudget != nil && !c.closed {
            wait = min(wait, c.killDeadline > now ? c.killDeadline - now : 0)
        }
        let millis = Int32((wait + 999_999) / 1_000_000)
        let ready = poll(&fds, nfds_t(fds.count), millis)
        guard ready > 0 else { return }

        var touched: [ProxyConnection] = []
        for (i, slot) in slots.enumerated() where fds[i].revents != 0 {
            let revents = Int32(fds[i].revents)
            switch slot {
            case .wake:
                var sink = [UInt8](repeating: 0, count: 64)
                while read(core.wakeRead, &sink, sink.count) > 0 {}
            case .listener:
                acceptAll()
            case .client(let c):
                guard !c.closed else { continue }
                if revents & Int32(POLLIN | POLLHUP | POLLERR) != 0, !c.clientEOF, c.toUpstream.count < Self.maxBuffered {
                    readSide(c, fromClient: true)
                }
                touched.append(c)
            case .upstream(let c):
                guard !c.closed else { continue }
                if !c.upstreamConnected {
                    finishConnect(c)
                } else if revents & Int32(POLLIN | POLLHUP | POLLERR) != 0, !c.upstreamEOF, c.toClient.count < Self.maxBuffered {
                    readSide(c, fromClient: false)
                }
                touched.append(c)
            }
        }
        for c in touched where !c.closed { pump(c) }
    }

    private mutating func acceptAll() {
        for _ in 0..<64 {
            let fd = accept(listener, nil, nil)
            if fd < 0 { return }
            ProxySocket.makeNonBlocking(fd)
            accepted += 1
            if connections.count >= Self.maxConnections {
                ProxySocket.reset(fd)
                continue
            }
            ProxySocket.noDelay(fd)
            let up = socket(core.upstream.family,
                            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard up >= 0 else {
                ProxySocket.reset(fd)
                continue
            }
            ProxySocket.noDelay(up)
            let rc = core.upstream.bytes.withUnsafeBytes { raw in
                connect(up, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
            }
            let c = ProxyConnection(client: fd, upstream: up)
            if rc == 0 {
                c.upstreamConnected = true
            } else if errno != EINPROGRESS {
                // Upstream down: the client sees a reset, as if the broker refused it.
                ProxySocket.reset(fd)
                close(up)
                continue
            }
            connections.append(c)
        }
    }

    private mutating func finishConnect(_ c: ProxyConnection) {
        var error: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(c.upstream, SOL_SOCKET, SO_ERROR, &error, &len)
        if error == 0 {
            c.upstreamConnected = true
        } else {
            kill(c, counted: false)
        }
    }

    private mutating func readSide(_ c: ProxyConnection, fromClient: Bool) {
        let fd = fromClient ? c.client : c.upstream
        let n = readBuffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            readBuffer.withUnsafeBytes { raw in
                let chunk = UnsafeRawBufferPointer(rebasing: raw[0..<n])
                if fromClient { c.toUpstream.append(chunk) } else { c.toClient.append(chunk) }
            }
            if !fromClient { garbleArrived(c, count: n) }
        } else if n == 0 {
            if fromClient { c.clientEOF = true } else { c.upstreamEOF = true }
        } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
            // A peer reset: pass the reset on to the other side.
            kill(c, counted: false)
        }
    }

    /// An armed garbling counts down over the bytes arriving from the broker and corrupts
    /// 1–16 of them where it reaches zero (they are still queued, not yet forwarded).
    private mutating func garbleArrived(_ c: ProxyConnection, count: Int) {
        guard let distance = c.garbleOffset else { return }
        guard distance < count else {
            c.garbleOffset = distance - count
            return
        }
        let length = Int(random.next(in: 1, 16))
        let start = c.toClient.count - count + distance
        garbled += c.toClient.overwrite(at: start, with: (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        c.garbleOffset = nil
    }

    /// Writes what can be written both ways, honouring an armed kill's byte budget,
    /// propagates half-closes, and finishes connections whose both directions ended.
    private mutating func pump(_ c: ProxyConnection) {
        if c.upstreamConnected && !c.toUpstream.isEmpty {
            guard forward(c, toUpstream: true) else { return }
        }
        if !c.toClient.isEmpty {
            guard forward(c, toUpstream: false) else { return }
        }
        if c.clientEOF && c.toUpstream.isEmpty && c.upstreamConnected && !c.upstreamWriteShut {
            shutdown(c.upstream, Int32(SHUT_WR))
            c.upstreamWriteShut = true
        }
        if c.upstreamEOF && c.toClient.isEmpty && !c.clientWriteShut {
            shutdown(c.client, Int32(SHUT_WR))
            c.clientWriteShut = true
        }
        if c.clientWriteShut && c.upstreamWriteShut { finish(c) }
    }

    /// Returns `false` when the connection was closed (error or armed kill reached).
    private mutating func forward(_ c: ProxyConnection, toUpstream: Bool) -> Bool {
        let limit = c.killBudget ?? Int.max
        if limit == 0 {
            kill(c, midTransfer: true)
            return false
        }
        let sent = toUpstream ? c.toUpstream.send(to: c.upstream, limit: limit)
                              : c.toClient.send(to: c.client, limit: limit)
        if sent < 0 {
            kill(c, counted: false)
            return false
        }
        forwarded += sent
        if let budget = c.killBudget {
            c.killBudget = budget - sent
            if budget - sent <= 0 {
                kill(c, midTransfer: true)
                return false
            }
        }
        return true
    }
}

extension Duration {
    /// Whole nanoseconds, zero for negatives.
    var proxyNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }
}
