/// SASL authentication for every broker connection (``KlifeConfiguration/sasl``).
///
/// When set, each connection authenticates right after the ApiVersions handshake and
/// before any other request: SaslHandshake v1 names the mechanism, then the SASL tokens
/// travel in SaslAuthenticate requests (KIP-152). A connection is not used until the
/// exchange has completed (for SCRAM: until the broker's server signature verified).
///
/// ```swift
/// var config = KlifeConfiguration(bootstrapServers: ["broker:9092"])
/// config.sasl = SASLConfiguration(mechanism: .scramSHA512, username: "alice", password: secret)
/// let client = try await KlifeClient.connect(config)
/// ```
///
/// - Important: Set ``KlifeConfiguration/tls`` as well (Kafka's `SASL_SSL`): SASL then runs
///   inside the TLS session. Without TLS, ``Mechanism/plain`` sends the **password in clear
///   text** and anyone on the network path can read it; SCRAM never sends the password (only
///   a proof), but the session that follows is unencrypted and the broker unauthenticated
///   at the transport level.
/// - Note: The password is held in memory, as a `String`, for the life of the client
///   (every new connection needs it). It is never logged: ``description`` redacts it.
/// - Note: When the broker grants a session lifetime (`connections.max.reauth.ms`,
///   KIP-368), every connection re-authenticates on the same socket at 85–95 % of it.
public struct SASLConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// The SASL mechanism.
    public enum Mechanism: Sendable, Equatable, CaseIterable, CustomStringConvertible {
        /// SASL PLAIN (RFC 4616): username and password in one message, **in clear text**
        /// unless ``KlifeConfiguration/tls`` is set.
        case plain
        /// SCRAM-SHA-256 (RFC 5802, RFC 7677).
        case scramSHA256
        /// SCRAM-SHA-512.
        case scramSHA512

        /// The IANA name sent in SaslHandshake (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`).
        public var name: String {
            switch self {
            case .plain: "PLAIN"
            case .scramSHA256: "SCRAM-SHA-256"
            case .scramSHA512: "SCRAM-SHA-512"
            }
        }

        /// ``name``.
        public var description: String { name }
    }

    /// The mechanism to negotiate.
    public var mechanism: Mechanism
    /// The authentication identity.
    public var username: String
    /// The password, kept in memory for as long as the configuration lives.
    public var password: String

    /// Creates a SASL configuration.
    public init(mechanism: Mechanism, username: String, password: String) {
        self.mechanism = mechanism
        self.username = username
        self.password = password
    }

    /// The mechanism and username; the password is redacted.
    public var description: String { "SASL \(mechanism.name) as \(username) (password redacted)" }

    /// Checks the fields; called by ``KlifeConfiguration/validate()``.
    func validate() throws(KlifeError) {
        if username.isEmpty { throw .invalidConfiguration("sasl.username", "must not be empty") }
        if password.isEmpty { throw .invalidConfiguration("sasl.password", "must not be empty") }
        if username.utf8.contains(0) { throw .invalidConfiguration("sasl.username", "must not contain NUL") }
        if password.utf8.contains(0) { throw .invalidConfiguration("sasl.password", "must not contain NUL") }
    }
}
