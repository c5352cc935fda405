import CCrypto
import KlifeProtocol

/// One connection's TLS state: an OpenSSL `SSL` between two memory BIOs. It never
/// touches the socket; the channel moves ciphertext in and out:
///
///     socket ─read─► readBuffer ─receive()─► networkIn ─SSL_read──► decrypt(into:) ─► handler
///     handler ─► outbound ─encrypt()─SSL_write─► networkOut ─takeCiphertext()─► sealed ─writev─► socket
///
/// Memory BIOs grow as needed, so OpenSSL never reports "want write"; "want read" means
/// the next bytes have to come from the peer. Used on one reactor thread only.
final class TLSSession {
    /// What ``handshake()`` achieved.
    enum HandshakeProgress {
        case established
        /// Waiting for the peer's next flight.
        case pending
        case failed(TLSFailure)
    }

    /// What ``decrypt(into:)`` produced.
    enum ReadOutcome {
        case bytes(Int)
        /// Every complete record was consumed; more ciphertext is needed.
        case needsInput
        /// The peer sent close_notify.
        case closedByPeer
        case failed(TLSFailure)
    }

    /// What ``encrypt(_:)`` did.
    enum WriteOutcome {
        case wrote(Int)
        /// OpenSSL must read before it can write (not expected: renegotiation is refused).
        case needsInput
        case failed(TLSFailure)
    }

    /// The `SSL *`; owns both BIOs.
    private let ssl: OpaquePointer
    /// Ciphertext from the peer, read by OpenSSL.
    private let networkIn: OpaquePointer
    /// Ciphertext OpenSSL produced, to be sent to the peer.
    private let networkOut: OpaquePointer
    /// Set once a byte of application data was decrypted: failures before it belong to the
    /// handshake (TLS 1.3 servers reject client certificates after the client finished).
    private(set) var hasReceivedApplicationData = false

    /// Largest plaintext handed to one `SSL_write`, so the output BIO stays small.
    static let encryptChunk = 64 * 1024

    /// Creates a client session for a connection to `host`.
    ///
    /// SNI carries ``TLSContext/serverName`` or else `host`, unless that is an IP literal.
    /// With hostname verification the certificate must match the same name: as a DNS name
    /// (no partial wildcards), or as an IP address for literals.
    init(context: TLSContext, host: String) throws(TLSFailure) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.context) else {
            throw Self.setupFailure("SSL_new failed")
        }
        guard let networkIn = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw Self.setupFailure("BIO_new failed")
        }
        guard let networkOut = BIO_new(BIO_s_mem()) else {
            BIO_free(networkIn)
            SSL_free(ssl)
            throw Self.setupFailure("BIO_new failed")
        }
        SSL_set_bio(ssl, networkIn, networkOut)
        SSL_set_connect_state(ssl)
        self.ssl = ssl
        self.networkIn = networkIn
        self.networkOut = networkOut

        var name = context.serverName ?? host
        if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        let isAddress = SocketAddress(numericHost: name, port: 0) != nil
        // Only DNS names go in SNI (RFC 6066 forbids literal addresses there).
        if !isAddress && klife_ssl_set_sni(ssl, name) != 1 {
            throw Self.setupFailure("cannot send server name '\(name)'")
        }
        if context.verifiesCertificates && context.verifiesHostname {
            let set: Int32
            if isAddress {
                set = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
            } else {
                SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
                set = SSL_set1_host(ssl, name)
            }
            if set != 1 { throw Self.setupFailure("cannot verify against '\(name)'") }
        }
    }

    deinit { SSL_free(ssl) }

    // MARK: Handshake

    /// Advances the handshake with whatever ciphertext was received; its output waits in
    /// ``takeCiphertext(into:)``. Returns `.established` once it is complete (our side).
    func handshake() -> HandshakeProgress {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 { return .established }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .pending
        case let code:
            return .failed(failure(.handshake, errorCode: code))
        }
    }

    // MARK: Ciphertext in and out

    /// Hands bytes read from the socket to OpenSSL (they are copied).
    /// - Returns: `false` when OpenSSL could not take them (out of memory).
    func receive(_ ciphertext: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < ciphertext.count {
            let chunk = Int32(clamping: ciphertext.count - offset)
            let written = BIO_write(networkIn, ciphertext.baseAddress! + offset, chunk)
            guard written > 0 else { return false }
            offset += Int(written)
        }
        return true
    }

    /// The negotiated protocol, such as `TLSv1.3` (diagnostics and tests).
    var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    /// Whether OpenSSL produced ciphertext that is not taken yet.
    var hasCiphertext: Bool { BIO_ctrl_pending(networkOut) > 0 }

    /// Appends all ciphertext OpenSSL produced to `writer` (one copy, no scratch buffer).
    /// - Returns: `false` if the memory BIO broke its contract and returned fewer bytes.
    func takeCiphertext(into writer: inout ByteWriter) -> Bool {
        let pending = Int(BIO_ctrl_pending(networkOut))
        guard pending > 0 else { return true }
        let offset = writer.reserve(pending)
        let read = writer.withUnsafeMutableBytes(offset..<(offset + pending)) { space in
            BIO_read(networkOut, space.baseAddress, Int32(clamping: space.count))
        }
        return Int(read) == pending
    }

    // MARK: Application data

    /// Decrypts received records into `space` (which must not be empty).
    func decrypt(into space: UnsafeMutableRawBufferPointer) -> ReadOutcome {
        ERR_clear_error()
        let result = SSL_read(ssl, space.baseAddress, Int32(clamping: space.count))
        if result > 0 {
            hasReceivedApplicationData = true
            return .bytes(Int(result))
        }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .needsInput
        case SSL_ERROR_ZERO_RETURN:
            return .closedByPeer
        case let code:
            return .failed(failure(hasReceivedApplicationData ? .session : .handshake, errorCode: code))
        }
    }

    /// Encrypts up to ``encryptChunk`` bytes of `plaintext` into TLS records.
    func encrypt(_ plaintext: UnsafeRawBufferPointer) -> WriteOutcome {
        guard !plaintext.isEmpty else { return .wrote(0) }
        ERR_clear_error()
        let result = SSL_write(ssl, plaintext.baseAddress, Int32(min(plaintext.count, Self.encryptChunk)))
        if result > 0 { return .wrote(Int(result)) }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .needsInput
        case let code:
            return .failed(failure(hasReceivedApplicationData ? .session : .handshake, errorCode: code))
        }
    }

    // MARK: Errors

    /// Builds a failure from the error queue and, when the peer's certificate was
    /// rejected, the verification result.
    private func failure(_ stage: TLSFailure.Stage, errorCode: Int32) -> TLSFailure {
        let reasons = TLSContext.takeErrorReasons()
        let verifyResult = SSL_get_verify_result(ssl)
        var verificationError: String?
        if verifyResult != X509_V_OK, let text = X509_verify_cert_error_string(verifyResult) {
            verificationError = String(cString: text)
        }
        let reason = reasons ?? (errorCode == SSL_ERROR_SYSCALL ? "unexpected end of the TLS stream"
                                                                 : "OpenSSL error \(errorCode)")
        return TLSFailure(stage: stage, reason: reason, verificationError: verificationError,
                          verificationCode: verificationError == nil ? nil : Int(verifyResult))
    }

    private static func setupFailure(_ what: String) -> TLSFailure {
        TLSFailure(stage: .handshake, reason: "\(what): \(TLSContext.takeErrorReasons() ?? "no reason")")
    }
}
