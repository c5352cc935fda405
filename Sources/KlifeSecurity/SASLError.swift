/// A failure during a SASL exchange, typed so callers can tell a bad password from a
/// misbehaving or impersonated server.
public struct SASLError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// The server's message is malformed or uses an unsupported feature (for example a
        /// mandatory `m=` extension, a bad base64 salt, or a non-numeric iteration count).
        case invalidServerMessage
        /// The server's nonce does not extend the client's nonce (RFC 5802 §5.1 `r=`).
        case nonceMismatch
        /// The server-final `v=` signature does not match: the server does not know the
        /// credentials, so it must not be trusted.
        case serverSignatureMismatch
        /// The server reported an error in its server-final message (`e=`); see ``SASLError/detail``.
        case serverError
        /// The server asked for fewer PBKDF2 iterations than the configured minimum.
        case iterationCountTooLow
        /// The client's own credentials cannot be encoded (for example a NUL byte in a PLAIN field).
        case invalidCredentials
        /// A step was called out of order (for example evaluating a challenge after completion).
        case unexpectedState
        /// An OpenSSL primitive reported failure (random bytes, HMAC or PBKDF2).
        case cryptoFailure
    }

    /// What went wrong.
    public var kind: Kind
    /// Human-readable detail; for ``Kind/serverError`` the server's `e=` value (RFC 5802 server-error-value).
    public var detail: String

    /// Creates an error.
    public init(_ kind: Kind, _ detail: String = "") {
        self.kind = kind
        self.detail = detail
    }

    /// A malformed server message.
    public static func invalidServerMessage(_ detail: String) -> SASLError { SASLError(.invalidServerMessage, detail) }
    /// A server nonce that does not start with the client nonce.
    public static let nonceMismatch = SASLError(.nonceMismatch, "server nonce does not extend the client nonce")
    /// A server signature that does not verify.
    public static let serverSignatureMismatch = SASLError(.serverSignatureMismatch, "server signature does not verify")
    /// A server-final `e=` error with its value.
    public static func serverError(_ value: String) -> SASLError { SASLError(.serverError, value) }
    /// An iteration count below `minimum`.
    public static func iterationCountTooLow(_ count: Int, minimum: Int) -> SASLError {
        SASLError(.iterationCountTooLow, "iteration count \(count) is below the minimum \(minimum)")
    }

    /// `"SASL <kind>: <detail>"`.
    public var description: String { detail.isEmpty ? "SASL \(kind)" : "SASL \(kind): \(detail)" }
}
