import Foundation
import Glibc
import Klife
import KlifeProtocol
import KlifeSecurity
import XCTest

/// SASL on real connections, verified against an in-process peer (no broker here accepts
/// SASL): the client's ApiVersions → SaslHandshake → SaslAuthenticate exchange reaches a
/// peer that runs a real SCRAM server (KlifeSecurity's primitives) and checks PLAIN bytes.
final class SASLConnectionTests: XCTestCase {
    /// A loopback peer that speaks just enough Kafka: ApiVersions v3, SaslHandshake v0–1,
    /// SaslAuthenticate v0–2 (PLAIN or SCRAM server side) and Metadata v1 (one broker:
    /// itself, no topics). It refuses Metadata on a connection that has not authenticated.
    final class SASLPeer: @unchecked Sendable {
        let port: Int
        let enabled: [String]
        let username: String
        let password: String
        /// Impostor mode: accept any proof and answer with a signature made without the password.
        let forgeServerSignature: Bool
        /// The session lifetime granted in SaslAuthenticate v1+ (KIP-368). Like a broker, the
        /// peer closes a connection whose session expired when it sends anything but SASL.
        let sessionLifetimeMs: Int64
        private let listener: Int32
        private var _reauthentications = 0
        private var _acceptedConnections = 0
        private var _requestsAfterExpiry = 0

        /// Successful authentications on connections that were already authenticated.
        var reauthentications: Int { lock.withLock { _reauthentications } }
        /// TCP connections accepted.
        var acceptedConnections: Int { lock.withLock { _acceptedConnections } }
        /// Non-SASL requests that arrived after their connection's session expired (each closed it).
        var requestsAfterExpiry: Int { lock.withLock { _requestsAfterExpiry } }
        private let lock = NSLock()
        private var _plainMessages: [[UInt8]] = []
        private var _metadataBeforeAuth = 0
        private var _authenticatedConnections = 0

        /// Every PLAIN token received.
        var plainMessages: [[UInt8]] { lock.withLock { _plainMessages } }
        /// Metadata requests that arrived before authentication completed (must stay 0).
        var metadataBeforeAuth: Int { lock.withLock { _metadataBeforeAuth } }
        /// Connections that completed SASL.
        var authenticatedConnections: Int { lock.withLock { _authenticatedConnections } }

        init(enabled: [String], username: String, password: String, forgeServerSignature: Bool = false,
             sessionLifetimeMs: Int64 = 3_600_000) throws {
            self.forgeServerSignature = forgeServerSignature
            self.sessionLifetimeMs = sessionLifetimeMs
            self.enabled = enabled
            self.username = username
            self.password = password
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var yes: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
            listen(fd, 16)
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
            port = Int(UInt16(bigEndian: addr.sin_port))
            listener = fd
            Thread.detachNewThread { [self] in
                while true {
                    let conn = accept(fd, nil, nil)
                    if conn < 0 { return }
                    lock.withLock { _acceptedConnections += 1 }
                    Thread.detachNewThread { [self] in serve(conn) }
                }
            }
        }

        func stop() {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
        }

        // MARK: One connection

        private struct ConnectionState {
            var mechanism: String?
            var authenticated = false
            var scram: ServerSCRAM?
            /// When the current session expires (monotonic seconds).
            var expiresAt: Double = .infinity
        }

        private func serve(_ conn: Int32) {
            defer { close(conn) }
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            var state = ConnectionState()
            while true {
                let n = read(conn, &buffer, buffer.count)
                if n <= 0 { return }
                pending += buffer[0..<n]
                while pending.count >= 4 {
                    let size = Int(UInt32(pending[0]) << 24 | UInt32(pending[1]) << 16 | UInt32(pending[2]) << 8 | UInt32(pending[3]))
                    guard pending.count >= 4 + size else { break }
                    let frame = Array(pending[4..<(4 + size)])
                    pending.removeFirst(4 + size)
                    guard let answer = handle(frame, &state) else { return }   // nil: close the connection
                    _ = answer.withUnsafeBytes { write(conn, $0.baseAddress, $0.count) }
                }
            }
        }

        private struct Request {
            var apiKey: Int16
            var version: Int16
            var correlationID: Int32
            var body: [UInt8]
        }

