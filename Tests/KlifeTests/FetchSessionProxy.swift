import Foundation
import Glibc
import KlifeProtocol

/// The broker's side of incremental fetch sessions (KIP-227), put in front of brokers that have
/// none (librdkafka's mock cluster echoes the session id it is sent; Tansu always answers 0).
///
/// One listener on `127.0.0.1` per upstream broker; each accepted connection gets its own
/// upstream connection and thread, and is served like a Kafka broker serves one: one request
/// at a time, in order. Every request but Fetch v7+ passes through byte for byte. A Fetch is
/// answered as a broker with a session cache would:
///
///     epoch -1        close the named session (if any); forwarded as it is, session id 0
///     epoch 0         close the named session, open a new one holding the request's partitions;
///                     forwarded without session fields; the answer names the new id
///     epoch N > 0     unknown id: FETCH_SESSION_ID_NOT_FOUND; wrong epoch: INVALID_FETCH_SESSION_EPOCH;
///                     else the request's partitions are added or updated, then the forgotten ones
///                     removed; upstream gets every partition the session holds, at the offsets it
///                     holds; the answer keeps partitions with records, an error, or a changed
///                     high watermark, last stable offset or log start offset
///
/// A top-level error from upstream (the mock's injected errors) is passed on with no
/// partitions; `FETCH_SESSION_ID_NOT_FOUND` also drops the session, as a broker that lost it
/// would, and a full fetch so answered opens none. Faults of its own go into incremental
/// fetches (``inject(_:)``). Produce with `acks = 0` (no answer) is not supported.
final class FetchSessionProxy: @unchecked Sendable {
    // @unchecked: `cache` and `counters` are guarded by `lock`; listener and connection file
    // descriptors are owned by their threads, `stop()` only shuts them down.

    /// What the proxy saw, for assertions.
    struct Counters: Sendable {
        /// Fetches with epoch 0 (opening a session).
        var full = 0
        /// Fetches with an epoch above 0 that matched their session.
        var incremental = 0
        /// Incremental fetches that listed no partition at all.
        var emptyIncremental = 0
        /// Fetches with epoch -1 (no session, or closing one) and fetches before v7.
        var sessionless = 0
        /// Epoch -1 fetches that closed a session the proxy held.
        var closes = 0
        /// Partitions listed in incremental fetches.
        var partitionsSentIncrementally = 0
        /// Partitions named in forgotten_topics_data.
        var forgotten = 0
        /// The same, by partition number.
        var forgottenByPartition: [Int32: Int] = [:]
        /// Answers FETCH_SESSION_ID_NOT_FOUND (unknown id) and INVALID_FETCH_SESSION_EPOCH given.
        var sessionNotFound = 0
        var invalidEpoch = 0
        /// A partition both sent and forgotten in one request (the broker would drop it).
        var sentAndForgotten = 0
        /// Partitions of answers that a sessionless broker would have sent but the session left out.
        var partitionsLeftOut = 0
        /// Full fetches naming a session the proxy held (which they close).
        var fullClosingHeld = 0
        /// Faults of ``inject(_:)`` applied.
        var faults = 0
    }

    /// A fault for an incremental fetch, applied once to the first that allows it (any broker).
    /// Faults apply in the order queued, at most one per fetch.
    enum Fault: Sendable {
        /// The fetch is answered with this top-level error and no partitions, without reaching
        /// the broker. The session stays as it was (`FETCH_SESSION_ID_NOT_FOUND` drops it).
        case topLevel(KafkaErrorCode)
        /// In an answer of a session holding partition `partition`, that partition carries
        /// `code` and no records.
        case partition(Int32, KafkaErrorCode)
        /// The answer also names partition `partition`, which the session does not hold (no
        /// records; with the topic of a partition the session holds).
        case stray(Int32)
    }

    private struct Key: Hashable {
        var name: String
        var id: KafkaUUID
        var partition: Int32
    }

    private struct Held {
        var request: FetchRequest.Partition
        var highWatermark: Int64?
        var lastStableOffset: Int64?
        var logStartOffset: Int64?
    }

    private struct Session {
        var nextEpoch: Int32 = 1
        var partitions: [Key: Held] = [:]
    }

    /// `127.0.0.1:port` per upstream, in the order given.
    let addresses: [String]
    /// The listening ports, in the order given.
    let ports: [Int]

    private let lock = NSLock()
    /// Sessions per listener (one broker each).
    private var cache: [[Int32: Session]]
    private var counters = Counters()
    private var nextSessionID: Int32 = 1000
    private var pendingFaults: [Fault] = []
    private var listeners: [Int32]
    private var open: Set<Int32> = []
    private var stopped = false

