import Dispatch
import Foundation
import Glibc
@testable import KlifeIO
import Synchronization
import XCTest

/// Safety-net timeout for waits: a broken test fails after this instead of hanging.
let safetyTimeout: DispatchTime.Seconds = 20

extension DispatchTime {
    typealias Seconds = Double
    static func after(_ seconds: Seconds) -> DispatchTime { .now() + seconds }
}

/// Waits for a semaphore with the safety-net timeout; fails the test on timeout.
func waitOrFail(_ semaphore: DispatchSemaphore, _ what: String, file: StaticString = #filePath, line: UInt = #line) -> Bool {
    if semaphore.wait(timeout: .after(safetyTimeout)) == .success { return true }
    XCTFail("timed out waiting for \(what)", file: file, line: line)
    return false
}

/// Runs `body` on a new thread; the returned semaphore is signalled when it returns.
@discardableResult
func runThread(_ body: @escaping @Sendable () -> Void) -> DispatchSemaphore {
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        body()
        done.signal()
    }
    thread.start()
    return done
}

/// Runs `body` on the reactor thread and returns its result to the calling test thread.
func onReactor<T: Sendable>(_ reactor: Reactor, _ body: @escaping @Sendable () -> T) -> T? {
    let result = LockedBox<T?>(nil)
    let done = DispatchSemaphore(value: 0)
    reactor.submit {
        result.withLock { $0 = body() }
        done.signal()
    }
    guard done.wait(timeout: .after(safetyTimeout)) == .success else {
        XCTFail("reactor task did not run")
        return nil
    }
    return result.withLock { $0 }
}

/// Connects on the reactor thread and returns the channel (for later inspection).
/// `beforeConnect` runs right after `connect` returns, before any event can arrive.
func connect(_ reactor: Reactor, host: String = "127.0.0.1", port: Int, tls: TLSContext? = nil,
             handler: some ChannelHandler & Sendable, timeout: UInt64 = 10_000_000_000, sendBufferSize: Int32? = nil,
             addresses: [SocketAddress]? = nil, beforeConnect: (@Sendable (TCPChannel) -> Void)? = nil) -> ChannelRef? {
    onReactor(reactor) {
        let channel = TCPChannel.connect(host: host, port: port, on: reactor, connectTimeoutNanoseconds: timeout,
                                         tls: tls, handler: handler, addresses: addresses)
        channel.sendBufferSize = sendBufferSize
        beforeConnect?(channel)
        return ChannelRef(channel: channel)
    }
}

/// Creates and starts a reactor for a test; shut it down with `defer { reactor.shutdown() }`.
func startedReactor(_ name: String = "test-io", taskCapacity: Int = 4096, busyPollNanoseconds: UInt64 = 0) throws -> Reactor {
    let reactor = try Reactor(name: name, taskCapacity: taskCapacity, busyPollNanoseconds: busyPollNanoseconds)
    reactor.start()
    return reactor
}

/// Submits `count` tasks to `reactor` from a thread of its own, calling `wakeup()` after each
/// when `wakeups` is set and sleeping `pauseMicroseconds` between them.
/// - Returns: `submitted`, signalled once the thread made every submission, and `allRan`,
///   signalled once the last task ran.
func submitCounted(_ reactor: Reactor, count: Int, wakeups: Bool = false, pauseMicroseconds: UInt32 = 0)
    -> (submitted: DispatchSemaphore, allRan: DispatchSemaphore) {
    let ran = Counter()
    let allRan = DispatchSemaphore(value: 0)
    let submitted = runThread {
        for _ in 0..<count {
            reactor.submit {
                if ran.value.add(1, ordering: .relaxed).newValue == count { allRan.signal() }
            }
            if wakeups { reactor.wakeup() }
            if pauseMicroseconds > 0 { usleep(pauseMicroseconds) }
        }
    }
    return (submitted, allRan)
}

/// A deterministic byte pattern for stream tests.
@inline(__always) func patternByte(_ index: Int) -> UInt8 { UInt8(truncatingIfNeeded: index % 251) }

/// Appends one length-prefixed frame (INT32 length, then `size` pattern bytes starting at `seed`).
func appendFrame(to channel: TCPChannel, size: Int, seed: Int) {
    channel.outbound.writeInt32(Int32(size))
    var bytes = [UInt8](repeating: 0, count: size)
    for i in 0..<size { bytes[i] = patternByte(seed + i) }
    channel.outbound.writeBytes(bytes)
}

/// The payload `appendFrame` writes.
func framePayload(size: Int, seed: Int) -> [UInt8] {
    (0..<size).map { patternByte(seed + $0) }
}

