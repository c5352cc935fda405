public import KlifeProtocol

/// Receives a ``TCPChannel``'s events, on its reactor's thread.
///
/// The channel holds its handler strongly until it has delivered ``channelDidClose(_:error:)``
/// and then drops it, so a handler may hold its channel strongly without leaking.
public protocol ChannelHandler: AnyObject {
    /// The connection is established (with TLS: the handshake completed and the peer's
    /// certificate verified); writes queued in `outbound` are about to be sent.
    /// - Parameter channel: The connected channel.
    func channelDidConnect(_ channel: TCPChannel)

    /// Bytes arrived.
    /// - Parameters:
    ///   - channel: The channel they arrived on.
    ///   - bytes: All unread bytes buffered so far (decrypted, with TLS), valid only during this call.
    /// - Returns: How many leading bytes were consumed (whole frames). The rest is kept and
    ///   presented again, followed by new data; when the buffer is full and nothing was
    ///   consumed it grows.
    func channelDidRead(_ channel: TCPChannel, _ bytes: UnsafeRawBufferPointer) -> Int

    /// The channel is closed, exactly once per channel, also when connecting failed or
    /// timed out. After this the channel no longer references the handler.
    /// - Parameters:
    ///   - channel: The closed channel.
    ///   - error: `nil` after ``TCPChannel/close()``; otherwise why it closed: `.peerClosed`,
    ///     `.connectTimeout`, `.reactorShutdown`, `.resolveFailed`, `.noAddresses`, `.tls`
    ///     (handshake, certificate or record failure), or a failed system call (e.g.
    ///     `connect` with ECONNREFUSED, `read` with ECONNRESET).
    func channelDidClose(_ channel: TCPChannel, error: IOError?)
}

/// A non-blocking TCP connection owned by one ``Reactor``; use it only on that reactor's thread.
///
/// Writing: encode frames straight into ``outbound``, then call ``flush()``. Reading:
/// the handler's ``ChannelHandler/channelDidRead(_:_:)`` sees all unread bytes and
/// reports how many it consumed. With a ``TLSContext`` the handler still sees only
/// plaintext: ``outbound`` is encrypted on flush and reads are decrypted first
/// (`TCPChannel+TLS.swift`).
public final class TCPChannel {
    /// `handshaking` is the TLS handshake after TCP connected (TLS channels only).
    enum State { case resolving, connecting, handshaking, connected, closed }

    /// `host:port` as given to ``connect(host:port:on:connectTimeoutNanoseconds:handler:)``
    /// (IPv6 literals in brackets: `[::1]:9092`).
    public let remoteDescription: String
    let host: String
    let port: Int
    let reactor: Reactor
    var handler: (any ChannelHandler)?
    var state: State = .resolving

    // Socket and registration.
    var fd: Int32 = -1
    var registrationID: UInt32 = 0
    var interest: Interest = []

    // Connecting.
    var addresses: [SocketAddress] = []
    var nextAddressIndex = 0
    var currentAddress: SocketAddress?
    var lastConnectError: IOError?
    var connectTimer: TimerHandle?
    /// SO_SNDBUF for the socket, when set before the connect starts (tests: force partial writes).
    var sendBufferSize: Int32?

    // Buffers.
    var readBuffer: ReadBuffer
    /// Bytes waiting to be sent. Append whole frames here (it is never being written from
    /// while you append), then call ``flush()``. Appends made before the connection is
    /// established are sent when it is.
    public var outbound: ByteWriter
    /// Bytes handed to the kernel in part: `flushing[flushOffset...]` is still unsent.
    var flushing: ByteWriter
    var flushOffset = 0
    /// A write hit EAGAIN (or the per-flush write limit) and EPOLLOUT interest is on.
    var writeBlocked = false

    // TLS (plain TCP when `tlsContext` is nil). The session is made once TCP connects;
    // `outbound` then holds plaintext and `sealed` the ciphertext waiting for the socket.
    let tlsContext: TLSContext?
    var tls: TLSSession?
    var sealed: ByteWriter
    /// Decrypted bytes the handler has not consumed yet (`readBuffer` holds ciphertext).
    var decrypted: ReadBuffer
    /// A frame being read straight into a block of its own (`TCPChannel+Collect.swift`).
    var collecting: FrameCollection?

    // Counters for tests and diagnostics.
    var writevCount = 0
    var wouldBlockCount = 0
    var readCount = 0
    /// Frames read straight into blocks of their own (``collectNext(_:pool:then:)``).
    var collectedFrameCount = 0

    /// Most `read`s per readiness event; level-triggered epoll reports the rest again.
    static let readsPerEvent = 4
    /// Most `writev`s per flush before yielding to the loop (EPOLLOUT resumes).
    static let writesPerFlush = 16
    /// Initial size of the receive buffer.
    static let initialReadCapacity = 64 * 1024

