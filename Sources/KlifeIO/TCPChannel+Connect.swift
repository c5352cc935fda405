import Glibc

// Establishing a connection: resolve → try each address → [TLS handshake] → connected,
// all under one timer.
//
//   resolving ──addresses──▶ connecting ──SO_ERROR 0──▶ [handshaking ──verified──▶] connected
//       │                      │  ▲ refused/unreachable: next address    │
//       └──────────────────────┴──┴───────────────────────────────────────┴──▶ closed (error: last
//                                          connect error, timeout, resolve failure, TLS failure)
//
// No handler callback ever runs inside `connect(...)`: numeric hosts are started from
// the reactor's local task queue, names from the resolver's posted result.

extension TCPChannel {
    /// Opens a connection. Reactor thread only.
    ///
    /// `host` is resolved without blocking the reactor (`getaddrinfo` on a resolver thread,
    /// the result posted back with ``Reactor/submit(_:)``; numeric IPv4/IPv6 literals skip
    /// the resolver). Then each address (IPv6 and IPv4, in resolver order) is tried in
    /// turn with a non-blocking connect; refused or unreachable addresses move on to the
    /// next. TCP_NODELAY is set on every socket.
    ///
    /// - Parameters:
    ///   - host: Host name or numeric address (`broker-1`, `127.0.0.1`, `::1`, `[::1]`).
    ///   - port: TCP port.
    ///   - reactor: The reactor the channel lives on (the caller must be on its thread).
    ///   - connectTimeoutNanoseconds: Budget for resolving plus connecting, all addresses
    ///     together, plus the TLS handshake; when it runs out the handler gets `.connectTimeout`.
    ///   - tls: Run TLS with this context (`nil`: plain TCP). The handler's
    ///     `channelDidConnect` then comes after the handshake and certificate verification;
    ///     a failure closes the channel with a `.tls` error.
    ///   - handler: Receives connect, read and close events; held until `channelDidClose`.
    /// - Returns: The channel, not yet connected. Frames appended to ``outbound`` and
    ///   flushed meanwhile are sent once connected. On a reactor that is shutting down the
    ///   channel closes with `.reactorShutdown` right after.
    public static func connect(host: String, port: Int, on reactor: Reactor, connectTimeoutNanoseconds: UInt64,
                               tls: TLSContext? = nil, handler: any ChannelHandler) -> TCPChannel {
        connect(host: host, port: port, on: reactor, connectTimeoutNanoseconds: connectTimeoutNanoseconds,
                tls: tls, handler: handler, addresses: nil)
    }

    /// ``connect(host:port:on:connectTimeoutNanoseconds:tls:handler:)`` with the resolution
    /// already done when `addresses` is given (tests use it for multi-address fallback).
    static func connect(host: String, port: Int, on reactor: Reactor, connectTimeoutNanoseconds: UInt64,
                        tls: TLSContext? = nil, handler: any ChannelHandler, addresses: [SocketAddress]?) -> TCPChannel {
        precondition(reactor.isInReactorThread, "TCPChannel.connect must be called on the reactor thread")
        let channel = TCPChannel(host: host, port: port, reactor: reactor, tls: tls, handler: handler)
        reactor.channelOpened(channel)
        if reactor.isShuttingDown {
            reactor.runSoon {
                channel.close(error: IOError(.reactorShutdown, context: "connect to \(channel.remoteDescription)"))
            }
            return channel
        }
        channel.connectTimer = reactor.scheduleTimer(afterNanoseconds: connectTimeoutNanoseconds) { [weak channel] in
            channel?.connectTimedOut()
        }
        if let known = addresses ?? SocketAddress(numericHost: host, port: port).map({ [$0] }) {
            reactor.runSoon { [weak channel] in channel?.resolved(.success(known)) }
        } else {
            Resolver.resolve(host: host, port: port, on: reactor) { [weak channel] result in
                channel?.resolved(result)
            }
        }
        return channel
    }

    /// The peer address of the established (or last attempted) connection, e.g. `127.0.0.1:9092`.
    var connectedAddressDescription: String? { currentAddress?.description }

    private func connectTimedOut() {
        connectTimer = nil
        switch state {
        case .resolving, .connecting:
            close(error: IOError(.connectTimeout, context: "connect to \(remoteDescription)"))
        case .handshaking:
            close(error: IOError(.connectTimeout, context: "TLS handshake with \(remoteDescription)"))
        case .connected, .closed:
            break
        }
    }

    private func resolved(_ result: Result<[SocketAddress], IOError>) {
        guard state == .resolving else { return }
        switch result {
        case .failure(let error):
            close(error: error)
        case .success(let resolved):
            addresses = resolved
            nextAddressIndex = 0
            state = .connecting
            connectToNextAddress()
        }
    }

    /// Starts a non-blocking connect to the next untried address; closes the channel with
    /// the last error when none is left.
    private func connectToNextAddress() {
        while nextAddressIndex < addresses.count {
            let address = addresses[nextAddressIndex]
            nextAddressIndex += 1
            currentAddress = address
            do {
                fd = try Posix.streamSocket(domain: address.family)
                try Posix.setNoDelay(fd)
                if let size = sendBufferSize {
                    try Posix.setOption(fd, level: SOL_SOCKET, name: SO_SNDBUF, value: size)
                }
                let connected = try Posix.connect(fd, to: address)
                registrationID = try reactor.register(self, fd: fd, interest: connected ? .read : .write)
                interest = connected ? .read : .write
                if connected { didConnect() }
                return
            } catch {
                lastConnectError = error.with(context: "connect to \(address)")
                releaseSocket()
            }
        }
        close(error: lastConnectError ?? IOError(.noAddresses(host: host)))
    }

    /// Handles readiness while connecting: `SO_ERROR` decides success or the next address.
    func finishConnect(_ event: ReadyEvent) {
        var code: Int32
        do {
            code = try Posix.pendingSocketError(fd)
        } catch {
            code = error.errno ?? EIO
        }
        if code == 0 && event.isWritable {
            // Established. A hang-up in the same event (the peer closed at once) is then
            // reported by the read path as `.peerClosed` or a reset.
            didConnect()
            return
        }
        if code == 0 { code = ECONNREFUSED }  // error/hang-up without a recorded error
        lastConnectError = IOError(.syscall(name: "connect", errno: code),
                                   context: "connect to \(currentAddress?.description ?? remoteDescription)")
        releaseSocket()
        connectToNextAddress()
    }

    /// Marks the channel connected, switches interest to reading, tells the handler,
    /// then sends whatever was queued before and during `channelDidConnect`. With TLS the
    /// handshake starts instead, still under the connect timer.
    private func didConnect() {
        if let tlsContext {
            startHandshake(tlsContext)
            return
        }
        state = .connected
        if let timer = connectTimer {
            reactor.cancelTimer(timer)
            connectTimer = nil
        }
        guard setInterest(.read) else { return }
        handler?.channelDidConnect(self)
        if state == .connected && pendingOutboundBytes > 0 { flush() }
    }
}
