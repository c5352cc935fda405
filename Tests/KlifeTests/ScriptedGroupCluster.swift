import Foundation
import Glibc
import KlifeProtocol

/// A few fake brokers on loopback that speak just enough Kafka for the group-administration
/// calls, answering group requests from a script: for what neither Tansu nor librdkafka's mock
/// does (several coordinators to list, assignments in DescribeGroups, ConsumerGroupDescribe).
///
/// Each broker (node ids `1...brokers`) answers ApiVersions with ``versions``, Metadata v1 with
/// every broker (controller 1, no topics) and FindCoordinator v0 with ``coordinator``; every other
/// request goes to `answer`, which returns the response body (the header is added here) or `nil`
/// to close the connection. Requests are recorded for assertions.
final class ScriptedGroupCluster: @unchecked Sendable {
    // @unchecked: `recorded` and `stopped` are guarded by `lock`; the rest is set in init.

    /// One request as a broker received it.
    struct Request: Sendable {
        /// The broker that received it.
        var node: Int32
        /// Its API key and version.
        var apiKey: Int16
        var version: Int16
        /// The body after the request header.
        var body: [UInt8]

        /// The group ids of a DescribeGroups, ConsumerGroupDescribe or DeleteGroups body.
        var groupIDs: [String] {
            body.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                let flexible = ScriptedGroupCluster.isFlexible(apiKey: apiKey, version: version)
                let n = r.readArrayCount(flexible: flexible)
                return (0..<max(n, 0)).map { _ in r.readString(flexible: flexible) }
            }
        }
    }

    /// API key and version range each broker advertises, besides the three it answers itself.
    static let versions: [(key: Int16, min: Int16, max: Int16)] = [
        (18, 0, 3),   // ApiVersions
        (3, 1, 1),    // Metadata
        (10, 0, 0),   // FindCoordinator
        (15, 0, 0),   // DescribeGroups
        (16, 4, 4),   // ListGroups (states, flexible)
        (42, 0, 0),   // DeleteGroups
        (69, 0, 0),   // ConsumerGroupDescribe
        (77, 1, 1),   // ShareGroupDescribe
        (8, 2, 2),    // OffsetCommit
        (9, 1, 1),    // OffsetFetch
    ]

    /// `127.0.0.1:port` of each broker, node 1 first.
    let bootstrap: [String]
    /// The node FindCoordinator names.
    let coordinator: Int32

    private let listeners: [Int32]
    private let ports: [Int]
    private let answer: @Sendable (Request) -> [UInt8]?
    private let lock = NSLock()
    private var recorded: [Request] = []
    private var stopped = false

    /// Starts `brokers` brokers; `answer` gets every request but ApiVersions, Metadata and FindCoordinator.
    init(brokers: Int = 2, coordinator: Int32 = 1, answer: @escaping @Sendable (Request) -> [UInt8]?) throws {
        var listeners: [Int32] = []
        var ports: [Int] = []
        for _ in 0..<brokers {
            let (fd, port) = try Self.listen()
            listeners.append(fd)
            ports.append(port)
        }
        self.listeners = listeners
        self.ports = ports
        self.bootstrap = ports.map { "127.0.0.1:\($0)" }
        self.coordinator = coordinator
        self.answer = answer
        for (i, fd) in listeners.enumerated() {
            let node = Int32(i + 1)
            Thread.detachNewThread { [self] in acceptLoop(fd, node: node) }
        }
    }

    deinit { stop() }

    /// The requests received so far with `apiKey` (every one when `nil`), in arrival order per connection.
    func requests(_ apiKey: Int16? = nil) -> [Request] {
        lock.withLock { recorded.filter { apiKey == nil || $0.apiKey == apiKey } }
    }

    /// Closes the listeners (open connections end with the client).
    func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        for fd in listeners {
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
        }
    }

    // MARK: Serving

    private func acceptLoop(_ listener: Int32, node: Int32) {
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 { return }
            Thread.detachNewThread { [self] in
                defer { close(connection) }
                serve(connection, node: node)
            }
        }
    }

    private func serve(_ fd: Int32, node: Int32) {
        while let sizeBytes = Self.read(fd, 4) {
            let size = Int(Int32(bigEndian: sizeBytes.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }))
            guard size >= 8, size < 1 << 20, let frame = Self.read(fd, size) else { return }
            let (header, body) = frame.withUnsafeBytes { raw -> ((Int16, Int16, Int32), [UInt8]) in
                var r = ByteReader(raw)
                let apiKey = r.readInt16(), version = r.readInt16(), correlation = r.readInt32()
                _ = r.readNullableString()
                if Self.isFlexible(apiKey: apiKey, version: version) || (apiKey == 18 && version >= 3) { r.skipTaggedFields() }
                return ((apiKey, version, correlation), r.readBytes(count: r.remaining))
            }
            let request = Request(node: node, apiKey: header.0, version: header.1, body: body)
            lock.withLock { recorded.append(request) }
            guard let responseBody = respond(request) else { return }
            var w = ByteWriter(capacity: responseBody.count + 16)
            let flexibleHeader = request.apiKey != 18 && Self.isFlexible(apiKey: request.apiKey, version: request.version)
            w.writeInt32(Int32(4 + (flexibleHeader ? 1 : 0) + responseBody.count))
            w.writeInt32(header.2)
            if flexibleHeader { w.writeEmptyTaggedFields() }
            w.writeBytes(responseBody)
            var bytes = w.bytes[...]
            while !bytes.isEmpty {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                bytes = bytes.dropFirst(n)
            }
        }
    }

    private func respond(_ request: Request) -> [UInt8]? {
        var w = ByteWriter(capacity: 256)
        switch request.apiKey {
        case 18:   // ApiVersions v3: error, compact array of ranges, throttle, tags
            w.writeInt16(0)
            w.writeArrayCount(Self.versions.count, flexible: true)
            for v in Self.versions {
                w.writeInt16(v.key); w.writeInt16(v.min); w.writeInt16(v.max)
                w.writeEmptyTaggedFields()
            }
            w.writeInt32(0)
            w.writeEmptyTaggedFields()
        case 3:    // Metadata v1: brokers, controller, no topics
            w.writeArrayCount(ports.count, flexible: false)
            for (i, port) in ports.enumerated() {
                w.writeInt32(Int32(i + 1)); w.writeString("127.0.0.1"); w.writeInt32(Int32(port)); w.writeNullableString(nil)
            }
            w.writeInt32(1)
            w.writeArrayCount(0, flexible: false)
        case 10:   // FindCoordinator v0: error, node, host, port
            w.writeInt16(0); w.writeInt32(coordinator); w.writeString("127.0.0.1"); w.writeInt32(Int32(ports[Int(coordinator) - 1]))
        default:
            return answer(request)
        }
        return w.bytes
    }

    /// Whether this cluster's version of an API is flexible (request header v2, response header v1).
    static func isFlexible(apiKey: Int16, version: Int16) -> Bool {
        switch apiKey {
        case 16: version >= 3
        case 69, 77: true
        case 15: version >= 5
        case 42: version >= 2
        case 10: version >= 3
        case 3: version >= 9
        case 8: version >= 8
        case 9: version >= 6
        default: false
        }
    }

    private static func read(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, count - done) }
            if n <= 0 { return nil }
            done += n
        }
        return buffer
    }

    private static func listen() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard fd >= 0, bound == 0, Glibc.listen(fd, 16) == 0 else {
            throw InteropError(description: "scripted broker: cannot listen on 127.0.0.1 (errno \(errno))")
        }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }
}

