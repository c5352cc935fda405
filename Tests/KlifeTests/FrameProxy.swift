import Foundation
import Glibc
import KlifeIO

/// A TCP proxy on a free loopback port in front of one broker that reads Kafka framing: it
/// remembers the API key of every request by its correlation id, and replaces the answers of
/// armed API keys with bytes that do not decode. It can also repair the mock's refusals of
/// JoinGroup and SyncGroup (see ``repairGroupRefusals(_:)``). Everything else passes unchanged.
///
/// The broker must advertise the proxy's port (``MockCluster/advertise(_:host:port:)``), so
/// that clients reach it through the proxy after their bootstrap.
///
/// ```
/// client ──► [size][apiKey][version][correlationID][clientID]…  ──► broker   (key remembered)
/// client ◄── [size][correlationID] + damage                      ◄── broker   (armed key)
/// ```
final class FrameProxy: Sendable {
    /// How an armed answer is damaged. Both keep the frame's size field and correlation id
    /// consistent, so the client reads exactly one frame.
    enum Damage: Sendable {
        /// The answer's header does not decode (a flexible header's tagged-field count is cut
        /// short): the client can trust nothing else on the connection.
        case header
        /// The header decodes, the body is one byte long and so does not.
        case body
    }

    /// The loopback port clients connect to.
    let port: Int
    private let upstreamPort: Int
    private let listener: Int32

    private struct State {
        var armed: [Int16: [Damage]] = [:]
        var repairing: Set<Int16> = []
        var repaired = 0
        var damaged: [Int16: Int] = [:]
        var accepted = 0
        var open: Set<Int32> = []
        var stopped = false
    }
    private let state = Locked(State())

    /// Starts listening in front of `127.0.0.1:upstreamPort`.
    init(upstreamPort: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MockClusterError(description: "socket: errno \(errno)") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw MockClusterError(description: "bind/listen: errno \(errno)")
        }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        listener = fd
        self.upstreamPort = upstreamPort
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    deinit { stop() }

    /// Damages the next answers to requests with `apiKey`, one damage per answer, in order.
    func damage(apiKey: Int16, _ damages: [Damage]) {
        state.withLock { $0.armed[apiKey, default: []] += damages }
    }

    /// Answers to `apiKey` damaged so far.
    func damaged(apiKey: Int16) -> Int { state.withLock { $0.damaged[apiKey] ?? 0 } }

    /// Rewrites the mock's refusals of JoinGroup (v2–v5) and SyncGroup (v1–v3) with these error
    /// codes into answers that decode. The mock writes them with nulls in fields that are not
    /// nullable (protocol name, leader and member id; the assignment), which a client reads as
    /// an answer that does not decode; the repair writes empty ones of the same width instead.
    func repairGroupRefusals(_ codes: Set<Int16>) {
        state.withLock { $0.repairing = codes }
    }

    /// Refusals repaired so far.
    var repaired: Int { state.withLock { $0.repaired } }

    /// Damages still armed for `apiKey`.
    func armed(apiKey: Int16) -> Int { state.withLock { $0.armed[apiKey]?.count ?? 0 } }

    /// Connections accepted so far (a client replacing a failed connection opens a new one).
    var connectionsAccepted: Int { state.withLock { $0.accepted } }

