import Glibc
import Klife

/// A runtime failure the CLI reports as `klife: error: <message>` with exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}

extension CommandFailure {
    /// Runs `body`; what it throws becomes a failure of the command, described as the error is.
    static func reporting<T>(_ body: () throws -> T) throws(CommandFailure) -> T {
        do {
            return try body()
        } catch {
            throw CommandFailure("\(error)")
        }
    }
}

/// Thrown when stdout's reader went away (`klife consume | head`): the command stops quietly.
struct OutputClosed: Error {}

/// Writes one line to stderr, unbuffered.
func printError(_ text: String) {
    var line = text
    line.append("\n")
    var bytes = Array(line.utf8)
    _ = try? writeAll(fd: 2, &bytes[...])
}

/// Writes a runtime error in the standard `klife: error:` form.
func reportError(_ text: String) {
    printError("klife: error: \(text)")
}

/// Writes a warning in the standard `klife: warning:` form.
func reportWarning(_ text: String) {
    printError("klife: warning: \(text)")
}

/// Writes all of `bytes` to `fd`, retrying short writes and `EINTR`.
/// - Throws: ``OutputClosed`` on `EPIPE`, ``CommandFailure`` on other errors.
private func writeAll(fd: Int32, _ bytes: inout ArraySlice<UInt8>) throws {
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 {
            let code = errno
            if code == EINTR { continue }
            if code == EPIPE { throw OutputClosed() }
            throw CommandFailure("write to fd \(fd) failed: \(String(cString: strerror(code)))")
        }
        bytes = bytes.dropFirst(written)
    }
}

/// A byte buffer in front of a file descriptor (stdout by default), so printing
/// a record costs an append, not a system call. Call ``flush()`` to write it out.
struct OutputBuffer {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private let limit: Int

    /// Creates a buffer that writes to `fd` whenever it holds `limit` bytes.
    init(fd: Int32 = 1, limit: Int = 64 << 10) {
        self.fd = fd
        self.limit = limit
        buffer.reserveCapacity(limit + 1024)
    }

    /// Appends bytes.
    mutating func write<C: Collection<UInt8>>(_ bytes: C) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= limit { try flush() }
    }

    /// Appends a record's key or value, or `null` for a null one (one copy, from the fetched bytes).
    mutating func write(_ bytes: RecordBytes?, null: [UInt8]) throws {
        guard let bytes else { return try write(null) }
        bytes.withUnsafeBytes { buffer.append(contentsOf: $0) }
        if buffer.count >= limit { try flush() }
    }

    /// Appends UTF-8 text.
    mutating func write(_ text: String) throws {
        try write(text.utf8)
    }

    /// Appends a line of text.
    mutating func line(_ text: String = "") throws {
        try write(text.utf8)
        try write(CollectionOfOne(UInt8(ascii: "\n")))
    }

    /// Writes out everything buffered.
    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        var pending = buffer[...]
        defer { buffer.removeAll(keepingCapacity: true) }
        try writeAll(fd: fd, &pending)
    }
}

/// Number formatting shared by the summaries.
enum Format {
    /// `1234567` as `1,234,567`.
    static func grouped<T: BinaryInteger>(_ value: T) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return value < 0 ? "-" + out : out
    }

    /// Seconds of a duration as a `Double`.
    static func seconds(_ duration: Duration) -> Double {
        let (s, atto) = duration.components
        return Double(s) + Double(atto) / 1e18
    }

    /// `0.123 s` or `45 ms`, whichever reads better.
    static func elapsed(_ duration: Duration) -> String {
        let s = seconds(duration)
        if s >= 1 { return fixed(s, digits: 2) + " s" }
        return fixed(s * 1000, digits: s < 0.01 ? 1 : 0) + " ms"
    }

    /// Items per second, grouped: `181,818`.
    static func rate(_ count: Int, _ duration: Duration) -> String {
        let s = seconds(duration)
        guard s > 0 else { return "∞" }
        return grouped(Int((Double(count) / s).rounded()))
    }

    /// A fixed-point rendering without Foundation: `fixed(3.14159, digits: 2)` is `3.14`.
    static func fixed(_ value: Double, digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = Int64((abs(value) * scale).rounded())
        let whole = scaled / Int64(scale)
        var text = (value < 0 && scaled != 0 ? "-" : "") + String(whole)
        if digits > 0 {
            let fraction = String(scaled % Int64(scale))
            text += "." + String(repeating: "0", count: digits - fraction.count) + fraction
        }
        return text
    }
}
