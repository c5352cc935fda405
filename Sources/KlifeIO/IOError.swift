import Glibc

/// An error from the I/O layer: a failed system call, a connect timeout, a closed
/// connection, a failed name resolution, a failed TLS session, or a channel closed by shutdown.
///
/// ``kind`` is what code should switch on; ``description`` is for people and logs,
/// for example `connect to 127.0.0.1:9092 failed: Connection refused (errno 111)`.
public struct IOError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// A system call failed with `errno` (EINTR is retried and would-block is not an error).
        case syscall(name: String, errno: Int32)
        /// The connection was not established within the connect timeout.
        case connectTimeout
        /// The peer closed the connection in an orderly way (a read returned 0).
        case peerClosed
        /// `getaddrinfo` failed for `host`; `reason` is its message.
        case resolveFailed(host: String, reason: String)
        /// `host` resolved, but to no usable address.
        case noAddresses(host: String)
        /// The owner closed the channel (available to clients for their own requests;
        /// ``TCPChannel/close()`` itself reports `nil`).
        case closedByUser
        /// The reactor shut down while the channel was open.
        case reactorShutdown
        /// TLS failed: the handshake (including certificate verification) or a record.
        case tls(TLSFailure)
    }

    /// What went wrong.
    public var kind: Kind
    /// What was being done, such as `connect to 127.0.0.1:9092`; used in ``description``.
    public var context: String?

    /// Creates an error.
    /// - Parameters:
    ///   - kind: What went wrong.
    ///   - context: What was being done, such as `connect to 127.0.0.1:9092`.
    public init(_ kind: Kind, context: String? = nil) {
        self.kind = kind
        self.context = context
    }

    /// The `errno` value when ``kind`` is ``Kind/syscall(name:errno:)``, else `nil`.
    public var errno: Int32? {
        if case .syscall(_, let code) = kind { return code }
        return nil
    }

    /// A one-line message, e.g. `connect to 127.0.0.1:9092 failed: Connection refused (errno 111)`.
    public var description: String {
        switch kind {
        case .syscall(let name, let code):
            return "\(context ?? name) failed: \(IOError.message(forErrno: code)) (errno \(code))"
        case .connectTimeout:
            return "\(context ?? "connect") timed out"
        case .peerClosed:
            return "\(context ?? "connection"): closed by peer"
        case .resolveFailed(let host, let reason):
            return "resolving \(host) failed: \(reason)"
        case .noAddresses(let host):
            return "resolving \(host) returned no usable addresses"
        case .closedByUser:
            return "\(context ?? "channel"): closed by user"
        case .reactorShutdown:
            return "\(context ?? "channel"): reactor shut down"
        case .tls(let failure):
            return "\(context ?? "TLS") failed: \(failure)"
        }
    }

    /// The C library's text for an errno value (glibc's `strerror` is thread-safe for known codes).
    static func message(forErrno code: Int32) -> String {
        guard let text = strerror(code) else { return "Unknown error" }
        return String(cString: text)
    }

    /// Returns a copy with `context` set (used when an error crosses into a channel).
    func with(context: String) -> IOError {
        var copy = self
        copy.context = context
        return copy
    }
}
