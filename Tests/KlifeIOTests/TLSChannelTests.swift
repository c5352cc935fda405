import CCrypto
import Dispatch
import Glibc
@testable import KlifeIO
import KlifeTesting
import XCTest

/// TLS channels against an in-process OpenSSL server (TLSTestPeer) and against hostile
/// plain sockets: the handler sees plaintext only after the handshake, every failure closes
/// the channel with a typed error, nothing traps.
final class TLSChannelTests: XCTestCase {
    private var certificates: TestCertificates!

    override func setUpWithError() throws {
        guard TestCertificates.isAvailable else {
            throw XCTSkip("TLS tests need the openssl command (scripts/bootstrap.sh installs it)")
        }
        certificates = try TestCertificates.generate()
    }

    override func tearDown() {
        certificates = nil
    }

    private func context(caFile: String? = nil, serverName: String? = nil,
                         certificate: Bool = false) throws -> TLSContext {
        try TLSContext(caFile: caFile ?? certificates.caFile,
                       certificateFile: certificate ? certificates.clientCertificateFile : nil,
                       privateKeyFile: certificate ? certificates.clientKeyFile : nil,
                       serverName: serverName)
    }

    /// Waits for the close and returns the TLS failure it carried (failing the test otherwise).
    private func tlsFailure(_ handler: RecordingHandler, file: StaticString = #filePath, line: UInt = #line) -> TLSFailure? {
        guard waitOrFail(handler.closedSignal, "close", file: file, line: line) else { return nil }
        let state = handler.state.withLock { $0 }
        XCTAssertFalse(state.connected, "channelDidConnect before a verified handshake", file: file, line: line)
        XCTAssertEqual(state.closeCount, 1, file: file, line: line)
        guard case .tls(let failure)? = state.closeError?.kind else {
            XCTFail("expected a TLS failure, got \(String(describing: state.closeError))", file: file, line: line)
            return nil
        }
        XCTAssertEqual(failure.stage, .handshake, file: file, line: line)
        XCTAssertTrue(state.closeError?.description.hasPrefix("TLS handshake with 127.0.0.1:") ?? false,
                      state.closeError?.description ?? "", file: file, line: line)
        return failure
    }

    /// Connects to a peer serving one echo session and returns the handshake failure.
    private func handshakeFailure(_ peer: TLSTestPeer, _ tls: TLSContext,
                                  file: StaticString = #filePath, line: UInt = #line) throws -> TLSFailure? {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let serverDone = peer.serveEcho()
        let handler = RecordingHandler()
        _ = connect(reactor, port: peer.port, tls: tls, handler: handler)
        let failure = tlsFailure(handler, file: file, line: line)
        _ = waitOrFail(serverDone, "TLS server", file: file, line: line)
        return failure
    }

    // MARK: Working sessions

    /// Frames queued before the handshake, many small frames, and frames larger than one
    /// TLS record and one encryption chunk, echoed back decrypted and in order.
    func testEchoOverTLS() throws {
        let peer = try TLSTestPeer(certificates: certificates)
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let serverDone = peer.serveEcho()
        let handler = RecordingHandler()
        let sizes = [5, 0, 17] + Array(repeating: 100, count: 200) + [1_000_000, 70_000, 3]
        handler.onConnect = { channel in
            for (i, size) in sizes.enumerated().dropFirst(3) { appendFrame(to: channel, size: size, seed: i) }
            channel.flush()
        }
        let ref = connect(reactor, port: peer.port, tls: try context(), handler: handler) { channel in
            for (i, size) in sizes.enumerated().prefix(3) { appendFrame(to: channel, size: size, seed: i) }
            channel.flush()   // not connected: nothing may leave before the handshake is done
        }
        for _ in sizes { guard waitOrFail(handler.frameSignal, "echoed frame") else { return } }
        let frames = handler.state.withLock { $0.frames }
        XCTAssertEqual(frames.count, sizes.count)
        for (i, size) in sizes.enumerated() where i < frames.count {
            XCTAssertEqual(frames[i], framePayload(size: size, seed: i), "frame \(i)")
        }
        XCTAssertEqual(handler.state.withLock { $0.events.first }, "connect")
        XCTAssertEqual(onReactor(reactor) { ref!.channel.tls?.protocolVersion }, "TLSv1.3")
        XCTAssertEqual(onReactor(reactor) { ref!.channel.pendingOutboundBytes }, 0)
        _ = onReactor(reactor) { ref!.channel.close() }
        _ = waitOrFail(handler.closedSignal, "close")
        _ = waitOrFail(serverDone, "TLS server")
        XCTAssertNil(handler.state.withLock { $0.closeError })
    }

