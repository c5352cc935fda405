import Dispatch
import Glibc
@testable import KlifeIO
import Synchronization
import XCTest

final class TCPChannelTests: XCTestCase {
    static let second: UInt64 = 1_000_000_000

    // MARK: Connect outcomes

    func testConnectToClosedPortIsRefused() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let handler = RecordingHandler()
        let port = closedPort()
        _ = connect(reactor, host: "127.0.0.1", port: port, handler: handler)
        guard waitOrFail(handler.closedSignal, "close") else { return }
        let state = handler.state.withLock { $0 }
        XCTAssertFalse(state.connected)
        XCTAssertEqual(state.closeCount, 1)
        XCTAssertEqual(state.closeError?.kind, .syscall(name: "connect", errno: ECONNREFUSED))
        XCTAssertEqual(state.closeError?.description,
                       "connect to 127.0.0.1:\(port) failed: Connection refused (errno \(ECONNREFUSED))")
    }

    /// A listener with backlog 0 that never accepts; one established connection fills its
    /// accept queue, so the kernel drops our SYN and the connect can only time out.
    func testConnectTimeout() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        guard let server = BlockingServer(backlog: 0) else { return XCTFail("listen") }
        var fillers: [Int32] = []
        defer { fillers.forEach { close($0) } }
        // Fill the accept queue: a blocking connect completes while there is room.
        for _ in 0..<2 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            fillers.append(fd)
            _ = SocketAddress(numericHost: "127.0.0.1", port: server.port)!.withSockaddr { Glibc.connect(fd, $0, $1) }
        }
        usleep(50_000)  // let the fillers' handshakes settle (not an assertion)
        let handler = RecordingHandler()
        _ = connect(reactor, host: "127.0.0.1", port: server.port, handler: handler, timeout: 300_000_000)
        guard waitOrFail(handler.closedSignal, "close") else { return }
        let state = handler.state.withLock { $0 }
        XCTAssertFalse(state.connected)
        XCTAssertEqual(state.closeCount, 1)
        XCTAssertEqual(state.closeError?.kind, .connectTimeout, "\(String(describing: state.closeError))")
    }

    func testPeerCloseIsDetectedAfterData() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        guard let server = BlockingServer() else { return XCTFail("listen") }
        runThread {
            guard let client = server.acceptOne() else { return }
            var frame: [UInt8] = [0, 0, 0, 3]
            frame += framePayload(size: 3, seed: 9)
            writeAll(client, frame)
            close(client)
        }
        let handler = RecordingHandler()
        _ = connect(reactor, host: "127.0.0.1", port: server.port, handler: handler)
        guard waitOrFail(handler.closedSignal, "close") else { return }
        let state = handler.state.withLock { $0 }
        XCTAssertEqual(state.events, ["connect", "frame", "close"])
        XCTAssertEqual(state.frames, [framePayload(size: 3, seed: 9)])
        XCTAssertEqual(state.closeError?.kind, .peerClosed)
    }

    func testConnectionResetIsReported() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        guard let server = BlockingServer() else { return XCTFail("listen") }
        let handler = RecordingHandler()
        runThread {
            guard let client = server.acceptOne() else { return }
            // Reset only after the client saw the connection established.
            guard handler.connectedSignal.wait(timeout: .after(safetyTimeout)) == .success else { close(client); return }
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)  // close() sends RST
            setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            close(client)
        }
        _ = connect(reactor, host: "127.0.0.1", port: server.port, handler: handler)
        guard waitOrFail(handler.closedSignal, "close") else { return }
        let state = handler.state.withLock { $0 }
        XCTAssertEqual(state.events, ["connect", "close"])
        XCTAssertEqual(state.closeError?.kind, .syscall(name: "read", errno: ECONNRESET),
                       "\(String(describing: state.closeError))")
    }

    // MARK: Data

    /// Echo round trip: frames queued before connect, many small frames in one flush, and a
    /// frame far larger than the initial read buffer (it must grow).
    func testEchoRoundTrip() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        guard let server = BlockingServer() else { return XCTFail("listen") }
        let serverDone = startEchoServer(server)
        let handler = RecordingHandler()
        let sizes = [5, 0, 17] + Array(repeating: 100, count: 200) + [1_000_000, 3]
        handler.onConnect = { channel in
            for (i, size) in sizes.enumerated().dropFirst(3) { appendFrame(to: channel, size: size, seed: i) }
            channel.flush()
        }
        let ref = connect(reactor, host: "127.0.0.1", port: server.port, handler: handler) { channel in
            for (i, size) in sizes.enumerated().prefix(3) { appendFrame(to: channel, size: size, seed: i) }
            channel.flush()  // not connected yet: kept and sent on connect
        }
        for _ in sizes { guard waitOrFail(handler.frameSignal, "echoed frame") else { return } }
        let frames = handler.state.withLock { $0.frames }
        XCTAssertEqual(frames.count, sizes.count)
        for (i, size) in sizes.enumerated() where i < frames.count {
            XCTAssertEqual(frames[i], framePayload(size: size, seed: i), "frame \(i)")
        }
        let capacity = onReactor(reactor) { ref!.channel.readBuffer.capacity }
        XCTAssertGreaterThan(capacity ?? 0, 1_000_000, "the read buffer grew for the large frame")
        XCTAssertEqual(onReactor(reactor) { ref!.channel.pendingOutboundBytes }, 0)
        _ = onReactor(reactor) { ref!.channel.close() }
        _ = waitOrFail(handler.closedSignal, "close")
        _ = waitOrFail(serverDone, "echo server")
        let state = handler.state.withLock { $0 }
        XCTAssertEqual(state.closeCount, 1)
        XCTAssertNil(state.closeError, "close() reports nil")
        _ = onReactor(reactor) { ref!.channel.close() }  // idempotent
        XCTAssertEqual(handler.state.withLock { $0.closeCount }, 1)
    }

    /// Frames of 64 KiB and more are read straight into blocks of their own (`collectNext`),
    /// whatever the read boundaries: every frame arrives whole and in order, the large ones as
    /// blocks, and the receive buffer never grows to hold them.
    func testLargeFramesAreCollectedIntoBlocksOfTheirOwn() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        guard let server = BlockingServer() else { return XCTFail("listen") }
        let serverDone = startEchoServer(server)
        let handler = CollectingHandler()
        let sizes = [10, 300_000, 5, 2_000_000, 0, 70_000, 65_536, 3]
        handler.onConnect = { channel in
            for (i, size) in sizes.enumerated() { appendFrame(to: channel, size: size, seed: i) }
            channel.flush()
        }
        let ref = connect(reactor, host: "127.0.0.1", port: server.port, handler: handler)
        for _ in sizes { guard waitOrFail(handler.frameSignal, "echoed frame") else { return } }
        let frames = handler.frames.withLock { $0 }
        XCTAssertEqual(frames.map(\.bytes.count), sizes)
        for (i, size) in sizes.enumerated() where i < frames.count {
            XCTAssertEqual(frames[i].bytes, framePayload(size: size, seed: i), "frame \(i)")
            XCTAssertEqual(frames[i].collected, size >= CollectingHandler.threshold, "frame \(i) of \(size) bytes")
        }
        let counts = onReactor(reactor) { (ref!.channel.collectedFrameCount, ref!.channel.readBuffer.capacity) }
        XCTAssertEqual(counts?.0, 4)
        XCTAssertEqual(counts?.1, TCPChannel.initialReadCapacity, "the receive buffer kept its size")
        _ = onReactor(reactor) { ref!.channel.close() }
        _ = waitOrFail(handler.closedSignal, "close")
        _ = waitOrFail(serverDone, "echo server")
    }

    /// The peer closing in the middle of a collected frame closes the channel with
    /// `.peerClosed`; the partial frame is never delivered.
    func testPeerClosingDuringACollectedFrameIsReported() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        guard let server = BlockingServer() else { return XCTFail("listen") }
        let serverDone = runThread {
            guard let client = server.acceptOne() else { return }
            var header = [UInt8](repeating: 0, count: 4)
            withUnsafeBytes(of: UInt32(1_000_000).bigEndian) { header = Array($0) }
            writeAll(client, header + framePayload(size: 200_000, seed: 0))
            usleep(50_000)
            close(client)
        }
        let handler = CollectingHandler()
        let ref = connect(reactor, host: "127.0.0.1", port: server.port, handler: handler)
        guard waitOrFail(handler.closedSignal, "close") else { return }
        XCTAssertEqual(handler.closeError.withLock { $0?.kind }, .peerClosed)
        XCTAssertTrue(handler.frames.withLock { $0.isEmpty }, "no partial frame delivered")
        XCTAssertEqual(onReactor(reactor) { ref!.channel.collectedFrameCount }, 0)
        _ = waitOrFail(serverDone, "server")
    }

    /// 8 MiB through a small send buffer to a slow reader with a small receive buffer:
    /// writes go partial and would-block, and every byte still arrives in order.
    func testPartialWritesDeliverEveryByteInOrder() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        guard let server = BlockingServer(receiveBuffer: 4096) else { return XCTFail("listen") }
        let total = 8 * 1024 * 1024
        let verified = LockedBox<(count: Int, firstMismatch: Int?)>((0, nil))
        let serverDone = runThread {
            guard let client = server.acceptOne() else { return }
            defer { close(client) }
            var buffer = [UInt8](repeating: 0, count: 2048)
            var offset = 0
            var reads = 0
            while offset < total {
                let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                for i in 0..<n where buffer[i] != patternByte(offset + i) {
                    verified.withLock { if $0.firstMismatch == nil { $0.firstMismatch = offset + i } }
                    break
                }
                offset += n
                reads += 1
                if reads % 8 == 0 { usleep(200) }  // slow reader
            }
            verified.withLock { $0.count = offset }
        }
        let handler = RecordingHandler()
        handler.onConnect = { channel in
            // Many appends and flushes; most flushes find the socket blocked.
            let chunk = 64 * 1024
            var chunkBytes = [UInt8](repeating: 0, count: chunk)
            for start in stride(from: 0, to: total, by: chunk) {
                for i in 0..<chunk { chunkBytes[i] = patternByte(start + i) }
                channel.outbound.writeBytes(chunkBytes)
                channel.flush()
            }
        }
        let ref = connect(reactor, host: "127.0.0.1", port: server.port, handler: handler, sendBufferSize: 4096)
        guard waitOrFail(serverDone, "slow reader") else { return }
        let result = verified.withLock { $0 }
        XCTAssertEqual(result.count, total)
        XCTAssertNil(result.firstMismatch, "bytes out of order")
        let stats = onReactor(reactor) { (ref!.channel.wouldBlockCount, ref!.channel.pendingOutboundBytes) }
        XCTAssertGreaterThan(stats?.0 ?? 0, 0, "the test must have exercised would-block")
        XCTAssertEqual(stats?.1, 0)
    }

    // MARK: Addresses

    func testIPv6LoopbackConnect() throws {
        guard let server = BlockingServer(host: "::1") else { throw XCTSkip("no IPv6 loopback on this machine") }
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let serverDone = startEchoServer(server)
        let handler = RecordingHandler()
        handler.onConnect = { channel in
            appendFrame(to: channel, size: 10, seed: 1)
            channel.flush()
        }
        let ref = connect(reactor, host: "::1", port: server.port, handler: handler)
        guard waitOrFail(handler.frameSignal, "echo over IPv6") else { return }
        XCTAssertEqual(handler.state.withLock { $0.frames }, [framePayload(size: 10, seed: 1)])
        XCTAssertEqual(handler.state.withLock { $0.remoteAfterConnect }, "[::1]:\(server.port)")
        XCTAssertEqual(ref?.channel.remoteDescription, "[::1]:\(server.port)")
        _ = onReactor(reactor) { ref!.channel.close() }
        _ = waitOrFail(serverDone, "echo server")
    }

    func testLocalhostIsResolvedOffTheReactorThread() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        guard let server = BlockingServer() else { return XCTFail("listen") }
        let serverDone = startEchoServer(server)
        let handler = RecordingHandler()
        let ref = connect(reactor, host: "localhost", port: server.port, handler: handler)
        guard waitOrFail(handler.connectedSignal, "connect via localhost") else { return }
        XCTAssertEqual(handler.state.withLock { $0.remoteAfterConnect }, "127.0.0.1:\(server.port)")
        XCTAssertEqual(ref?.channel.remoteDescription, "localhost:\(server.port)")
        _ = onReactor(reactor) { ref!.channel.close() }
        _ = waitOrFail(serverDone, "echo server")
    }

    /// A resolver failure reaches the handler as `.resolveFailed` (an out-of-range port
    /// fails inside the resolver thread without any DNS traffic).
    func testResolveFailureIsReported() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let handler = RecordingHandler()
        _ = connect(reactor, host: "localhost", port: 70_000, handler: handler)
        guard waitOrFail(handler.closedSignal, "close") else { return }
        let error = handler.state.withLock { $0.closeError }
        guard case .resolveFailed(let host, _)? = error?.kind else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(host, "localhost")
        XCTAssertEqual(handler.state.withLock { $0.closeCount }, 1)
    }

    /// Several addresses: a refused one first, then the listening one.
    func testFallsBackToTheNextAddress() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        guard let server = BlockingServer() else { return XCTFail("listen") }
        let serverDone = startEchoServer(server)
        let refused = SocketAddress(numericHost: "127.0.0.1", port: closedPort())!
        let good = SocketAddress(numericHost: "127.0.0.1", port: server.port)!
        let handler = RecordingHandler()
        let ref = connect(reactor, host: "multi", port: server.port, handler: handler, addresses: [refused, good])
        guard waitOrFail(handler.connectedSignal, "connect") else { return }
        XCTAssertEqual(handler.state.withLock { $0.remoteAfterConnect }, good.description)
        _ = onReactor(reactor) { ref!.channel.close() }
        _ = waitOrFail(serverDone, "echo server")
    }

    // MARK: Lifecycle

    /// Shutdown closes open channels with `.reactorShutdown` and releases the handlers,
    /// even though each handler holds its channel strongly (a cycle until close).
    func testShutdownClosesChannelsAndReleasesHandlers() throws {
        let reactor = try startedReactor()
        guard let server = BlockingServer() else { return XCTFail("listen") }
        let serverDone = startEchoServer(server)
        let deinits = Counter()
        let closeError = LockedBox<IOError?>(nil)
        let connected = DispatchSemaphore(value: 0)
        let closedSignal: DispatchSemaphore
        do {
            final class Handler: ChannelHandler, @unchecked Sendable {
                // @unchecked Sendable: used on the reactor thread only after creation.
                let deinits: Counter, connected: DispatchSemaphore, closeError: LockedBox<IOError?>
                let closed = DispatchSemaphore(value: 0)
                var channel: TCPChannel?
                init(_ d: Counter, _ c: DispatchSemaphore, _ e: LockedBox<IOError?>) { deinits = d; connected = c; closeError = e }
                deinit { deinits.value.add(1, ordering: .relaxed) }
                func channelDidConnect(_ channel: TCPChannel) { connected.signal() }
                func channelDidRead(_ channel: TCPChannel, _ bytes: UnsafeRawBufferPointer) -> Int { bytes.count }
                func channelDidClose(_ channel: TCPChannel, error: IOError?) {
                    closeError.withLock { $0 = error }
                    closed.signal()
                }
            }
            let handler = Handler(deinits, connected, closeError)
            closedSignal = handler.closed
            reactor.submit {
                handler.channel = TCPChannel.connect(host: "127.0.0.1", port: server.port, on: reactor,
                                                     connectTimeoutNanoseconds: 10 * Self.second, handler: handler)
            }
        }
        guard waitOrFail(connected, "connect") else { return }
        reactor.shutdown()
        _ = waitOrFail(closedSignal, "close")
        XCTAssertEqual(closeError.withLock { $0 }?.kind, .reactorShutdown)
        _ = waitOrFail(serverDone, "echo server sees EOF")
        // The handler still holds the channel, but the channel dropped the handler and the
        // reactor dropped the channel, so nothing keeps the handler alive.
        XCTAssertEqual(deinits.current, 1, "handler leaked")
    }

    /// An event whose registration id is not the fd's current one (the fd was closed and
    /// reused while the event sat in the batch) is dropped, not delivered to the new channel.
    func testStaleEventsForReusedDescriptorsAreDropped() throws {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        guard let server = BlockingServer() else { return XCTFail("listen") }
        let serverDone = startEchoServer(server)
        let handler = RecordingHandler()
        let ref = connect(reactor, host: "127.0.0.1", port: server.port, handler: handler)
        guard waitOrFail(handler.connectedSignal, "connect") else { return }
        let result = onReactor(reactor) { () -> (Int, Int, Int32) in
            let channel = ref!.channel
            let before = reactor.staleEventCount
            let readable = Interest.read.epollEvents
            // Same fd, previous registration id: must be dropped.
            reactor.dispatch(ReadyEvent(token: Selector.token(fd: channel.fd, registrationID: channel.registrationID &- 1),
                                        flags: readable))
            // Same registration id, other fd: dropped as well.
            reactor.dispatch(ReadyEvent(token: Selector.token(fd: channel.fd + 1000, registrationID: channel.registrationID),
                                        flags: readable))
            return (before, reactor.staleEventCount, channel.fd)
        }
        XCTAssertEqual(result.map { $0.1 - $0.0 }, 2)
        XCTAssertEqual(handler.state.withLock { $0.events }, ["connect"], "nothing reached the handler")
        let token = Selector.token(fd: 7, registrationID: 42)
        XCTAssertEqual(ReadyEvent(token: token, flags: 0).fd, 7)
        XCTAssertEqual(ReadyEvent(token: token, flags: 0).registrationID, 42)
        _ = onReactor(reactor) { ref!.channel.close() }
        _ = waitOrFail(serverDone, "echo server")
    }
}

