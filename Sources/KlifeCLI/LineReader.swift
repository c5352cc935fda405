import Glibc

/// Reads a file descriptor (stdin by default) one `\n`-terminated line at a time, without
/// Foundation. The final line may lack its newline. Waits with `poll` in short slices so a
/// caller-supplied stop condition (such as Ctrl-C) is noticed even while input is idle.
struct LineReader {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var scanned = 0
    private var atEnd = false
    private let chunk = 64 << 10

    /// Creates a reader of `fd`.
    init(fd: Int32 = 0) {
        self.fd = fd
        buffer.reserveCapacity(chunk * 2)
    }

    /// The next line without its trailing `\n`, or `nil` at end of input or when
    /// `shouldStop` returns `true` while waiting for input.
    mutating func next(shouldStop: () -> Bool = { false }) throws -> [UInt8]? {
        while true {
            if let newline = findNewline() {
                let line = Array(buffer[start..<newline])
                start = newline + 1
                scanned = start
                return line
            }
            scanned = buffer.count
            if atEnd {
                guard start < buffer.count else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                return line
            }
            guard try fill(shouldStop: shouldStop) else { return nil }
        }
    }

    /// Index of the first `\n` at or after `scanned` (memchr: fast even in debug builds).
    private func findNewline() -> Int? {
        guard scanned < buffer.count else { return nil }
        return buffer.withUnsafeBufferPointer { bytes -> Int? in
            guard let base = bytes.baseAddress,
                  let hit = memchr(base + scanned, Int32(UInt8(ascii: "\n")), bytes.count - scanned) else { return nil }
            return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Reads more input; `false` when stopped.
    private mutating func fill(shouldStop: () -> Bool) throws -> Bool {
        if start > 0 {
            buffer.removeSubrange(0..<start)
            scanned -= start
            start = 0
        }
        while true {
            if shouldStop() { return false }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 200)
            if ready == 0 { continue }
            if ready < 0 {
                let error = errno
                if error == EINTR { continue }
                throw CommandFailure("poll on fd \(fd) failed: \(String(cString: strerror(error)))")
            }
            let old = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: chunk))
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + old, chunk) }
            let error = errno
            buffer.removeLast(chunk - max(n, 0))
            if n > 0 { return true }
            if n == 0 { atEnd = true; return true }
            if error == EINTR || error == EAGAIN { continue }
            throw CommandFailure("reading stdin failed: \(String(cString: strerror(error)))")
        }
    }
}