    /// 4 MiB of ciphertext through a 4 KiB send buffer: the encrypted stream goes through
    /// partial writes and would-block, and every plaintext byte comes back in order.
    func testPartialWritesOfCiphertext() throws {
        let peer = try TLSTestPeer(certificates: certificates)
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let serverDone = peer.serveEcho()
        let handler = RecordingHandler()
        let frameSize = 256 * 1024
        let frameCount = 16
        handler.onConnect = { channel in
            for i in 0..<frameCount {
                appendFrame(to: channel, size: frameSize, seed: i)
                channel.flush()
            }
        }
        let ref = connect(reactor, port: peer.port, tls: try context(), handler: handler, sendBufferSize: 4096)
        for _ in 0..<frameCount { guard waitOrFail(handler.frameSignal, "echoed frame") else { return } }
        let frames = handler.state.withLock { $0.frames }
        for (i, frame) in frames.enumerated() { XCTAssertEqual(frame, framePayload(size: frameSize, seed: i), "frame \(i)") }
        let stats = onReactor(reactor) { (ref!.channel.wouldBlockCount, ref!.channel.pendingOutboundBytes) }
        XCTAssertGreaterThan(stats?.0 ?? 0, 0, "the test must have exercised would-block")
        XCTAssertEqual(stats?.1, 0)
        _ = onReactor(reactor) { ref!.channel.close() }
        _ = waitOrFail(serverDone, "TLS server")
    }

    /// Sends one frame of `size` bytes to a peer serving one echo session, checks the echo,
    /// and returns the negotiated protocol.
    private func echoOneFrame(_ peer: TLSTestPeer, _ tls: TLSContext, size: Int,
                              file: StaticString = #filePath, line: UInt = #line) throws -> String? {
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let serverDone = peer.serveEcho()
        let handler = RecordingHandler()
        handler.onConnect = { channel in
            appendFrame(to: channel, size: size, seed: 5)
            channel.flush()
        }
        let ref = connect(reactor, port: peer.port, tls: tls, handler: handler)
        guard waitOrFail(handler.frameSignal, "echo", file: file, line: line) else { return nil }
        XCTAssertEqual(handler.state.withLock { $0.frames }, [framePayload(size: size, seed: 5)], file: file, line: line)
        let version = onReactor(reactor) { ref!.channel.tls?.protocolVersion }
        _ = onReactor(reactor) { ref!.channel.close() }
        _ = waitOrFail(serverDone, "TLS server", file: file, line: line)
        return version ?? nil
    }

    func testTLS12SessionWorks() throws {
        let peer = try TLSTestPeer(certificates: certificates, maximumVersion: TLS1_2_VERSION)
        XCTAssertEqual(try echoOneFrame(peer, try context(), size: 100_000), "TLSv1.2")
    }

    func testServerLimitedToTLS11IsRefused() throws {
        let peer = try TLSTestPeer(certificates: certificates, maximumVersion: TLS1_1_VERSION)
        let failure = try handshakeFailure(peer, try context())
        XCTAssertTrue(failure?.reason.contains("protocol version") ?? false, failure?.reason ?? "")
        XCTAssertFalse(failure?.isCertificateVerificationFailure ?? true)
    }