        private static func parseHeader(_ frame: [UInt8]) -> Request? {
            frame.withUnsafeBytes { raw -> Request? in
                var r = ByteReader(raw)
                let key = r.readInt16(), version = r.readInt16(), correlation = r.readInt32()
                _ = r.readNullableString()   // client id: never compact
                let flexible = (key == 18 && version >= 3) || (key == 36 && version >= 2) || (key == 3 && version >= 9)
                if flexible { r.skipTaggedFields(flexible: true) }
                guard r.error == nil else { return nil }
                return Request(apiKey: key, version: version, correlationID: correlation,
                               body: r.readBytes(count: r.remaining))
            }
        }

        /// A response frame: size, correlation id, tagged fields when `flexibleHeader`, body.
        private static func frame(_ correlationID: Int32, flexibleHeader: Bool, body: (inout ByteWriter) -> Void) -> [UInt8] {
            var w = ByteWriter()
            w.writeInt32(0)
            w.writeInt32(correlationID)
            if flexibleHeader { w.writeEmptyTaggedFields() }
            body(&w)
            w.patchInt32(Int32(w.count - 4), at: 0)
            return w.bytes
        }

        private func handle(_ bytes: [UInt8], _ state: inout ConnectionState) -> [UInt8]? {
            guard let request = Self.parseHeader(bytes) else { return nil }
            if request.apiKey != 17 && request.apiKey != 36 && state.authenticated
                && ProcessInfo.processInfo.systemUptime > state.expiresAt {
                lock.withLock { _requestsAfterExpiry += 1 }
                return nil
            }
            switch request.apiKey {
            case 18:   // ApiVersions: answer at v3 only (the client's first try), v0 layout on error
                guard request.version == 3 else { return nil }
                return Self.frame(request.correlationID, flexibleHeader: false) { w in
                    w.writeInt16(0)
                    let ranges: [(Int16, Int16, Int16)] = [(18, 0, 3), (3, 1, 1), (17, 0, 1), (36, 0, 2)]
                    w.writeArrayCount(ranges.count, flexible: true)
                    for (key, low, high) in ranges {
                        w.writeInt16(key); w.writeInt16(low); w.writeInt16(high)
                        w.writeEmptyTaggedFields()
                    }
                    w.writeInt32(0)
                    w.writeEmptyTaggedFields()
                }
            case 17:   // SaslHandshake v0/v1 (same layout)
                let mechanism = request.body.withUnsafeBytes { raw -> String in
                    var r = ByteReader(raw)
                    return r.readString()
                }
                let known = enabled.contains(mechanism)
                if known { state.mechanism = mechanism }
                return Self.frame(request.correlationID, flexibleHeader: false) { w in
                    w.writeInt16(known ? 0 : 33)
                    w.writeArrayCount(enabled.count, flexible: false)
                    for name in enabled { w.writeString(name) }
                }
            case 36:   // SaslAuthenticate
                let flexible = request.version >= 2
                let token = request.body.withUnsafeBytes { raw -> [UInt8] in
                    var r = ByteReader(raw)
                    return r.readSizedBytes(flexible: flexible)
                }
                let (error, message, reply) = authenticate(token, &state)
                return Self.frame(request.correlationID, flexibleHeader: flexible) { w in
                    w.writeInt16(error)
                    w.writeNullableString(message, flexible: flexible)
                    w.writeSizedBytes(reply, flexible: flexible)
                    if request.version >= 1 { w.writeInt64(error == 0 ? sessionLifetimeMs : 0) }
                    w.writeEmptyTaggedFields(flexible: flexible)
                }
            case 3:   // Metadata v1: this peer as broker 0, no topics
                guard state.authenticated else {
                    lock.withLock { _metadataBeforeAuth += 1 }
                    return nil
                }
                return Self.frame(request.correlationID, flexibleHeader: false) { w in
                    w.writeArrayCount(1, flexible: false)
                    w.writeInt32(0)
                    w.writeString("127.0.0.1")
                    w.writeInt32(Int32(port))
                    w.writeNullableString(nil)
                    w.writeInt32(0)   // controller
                    w.writeArrayCount(0, flexible: false)
                }
            default:
                return nil
            }
        }

