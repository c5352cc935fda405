import CCrypto
import Glibc

/// A bad TLS setting found while building a ``TLSContext``: which input, and why.
public struct TLSSetupError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The input that could not be used.
    public enum Field: Sendable, Equatable {
        /// The PEM file of trusted CA certificates.
        case caFile
        /// The directory of hashed CA certificates.
        case caDirectory
        /// The client certificate (chain) PEM file.
        case certificateFile
        /// The client private key PEM file, or a key that does not match the certificate.
        case privateKeyFile
        /// The name to send in SNI and verify.
        case serverName
        /// OpenSSL itself (out of memory, no TLS 1.2 support, unreadable system trust store).
        case library
    }

    /// The input that could not be used.
    public var field: Field
    /// Why, in words (OpenSSL's reason when it gave one).
    public var reason: String

    /// Creates an error.
    public init(field: Field, reason: String) {
        self.field = field
        self.reason = reason
    }

    /// For example `caFile: /etc/kafka/ca.pem does not exist`.
    public var description: String { "\(field): \(reason)" }
}

/// The TLS settings shared by every connection of a client: one OpenSSL `SSL_CTX` (trust
/// store, client certificate, TLS 1.2 minimum) plus how peers are checked.
///
/// Build it once; it is read-only afterwards and may be shared by all reactors. Each
/// connection makes its own session from it (see ``TCPChannel/connect(host:port:on:connectTimeoutNanoseconds:tls:handler:)``).
///
/// ```swift
/// let tls = try TLSContext(caFile: "/etc/kafka/ca.pem")
/// TCPChannel.connect(host: "broker-1", port: 9093, on: reactor, connectTimeoutNanoseconds: timeout,
///                    tls: tls, handler: handler)
/// ```
public final class TLSContext: @unchecked Sendable {
    // @unchecked Sendable: `context` is fully configured in init and never changed after;
    // OpenSSL allows sessions to be created from one SSL_CTX on many threads at once (its
    // reference count is atomic and the X509_STORE locks its own certificate cache). The
    // other properties are immutable values.

    /// The `SSL_CTX *`; owned, freed in deinit.
    let context: OpaquePointer
    /// Whether the peer's certificate chain is verified (off only with `verifyCertificates: false`).
    public let verifiesCertificates: Bool
    /// Whether the certificate must name the host (or ``serverName``) that was connected to.
    public let verifiesHostname: Bool
    /// Sent in SNI and verified instead of the connected host, when set.
    public let serverName: String?