/// Carries a channel reference back to the test thread. Only dereferenced on the reactor
/// thread (inside `onReactor`) or for immutable properties.
struct ChannelRef: @unchecked Sendable {
    let channel: TCPChannel
}

/// Parses length-prefixed frames and asks the channel to collect those of `threshold` bytes or
/// more that are still arriving; records every frame and how it came.
final class CollectingHandler: ChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: `onConnect` is set before the handler is handed to the reactor and
    // only called on the reactor thread; recorded state is behind locks.
    static let threshold = 64 * 1024
    let frames = LockedBox<[(bytes: [UInt8], collected: Bool)]>([])
    let closeError = LockedBox<IOError?>(nil)
    let frameSignal = DispatchSemaphore(value: 0)
    let closedSignal = DispatchSemaphore(value: 0)
    var onConnect: ((TCPChannel) -> Void)?

    func channelDidConnect(_ channel: TCPChannel) { onConnect?(channel) }

    func channelDidRead(_ channel: TCPChannel, _ bytes: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        while bytes.count - offset >= 4 {
            let length = Int(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            guard bytes.count - offset - 4 >= length else {
                if length >= Self.threshold, channel.collectNext(length, then: { [unowned self] _, block in
                    frames.withLock { $0.append((block.bytes, true)) }
                    frameSignal.signal()
                }) {
                    offset += 4
                }
                break
            }
            let payload = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + 4 + length)]))
            frames.withLock { $0.append((payload, false)) }
            frameSignal.signal()
            offset += 4 + length
        }
        return offset
    }

    func channelDidClose(_ channel: TCPChannel, error: IOError?) {
        closeError.withLock { $0 = error }
        closedSignal.signal()
    }
}