        /// (error code, error message, server token) for one SaslAuthenticate.
        private func authenticate(_ token: [UInt8], _ state: inout ConnectionState) -> (Int16, String?, [UInt8]) {
            let failed: Int16 = 58
            switch state.mechanism {
            case "PLAIN":
                lock.withLock { _plainMessages.append(token) }
                guard token == [0] + Array(username.utf8) + [0] + Array(password.utf8) else {
                    return (failed, "Authentication failed: Invalid username or password", [])
                }
                markAuthenticated(&state)
                return (0, nil, [])
            case "SCRAM-SHA-256", "SCRAM-SHA-512":
                let name = state.mechanism!
                let invalid = "Authentication failed during authentication due to invalid credentials with SASL mechanism \(name)"
                do {
                    if forgeServerSignature, state.scram != nil {
                        state.scram = nil
                        let algorithm: SCRAMAlgorithm = name == "SCRAM-SHA-256" ? .sha256 : .sha512
                        return (0, nil, Array("v=\(Base64.encode(try SCRAMAlgorithm.randomBytes(algorithm.digestLength)))".utf8))
                    }
                    if let scram = state.scram {
                        guard let final = try scram.serverFinal(clientFinal: token) else { return (failed, invalid, []) }
                        state.scram = nil
                        markAuthenticated(&state)
                        return (0, nil, final)
                    }
                    var scram = try ServerSCRAM(algorithm: name == "SCRAM-SHA-256" ? .sha256 : .sha512,
                                                username: username, password: password)
                    let first = try scram.serverFirst(clientFirst: token)
                    state.scram = scram
                    return (0, nil, first)
                } catch {
                    return (failed, invalid, [])
                }
            default:
                return (34, "ILLEGAL_SASL_STATE: no handshake", [])   // ILLEGAL_SASL_STATE
            }
        }

        private func markAuthenticated(_ state: inout ConnectionState) {
            let again = state.authenticated
            state.authenticated = true
            state.expiresAt = ProcessInfo.processInfo.systemUptime + Double(sessionLifetimeMs) / 1000
            lock.withLock { if again { _reauthentications += 1 } else { _authenticatedConnections += 1 } }
        }
    }

    /// The server side of SCRAM (RFC 5802) from KlifeSecurity's primitives; it keeps only
    /// StoredKey and ServerKey, as a broker does.
    struct ServerSCRAM {
        struct Rejected: Error {}
        let algorithm: SCRAMAlgorithm
        let username: String
        let salt: [UInt8]
        let iterations = 4096
        let keys: SCRAMAlgorithm.Keys
        var clientFirstBare = ""
        var serverFirst = ""
        var nonce = ""

        init(algorithm: SCRAMAlgorithm, username: String, password: String) throws {
            self.algorithm = algorithm
            self.username = username
            salt = try SCRAMAlgorithm.randomBytes(16)
            keys = try algorithm.keys(saltedPassword: try algorithm.saltedPassword(Array(password.utf8), salt: salt,
                                                                                    iterations: iterations))
        }

        mutating func serverFirst(clientFirst bytes: [UInt8]) throws -> [UInt8] {
            let message = String(decoding: bytes, as: UTF8.self)
            guard message.hasPrefix("n,,") else { throw Rejected() }
            clientFirstBare = String(message.dropFirst(3))
            let attrs = clientFirstBare.split(separator: ",")
            guard attrs.count == 2, attrs[0] == "n=\(SCRAMClient.escape(username: username))", attrs[1].hasPrefix("r=") else {
                throw Rejected()
            }
            nonce = String(attrs[1].dropFirst(2)) + Base64.encode(try SCRAMAlgorithm.randomBytes(18))
            serverFirst = "r=\(nonce),s=\(Base64.encode(salt)),i=\(iterations)"
            return Array(serverFirst.utf8)
        }

        /// The server-final token, or nil when the proof does not verify.
        func serverFinal(clientFinal bytes: [UInt8]) throws -> [UInt8]? {
            let attrs = String(decoding: bytes, as: UTF8.self).split(separator: ",")
            guard attrs.count == 3, attrs[0] == "c=biws", attrs[1] == "r=\(nonce)", attrs[2].hasPrefix("p="),
                  let proof = Base64.decode(String(attrs[2].dropFirst(2))) else { throw Rejected() }
            let authMessage = Array("\(clientFirstBare),\(serverFirst),\(attrs[0...1].joined(separator: ","))".utf8)
            let clientSignature = try algorithm.hmac(key: keys.storedKey, data: authMessage)
            guard proof.count == clientSignature.count,
                  SCRAMAlgorithm.constantTimeEqual(try algorithm.hash(SCRAMAlgorithm.xor(proof, clientSignature)),
                                                   keys.storedKey) else { return nil }
            return Array("v=\(Base64.encode(try algorithm.hmac(key: keys.serverKey, data: authMessage)))".utf8)
        }
    }

    // MARK: Tests