    /// Builds the context and checks every file now, so bad settings fail here and not on
    /// the first connection.
    ///
    /// - Parameters:
    ///   - caFile: PEM file of trusted CA certificates.
    ///   - caDirectory: Directory of CA certificates named by subject hash (`c_rehash`).
    ///     With neither, the system's default trust store is used.
    ///   - certificateFile: Client certificate PEM (leaf first, then intermediates), for mutual TLS.
    ///   - privateKeyFile: The client certificate's private key (PEM, PKCS#1/PKCS#8/SEC1).
    ///   - privateKeyPassword: Decrypts `privateKeyFile` when it is encrypted.
    ///   - verifyCertificates: `false` accepts any certificate — only for development:
    ///     anyone on the path can then read and change the traffic.
    ///   - verifyHostname: Whether the certificate must match the broker's host (DNS name or
    ///     IP address) or `serverName`.
    ///   - serverName: A name to send in SNI and verify instead of the connected host.
    /// - Throws: ``TLSSetupError`` naming the input that failed.
    public init(caFile: String? = nil, caDirectory: String? = nil, certificateFile: String? = nil,
                privateKeyFile: String? = nil, privateKeyPassword: String? = nil,
                verifyCertificates: Bool = true, verifyHostname: Bool = true,
                serverName: String? = nil) throws(TLSSetupError) {
        if let serverName, serverName.isEmpty || serverName.utf8.contains(0) {
            throw TLSSetupError(field: .serverName, reason: "must be a non-empty name without NUL")
        }
        ERR_clear_error()
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw TLSSetupError(field: .library, reason: "SSL_CTX_new failed: \(Self.takeErrorReasons() ?? "no reason")")
        }
        do {
            try Self.configure(context, caFile: caFile, caDirectory: caDirectory, certificateFile: certificateFile,
                               privateKeyFile: privateKeyFile, privateKeyPassword: privateKeyPassword,
                               verifyCertificates: verifyCertificates)
        } catch {
            SSL_CTX_free(context)
            throw error
        }
        self.context = context
        self.verifiesCertificates = verifyCertificates
        self.verifiesHostname = verifyHostname
        self.serverName = serverName
    }

    deinit { SSL_CTX_free(context) }

    private static func configure(_ context: OpaquePointer, caFile: String?, caDirectory: String?,
                                  certificateFile: String?, privateKeyFile: String?, privateKeyPassword: String?,
                                  verifyCertificates: Bool) throws(TLSSetupError) {
        guard klife_ssl_ctx_set_min_tls12(context) == 1 else {
            throw TLSSetupError(field: .library, reason: "cannot require TLS 1.2: \(takeErrorReasons() ?? "no reason")")
        }
        klife_ssl_ctx_set_modes(context)
        klife_ssl_ctx_set_options(context)

        if let caFile { try requireFile(caFile, field: .caFile) }
        if let caDirectory { try requireDirectory(caDirectory) }
        if caFile != nil || caDirectory != nil {
            guard SSL_CTX_load_verify_locations(context, caFile, caDirectory) == 1 else {
                throw TLSSetupError(field: caFile != nil ? .caFile : .caDirectory,
                                    reason: "\(caFile ?? caDirectory ?? ""): no usable CA certificate "
                                        + "(\(takeErrorReasons() ?? "unknown reason"))")
            }
        } else if verifyCertificates {
            guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                throw TLSSetupError(field: .library, reason: "cannot load the system trust store: \(takeErrorReasons() ?? "no reason")")
            }
        }
        SSL_CTX_set_verify(context, verifyCertificates ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)

        switch (certificateFile, privateKeyFile) {
        case (nil, nil):
            return
        case (_?, nil):
            throw TLSSetupError(field: .privateKeyFile, reason: "is required with a client certificate")
        case (nil, _?):
            throw TLSSetupError(field: .certificateFile, reason: "is required with a private key")
        case let (certificateFile?, privateKeyFile?):
            try requireFile(certificateFile, field: .certificateFile)
            try requireFile(privateKeyFile, field: .privateKeyFile)
            guard SSL_CTX_use_certificate_chain_file(context, certificateFile) == 1 else {
                throw TLSSetupError(field: .certificateFile,
                                    reason: "\(certificateFile): not a PEM certificate (\(takeErrorReasons() ?? "unknown reason"))")
            }
            try usePrivateKey(context, path: privateKeyFile, password: privateKeyPassword)
        }
    }

    /// Loads the key without ever prompting on a terminal (OpenSSL's default for encrypted
    /// keys), installs it and checks it belongs to the certificate.
    private static func usePrivateKey(_ context: OpaquePointer, path: String, password: String?) throws(TLSSetupError) {
        guard let file = BIO_new_file(path, "r") else {
            throw TLSSetupError(field: .privateKeyFile, reason: "\(path): cannot be opened (\(takeErrorReasons() ?? "unknown reason"))")
        }
        defer { BIO_free(file) }
        let key: OpaquePointer? = withOptionalCString(password) { passwordPointer in
            PEM_read_bio_PrivateKey(file, nil, { buffer, size, _, userData in
                // No password configured: fail instead of prompting.
                guard let buffer, let userData else { return 0 }
                let password = userData.assumingMemoryBound(to: CChar.self)
                let length = min(Int(strlen(password)), Int(size))
                buffer.update(from: password, count: length)
                return Int32(length)
            }, UnsafeMutableRawPointer(mutating: passwordPointer))
        }
        guard let key else {
            let detail = takeErrorReasons() ?? "unknown reason"
            throw TLSSetupError(field: .privateKeyFile, reason: password == nil
                ? "\(path): cannot read the key (\(detail)); an encrypted key needs a password"
                : "\(path): cannot read or decrypt the key (\(detail))")
        }
        defer { EVP_PKEY_free(key) }
        guard SSL_CTX_use_PrivateKey(context, key) == 1, SSL_CTX_check_private_key(context) == 1 else {
            throw TLSSetupError(field: .privateKeyFile,
                                reason: "\(path) does not match the client certificate (\(takeErrorReasons() ?? "unknown reason"))")
        }
    }

    private static func withOptionalCString<R>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
        guard let text else { return body(nil) }
        return text.withCString { body($0) }
    }

    private static func requireFile(_ path: String, field: TLSSetupError.Field) throws(TLSSetupError) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw TLSSetupError(field: field, reason: "\(path): \(IOError.message(forErrno: errno))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw TLSSetupError(field: field, reason: "\(path) is not a file") }
        guard access(path, R_OK) == 0 else {
            throw TLSSetupError(field: field, reason: "\(path): \(IOError.message(forErrno: errno))")
        }
    }

    private static func requireDirectory(_ path: String) throws(TLSSetupError) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw TLSSetupError(field: .caDirectory, reason: "\(path): \(IOError.message(forErrno: errno))")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw TLSSetupError(field: .caDirectory, reason: "\(path) is not a directory") }
    }

    /// Empties this thread's OpenSSL error queue and returns its distinct reason strings,
    /// oldest first, joined by `; ` (`nil` when the queue was empty).
    static func takeErrorReasons() -> String? {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            let reason: String
            if let text = ERR_reason_error_string(code) {
                reason = String(cString: text)
            } else {
                var buffer = [CChar](repeating: 0, count: 256)
                ERR_error_string_n(code, &buffer, buffer.count)
                reason = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            if !reasons.contains(reason) { reasons.append(reason) }
        }
        return reasons.isEmpty ? nil : reasons.joined(separator: "; ")
    }
}
