import CKlifeShim
import Glibc

/// Carries a reactor-confined value through another thread and back.
///
/// The value is created on the reactor thread, only carried (never used) by the other
/// thread, and unwrapped by ``take()``, which traps unless called on the reactor thread.
struct ReactorBound<Value>: @unchecked Sendable {
    // @unchecked Sendable is sound because the wrapped value is only ever *used* on the
    // owning reactor's thread (`take()` checks it). Other threads may hold, and at worst
    // release, the box; reference counting is atomic, so that is race-free.
    private let value: Value
    private let reactor: Reactor

    init(_ value: Value, on reactor: Reactor) {
        self.value = value
        self.reactor = reactor
    }

    /// The value; reactor thread only.
    func take() -> Value {
        precondition(reactor.isInReactorThread, "a reactor-bound value was used off its reactor thread")
        return value
    }
}

/// Host name resolution that never blocks the reactor: `getaddrinfo` runs on a short-lived
/// detached thread and the answer comes back as a submitted task.
enum Resolver {
    /// Resolves `host` on a background thread and calls `completion` on the reactor thread.
    /// If the reactor shuts down first, `completion` is dropped without being called.
    /// - Parameters:
    ///   - host: A name (`localhost`, `broker-1.example`) or a numeric address.
    ///   - port: The TCP port every returned address carries.
    ///   - reactor: Where `completion` runs; must be the calling thread's reactor.
    ///   - completion: Gets the addresses (IPv6 and IPv4, in `getaddrinfo`'s preference
    ///     order, duplicates removed) or an ``IOError`` (`resolveFailed`, `noAddresses`).
    static func resolve(host: String, port: Int, on reactor: Reactor,
                        completion: @escaping (Result<[SocketAddress], IOError>) -> Void) {
        let callback = ReactorBound(completion, on: reactor)
        do {
            _ = try OSThread.spawn(name: "klife-resolve", detached: true) {
                let result = resolveBlocking(host: host, port: port)
                reactor.submit { callback.take()(result) }
            }
        } catch {
            reactor.runSoon { completion(.failure(IOError(.resolveFailed(host: host, reason: "\(error)")))) }
        }
    }

    /// Runs `getaddrinfo(host, port, SOCK_STREAM, AF_UNSPEC)`. Blocks; not for the reactor thread.
    static func resolveBlocking(host: String, port: Int) -> Result<[SocketAddress], IOError> {
        guard (0...65535).contains(port) else {
            return .failure(IOError(.resolveFailed(host: host, reason: "port \(port) is out of range")))
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let code = getaddrinfo(name, String(port), &hints, &list)
        guard code == 0 else {
            let reason = code == EAI_SYSTEM ? IOError.message(forErrno: errno) : String(cString: gai_strerror(code))
            return .failure(IOError(.resolveFailed(host: host, reason: reason)))
        }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var entry = list
        while let info = entry {
            if let raw = info.pointee.ai_addr,
               let address = SocketAddress(copying: raw, length: info.pointee.ai_addrlen),
               !addresses.contains(address) {
                addresses.append(address)
            }
            entry = info.pointee.ai_next
        }
        return addresses.isEmpty ? .failure(IOError(.noAddresses(host: host))) : .success(addresses)
    }
}
