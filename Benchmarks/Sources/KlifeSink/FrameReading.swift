import Glibc

/// How a blocking read of an exact byte count ended.
enum ReadOutcome {
    /// Every byte was read.
    case complete
    /// The peer closed the connection before the first byte.
    case closed
    /// The read failed or the peer closed after the first byte.
    case failed(String)
}

/// Reads exactly `buffer.count` bytes from `descriptor`.
func readFully(_ descriptor: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> ReadOutcome {
    var done = 0
    while done < buffer.count {
        let n = read(descriptor, buffer.baseAddress! + done, buffer.count - done)
        if n > 0 { done += n; continue }
        if n == 0 { return done == 0 ? .closed : .failed("end of stream after \(done) of \(buffer.count) bytes") }
        if errno == EINTR { continue }
        if errno == ECONNRESET && done == 0 { return .closed }
        return .failed(String(cString: strerror(errno)))
    }
    return .complete
}

/// The request bytes of one connection, grown to the largest frame seen.
struct FrameBuffer: ~Copyable {
    private var storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 8)

    /// A buffer of exactly `count` bytes (contents undefined), valid until the next call.
    mutating func reserve(_ count: Int) -> UnsafeMutableRawBufferPointer {
        if storage.count < count {
            storage.deallocate()
            storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, storage.count * 2), alignment: 8)
        }
        return UnsafeMutableRawBufferPointer(rebasing: storage[0..<count])
    }

    deinit { storage.deallocate() }
}
