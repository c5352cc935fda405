public import KlifeProtocol

/// A client-side SASL mechanism: a small state machine that produces the client's tokens
/// and checks the server's.
///
/// The exchange, as a connection drives it (`BrokerConnection+SASL.swift`):
///
///     send SaslHandshake(mechanismName)
///     var token = try mechanism.initialResponse()
///     loop: send SaslAuthenticate(token), receive server bytes
///           guard let next = try mechanism.evaluate(challenge: bytes) else { done }
///           token = next
///
/// A mechanism is complete (``isComplete``) once the server's last message is verified;
/// a connection must not treat itself as authenticated before that.
public protocol SASLMechanism: Sendable {
    /// The IANA mechanism name sent in `SaslHandshakeRequest` (for example `"SCRAM-SHA-256"`).
    var mechanismName: String { get }
    /// Whether the exchange finished successfully.
    var isComplete: Bool { get }
    /// The client's first token.
    mutating func initialResponse() throws(SASLError) -> [UInt8]
    /// Processes a server token; returns the next client token, or `nil` when the exchange is complete.
    mutating func evaluate(challenge: [UInt8]) throws(SASLError) -> [UInt8]?
}

extension SASLMechanism {
    /// The `SaslHandshakeRequest` naming this mechanism.
    public var handshakeRequest: SaslHandshakeRequest { SaslHandshakeRequest(mechanism: mechanismName) }
}

/// SASL PLAIN (RFC 4616): one message, `authzid NUL authcid NUL passwd`, UTF-8.
///
/// PLAIN sends the password in the clear; use it only over TLS.
public struct SASLPlain: SASLMechanism, Equatable {
    /// `"PLAIN"`.
    public var mechanismName: String { "PLAIN" }
    /// The authorization identity; empty to act as ``username``.
    public var authorizationID: String
    /// The authentication identity.
    public var username: String
    /// The password.
    public var password: String
    /// Whether the (empty) server reply has been received.
    public private(set) var isComplete = false
    private var sent = false

    /// Creates the mechanism.
    public init(username: String, password: String, authorizationID: String = "") {
        self.username = username
        self.password = password
        self.authorizationID = authorizationID
    }

    /// The RFC 4616 message bytes. Throws ``SASLError/Kind/invalidCredentials`` if a field
    /// contains NUL or the username/password is empty.
    public func message() throws(SASLError) -> [UInt8] {
        for (name, field) in [("authzid", authorizationID), ("username", username), ("password", password)]
        where field.utf8.contains(0) {
            throw SASLError(.invalidCredentials, "\(name) contains NUL")
        }
        if username.isEmpty || password.isEmpty { throw SASLError(.invalidCredentials, "empty username or password") }
        return Array(authorizationID.utf8) + [0] + Array(username.utf8) + [0] + Array(password.utf8)
    }

    /// The single PLAIN message.
    public mutating func initialResponse() throws(SASLError) -> [UInt8] {
        guard !sent else { throw SASLError(.unexpectedState, "PLAIN initial response already sent") }
        let bytes = try message()
        sent = true
        return bytes
    }

    /// Accepts the server's empty reply; any other reply is ``SASLError/Kind/invalidServerMessage``.
    public mutating func evaluate(challenge: [UInt8]) throws(SASLError) -> [UInt8]? {
        guard sent, !isComplete else { throw SASLError(.unexpectedState, "PLAIN expects one server reply after its message") }
        guard challenge.isEmpty else { throw .invalidServerMessage("PLAIN server reply must be empty") }
        isComplete = true
        return nil
    }
}
