import Glibc

// Sending: two ByteWriters and one writev.
//
//   flushing: [ sent ........ | unsent (flushOffset..<count) ]   ← handed to the kernel in part
//   outbound: [ appended since the last flush ................ ]  ← the owner encodes into this
//
// A flush gathers `flushing[flushOffset...]` and all of `outbound` into one `writev`.
// When `flushing` is fully sent it is emptied (memory kept) and the two writers are
// swapped, so the next bytes to send are already in `flushing` and the owner appends into
// the emptied buffer: no allocation and no copying per write, whatever the kernel takes.
//
// Would-block turns EPOLLOUT interest on (writeBlocked); the EPOLLOUT event resumes the
// flush and, once everything is sent, interest drops back to EPOLLIN only, so
// level-triggered epoll never reports writability we do not need.
//
// With TLS, `outbound` is plaintext: a flush first encrypts it onto `sealed`, then swaps
// `sealed` into `outbound`'s place for the loop below, so ciphertext takes exactly the
// path plaintext takes without TLS, and back (TCPChannel+TLS.swift).

extension TCPChannel {
    /// Sends as much of ``outbound`` (and of earlier unsent bytes) as the socket takes now,
    /// one `writev` at a time, up to 16 calls or until the kernel would block. What is left
    /// is sent when the socket becomes writable again. Before the connection is established
    /// this does nothing: queued bytes are sent on connect. Reactor thread only. A write
    /// error closes the channel (the handler gets `channelDidClose` with it). With TLS the
    /// bytes are encrypted first (after the handshake, never before).
    public func flush() {
        assert(reactor.isInReactorThread, "TCPChannel.flush must be called on the reactor thread")
        guard state == .connected, !writeBlocked else { return }
        writePending()
    }

    /// EPOLLOUT arrived while blocked: continue the flush.
    func writable() {
        guard writeBlocked else {
            _ = setInterest(.read)  // spurious: nothing was waiting
            return
        }
        writeBlocked = false
        writePending()
    }

    /// Sends what is pending: plaintext as it is, or with TLS everything OpenSSL produced
    /// (handshake flights, alerts) and, once connected, `outbound` encrypted.
    func writePending() {
        guard let session = tls else {
            sendWireBytes()
            return
        }
        guard seal(with: session) else { return }
        swap(&outbound, &sealed)
        sendWireBytes()
        swap(&outbound, &sealed)
    }

    /// The writev loop over `flushing` and `outbound` (ciphertext with TLS, swapped in).
    private func sendWireBytes() {
        for _ in 0..<Self.writesPerFlush {
            if flushOffset == flushing.count {
                guard outbound.count > 0 else {
                    _ = setInterest(.read)
                    return
                }
                flushing.removeAll()
                flushOffset = 0
                swap(&flushing, &outbound)
            }
            let result: IOResult<Int>
            do {
                result = try writeOnce()
            } catch {
                close(error: peerAlert(explaining: error) ?? error.with(context: "write to \(remoteDescription)"))
                return
            }
            switch result {
            case .wouldBlock:
                wouldBlockCount += 1
                blockUntilWritable()
                return
            case .processed(let written):
                advance(by: written)
            }
        }
        if flushing.count - flushOffset + outbound.count > 0 {
            blockUntilWritable()  // write limit reached: yield to the loop, EPOLLOUT resumes
        } else {
            _ = setInterest(.read)
        }
    }

    private func blockUntilWritable() {
        writeBlocked = true
        _ = setInterest([.read, .write])
    }

    /// One `writev` of `[flushing unsent part, outbound]` (empty parts omitted).
    private func writeOnce() throws(IOError) -> IOResult<Int> {
        writevCount += 1
        let fd = self.fd
        let offset = flushOffset
        return try flushing.withUnsafeBytes { (first: UnsafeRawBufferPointer) throws(IOError) -> IOResult<Int> in
            try outbound.withUnsafeBytes { (second: UnsafeRawBufferPointer) throws(IOError) -> IOResult<Int> in
                var vectors = (iovec(), iovec())
                var count: Int32 = 0
                withUnsafeMutableBytes(of: &vectors) { raw in
                    let slots = raw.bindMemory(to: iovec.self)
                    if first.count > offset {
                        slots[0] = iovec(iov_base: UnsafeMutableRawPointer(mutating: first.baseAddress! + offset),
                                         iov_len: first.count - offset)
                        count = 1
                    }
                    if second.count > 0 {
                        slots[Int(count)] = iovec(iov_base: UnsafeMutableRawPointer(mutating: second.baseAddress!),
                                                  iov_len: second.count)
                        count += 1
                    }
                }
                return try withUnsafeBytes(of: &vectors) { (raw) throws(IOError) -> IOResult<Int> in
                    try Posix.writev(fd, raw.baseAddress!.assumingMemoryBound(to: iovec.self), count: count)
                }
            }
        }
    }

    /// Accounts for `written` bytes taken by the kernel: first from `flushing`, then from
    /// `outbound`, in which case the writers swap so the unsent rest is in `flushing`.
    private func advance(by written: Int) {
        let unsentInFlushing = flushing.count - flushOffset
        if written < unsentInFlushing {
            flushOffset += written
            return
        }
        let intoOutbound = written - unsentInFlushing
        flushing.removeAll()
        flushOffset = 0
        guard intoOutbound > 0 else { return }
        swap(&flushing, &outbound)
        if intoOutbound == flushing.count {
            flushing.removeAll()
        } else {
            flushOffset = intoOutbound
        }
    }
}