    /// Stops accepting and resets every open connection. Idempotent.
    func stop() {
        // Under the lock: a pump closes its sockets under it too, so no number here is reused.
        let first = state.withLock { s -> Bool in
            if s.stopped { return false }
            s.stopped = true
            for fd in s.open { shutdown(fd, Int32(SHUT_RDWR)) }
            return true
        }
        guard first else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    // MARK: Connections

    private static func loopback(port: UInt16) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        return addr
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = Self.loopback(port: UInt16(upstreamPort))
            let connected = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            let admitted = state.withLock { s -> Bool in
                guard !s.stopped, connected == 0 else { return false }
                s.accepted += 1
                s.open.formUnion([client, upstream])
                return true
            }
            guard admitted else {
                close(client)
                close(upstream)
                continue
            }
            let pair = ConnectionPair(client: client, upstream: upstream)
            Thread.detachNewThread { [self] in pumpRequests(pair) }
            Thread.detachNewThread { [self] in pumpAnswers(pair) }
        }
    }

    /// Client to broker: whole frames forwarded as they are, each request's key remembered.
    private func pumpRequests(_ pair: ConnectionPair) {
        var pending: [UInt8] = []
        while let chunk = Self.read(pair.client) {
            pending += chunk
            var forward: [UInt8] = []
            while let frame = Self.takeFrame(&pending) {
                if frame.count >= 12 {
                    let apiKey = Int16(bitPattern: UInt16(frame[4]) << 8 | UInt16(frame[5]))
                    let version = Int16(bitPattern: UInt16(frame[6]) << 8 | UInt16(frame[7]))
                    pair.keys.withLock { $0[Self.int32(frame, at: 8)] = (apiKey, version) }
                }
                forward += frame
            }
            if !forward.isEmpty && !Self.write(pair.upstream, forward) { break }
        }
        finish(pair)
    }

    /// Broker to client: an answer whose key is armed is replaced before it is forwarded.
    private func pumpAnswers(_ pair: ConnectionPair) {
        var pending: [UInt8] = []
        while let chunk = Self.read(pair.upstream) {
            pending += chunk
            var forward: [UInt8] = []
            while let frame = Self.takeFrame(&pending) {
                guard frame.count >= 8 else {
                    forward += frame
                    continue
                }
                let correlation = Self.int32(frame, at: 4)
                let request = pair.keys.withLock { $0.removeValue(forKey: correlation) }
                let apiKey = request?.apiKey
                let damage = apiKey.flatMap { key in
                    state.withLock { s -> Damage? in
                        guard var queue = s.armed[key], !queue.isEmpty else { return nil }
                        let first = queue.removeFirst()
                        s.armed[key] = queue
                        s.damaged[key, default: 0] += 1
                        return first
                    }
                }
                if let damage {
                    let body: [UInt8] = damage == .header ? [0xFF] : [0x00, 0xFF]
                    let size = UInt32(4 + body.count)
                    forward += [UInt8(size >> 24), UInt8(size >> 16 & 0xFF), UInt8(size >> 8 & 0xFF), UInt8(size & 0xFF)]
                    forward += frame[4..<8] + body
                } else if let request {
                    forward += repaired(frame, apiKey: request.apiKey, version: request.version)
                } else {
                    forward += frame
                }
            }
            if !forward.isEmpty && !Self.write(pair.client, forward) { break }
        }
        finish(pair)
    }

    /// `frame` with the null lengths of a repairable refusal set to 0 (same width, same size).
    ///
    ///     [size][correlation id][throttle:INT32][error:INT16] JoinGroup: [generation:INT32]
    ///       [protocol name:INT16 len][leader:INT16 len][member id:INT16 len][members:INT32]
    ///                                                         SyncGroup: [assignment:INT32 len]
    private func repaired(_ frame: [UInt8], apiKey: Int16, version: Int16) -> [UInt8] {
        let join = apiKey == 11 && (2...5).contains(version)
        let sync = apiKey == 14 && (1...3).contains(version)
        guard join || sync, frame.count >= 14 else { return frame }
        let code = Int16(bitPattern: UInt16(frame[12]) << 8 | UInt16(frame[13]))
        guard code != 0, state.withLock({ $0.repairing.contains(code) }) else { return frame }
        var fixed = frame
        if join {
            var at = 18
            for _ in 0..<3 {
                guard at + 2 <= fixed.count else { return frame }
                let length = Int16(bitPattern: UInt16(fixed[at]) << 8 | UInt16(fixed[at + 1]))
                if length == -1 {
                    fixed[at] = 0
                    fixed[at + 1] = 0
                }
                at += 2 + max(0, Int(length))
            }
        } else if fixed.count >= 18 && Self.int32(fixed, at: 14) == -1 {
            fixed.replaceSubrange(14..<18, with: [0, 0, 0, 0])
        }
        if fixed != frame { state.withLock { $0.repaired += 1 } }
        return fixed
    }

    /// The first pump to end shuts both sockets, which ends the other; the second closes them.
    private func finish(_ pair: ConnectionPair) {
        shutdown(pair.client, Int32(SHUT_RDWR))
        shutdown(pair.upstream, Int32(SHUT_RDWR))
        let last = pair.ended.withLock { ended -> Bool in
            ended += 1
            return ended == 2
        }
        guard last else { return }
        state.withLock { s in
            s.open.subtract([pair.client, pair.upstream])
            close(pair.client)
            close(pair.upstream)
        }
    }

    private static func takeFrame(_ pending: inout [UInt8]) -> [UInt8]? {
        guard pending.count >= 4 else { return nil }
        let size = Int(UInt32(bitPattern: int32(pending, at: 0)))
        guard pending.count >= 4 + size else { return nil }
        let frame = Array(pending[0..<(4 + size)])
        pending.removeFirst(4 + size)
        return frame
    }

    private static func int32(_ bytes: [UInt8], at offset: Int) -> Int32 {
        Int32(bitPattern: UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3]))
    }

    private static func read(_ fd: Int32) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 { return Array(buffer[0..<n]) }
            if n < 0 && errno == EINTR { continue }
            return nil
        }
    }

    private static func write(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + sent, $0.count - sent) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }
}

/// The two sockets of one proxied connection and what their pumps share.
private final class ConnectionPair: Sendable {
    let client: Int32
    let upstream: Int32
    /// API key and version of each request waiting for its answer, by correlation id.
    let keys = Locked<[Int32: (apiKey: Int16, version: Int16)]>([:])
    let ended = Locked(0)

    init(client: Int32, upstream: Int32) {
        self.client = client
        self.upstream = upstream
    }
}