    init(host: String, port: Int, reactor: Reactor, tls: TLSContext?, handler: any ChannelHandler) {
        self.host = host
        self.port = port
        self.reactor = reactor
        self.handler = handler
        self.remoteDescription = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]:\(port)" : "\(host):\(port)"
        self.readBuffer = ReadBuffer(capacity: Self.initialReadCapacity)
        self.outbound = ByteWriter(capacity: 16 * 1024)
        self.flushing = ByteWriter(capacity: 16 * 1024)
        self.tlsContext = tls
        self.sealed = ByteWriter(capacity: tls == nil ? 0 : 16 * 1024)
        self.decrypted = ReadBuffer(capacity: tls == nil ? 0 : Self.initialReadCapacity)
    }

    deinit {
        // Normally closed (and so deregistered) long before; this only guards against leaks.
        if fd >= 0 { Posix.close(fd) }
    }

    /// Whether the connection is established and not closed.
    public var isConnected: Bool { state == .connected }

    /// Bytes appended and not yet accepted by the kernel (`outbound` plus the unsent part
    /// of the previous flush, and with TLS the ciphertext not yet sent).
    public var pendingOutboundBytes: Int { flushing.count - flushOffset + outbound.count + sealed.count }

    /// Closes the channel; the handler gets `channelDidClose(error: nil)` unless the
    /// channel was already closed. Idempotent. Unsent bytes are discarded.
    public func close() {
        precondition(reactor.isInReactorThread, "TCPChannel.close must be called on the reactor thread")
        close(error: nil)
    }

    /// Closes with a reason: deregisters and closes the socket, cancels the connect
    /// timer, forgets the channel in the reactor, then tells the handler (once) and drops it.
    func close(error: IOError?) {
        guard state != .closed else { return }
        state = .closed
        if let timer = connectTimer {
            reactor.cancelTimer(timer)
            connectTimer = nil
        }
        releaseSocket()
        reactor.channelClosed(self)
        let handler = self.handler
        self.handler = nil
        handler?.channelDidClose(self, error: error)
        // The read buffer is left alone: close() may run inside channelDidRead, while the
        // buffer is being read from. It is freed with the channel.
        outbound.removeAll()
        flushing.removeAll()
        sealed.removeAll()
        flushOffset = 0
        collecting = nil
    }

    /// Deregisters and closes the current socket, if any.
    func releaseSocket() {
        guard fd >= 0 else { return }
        if registrationID != 0 { reactor.deregister(fd: fd) }
        Posix.close(fd)
        fd = -1
        registrationID = 0
        interest = []
        writeBlocked = false
    }

    /// Changes the epoll interest if it differs; closes the channel if that fails.
    /// - Returns: `false` when the channel was closed.
    @discardableResult
    func setInterest(_ wanted: Interest) -> Bool {
        guard wanted != interest else { return true }
        do {
            try reactor.reregister(fd: fd, registrationID: registrationID, interest: wanted)
            interest = wanted
            return true
        } catch {
            close(error: error.with(context: "epoll_ctl for \(remoteDescription)"))
            return false
        }
    }

    /// Dispatches one epoll event for this channel's current registration.
    func handle(_ event: ReadyEvent) {
        switch state {
        case .connecting:
            finishConnect(event)
        case .handshaking, .connected:
            if event.isReadable { readAvailable() }
            if state != .closed && event.isWritable { writable() }
        case .resolving, .closed:
            break
        }
    }

    // MARK: Reading

    /// Reads up to ``readsPerEvent`` times, handing all unread bytes to the handler after
    /// each read (with TLS: to the session, which decrypts them for the handler). End of
    /// stream closes with `.peerClosed` (a `.tls` failure during the handshake), read
    /// errors with the error.
    private func readAvailable() {
        for _ in 0..<Self.readsPerEvent {
            if collecting != nil {
                guard readIntoCollection() else { return }
                continue
            }
            readBuffer.prepareForRead()
            let result: IOResult<Int>
            do {
                result = try readBuffer.read(from: fd)
            } catch {
                close(error: error.with(context: "read from \(remoteDescription)"))
                return
            }
            switch result {
            case .wouldBlock:
                return
            case .processed(0):
                close(error: state == .handshaking ? Self.closedDuringHandshake(remoteDescription)
                                                   : IOError(.peerClosed, context: "connection to \(remoteDescription)"))
                return
            case .processed:
                readCount += 1
                if tls != nil {
                    guard receiveCiphertext() else { return }
                } else {
                    guard presentUnreadBytes() else { return }
                }
                if !readBuffer.lastReadFilledSpace { return }
            }
        }
    }
}
