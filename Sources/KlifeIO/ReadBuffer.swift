/// A channel's reusable receive buffer.
///
///     base
///     [ consumed ......... | unread ............ | free ............ ]
///     0                  start                 end           capacity
///
/// Reads append at `end`; the handler sees `start..<end` and reports how many bytes it
/// consumed, which advances `start`. When unread bytes catch up with `end` both reset
/// to 0 (no copy). Before a read, if the free tail is small the unread bytes move to the
/// front; if the buffer is then still full (the handler consumed nothing: a frame larger
/// than the buffer) it doubles. Memory is allocated once and grows only on demand.
///
/// The raw pointer never leaves this type except as a buffer pointer valid during
/// ``withUnreadBytes(_:)``.
struct ReadBuffer: ~Copyable {
    private var base: UnsafeMutableRawPointer
    /// Allocated bytes.
    private(set) var capacity: Int
    private var start = 0
    private var end = 0
    /// Whether the last read filled all free space (more data is probably waiting).
    private(set) var lastReadFilledSpace = false

    /// Creates a buffer of `capacity` bytes.
    init(capacity: Int) {
        self.capacity = max(capacity, 64)
        base = .allocate(byteCount: self.capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    /// Bytes received and not yet consumed.
    var unreadCount: Int { end - start }

    /// Makes room for the next read: compacts when the free tail is below a quarter of the
    /// capacity, and doubles when the buffer is full of unread bytes.
    mutating func prepareForRead() {
        guard capacity - end < capacity / 4 else { return }
        if start > 0 {
            if start < end { base.copyMemory(from: base + start, byteCount: end - start) }
            end -= start
            start = 0
        }
        if end == capacity { grow() }
    }

    private mutating func grow() {
        let newCapacity = capacity * 2
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        newBase.copyMemory(from: base + start, byteCount: end - start)
        base.deallocate()
        base = newBase
        end -= start
        start = 0
        capacity = newCapacity
    }

    /// Reads from `fd` into the free tail (call ``prepareForRead()`` first).
    /// - Returns: bytes read (0 at end of stream) or `.wouldBlock`.
    /// - Throws: ``IOError`` from `read`, e.g. ECONNRESET.
    mutating func read(from fd: Int32) throws(IOError) -> IOResult<Int> {
        let space = UnsafeMutableRawBufferPointer(start: base + end, count: capacity - end)
        let result = try Posix.read(fd, into: space)
        if case .processed(let n) = result {
            end += n
            lastReadFilledSpace = n == space.count
        }
        return result
    }

    /// Lets `body` write into the free tail (call ``prepareForRead()`` first): it returns how
    /// many bytes it wrote, with its own result. Used for decrypted TLS data.
    mutating func fill<R>(_ body: (UnsafeMutableRawBufferPointer) -> (written: Int, result: R)) -> R {
        let space = UnsafeMutableRawBufferPointer(start: base + end, count: capacity - end)
        let (written, result) = body(space)
        precondition(written >= 0 && written <= space.count, "fill wrote outside the free space")
        end += written
        return result
    }

    /// Calls `body` with the unread bytes. The pointer is valid only inside `body`.
    func withUnreadBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        body(UnsafeRawBufferPointer(start: base + start, count: end - start))
    }

    /// Marks `count` unread bytes as consumed.
    mutating func consume(_ count: Int) {
        precondition(count >= 0 && count <= end - start,
                     "channelDidRead returned \(count), but only \(end - start) bytes were offered")
        start += count
        if start == end {
            start = 0
            end = 0
        }
    }

    /// Forgets all bytes (the memory is kept until the channel is freed).
    mutating func reset() {
        start = 0
        end = 0
        lastReadFilledSpace = false
    }
}