    /// Under TLS 1.2 a missing client certificate fails inside the handshake itself.
    func testMissingClientCertificateUnderTLS12() throws {
        let peer = try TLSTestPeer(certificates: certificates, requireClientCertificate: true,
                                   maximumVersion: TLS1_2_VERSION)
        let failure = try handshakeFailure(peer, try context())
        XCTAssertTrue(failure?.reason.contains("handshake failure") ?? false, failure?.reason ?? "")
    }

    func testMutualTLSPresentsTheClientCertificate() throws {
        let peer = try TLSTestPeer(certificates: certificates, requireClientCertificate: true)
        XCTAssertEqual(try echoOneFrame(peer, try context(certificate: true), size: 64), "TLSv1.3")
    }

    func testCloseNotifyFromThePeerIsAnOrderlyClose() throws {
        let peer = try TLSTestPeer(certificates: certificates)
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let serverDone = peer.serveEcho(closeNotifyAfter: 14)
        let handler = RecordingHandler()
        handler.onConnect = { channel in
            appendFrame(to: channel, size: 10, seed: 3)
            channel.flush()
        }
        _ = connect(reactor, port: peer.port, tls: try context(), handler: handler)
        guard waitOrFail(handler.closedSignal, "close") else { return }
        let state = handler.state.withLock { $0 }
        XCTAssertEqual(state.events, ["connect", "frame", "close"])
        XCTAssertEqual(state.closeError?.kind, .peerClosed)
        _ = waitOrFail(serverDone, "TLS server")
    }

    // MARK: Verification failures

