public import KlifeProtocol

/// Reading a large frame straight into memory of its own.
///
/// A handler that meets the start of a large frame (a Fetch answer of megabytes) asks for its
/// bytes with ``TCPChannel/collectNext(_:pool:then:)``: the channel moves the part already
/// buffered into a ``ByteBlock`` of the frame's size and reads the rest from the socket into
/// that block, then hands the block over whole. The frame's bytes are then in the block the
/// records will be read from, with no copy out of the receive buffer (which also stops
/// growing to the size of the largest frame). Plain TCP only: with TLS the bytes are decrypted
/// into the receive buffer first, so the channel declines.
///
///     readBuffer: [ frames … | start of a large frame ]  ─ handler: collectNext(size) ─┐
///     block:      [ start (moved) | read(2) … read(2) ]  ◄──────────────────────────────┘
///     complete ─► then(channel, block) ─► unread bytes after it go to channelDidRead again
struct FrameCollection {
    /// The frame's memory, `filled` bytes of it written.
    let block: ByteBlock
    var filled: Int
    /// Called once with the complete block.
    let deliver: (TCPChannel, ByteBlock) -> Void
}

extension TCPChannel {
    /// Asks for the next `count` bytes of the stream — those right after the ones the current
    /// ``ChannelHandler/channelDidRead(_:_:)`` call reports as consumed — in a ``ByteBlock`` of
    /// their own, handed to `deliver` once all have arrived. Until then the handler sees no
    /// bytes; afterwards it sees what follows them. Call it from `channelDidRead` only.
    /// - Parameters:
    ///   - count: The frame's size in bytes (at least 1).
    ///   - pool: Where the block's memory comes from.
    ///   - deliver: Called on the reactor thread with the channel and the complete block.
    /// - Returns: `false` when the channel declines (TLS, or a collection already under way);
    ///   then nothing changed and the bytes come through `channelDidRead` as usual.
    public func collectNext(_ count: Int, pool: ByteBlockPool? = .shared,
                            then deliver: @escaping (TCPChannel, ByteBlock) -> Void) -> Bool {
        precondition(reactor.isInReactorThread, "TCPChannel.collectNext must be called on the reactor thread")
        guard tlsContext == nil, collecting == nil, count > 0, state == .connected else { return false }
        collecting = FrameCollection(block: ByteBlock(unfilledCount: count, pool: pool), filled: 0, deliver: deliver)
        return true
    }

    /// Hands the unread bytes to the handler, then moves any that belong to a frame it asked to
    /// collect into that frame's block, delivering it when complete and presenting what follows
    /// again. Returns `false` when the channel closed meanwhile.
    func presentUnreadBytes() -> Bool {
        while let handler {
            let consumed = readBuffer.withUnreadBytes { handler.channelDidRead(self, $0) }
            guard state == .connected else { return false }
            readBuffer.consume(consumed)
            guard collecting != nil else { return true }
            let moved = readBuffer.withUnreadBytes { unread -> Int in
                let target = collecting!.block.unsafeWritableBytes
                let n = min(unread.count, target.count - collecting!.filled)
                if n > 0 {
                    UnsafeMutableRawBufferPointer(rebasing: target[collecting!.filled...]).copyMemory(
                        from: UnsafeRawBufferPointer(rebasing: unread[..<n]))
                }
                return n
            }
            readBuffer.consume(moved)
            collecting!.filled += moved
            guard collecting!.filled == collecting!.block.count else { return true }
            guard deliverCollected() else { return false }
            if readBuffer.unreadCount == 0 { return true }
        }
        return false
    }

    /// One `read` straight into the frame being collected; delivers it when complete.
    /// Returns `false` when reading should stop for this event (would block, a short read,
    /// or the channel closed).
    func readIntoCollection() -> Bool {
        let target = collecting!.block.unsafeWritableBytes
        let space = UnsafeMutableRawBufferPointer(rebasing: target[collecting!.filled...])
        let result: IOResult<Int>
        do {
            result = try Posix.read(fd, into: space)
        } catch {
            close(error: error.with(context: "read from \(remoteDescription)"))
            return false
        }
        switch result {
        case .wouldBlock:
            return false
        case .processed(0):
            close(error: IOError(.peerClosed, context: "connection to \(remoteDescription)"))
            return false
        case .processed(let n):
            readCount += 1
            collecting!.filled += n
            if collecting!.filled < collecting!.block.count { return n == space.count }
            return deliverCollected()
        }
    }

    /// Hands the complete block over. Returns `false` when the channel closed meanwhile.
    private func deliverCollected() -> Bool {
        let done = collecting!
        collecting = nil
        collectedFrameCount += 1
        done.deliver(self, done.block)
        return state == .connected
    }
}