/// Response bodies for the scripted brokers, in the versions ``ScriptedGroupCluster/versions`` advertises.
enum ScriptedAnswers {
    /// A member in a DescribeGroups answer.
    struct ClassicMember {
        var memberID: String
        var clientID = ""
        var host = ""
        var metadata: [UInt8] = []
        var assignment: [UInt8] = []
    }

    /// DescribeGroups v0 with one group.
    static func describeGroups(error: Int16 = 0, groupID: String, state: String, protocolType: String = "",
                               protocolData: String = "", members: [ClassicMember] = []) -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        w.writeArrayCount(1, flexible: false)
        w.writeInt16(error)
        w.writeString(groupID); w.writeString(state); w.writeString(protocolType); w.writeString(protocolData)
        w.writeArrayCount(members.count, flexible: false)
        for m in members {
            w.writeString(m.memberID); w.writeString(m.clientID); w.writeString(m.host)
            w.writeSizedBytes(m.metadata); w.writeSizedBytes(m.assignment)
        }
        return w.bytes
    }

    /// A member in a ConsumerGroupDescribe answer: assignments as (topic, partitions).
    struct ConsumerMember {
        var memberID: String
        var instanceID: String? = nil
        var epoch: Int32
        var clientID: String
        var host: String
        var topics: [String]
        var assignment: [(String, [Int32])]
        var target: [(String, [Int32])]
    }

    /// ConsumerGroupDescribe v0 with one group.
    static func consumerGroupDescribe(error: Int16 = 0, groupID: String, state: String = "", groupEpoch: Int32 = 0,
                                      assignmentEpoch: Int32 = 0, assignor: String = "",
                                      members: [ConsumerMember] = []) -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        w.writeInt32(0)
        w.writeArrayCount(1, flexible: true)
        w.writeInt16(error)
        w.writeCompactNullableString(error == 0 ? nil : "scripted error")
        w.writeCompactString(groupID); w.writeCompactString(state)
        w.writeInt32(groupEpoch); w.writeInt32(assignmentEpoch)
        w.writeCompactString(assignor)
        w.writeArrayCount(members.count, flexible: true)
        for m in members {
            w.writeCompactString(m.memberID); w.writeCompactNullableString(m.instanceID); w.writeCompactNullableString(nil)
            w.writeInt32(m.epoch)
            w.writeCompactString(m.clientID); w.writeCompactString(m.host)
            w.writeArrayCount(m.topics.count, flexible: true)
            for t in m.topics { w.writeCompactString(t) }
            w.writeCompactNullableString(nil)
            for assignment in [m.assignment, m.target] {
                w.writeArrayCount(assignment.count, flexible: true)
                for (topic, partitions) in assignment {
                    w.writeUUID(.zero); w.writeCompactString(topic)
                    w.writeArrayCount(partitions.count, flexible: true)
                    for p in partitions { w.writeInt32(p) }
                    w.writeEmptyTaggedFields()
                }
                w.writeEmptyTaggedFields()
            }
            w.writeEmptyTaggedFields()
        }
        w.writeInt32(.min)
        w.writeEmptyTaggedFields()
        w.writeEmptyTaggedFields()
        return w.bytes
    }

    /// ListGroups v4: (group id, protocol type, state) per group.
    static func listGroups(error: Int16 = 0, _ groups: [(String, String, String)]) -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        w.writeInt32(0)
        w.writeInt16(error)
        w.writeArrayCount(groups.count, flexible: true)
        for (id, type, state) in groups {
            w.writeCompactString(id); w.writeCompactString(type); w.writeCompactString(state)
            w.writeEmptyTaggedFields()
        }
        w.writeEmptyTaggedFields()
        return w.bytes
    }

    /// DeleteGroups v0 with one result.
    static func deleteGroups(_ groupID: String, error: Int16) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        w.writeInt32(0)
        w.writeArrayCount(1, flexible: false)
        w.writeString(groupID)
        w.writeInt16(error)
        return w.bytes
    }
}
