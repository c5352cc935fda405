import KlifeIO
import Foundation
import Glibc
import KlifeTesting
import Synchronization
import XCTest

/// FaultProxy in front of a loopback echo server: forwarding, abrupt kills (mid-stream,
/// both sides reset), refused connections, stalls, random seeded kills, and clean stops.
final class FaultProxyTests: XCTestCase {
    // MARK: Tests

    func testForwardsBothWays() throws {
        let echo = try EchoServer()
        defer { echo.stop() }
        let proxy = try FaultProxy.start(upstream: echo.address)
        defer { proxy.stop() }
        XCTAssertTrue(proxy.address.hasPrefix("127.0.0.1:"))

        let fd = try TestSocket.connect(port: proxy.port)
        defer { close(fd) }
        var payload = [UInt8](repeating: 0, count: 256 << 10)
        for i in payload.indices { payload[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
        // Send and read interleaved so neither side's buffers fill up.
        var received: [UInt8] = []
        for chunk in stride(from: 0, to: payload.count, by: 16 << 10) {
            try TestSocket.sendAll(fd, Array(payload[chunk..<min(chunk + (16 << 10), payload.count)]))
            received += try TestSocket.receive(fd, exactly: min(16 << 10, payload.count - chunk))
        }
        XCTAssertEqual(received, payload)
        XCTAssertEqual(proxy.connectionsAccepted, 1)
        XCTAssertEqual(proxy.connectionsKilled, 0)
        // Counters are published right after the proxy's loop iteration that forwarded the bytes.
        XCTAssertTrue(waitUntil { proxy.bytesForwarded >= 2 * payload.count }, "forwarded: \(proxy.bytesForwarded)")
    }

    func testKillAllConnectionsResetsBothSidesMidStream() throws {
        let echo = try EchoServer()
        defer { echo.stop() }
        let proxy = try FaultProxy.start(upstream: echo.address)
        defer { proxy.stop() }

        let fd = try TestSocket.connect(port: proxy.port)
        defer { close(fd) }
        try TestSocket.sendAll(fd, [UInt8](repeating: 1, count: 10_000))
        _ = try TestSocket.receive(fd, exactly: 100)        // mid-frame: 9,900 echoed bytes still due
        XCTAssertTrue(waitUntil { proxy.activeConnections == 1 })
        proxy.killAllConnections()
        XCTAssertEqual(proxy.connectionsKilled, 1)
        XCTAssertEqual(proxy.activeConnections, 0)

        // The client sees a reset (not an orderly EOF) once buffered bytes are read.
        let end = TestSocket.drainUntilClosed(fd)
        XCTAssertEqual(end, .reset, "client side: \(end)")
        // The upstream side was reset too.
        XCTAssertTrue(waitUntil { echo.resetsSeen >= 1 }, "echo server never saw a reset")

        // The proxy keeps accepting.
        let again = try TestSocket.connect(port: proxy.port)
        defer { close(again) }
        try TestSocket.sendAll(again, Array("ping".utf8))
        XCTAssertEqual(try TestSocket.receive(again, exactly: 4), Array("ping".utf8))
    }

    func testRefuseNewConnections() throws {
        let echo = try EchoServer()
        defer { echo.stop() }
        let proxy = try FaultProxy.start(upstream: echo.address)
        defer { proxy.stop() }

        let open = try TestSocket.connect(port: proxy.port)
        defer { close(open) }
        XCTAssertTrue(waitUntil { proxy.activeConnections == 1 })
        proxy.setRefuseNewConnections(true)
        XCTAssertThrowsError(try TestSocket.connect(port: proxy.port)) { error in
            XCTAssertEqual((error as? TestSocket.Failure)?.errno, ECONNREFUSED, "\(error)")
        }
        // The open connection still works.
        try TestSocket.sendAll(open, Array("still here".utf8))
        XCTAssertEqual(try TestSocket.receive(open, exactly: 10), Array("still here".utf8))

        proxy.setRefuseNewConnections(false)
        let fresh = try TestSocket.connect(port: proxy.port)
        defer { close(fresh) }
        try TestSocket.sendAll(fresh, Array("back".utf8))
        XCTAssertEqual(try TestSocket.receive(fresh, exactly: 4), Array("back".utf8))
        XCTAssertEqual(proxy.connectionsKilled, 0)
    }

    func testPauseStallsWithoutClosingAndResumeDeliversLate() throws {
        let echo = try EchoServer()
        defer { echo.stop() }
        let proxy = try FaultProxy.start(upstream: echo.address)
        defer { proxy.stop() }

        let fd = try TestSocket.connect(port: proxy.port)
        defer { close(fd) }
        try TestSocket.sendAll(fd, Array("one".utf8))
        XCTAssertEqual(try TestSocket.receive(fd, exactly: 3), Array("one".utf8))

        proxy.pause()
        XCTAssertTrue(proxy.isPaused)
        try TestSocket.sendAll(fd, Array("two".utf8))
        XCTAssertFalse(TestSocket.readable(fd, within: .milliseconds(300)), "nothing is forwarded while paused")
        // A connection made during the pause completes its TCP handshake but gets no service.
        let late = try TestSocket.connect(port: proxy.port)
        defer { close(late) }
        try TestSocket.sendAll(late, Array("three".utf8))
        XCTAssertFalse(TestSocket.readable(late, within: .milliseconds(100)))
        XCTAssertEqual(proxy.activeConnections, 1, "sockets are kept, not closed")
        XCTAssertEqual(proxy.connectionsKilled, 0)

        proxy.resume()
        XCTAssertEqual(try TestSocket.receive(fd, exactly: 3), Array("two".utf8))
        XCTAssertEqual(try TestSocket.receive(late, exactly: 5), Array("three".utf8))
    }

    /// Random kills land at arbitrary byte positions: some connection is cut in the middle
    /// of a 1,000-byte frame (seen by the client or by the echo server).
    func testRandomKillsCutMidFrame() throws {
        let echo = try EchoServer()
        defer { echo.stop() }
        let proxy = try FaultProxy.start(upstream: echo.address)
        defer { proxy.stop() }
        let frame = 1000
        proxy.setRandomKills(every: .milliseconds(10) ... .milliseconds(30), seed: 42)

        var cutMidFrameAtClient = 0
        var connectionsTried = 0
        let deadline = ContinuousClock.now + .seconds(4)
        while ContinuousClock.now < deadline && proxy.connectionsKilled < 12 && connectionsTried < 200 {
            connectionsTried += 1
            guard let fd = try? TestSocket.connect(port: proxy.port) else { continue }
            defer { close(fd) }
            var echoed = 0
            exchange: for _ in 0..<10_000 {
                if (try? TestSocket.sendAll(fd, [UInt8](repeating: 7, count: frame))) == nil { break }
                var got = 0
                while got < frame {
                    var buffer = [UInt8](repeating: 0, count: frame - got)
                    let n = recv(fd, &buffer, buffer.count, 0)
                    if n <= 0 { break exchange }
                    got += n
                    echoed += n
                }
            }
            if echoed % frame != 0 { cutMidFrameAtClient += 1 }
        }
        proxy.setRandomKills(every: nil, seed: 0)
        XCTAssertGreaterThanOrEqual(proxy.connectionsKilled, 5, "kills: \(proxy.connectionsKilled)")
        XCTAssertGreaterThan(proxy.connectionsKilledMidTransfer, 0, "every kill hit a quiet connection")
        XCTAssertGreaterThan(cutMidFrameAtClient + echo.partialFramesSeen(frame: frame), 0,
                             "no kill landed mid-frame in \(proxy.connectionsKilled) kills")
    }

    func testUpstreamDownResetsClient() throws {
        let deadPort = try TestSocket.unusedPort()
        let proxy = try FaultProxy.start(upstream: "127.0.0.1:\(deadPort)")
        defer { proxy.stop() }
        let fd = try TestSocket.connect(port: proxy.port)
        defer { close(fd) }
        let end = TestSocket.drainUntilClosed(fd)
        XCTAssertNotEqual(end, .timedOut)
        XCTAssertEqual(proxy.connectionsKilled, 0, "an upstream failure is not an injected kill")
    }

    func testStopAndDeinitCloseEverything() throws {
        let echo = try EchoServer()
        defer { echo.stop() }
        var proxy: FaultProxy? = try FaultProxy.start(upstream: echo.address)
        let port = proxy!.port
        let fd = try TestSocket.connect(port: port)
        defer { close(fd) }
        XCTAssertTrue(waitUntil { proxy!.activeConnections == 1 })
        proxy!.stop()
        proxy!.stop()   // idempotent
        XCTAssertNotEqual(TestSocket.drainUntilClosed(fd), .timedOut)
        XCTAssertThrowsError(try TestSocket.connect(port: port))

        proxy = try FaultProxy.start(upstream: echo.address)
        let second = proxy!.port
        proxy = nil     // deinit stops it
        XCTAssertThrowsError(try TestSocket.connect(port: second))
    }

    func testRejectsMalformedUpstream() {
        XCTAssertThrowsError(try FaultProxy.start(upstream: "no-port"))
    }

    // MARK: Helpers

    private func waitUntil(_ timeout: Duration = .seconds(2), _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(2_000)
        }
        return condition()
    }
}

/// A loopback echo server: one thread accepting (polling a stop flag), one per connection.
final class EchoServer: Sendable {
    let port: Int
    var address: String { "127.0.0.1:\(port)" }
    private let listener: Int32
    private let stopped = Atomic<Bool>(false)
    private let stats = Locked<(resets: Int, framesBytes: [Int])>((0, []))

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSocket.Failure(call: "socket", errno: errno) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard listen(fd, 64) == 0 else { throw TestSocket.Failure(call: "listen", errno: errno) }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        listener = fd
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Connections that ended with a reset or a write error.
    var resetsSeen: Int { stats.withLock { $0.resets } }

