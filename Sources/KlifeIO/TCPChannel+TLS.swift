// TLS on a channel: the same socket path, with a TLSSession between it and the handler.
//
//   TCP connected ──▶ handshaking ──established──▶ connected: channelDidConnect
//                        │  ▲ flights via sealed/writev, replies via readBuffer
//                        └──┴──▶ closed: .tls(failure) | .connectTimeout | closed during handshake
//
//   read:  socket ─▶ readBuffer (ciphertext, all consumed at once) ─▶ session ─▶ decrypted ─▶ handler
//   write: handler ─▶ outbound (plaintext) ─▶ session ─▶ sealed (ciphertext) ─▶ writev
//
// The copies TLS adds are the ones memory BIOs need: readBuffer into OpenSSL, OpenSSL's
// output into `sealed`. Both buffers are reused for the channel's life.

extension TCPChannel {
    /// TCP is up: make the session and send the ClientHello. The connect timer keeps
    /// running until the handshake completes.
    func startHandshake(_ context: TLSContext) {
        state = .handshaking
        guard setInterest(.read) else { return }
        do {
            tls = try TLSSession(context: context, host: host)
        } catch {
            close(error: IOError(.tls(error), context: "TLS handshake with \(remoteDescription)"))
            return
        }
        continueHandshake()
    }

    /// Runs the handshake as far as the received bytes allow and sends its output (on a
    /// failure that is the alert telling the peer why, sent before the channel closes).
    private func continueHandshake() {
        guard let session = tls else { return }
        let progress = session.handshake()
        if !writeBlocked { writePending() }
        guard state == .handshaking else { return }
        switch progress {
        case .pending:
            return
        case .established:
            handshakeCompleted()
        case .failed(let failure):
            close(error: IOError(.tls(failure), context: "TLS handshake with \(remoteDescription)"))
        }
    }

    /// Like a plain connect completing: tell the handler, deliver any application data that
    /// came with the last flight, send what was queued meanwhile.
    private func handshakeCompleted() {
        state = .connected
        if let timer = connectTimer {
            reactor.cancelTimer(timer)
            connectTimer = nil
        }
        handler?.channelDidConnect(self)
        guard state == .connected else { return }
        deliverDecrypted()
        if state == .connected && pendingOutboundBytes > 0 { flush() }
    }

    /// Hands everything just read to the session and advances the handshake or decrypts.
    /// - Returns: `false` when the channel closed.
    func receiveCiphertext() -> Bool {
        guard let session = tls else { return false }
        let accepted = readBuffer.withUnreadBytes { session.receive($0) }
        readBuffer.consume(readBuffer.unreadCount)
        guard accepted else {
            close(error: IOError(.tls(TLSFailure(stage: session.hasReceivedApplicationData ? .session : .handshake,
                                                 reason: "OpenSSL could not buffer received bytes (out of memory)")),
                                 context: "TLS with \(remoteDescription)"))
            return false
        }
        switch state {
        case .handshaking: continueHandshake()
        case .connected: deliverDecrypted()
        case .resolving, .connecting, .closed: break
        }
        return state != .closed
    }

    /// Decrypts every complete record received, offering the plaintext to the handler after
    /// each one. A close_notify closes with `.peerClosed`, a bad record with `.tls`.
    private func deliverDecrypted() {
        guard let session = tls else { return }
        while state == .connected {
            decrypted.prepareForRead()
            let outcome = decrypted.fill { space -> (written: Int, result: TLSSession.ReadOutcome) in
                let outcome = session.decrypt(into: space)
                if case .bytes(let count) = outcome { return (count, outcome) }
                return (0, outcome)
            }
            switch outcome {
            case .bytes:
                guard let handler else { return }
                let consumed = decrypted.withUnreadBytes { handler.channelDidRead(self, $0) }
                guard state == .connected else { return }
                decrypted.consume(consumed)
            case .needsInput:
                // Reading may have produced output (a TLS 1.3 key update answer) or unblocked
                // a write that needed a read first.
                if !writeBlocked && (session.hasCiphertext || outbound.count > 0) { writePending() }
                return
            case .closedByPeer:
                close(error: IOError(.peerClosed, context: "TLS connection to \(remoteDescription) (close_notify)"))
                return
            case .failed(let failure):
                let what = failure.stage == .handshake ? "TLS handshake with" : "TLS with"
                close(error: IOError(.tls(failure), context: "\(what) \(remoteDescription)"))
                return
            }
        }
    }