    /// Starts one listener per `upstreams` entry (`127.0.0.1:port`).
    init(upstreams: [String]) throws {
        var listeners: [Int32] = []
        var ports: [Int] = []
        for _ in upstreams {
            let (fd, port) = try Self.listen()
            listeners.append(fd)
            ports.append(port)
        }
        self.listeners = listeners
        self.ports = ports
        self.addresses = ports.map { "127.0.0.1:\($0)" }
        self.cache = Array(repeating: [:], count: upstreams.count)
        for (index, upstream) in upstreams.enumerated() {
            let parts = upstream.split(separator: ":")
            guard parts.count == 2, let port = UInt16(parts[1]) else { throw MockClusterError(description: "upstream \(upstream)") }
            let fd = listeners[index]
            let thread = Thread { [self] in acceptLoop(fd, broker: index, upstreamPort: port) }
            thread.name = "fetch-session-proxy-\(index)"
            thread.start()
        }
    }

    deinit { stop() }

    /// What the proxy saw so far.
    var seen: Counters { lock.withLock { counters } }

    /// Sessions held now, over all brokers.
    var openSessions: Int { lock.withLock { cache.reduce(0) { $0 + $1.count } } }

    /// The ids of the sessions held now, over all brokers (ids are unique across them).
    var sessionIDs: Set<Int32> { lock.withLock { Set(cache.flatMap(\.keys)) } }

    /// Queues `fault` for the next incremental fetch that allows it.
    func inject(_ fault: Fault) {
        lock.withLock { pendingFaults.append(fault) }
    }

    /// Faults queued and not applied yet.
    var faultsPending: Int { lock.withLock { pendingFaults.count } }

    /// Forgets every session, as a broker evicting them would: the next incremental fetch of
    /// each gets FETCH_SESSION_ID_NOT_FOUND.
    func evictAll() {
        lock.withLock { for i in cache.indices { cache[i].removeAll() } }
    }

