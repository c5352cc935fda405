import KlifeIO

/// TLS for every broker connection (``KlifeConfiguration/tls``): Kafka's `SSL` security
/// protocol, or `SASL_SSL` together with ``KlifeConfiguration/sasl``.
///
/// The defaults are the safe ones: the broker's certificate must chain to a trusted CA
/// (the system trust store unless ``caFile`` or ``caDirectory`` is given) and must name
/// the host the client connected to; TLS 1.2 is the minimum version.
///
/// ```swift
/// var config = KlifeConfiguration(bootstrapServers: ["broker-1.example.com:9093"])
/// config.tls = TLSConfiguration()                                   // system trust store
/// config.tls = TLSConfiguration(caFile: "/etc/kafka/ca.pem")        // private CA
/// config.tls = TLSConfiguration(caFile: "/etc/kafka/ca.pem",        // mutual TLS
///                               certificateFile: "/etc/kafka/client.pem",
///                               privateKeyFile: "/etc/kafka/client.key")
/// ```
///
/// Files are read once, when the client is created: ``KlifeClient/connect(_:)`` reports a
/// missing or unreadable file, a file without certificates, or a key that does not match
/// the certificate as `invalidConfiguration` naming the field (`tls.caFile`, …). A broker
/// whose certificate does not verify fails the connection with
/// ``KlifeError/Code/tlsHandshakeFailed`` and OpenSSL's reason, such as
/// `certificate verify failed: hostname mismatch`.
public struct TLSConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// PEM file of CA certificates to trust (replaces the system trust store).
    public var caFile: String?
    /// Directory of CA certificates named by subject hash, as `openssl rehash` makes it
    /// (replaces the system trust store; may be combined with ``caFile``).
    public var caDirectory: String?
    /// Client certificate PEM file (leaf first, then any intermediates), for brokers that
    /// require mutual TLS (`ssl.client.auth=required`). Needs ``privateKeyFile``.
    public var certificateFile: String?
    /// The client certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1). Needs ``certificateFile``.
    public var privateKeyFile: String?
    /// Password of an encrypted ``privateKeyFile``. Never logged: ``description`` redacts it.
    public var privateKeyPassword: String?
    /// Name sent in SNI and verified against the certificate instead of each broker's host.
    /// `nil` (the default): each broker's own host, sent in SNI unless it is an IP address.
    /// Use it when brokers are reached through an address their certificates do not name
    /// (an IP, a tunnel); all brokers must then present a certificate for this name.
    public var serverName: String?
    /// Whether the certificate must name the broker's host (or ``serverName``): a DNS name
    /// matched as in HTTPS (wildcards only as the whole left-most label), or an IP address
    /// for IP literals. On by default; turning it off lets any holder of a certificate from
    /// a trusted CA impersonate the broker.
    public var verifyHostname: Bool
    /// Whether the broker's certificate is verified at all. On by default.
    ///
    /// - Warning: `false` is for development only: any certificate is accepted, so anyone on
    ///   the network path can read and change all traffic, SASL credentials included.
    public var verifyCertificates: Bool

    /// Creates a TLS configuration; with no arguments, TLS with the system trust store.
    /// - Parameters:
    ///   - caFile: PEM file of CA certificates to trust instead of the system store.
    ///   - caDirectory: Hashed directory of CA certificates to trust instead of the system store.
    ///   - certificateFile: Client certificate PEM, for mutual TLS.
    ///   - privateKeyFile: The client certificate's private key PEM.
    ///   - privateKeyPassword: Password of an encrypted private key.
    ///   - serverName: Name to send in SNI and verify instead of each broker's host.
    ///   - verifyHostname: Whether the certificate must name the broker (default `true`).
    ///   - verifyCertificates: Whether certificates are verified at all (default `true`;
    ///     `false` is unsafe, for development only).
    public init(caFile: String? = nil, caDirectory: String? = nil, certificateFile: String? = nil,
                privateKeyFile: String? = nil, privateKeyPassword: String? = nil, serverName: String? = nil,
                verifyHostname: Bool = true, verifyCertificates: Bool = true) {
        self.caFile = caFile
        self.caDirectory = caDirectory
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        self.privateKeyPassword = privateKeyPassword
        self.serverName = serverName
        self.verifyHostname = verifyHostname
        self.verifyCertificates = verifyCertificates
    }

    /// The settings in one line; the key password is redacted.
    public var description: String {
        var parts: [String] = []
        if let caFile { parts.append("caFile=\(caFile)") }
        if let caDirectory { parts.append("caDirectory=\(caDirectory)") }
        if caFile == nil && caDirectory == nil { parts.append("system trust store") }
        if let certificateFile { parts.append("certificateFile=\(certificateFile)") }
        if let privateKeyFile { parts.append("privateKeyFile=\(privateKeyFile)") }
        if privateKeyPassword != nil { parts.append("privateKeyPassword=(redacted)") }
        if let serverName { parts.append("serverName=\(serverName)") }
        if !verifyHostname { parts.append("hostname not verified") }
        if !verifyCertificates { parts.append("CERTIFICATES NOT VERIFIED") }
        return "TLS (" + parts.joined(separator: ", ") + ")"
    }

    /// Checks the fields without touching files; called by ``KlifeConfiguration/validate()``.
    func validate() throws(KlifeError) {
        let paths: [(String, String?)] = [("tls.caFile", caFile), ("tls.caDirectory", caDirectory),
                                          ("tls.certificateFile", certificateFile), ("tls.privateKeyFile", privateKeyFile)]
        for (field, value) in paths {
            guard let value else { continue }
            if value.isEmpty { throw .invalidConfiguration(field, "must not be empty (use nil)") }
            if value.utf8.contains(0) { throw .invalidConfiguration(field, "must not contain NUL") }
        }
        if certificateFile != nil && privateKeyFile == nil {
            throw .invalidConfiguration("tls.privateKeyFile", "is required with tls.certificateFile")
        }
        if privateKeyFile != nil && certificateFile == nil {
            throw .invalidConfiguration("tls.certificateFile", "is required with tls.privateKeyFile")
        }
        if let privateKeyPassword {
            if privateKeyFile == nil { throw .invalidConfiguration("tls.privateKeyPassword", "is set without tls.privateKeyFile") }
            if privateKeyPassword.utf8.contains(0) { throw .invalidConfiguration("tls.privateKeyPassword", "must not contain NUL") }
        }
        if let serverName, serverName.isEmpty || serverName.utf8.contains(0) {
            throw .invalidConfiguration("tls.serverName", "must be a non-empty name without NUL (use nil for each broker's host)")
        }
    }

    /// Reads the files into the OpenSSL context every connection of the client shares.
    /// - Throws: `invalidConfiguration` naming the field whose file could not be used.
    func makeContext() throws(KlifeError) -> TLSContext {
        do {
            return try TLSContext(caFile: caFile, caDirectory: caDirectory, certificateFile: certificateFile,
                                  privateKeyFile: privateKeyFile, privateKeyPassword: privateKeyPassword,
                                  verifyCertificates: verifyCertificates, verifyHostname: verifyHostname,
                                  serverName: serverName)
        } catch {
            let field = switch error.field {
            case .caFile: "tls.caFile"
            case .caDirectory: "tls.caDirectory"
            case .certificateFile: "tls.certificateFile"
            case .privateKeyFile: "tls.privateKeyFile"
            case .serverName: "tls.serverName"
            case .library: "tls"
            }
            throw .invalidConfiguration(field, error.reason)
        }
    }
}