    /// Moves OpenSSL's pending output into `sealed`, then (once connected) encrypts all of
    /// `outbound` onto it, chunk by chunk so OpenSSL's buffer stays small.
    /// - Returns: `false` when the channel closed.
    func seal(with session: TLSSession) -> Bool {
        guard session.takeCiphertext(into: &sealed) else { return failSealing(session) }
        guard state == .connected, outbound.count > 0 else { return true }
        var encrypted = 0
        var failure: TLSFailure?
        var sealedAll = true
        outbound.withUnsafeBytes { plaintext in
            while encrypted < plaintext.count {
                switch session.encrypt(UnsafeRawBufferPointer(rebasing: plaintext[encrypted...])) {
                case .wrote(let count):
                    encrypted += count
                    sealedAll = session.takeCiphertext(into: &sealed)
                    if !sealedAll { return }
                case .needsInput:
                    return   // the rest waits in `outbound` until the peer's bytes arrive
                case .failed(let error):
                    failure = error
                    return
                }
            }
        }
        if encrypted == outbound.count {
            outbound.removeAll()
        } else {
            outbound.removeFirst(encrypted)
        }
        if let failure {
            close(error: IOError(.tls(failure), context: "TLS with \(remoteDescription)"))
            return false
        }
        return sealedAll || failSealing(session)
    }

    private func failSealing(_ session: TLSSession) -> Bool {
        close(error: IOError(.tls(TLSFailure(stage: session.hasReceivedApplicationData ? .session : .handshake,
                                             reason: "OpenSSL's output buffer returned fewer bytes than it held")),
                             context: "TLS with \(remoteDescription)"))
        return false
    }

    /// A write failed (a reset) before any application data arrived: a peer that rejected
    /// the handshake sends an alert and closes, and our next write meets the reset while
    /// the alert still waits in the socket. Reads it (into scratch: the channel is closing)
    /// so the error names the peer's reason; `nil` when there is no such alert.
    func peerAlert(explaining error: IOError) -> IOError? {
        guard let session = tls, !session.hasReceivedApplicationData, fd >= 0 else { return nil }
        var scratch = [UInt8](repeating: 0, count: 16 * 1024)
        for _ in 0..<Self.readsPerEvent {
            let result = try? scratch.withUnsafeMutableBytes { (space) throws(IOError) in try Posix.read(fd, into: space) }
            guard case .processed(let count)? = result, count > 0 else { break }
            guard scratch.withUnsafeBytes({ session.receive(UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }) else { break }
        }
        let outcome: TLSSession.ReadOutcome
        if state == .handshaking {
            guard case .failed(let failure) = session.handshake() else { return nil }
            outcome = .failed(failure)
        } else {
            outcome = scratch.withUnsafeMutableBytes { session.decrypt(into: $0) }
        }
        guard case .failed(let failure) = outcome else { return nil }
        return IOError(.tls(failure), context: "TLS handshake with \(remoteDescription)")
    }

    /// The error for an end of stream before the handshake completed: typically a peer that
    /// does not speak TLS on this port, or one that rejected us without an alert.
    static func closedDuringHandshake(_ remote: String) -> IOError {
        IOError(.tls(TLSFailure(stage: .handshake,
                                reason: "the peer closed the connection during the handshake (is this a TLS port?)")),
                context: "TLS handshake with \(remote)")
    }
}