    func testUntrustedCertificateFailsVerification() throws {
        let peer = try TLSTestPeer(certificates: certificates)
        let failure = try handshakeFailure(peer, try context(caFile: certificates.unrelatedCAFile))
        XCTAssertTrue(failure?.isCertificateVerificationFailure ?? false)
        XCTAssertEqual(failure?.description, "certificate verify failed: unable to get local issuer certificate")
        XCTAssertEqual(failure?.verificationCode, 20)   // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    }

    func testServerNameMismatchFailsVerification() throws {
        let peer = try TLSTestPeer(certificates: certificates)
        let failure = try handshakeFailure(peer, try context(serverName: "wrong.example"))
        XCTAssertEqual(failure?.description, "certificate verify failed: hostname mismatch")
    }

    /// TLS 1.3 servers reject a missing client certificate after the client finished: the
    /// alert still counts as a handshake failure.
    func testMissingClientCertificateIsAHandshakeFailure() throws {
        let peer = try TLSTestPeer(certificates: certificates, requireClientCertificate: true)
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let serverDone = peer.serveEcho()
        let handler = RecordingHandler()
        handler.onConnect = { channel in
            appendFrame(to: channel, size: 8, seed: 1)
            channel.flush()
        }
        _ = connect(reactor, port: peer.port, tls: try context(), handler: handler)
        guard waitOrFail(handler.closedSignal, "close") else { return }
        let error = handler.state.withLock { $0.closeError }
        guard case .tls(let failure)? = error?.kind else { return XCTFail("expected TLS failure, got \(String(describing: error))") }
        XCTAssertEqual(failure.stage, .handshake)
        XCTAssertTrue(failure.reason.contains("certificate required") || failure.reason.contains("handshake failure"),
                      failure.reason)
        XCTAssertEqual(handler.state.withLock { $0.frames }, [])
        _ = waitOrFail(serverDone, "TLS server")
    }

    // MARK: Hostile peers

    func testPeerClosingMidHandshakeIsATypedError() throws {
        for fraction in [0.0, 0.3, 0.9] {
            let peer = try TLSTestPeer(certificates: certificates)
            let reactor = try startedReactor()
            defer { reactor.shutdown() }
            let serverDone = peer.serveTruncatedFlight(fraction: fraction)
            let handler = RecordingHandler()
            _ = connect(reactor, port: peer.port, tls: try context(), handler: handler)
            let failure = tlsFailure(handler)
            XCTAssertEqual(failure?.reason, "the peer closed the connection during the handshake (is this a TLS port?)",
                           "fraction \(fraction)")
            _ = waitOrFail(serverDone, "truncating server")
        }
    }

    func testGarbageDuringHandshakeIsATypedError() throws {
        var random = SeededBytes(seed: 0x7e57)
        var replies: [[UInt8]] = [
            Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".utf8),
            [0, 0, 0, 12] + Array(repeating: 0, count: 12),               // a Kafka-style frame
            [0x16, 0x03, 0x03, 0xff, 0xff] + random.bytes(300),            // handshake record, oversized length
            [0x16, 0x03, 0x03, 0x00, 0x00],                                // empty handshake record
            [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],                    // a fatal alert
            [0x17, 0x03, 0x03, 0x00, 0x10] + random.bytes(16),             // application data before the handshake
        ]
        for _ in 0..<20 { replies.append(random.bytes(1 + Int(random.next() % 2000))) }
        for (i, reply) in replies.enumerated() {
            guard let server = BlockingServer() else { return XCTFail("listen") }
            let reactor = try startedReactor()
            defer { reactor.shutdown() }
            let serverDone = serveReplyToClientHello(server, reply)
            let handler = RecordingHandler()
            _ = connect(reactor, port: server.port, tls: try context(), handler: handler)
            guard let failure = tlsFailure(handler) else { return XCTFail("reply \(i) did not fail as TLS") }
            XCTAssertFalse(failure.reason.isEmpty, "reply \(i)")
            _ = waitOrFail(serverDone, "garbage server")
        }
    }

    /// A peer that accepts and never answers: the connect timeout covers the handshake.
    func testSilentPeerTimesOutTheHandshake() throws {
        guard let server = BlockingServer() else { return XCTFail("listen") }
        let reactor = try startedReactor()
        defer { reactor.shutdown() }
        let release = DispatchSemaphore(value: 0)
        let serverDone = runThread {
            guard let fd = server.acceptOne() else { return }
            _ = release.wait(timeout: .after(safetyTimeout))
            close(fd)
        }
        let handler = RecordingHandler()
        _ = connect(reactor, port: server.port, tls: try context(), handler: handler, timeout: 300_000_000)
        guard waitOrFail(handler.closedSignal, "close") else { return }
        let error = handler.state.withLock { $0.closeError }
        XCTAssertEqual(error?.kind, .connectTimeout)
        XCTAssertEqual(error?.description, "TLS handshake with 127.0.0.1:\(server.port) timed out")
        XCTAssertFalse(handler.state.withLock { $0.connected })
        release.signal()
        _ = waitOrFail(serverDone, "silent server")
    }

    // MARK: Context setup

    func testContextSetupErrorsNameTheInput() throws {
        let missing = certificates.directory + "/missing.pem"
        XCTAssertThrowsError(try TLSContext(caFile: missing)) {
            XCTAssertEqual(($0 as? TLSSetupError)?.field, .caFile)
        }
        XCTAssertThrowsError(try TLSContext(caDirectory: missing)) {
            XCTAssertEqual(($0 as? TLSSetupError)?.field, .caDirectory)
        }
        XCTAssertThrowsError(try TLSContext(certificateFile: certificates.clientCertificateFile,
                                            privateKeyFile: certificates.serverKeyFile)) {
            XCTAssertEqual(($0 as? TLSSetupError)?.field, .privateKeyFile)
        }
        XCTAssertThrowsError(try TLSContext(serverName: "")) {
            XCTAssertEqual(($0 as? TLSSetupError)?.field, .serverName)
        }
        XCTAssertNoThrow(try TLSContext(certificateFile: certificates.clientCertificateFile,
                                        privateKeyFile: certificates.encryptedClientKeyFile,
                                        privateKeyPassword: certificates.clientKeyPassword))
        XCTAssertNoThrow(try TLSContext())   // the system trust store
    }
}
