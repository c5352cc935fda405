import Glibc

/// An IPv4 or IPv6 socket address (address + port), stored by value in a
/// `sockaddr_storage` so it can cross threads (the resolver posts them to the reactor).
///
/// The only place that reinterprets the storage as `sockaddr`/`sockaddr_in`/`sockaddr_in6`
/// is this type; callers get a pointer only for the duration of ``withSockaddr(_:)``.
struct SocketAddress: Sendable, Equatable, CustomStringConvertible {
    private var storage: sockaddr_storage
    /// The significant length of ``storage`` (`sizeof(sockaddr_in)` or `sizeof(sockaddr_in6)`).
    let length: socklen_t

    /// `AF_INET` or `AF_INET6`.
    var family: Int32 { Int32(storage.ss_family) }

    /// Copies `length` bytes of a socket address (e.g. from `addrinfo.ai_addr`).
    /// Returns `nil` for families other than IPv4/IPv6.
    init?(copying address: UnsafePointer<sockaddr>, length: socklen_t) {
        let family = Int32(address.pointee.sa_family)
        guard family == AF_INET || family == AF_INET6,
              Int(length) <= MemoryLayout<sockaddr_storage>.size else { return nil }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(length)))
        }
        self.storage = storage
        self.length = length
    }

    /// Parses a numeric IPv4 (`127.0.0.1`) or IPv6 (`::1`, `[::1]`) literal. Returns `nil`
    /// for anything else, including host names, so callers fall back to the resolver.
    init?(numericHost host: String, port: Int) {
        guard (0...65535).contains(port) else { return nil }
        var text = host
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        var storage = sockaddr_storage()
        let ok: Bool = withUnsafeMutableBytes(of: &storage) { raw in
            let base = raw.baseAddress!
            var v4 = sockaddr_in()
            if inet_pton(AF_INET, text, &v4.sin_addr) == 1 {
                v4.sin_family = sa_family_t(AF_INET)
                v4.sin_port = in_port_t(UInt16(port).bigEndian)
                base.storeBytes(of: v4, as: sockaddr_in.self)
                return true
            }
            var v6 = sockaddr_in6()
            if inet_pton(AF_INET6, text, &v6.sin6_addr) == 1 {
                v6.sin6_family = sa_family_t(AF_INET6)
                v6.sin6_port = in_port_t(UInt16(port).bigEndian)
                base.storeBytes(of: v6, as: sockaddr_in6.self)
                return true
            }
            return false
        }
        guard ok else { return nil }
        self.storage = storage
        self.length = socklen_t(Int32(storage.ss_family) == AF_INET
            ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
    }

    /// The port in host byte order.
    var port: Int {
        withUnsafeBytes(of: storage) { raw in
            family == AF_INET
                ? Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port))
                : Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port))
        }
    }

    /// The numeric address without port, e.g. `127.0.0.1` or `::1`.
    var ipString: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        withUnsafeBytes(of: storage) { raw in
            if family == AF_INET {
                var addr = raw.load(as: sockaddr_in.self).sin_addr
                _ = inet_ntop(AF_INET, &addr, &text, socklen_t(text.count))
            } else {
                var addr = raw.load(as: sockaddr_in6.self).sin6_addr
                _ = inet_ntop(AF_INET6, &addr, &text, socklen_t(text.count))
            }
        }
        return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// `127.0.0.1:9092` or `[::1]:9092`.
    var description: String {
        family == AF_INET6 ? "[\(ipString)]:\(port)" : "\(ipString):\(port)"
    }

    /// Calls `body` with the address as a `sockaddr` pointer and its length (for
    /// `connect`/`bind`). The pointer must not escape `body`.
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        var copy = storage
        return try withUnsafePointer(to: &copy) { p in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, length) }
        }
    }

    static func == (lhs: SocketAddress, rhs: SocketAddress) -> Bool {
        guard lhs.length == rhs.length else { return false }
        return withUnsafeBytes(of: lhs.storage) { l in
            withUnsafeBytes(of: rhs.storage) { r in
                memcmp(l.baseAddress!, r.baseAddress!, Int(lhs.length)) == 0
            }
        }
    }
}