    /// Connections whose received byte count was not a whole number of `frame`-byte frames.
    func partialFramesSeen(frame: Int) -> Int { stats.withLock { $0.framesBytes.filter { $0 % frame != 0 }.count } }

    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        usleep(120_000)  // let the accept loop notice
        close(listener)
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .acquiring) {
            var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0, !stopped.load(ordering: .acquiring) else { continue }
            let conn = accept(listener, nil, nil)
            if conn < 0 { continue }
            Thread.detachNewThread { [self] in serve(conn) }
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var reset = false
        loop: while !stopped.load(ordering: .acquiring) {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { break }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                reset = true
                break
            }
            total += n
            var sent = 0
            while sent < n {
                let w = buffer.withUnsafeBytes { send(fd, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                if w < 0 {
                    if errno == EAGAIN || errno == EINTR { continue }
                    reset = true
                    break loop
                }
                sent += w
            }
        }
        stats.withLock { s in
            if reset { s.resets += 1 }
            s.framesBytes.append(total)
        }
    }
}

/// Blocking loopback sockets with timeouts, for driving a proxy from tests.
enum TestSocket {
    struct Failure: Error, CustomStringConvertible {
        var call: String
        var errno: Int32
        var description: String { "\(call): \(String(cString: strerror(errno)))" }
    }

    enum End: Equatable { case eof, reset, otherError(Int32), timedOut }

    static func connect(port: Int, timeout: Duration = .seconds(2)) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(call: "socket", errno: errno) }
        let seconds = Int(timeout.components.seconds)
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw Failure(call: "connect", errno: e)
        }
        return fd
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(call: "send", errno: errno) }
            sent += n
        }
    }

    static func receive(_ fd: Int32, exactly count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            guard n > 0 else { throw Failure(call: n == 0 ? "recv (eof)" : "recv", errno: n == 0 ? 0 : errno) }
            got += n
        }
        return out
    }

    static func readable(_ fd: Int32, within timeout: Duration) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)) > 0
    }

    /// Reads until the connection ends (at most ~2 s, 10,000 reads) and says how.
    static func drainUntilClosed(_ fd: Int32) -> End {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        let deadline = ContinuousClock.now + .seconds(2)
        for _ in 0..<10_000 where ContinuousClock.now < deadline {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { continue }
            if n == 0 { return .eof }
            if errno == EAGAIN || errno == EINTR { continue }
            return errno == ECONNRESET ? .reset : .otherError(errno)
        }
        return .timedOut
    }

    /// A loopback port nobody listens on (bound, then released).
    static func unusedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