    /// Shuts every socket down; the threads close them and exit. Idempotent.
    func stop() {
        let fds = lock.withLock { () -> [Int32] in
            if stopped { return [] }
            stopped = true
            return listeners + Array(open)
        }
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    // MARK: Sockets

    private static func listen() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MockClusterError(description: "socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0, Glibc.listen(fd, 64) == 0 else {
            close(fd)
            throw MockClusterError(description: "bind/listen: errno \(errno)")
        }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    private static func connect(port: UInt16) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, len) } }
        if connected != 0 {
            close(fd)
            return nil
        }
        return fd
    }

    private func acceptLoop(_ listener: Int32, broker: Int, upstreamPort: UInt16) {
        defer { close(listener) }
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            guard let upstream = Self.connect(port: upstreamPort) else {
                close(client)
                continue
            }
            let accepted = lock.withLock { () -> Bool in
                if stopped { return false }
                open.insert(client)
                open.insert(upstream)
                return true
            }
            guard accepted else {
                close(client)
                close(upstream)
                return
            }
            let thread = Thread { [self] in
                serve(client: client, upstream: upstream, broker: broker)
                lock.withLock {
                    open.remove(client)
                    open.remove(upstream)
                }
                close(client)
                close(upstream)
            }
            thread.name = "fetch-session-proxy-conn"
            thread.start()
        }
    }

    private static func readFully(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + done, count - done, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            done += n
        }
        return bytes
    }

    private static func readFrame(_ fd: Int32) -> [UInt8]? {
        guard let size = readFully(fd, 4) else { return nil }
        let length = Int(Int32(bigEndian: size.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }))
        guard length >= 0, length < 256 << 20 else { return nil }
        return length == 0 ? [] : readFully(fd, length)
    }

    private static func writeFrame(_ fd: Int32, _ frame: [UInt8]) -> Bool {
        var bytes = withUnsafeBytes(of: Int32(frame.count).bigEndian) { Array($0) }
        bytes += frame
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    // MARK: Requests

    /// One connection, served one request at a time (a broker does the same).
    private func serve(client: Int32, upstream: Int32, broker: Int) {
        while let frame = Self.readFrame(client) {
            let answer: [UInt8]?
            if frame.count >= 8, Int16(bigEndian: frame.withUnsafeBytes { $0.loadUnaligned(as: Int16.self) }) == ApiKey.fetch.rawValue {
                answer = fetch(frame, upstream: upstream, broker: broker)
            } else {
                answer = Self.writeFrame(upstream, frame) ? Self.readFrame(upstream) : nil
            }
            guard let answer, Self.writeFrame(client, answer) else { return }
        }
    }

    /// The answer frame to one Fetch frame, or `nil` to drop the connection.
    private func fetch(_ frame: [UInt8], upstream: Int32, broker: Int) -> [UInt8]? {
        // Request header v1/v2: api_key, api_version, correlation_id, client_id [, tags].
        let parsed = frame.withUnsafeBytes { raw -> (version: Int16, correlation: Int32, clientID: String?, bodyStart: Int)? in
            var header = ByteReader(raw)
            _ = header.readInt16()
            let version = header.readInt16()
            let correlation = header.readInt32()
            let clientID = header.readNullableString()
            if version >= 12 { header.skipTaggedFields(flexible: true) }
            return header.error == nil ? (version, correlation, clientID, header.offset) : nil
        }
        guard let (version, correlation, clientID, bodyStart) = parsed else { return nil }
        let flexible = version >= 12
        guard version >= 7 else {
            lock.withLock { counters.sessionless += 1 }
            return Self.writeFrame(upstream, frame) ? Self.readFrame(upstream) : nil
        }
        let request = frame.withUnsafeBytes { raw -> FetchRequest? in
            var reader = ByteReader(UnsafeRawBufferPointer(rebasing: raw[bodyStart...]))
            let request = FetchRequest.decodeBody(from: &reader, version: version)
            return reader.error == nil ? request : nil
        }
        guard let request else { return nil }

        // Session bookkeeping: decide what upstream gets, or answer an error at once.
        enum Plan { case forward(FetchRequest, session: Int32), fail(KafkaErrorCode) }
        let plan: Plan = lock.withLock {
            var sessions = cache[broker]
            defer { cache[broker] = sessions }
            let keys = request.topics.flatMap { t in t.partitions.map { (Key(name: t.name, id: t.topicID, partition: $0.partition), $0) } }
            let forgotten = request.forgottenTopics.flatMap { t in t.partitions.map { Key(name: t.name, id: t.topicID, partition: $0) } }
            var sessionless = request
            sessionless.sessionID = 0
            sessionless.sessionEpoch = -1
            switch request.sessionEpoch {
            case ..<0:
                counters.sessionless += 1
                if request.sessionID != 0, sessions.removeValue(forKey: request.sessionID) != nil { counters.closes += 1 }
                return .forward(sessionless, session: 0)
            case 0:
                counters.full += 1
                if request.sessionID != 0 && sessions[request.sessionID] != nil { counters.fullClosingHeld += 1 }
                sessions[request.sessionID] = nil
                var id = nextSessionID
                while id == request.sessionID || sessions[id] != nil { id &+= 1 }
                nextSessionID = id &+ 1
                var session = Session()
                for (key, p) in keys { session.partitions[key] = Held(request: p) }
                sessions[id] = session
                return .forward(sessionless, session: id)
            default:
                guard var session = sessions[request.sessionID] else {
                    counters.sessionNotFound += 1
                    return .fail(.fetchSessionIDNotFound)
                }
                guard session.nextEpoch == request.sessionEpoch else {
                    counters.invalidEpoch += 1
                    return .fail(.invalidFetchSessionEpoch)
                }
                if case .topLevel(let code) = pendingFaults.first {
                    pendingFaults.removeFirst()
                    counters.faults += 1
                    if code == .fetchSessionIDNotFound { sessions[request.sessionID] = nil }
                    return .fail(code)
                }
                counters.incremental += 1
                if keys.isEmpty { counters.emptyIncremental += 1 }
                counters.partitionsSentIncrementally += keys.count
                counters.forgotten += forgotten.count
                for key in forgotten { counters.forgottenByPartition[key.partition, default: 0] += 1 }
                let sent = Set(keys.map(\.0))
                counters.sentAndForgotten += forgotten.filter { sent.contains($0) }.count
                // Added or updated first, then forgotten (as Kafka's session cache does).
                for (key, p) in keys {
                    if session.partitions[key] != nil { session.partitions[key]!.request = p } else { session.partitions[key] = Held(request: p) }
                }
                for key in forgotten { session.partitions[key] = nil }
                session.nextEpoch = session.nextEpoch == Int32.max ? 1 : session.nextEpoch + 1
                sessions[request.sessionID] = session
                var byTopic: [Key: [FetchRequest.Partition]] = [:]
                for (key, held) in session.partitions {
                    byTopic[Key(name: key.name, id: key.id, partition: 0), default: []].append(held.request)
                }
                sessionless.topics = byTopic.sorted { $0.key.name < $1.key.name }.map {
                    FetchRequest.Topic(name: $0.key.name, topicID: $0.key.id, partitions: $0.value.sorted { $0.partition < $1.partition })
                }
                sessionless.forgottenTopics = []
                return .forward(sessionless, session: request.sessionID)
            }
        }

        var response: FetchResponse
        switch plan {
        case .fail(let code):
            response = FetchResponse(errorCode: code.rawValue, sessionID: 0)
        case .forward(let upstreamRequest, let id):
            var writer = ByteWriter()
            writer.writeInt16(ApiKey.fetch.rawValue)
            writer.writeInt16(version)
            writer.writeInt32(correlation)
            writer.writeNullableString(clientID)
            if flexible { writer.writeEmptyTaggedFields() }
            upstreamRequest.encode(into: &writer, version: version)
            guard Self.writeFrame(upstream, writer.bytes), let reply = Self.readFrame(upstream) else { return nil }
            let decoded = reply.withUnsafeBytes { raw -> FetchResponse? in
                var reader = ByteReader(raw)
                _ = reader.readInt32()
                if flexible { reader.skipTaggedFields(flexible: true) }
                let r = FetchResponse(from: &reader, version: version)
                return reader.error == nil ? r : nil
            }
            guard let decoded else { return nil }
            response = answer(decoded, session: id, incremental: request.sessionEpoch > 0, broker: broker)
        }
        var writer = ByteWriter()
        writer.writeInt32(correlation)
        if flexible { writer.writeEmptyTaggedFields() }
        response.encodeBody(into: &writer, version: version)
        return writer.bytes
    }

    /// The upstream answer as a broker with session `id` would give it.
    private func answer(_ upstream: FetchResponse, session id: Int32, incremental: Bool, broker: Int) -> FetchResponse {
        lock.withLock {
            if upstream.errorCode != 0 {
                if upstream.errorCode == KafkaErrorCode.fetchSessionIDNotFound.rawValue || !incremental { cache[broker][id] = nil }
                return FetchResponse(throttleTimeMs: upstream.throttleTimeMs, errorCode: upstream.errorCode, sessionID: 0)
            }
            var response = upstream
            response.sessionID = id
            guard id != 0, var session = cache[broker][id] else { return response }
            defer { cache[broker][id] = session }
            for t in response.responses.indices {
                let topic = response.responses[t]
                response.responses[t].partitions = topic.partitions.filter { p in
                    let key = Key(name: topic.name, id: topic.topicID, partition: p.partitionIndex)
                    guard var held = session.partitions[key] else { return !incremental }
                    let news = !p.records.isEmpty || p.errorCode != 0 || held.highWatermark != p.highWatermark
                        || held.lastStableOffset != p.lastStableOffset || held.logStartOffset != p.logStartOffset
                    held.highWatermark = p.highWatermark
                    held.lastStableOffset = p.lastStableOffset
                    held.logStartOffset = p.logStartOffset
                    session.partitions[key] = held
                    if incremental && !news { counters.partitionsLeftOut += 1 }
                    return !incremental || news
                }
            }
            response.responses.removeAll { $0.partitions.isEmpty && incremental }
            if incremental { applyFaults(to: &response, held: session.partitions.keys) }
            return response
        }
    }

    /// Applies the first queued fault if it is a partition or stray fault that `held` allows
    /// (lock held).
    private func applyFaults(to response: inout FetchResponse, held: Dictionary<Key, Held>.Keys) {
        let entry: (key: Key, partition: FetchResponse.Partition, replacing: Bool)
        switch pendingFaults.first {
        case .partition(let index, let code)?:
            guard let key = held.first(where: { $0.partition == index }) else { return }
            entry = (key, FetchResponse.Partition(partitionIndex: index, errorCode: code.rawValue), true)
        case .stray(let index)?:
            guard let key = held.first, !held.contains(where: { $0.partition == index }) else { return }
            entry = (key, FetchResponse.Partition(partitionIndex: index, highWatermark: 0, lastStableOffset: 0, logStartOffset: 0), false)
        case .topLevel?, nil:
            return
        }
        pendingFaults.removeFirst()
        counters.faults += 1
        let index = entry.partition.partitionIndex
        if let t = response.responses.firstIndex(where: { $0.name == entry.key.name && $0.topicID == entry.key.id }) {
            if entry.replacing { response.responses[t].partitions.removeAll { $0.partitionIndex == index } }
            response.responses[t].partitions.append(entry.partition)
        } else {
            response.responses.append(.init(name: entry.key.name, topicID: entry.key.id, partitions: [entry.partition]))
        }
    }
}