/// A channel handler that records what happens and parses length-prefixed frames.
/// Callbacks arrive on the reactor thread; the test thread reads through the lock.
final class RecordingHandler: ChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: `onConnect`/`onFrame` are set before the handler is handed to
    // the reactor and only called on the reactor thread; all recorded state is in `state`.
    struct State {
        var connected = false
        var closeCount = 0
        var closeError: IOError?
        var frames: [[UInt8]] = []
        var events: [String] = []
        var remoteAfterConnect: String?
    }

    let state = LockedBox(State())
    let connectedSignal = DispatchSemaphore(value: 0)
    let closedSignal = DispatchSemaphore(value: 0)
    let frameSignal = DispatchSemaphore(value: 0)
    var onConnect: ((TCPChannel) -> Void)?
    /// When set, frames are not stored (stress tests) but passed here.
    var onFrame: ((TCPChannel, UnsafeRawBufferPointer) -> Void)?

    func channelDidConnect(_ channel: TCPChannel) {
        state.withLock {
            $0.connected = true
            $0.events.append("connect")
            $0.remoteAfterConnect = channel.connectedAddressDescription
        }
        onConnect?(channel)
        connectedSignal.signal()
    }

    func channelDidRead(_ channel: TCPChannel, _ bytes: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        while bytes.count - offset >= 4 {
            let length = Int(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            guard bytes.count - offset - 4 >= length else { break }
            let payload = UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + 4 + length)])
            if let onFrame {
                onFrame(channel, payload)
            } else {
                let frame = [UInt8](payload)
                state.withLock {
                    $0.frames.append(frame)
                    $0.events.append("frame")
                }
            }
            frameSignal.signal()
            offset += 4 + length
        }
        return offset
    }

    func channelDidClose(_ channel: TCPChannel, error: IOError?) {
        state.withLock {
            $0.closeCount += 1
            $0.closeError = error
            $0.events.append("close")
        }
        closedSignal.signal()
    }
}

/// A shared atomic counter.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
    var current: Int { value.load(ordering: .relaxed) }
}

// MARK: Blocking sockets for test servers

/// A listening TCP socket made with plain blocking syscalls.
final class BlockingServer: @unchecked Sendable {
    // @unchecked Sendable: `fd`/`port` are immutable; the socket is used by one thread at a time.
    let fd: Int32
    let port: Int

    /// - Parameters:
    ///   - host: `127.0.0.1` or `::1`.
    ///   - backlog: `listen` backlog.
    ///   - receiveBuffer: SO_RCVBUF set before `listen` (accepted sockets inherit it).
    init?(host: String = "127.0.0.1", backlog: Int32 = 16, receiveBuffer: Int32? = nil) {
        guard let address = SocketAddress(numericHost: host, port: 0) else { return nil }
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        let bound = address.withSockaddr { bind(fd, $0, $1) }
        guard bound == 0, listen(fd, backlog) == 0 else {
            close(fd)
            return nil
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let local = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress(copying: $0, length: length) }
        }
        self.fd = fd
        self.port = local?.port ?? 0
    }

    deinit { close(fd) }

    /// Accepts one connection, waiting at most the safety timeout.
    func acceptOne() -> Int32? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(safetyTimeout * 1000)) == 1 else { return nil }
        let client = accept(fd, nil, nil)
        return client >= 0 ? client : nil
    }
}

/// Reads exactly `count` bytes (or fewer at EOF) from a blocking socket.
func readFully(_ fd: Int32, count: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    var got = 0
    while got < count {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, count - got) }
        if n <= 0 { break }
        got += n
    }
    return Array(bytes.prefix(got))
}

/// Writes all bytes to a blocking socket.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var sent = 0
    while sent < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + sent, bytes.count - sent) }
        if n <= 0 { return }
        sent += n
    }
}

/// An echo server: accepts one connection and echoes everything until EOF.
func startEchoServer(_ server: BlockingServer) -> DispatchSemaphore {
    runThread {
        guard let client = server.acceptOne() else { return }
        defer { close(client) }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            writeAll(client, Array(buffer.prefix(n)))
        }
    }
}

/// A port nothing listens on (bound, then closed).
func closedPort() -> Int {
    guard let server = BlockingServer(backlog: 1) else { return 1 }
    return server.port
}

/// A lock in a class, so test closures can share it.
final class LockedBox<Value: Sendable>: Sendable {
    private let mutex: KlifeIO.Locked<Value>
    init(_ value: Value) { mutex = KlifeIO.Locked(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
    var value: Value { mutex.withLock { $0 } }
}

extension LockedBox {
    /// Empties the array and returns what it held (an iteration hook draining a test queue).
    func takeAll<Element: Sendable>() -> [Element] where Value == [Element] {
        withLock { items in
            defer { items.removeAll() }
            return items
        }
    }
}

/// Waits (up to the safety timeout) until `reactor` has no wakeup pending (it cleared its
/// flag and published its wake time: it is blocked, or about to block after one last look),
/// failing the test otherwise.
func waitUntilAsleep(_ reactor: Reactor, file: StaticString = #filePath, line: UInt = #line) -> Bool {
    let deadline = DispatchTime.after(safetyTimeout)
    while !reactor.mayBeAsleep {
        if DispatchTime.now() > deadline {
            XCTFail("the reactor never went to sleep", file: file, line: line)
            return false
        }
        usleep(1_000)
    }
    return true
}