    private func configuration(_ peer: SASLPeer, _ sasl: SASLConfiguration) -> KlifeConfiguration {
        var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:\(peer.port)"])
        config.connectTimeout = .seconds(2)
        config.requestTimeout = .seconds(5)
        config.producer.idempotent = false   // the peer does not answer InitProducerId
        config.sasl = sasl
        return config
    }

    private func connectAndFetchMetadata(_ mechanism: SASLConfiguration.Mechanism) async throws {
        let peer = try SASLPeer(enabled: ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], username: "alice,=x", password: "s3cr€t")
        defer { peer.stop() }
        let client = try await KlifeClient.connect(configuration(peer, SASLConfiguration(mechanism: mechanism,
                                                                                          username: "alice,=x",
                                                                                          password: "s3cr€t")))
        let metadata = try await client.metadata()
        await client.close(timeout: .seconds(2))
        XCTAssertEqual(metadata.brokers[0]?.address.port, peer.port)
        XCTAssertGreaterThanOrEqual(peer.authenticatedConnections, 1)
        XCTAssertEqual(peer.metadataBeforeAuth, 0)
    }

    /// KIP-368: with a short session lifetime the client re-authenticates on the same
    /// connection before each expiry, and requests keep working throughout.
    func testReauthenticatesBeforeTheSessionExpires() async throws {
        let peer = try SASLPeer(enabled: ["SCRAM-SHA-256"], username: "bob", password: "pw", sessionLifetimeMs: 400)
        defer { peer.stop() }
        let client = try await KlifeClient.connect(configuration(peer, SASLConfiguration(mechanism: .scramSHA256,
                                                                                          username: "bob", password: "pw")))
        _ = try await client.metadata()   // opens the broker's own connection (after the bootstrap one)
        let connectionsAfterConnect = peer.acceptedConnections
        // Keep using the connection across several lifetimes: until 3 re-authentications happened.
        var calls = 0
        while peer.reauthentications < 3 && calls < 400 {
            _ = try await client.metadata()
            calls += 1
            try await Task.sleep(for: .milliseconds(20))
        }
        await client.close(timeout: .seconds(2))
        XCTAssertGreaterThanOrEqual(peer.reauthentications, 3, "re-authentications before the session expired")
        XCTAssertEqual(peer.requestsAfterExpiry, 0, "no request may reach the broker on an expired session")
        XCTAssertEqual(peer.acceptedConnections, connectionsAfterConnect, "re-authentication keeps the connection")
    }

    func testSCRAMSHA256Authenticates() async throws {
        try await connectAndFetchMetadata(.scramSHA256)
    }

    func testSCRAMSHA512Authenticates() async throws {
        try await connectAndFetchMetadata(.scramSHA512)
    }

    func testWrongPasswordFailsWithAuthenticationFailed() async throws {
        for mechanism in [SASLConfiguration.Mechanism.scramSHA256, .plain] {
            let peer = try SASLPeer(enabled: ["PLAIN", "SCRAM-SHA-256"], username: "alice", password: "right")
            defer { peer.stop() }
            do {
                let client = try await KlifeClient.connect(configuration(peer, SASLConfiguration(mechanism: mechanism,
                                                                                                  username: "alice",
                                                                                                  password: "wrong")))
                await client.close(timeout: .seconds(1))
                XCTFail("\(mechanism): connected with a wrong password")
            } catch {
                XCTAssertEqual(error.code, .authenticationFailed, error.description)
                XCTAssertFalse(error.isRetriable)
                XCTAssertTrue(error.description.contains(mechanism == .plain ? "Invalid username or password"
                                                            : "invalid credentials with SASL mechanism SCRAM-SHA-256"),
                              error.description)
            }
            XCTAssertEqual(peer.authenticatedConnections, 0)
            XCTAssertEqual(peer.metadataBeforeAuth, 0)
        }
    }

    func testForgedServerSignatureFailsWithAuthenticationFailed() async throws {
        // The peer accepts any proof but cannot compute ServerSignature: the client must not trust it.
        let peer = try SASLPeer(enabled: ["SCRAM-SHA-512"], username: "alice", password: "pw", forgeServerSignature: true)
        defer { peer.stop() }
        do {
            let client = try await KlifeClient.connect(configuration(peer, SASLConfiguration(mechanism: .scramSHA512,
                                                                                              username: "alice", password: "pw")))
            await client.close(timeout: .seconds(1))
            XCTFail("trusted a server that does not know the credentials")
        } catch {
            XCTAssertEqual(error.code, .authenticationFailed, error.description)
            XCTAssertTrue(error.description.contains("serverSignatureMismatch"), error.description)
        }
        XCTAssertEqual(peer.metadataBeforeAuth, 0)
    }

    func testUnsupportedMechanismNamesItAndTheEnabledOnes() async throws {
        let peer = try SASLPeer(enabled: ["PLAIN", "SCRAM-SHA-256"], username: "alice", password: "pw")
        defer { peer.stop() }
        do {
            let client = try await KlifeClient.connect(configuration(peer, SASLConfiguration(mechanism: .scramSHA512,
                                                                                              username: "alice", password: "pw")))
            await client.close(timeout: .seconds(1))
            XCTFail("connected with a mechanism the peer does not enable")
        } catch {
            XCTAssertEqual(error.kafkaErrorCode, .unsupportedSaslMechanism, error.description)
            XCTAssertFalse(error.isRetriable)
            XCTAssertTrue(error.description.contains("SCRAM-SHA-512"), error.description)
            XCTAssertTrue(error.description.contains("PLAIN, SCRAM-SHA-256"), error.description)
        }
        XCTAssertEqual(peer.metadataBeforeAuth, 0)
    }

    func testPlainSendsExactlyNulUserNulPassword() async throws {
        let peer = try SASLPeer(enabled: ["PLAIN"], username: "user", password: "pass")
        defer { peer.stop() }
        let client = try await KlifeClient.connect(configuration(peer, SASLConfiguration(mechanism: .plain,
                                                                                          username: "user", password: "pass")))
        _ = try await client.metadata()
        await client.close(timeout: .seconds(2))
        let messages = peer.plainMessages
        XCTAssertFalse(messages.isEmpty)
        for message in messages { XCTAssertEqual(message, Array("\0user\0pass".utf8)) }
        XCTAssertEqual(peer.metadataBeforeAuth, 0)
    }

    func testConfigurationValidation() {
        var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:9092"])
        config.sasl = SASLConfiguration(mechanism: .plain, username: "", password: "pw")
        XCTAssertThrowsError(try config.validate()) {
            let error = $0 as? KlifeError
            XCTAssertEqual(error?.code, .invalidConfiguration)
            XCTAssertTrue(error?.description.contains("sasl.username") ?? false)
        }
        config.sasl = SASLConfiguration(mechanism: .scramSHA256, username: "u", password: "")
        XCTAssertThrowsError(try config.validate()) {
            XCTAssertTrue(($0 as? KlifeError)?.description.contains("sasl.password") ?? false)
        }
        config.sasl = SASLConfiguration(mechanism: .scramSHA256, username: "u", password: "secret")
        XCTAssertNoThrow(try config.validate())
        XCTAssertFalse(config.sasl!.description.contains("secret"))
        XCTAssertEqual(SASLConfiguration.Mechanism.allCases.map(\.name), ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
    }

    func testBrokerWithoutSaslApisIsUnsupportedVersion() async throws {
        // The hostile-peer style: a peer whose ApiVersions lacks SaslHandshake.
        let server = try HostilePeerTests.HostileServer { request in
            var w = ByteWriter()
            w.writeInt32(0)
            w.writeBytes(request.count >= 12 ? Array(request[8..<12]) : [0, 0, 0, 0])
            w.writeInt16(0)
            w.writeArrayCount(2, flexible: true)
            for (key, low, high) in [(Int16(18), Int16(0), Int16(3)), (3, 1, 1)] {
                w.writeInt16(key); w.writeInt16(low); w.writeInt16(high); w.writeEmptyTaggedFields()
            }
            w.writeInt32(0)
            w.writeEmptyTaggedFields()
            w.patchInt32(Int32(w.count - 4), at: 0)
            return w.bytes
        }
        defer { server.stop() }
        var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:\(server.port)"])
        config.connectTimeout = .seconds(2)
        config.requestTimeout = .seconds(2)
        config.producer.idempotent = false
        config.sasl = SASLConfiguration(mechanism: .plain, username: "u", password: "p")
        do {
            let client = try await KlifeClient.connect(config)
            await client.close(timeout: .seconds(1))
            XCTFail("connected without SASL support")
        } catch {
            // Bootstrap wraps retriable-or-not connection errors it cannot attribute; the text names the API.
            XCTAssertTrue(error.description.contains("SaslHandshake"), error.description)
        }
    }
}
