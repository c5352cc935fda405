import CCrypto
import Dispatch
import Glibc
@testable import KlifeIO
import KlifeTesting
import XCTest

/// The server side of TLS tests: OpenSSL's server over a blocking loopback socket, on its
/// own thread, written independently of the client code under test.
final class TLSTestPeer: @unchecked Sendable {
    // @unchecked Sendable: `context` is configured in init and only read afterwards
    // (OpenSSL allows concurrent SSL_new on one SSL_CTX); `server` is used by one thread at a time.
    let server: BlockingServer
    let certificates: TestCertificates
    private let context: OpaquePointer
    var port: Int { server.port }

    /// - Parameters:
    ///   - requireClientCertificate: Demand a client certificate signed by the test CA.
    ///   - maximumVersion: The newest protocol offered (`TLS1_2_VERSION`, …); protocols
    ///     older than TLS 1.2 also lower OpenSSL's security level so they can be offered at all.
    init(certificates: TestCertificates, requireClientCertificate: Bool = false, maximumVersion: Int32? = nil) throws {
        guard let server = BlockingServer() else { throw XCTSkip("cannot listen on 127.0.0.1") }
        guard let context = SSL_CTX_new(TLS_server_method()) else { throw TLSPeerError("SSL_CTX_new") }
        guard SSL_CTX_use_certificate_chain_file(context, certificates.serverCertificateFile) == 1,
              SSL_CTX_use_PrivateKey_file(context, certificates.serverKeyFile, SSL_FILETYPE_PEM) == 1 else {
            SSL_CTX_free(context)
            throw TLSPeerError("server certificate or key")
        }
        if let maximumVersion {
            SSL_CTX_ctrl(context, SSL_CTRL_SET_MAX_PROTO_VERSION, Int(maximumVersion), nil)
            if maximumVersion < TLS1_2_VERSION { SSL_CTX_set_security_level(context, 0) }
        }
        if requireClientCertificate {
            SSL_CTX_load_verify_locations(context, certificates.caFile, nil)
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        }
        self.server = server
        self.certificates = certificates
        self.context = context
    }

    deinit { SSL_CTX_free(context) }

    /// Accepts one connection and echoes every decrypted byte until the client closes; with
    /// `closeNotifyAfter`, sends close_notify once that many bytes were echoed and stops.
    /// A failed handshake just ends the thread.
    @discardableResult
    func serveEcho(closeNotifyAfter: Int? = nil) -> DispatchSemaphore {
        runThread { [self] in
            guard let fd = server.acceptOne() else { return }
            defer { close(fd) }
            guard let ssl = SSL_new(context) else { return }
            defer { SSL_free(ssl) }
            SSL_set_fd(ssl, fd)
            guard SSL_accept(ssl) == 1 else { return }
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            var echoed = 0
            while true {
                let n = buffer.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
                if n <= 0 { return }
                var sent = 0
                while sent < Int(n) {
                    let w = buffer.withUnsafeBytes { SSL_write(ssl, $0.baseAddress! + sent, n - Int32(sent)) }
                    if w <= 0 { return }
                    sent += Int(w)
                }
                echoed += Int(n)
                if let limit = closeNotifyAfter, echoed >= limit {
                    SSL_shutdown(ssl)
                    return
                }
            }
        }
    }

    /// Accepts one connection, reads the ClientHello, runs OpenSSL's server side in memory
    /// and sends only the first `fraction` of its reply flight, then closes.
    @discardableResult
    func serveTruncatedFlight(fraction: Double) -> DispatchSemaphore {
        runThread { [self] in
            guard let fd = server.acceptOne() else { return }
            defer { close(fd) }
            let hello = readTLSRecord(fd)
            guard !hello.isEmpty, let ssl = SSL_new(context) else { return }
            defer { SSL_free(ssl) }
            guard let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else { return }
            SSL_set_bio(ssl, input, output)
            SSL_set_accept_state(ssl)
            _ = hello.withUnsafeBytes { BIO_write(input, $0.baseAddress, Int32($0.count)) }
            _ = SSL_do_handshake(ssl)   // wants the client's next flight; its own is in `output`
            var flight = [UInt8](repeating: 0, count: Int(BIO_ctrl_pending(output)))
            let got = flight.withUnsafeMutableBytes { BIO_read(output, $0.baseAddress, Int32($0.count)) }
            guard got > 0 else { return }
            writeAll(fd, Array(flight.prefix(max(1, Int(Double(got) * fraction)))))
        }
    }
}

struct TLSPeerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads one TLS record (5-byte header, then its body) from a blocking socket, so a peer
/// that answers the ClientHello has consumed all of it (closing with unread bytes would
/// make the kernel send a reset instead of a clean end of stream).
func readTLSRecord(_ fd: Int32) -> [UInt8] {
    let header = readFully(fd, count: 5)
    guard header.count == 5 else { return header }
    let length = Int(header[3]) << 8 | Int(header[4])
    return header + readFully(fd, count: length)
}

/// Accepts one connection, reads the ClientHello record, answers with `reply` and closes.
@discardableResult
func serveReplyToClientHello(_ server: BlockingServer, _ reply: [UInt8]) -> DispatchSemaphore {
    runThread {
        guard let fd = server.acceptOne() else { return }
        defer { close(fd) }
        _ = readTLSRecord(fd)
        writeAll(fd, reply)
    }
}

/// A seeded xorshift generator, so a failing garbage case can be replayed.
struct SeededBytes {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }
}
