public import KlifeSecurity

/// What a `FuzzSASL` input exercises: its first byte picks a mode (modulo the count),
/// the rest is the payload.
///
///     ┌ mode ┬ payload … ┐
public enum SASLMode: UInt8, CaseIterable, Sendable {
    /// SCRAM-SHA-256 exchange: payload is `server-first NUL server-final`, fed to a client
    /// that sent ``SASLScript/clientFirst`` (either part may be absent).
    case scramSHA256Exchange = 0
    /// The same with SCRAM-SHA-512.
    case scramSHA512Exchange = 1
    /// The payload as text through `SCRAMClient.parse(serverFirst:)` and `verify(serverFinal:expected:)`.
    case scramParse = 2
    /// The payload as text through `Base64.decode`.
    case base64 = 3
    /// A SaslHandshake response: version byte, then body.
    case handshakeResponse = 4
    /// A SaslAuthenticate response (version byte, then body); a clean one's `auth_bytes` go to a
    /// SCRAM-SHA-256 client as its server-first message, as a connection does.
    case authenticateResponse = 5
    /// The payload as the server's reply to SASL PLAIN.
    case plainReply = 6

    /// The mode a first byte picks.
    public init(selector: UInt8) { self = Self.allCases[Int(selector) % Self.allCases.count] }
}

/// The fixed client the SCRAM modes run, so inputs (and seeds) can answer its nonce.
public enum SASLScript {
    /// RFC 7677's example user.
    public static let username = "user"
    /// RFC 7677's example password.
    public static let password = "pencil"
    /// RFC 7677's example client nonce.
    public static let clientNonce = "rOprNGfwEbeRWgbNEkqO"
    /// Iteration counts accepted: low, so a fuzz input costs microseconds, not a real PBKDF2.
    public static let iterations = 2...64

    /// A client in the state after its client-first message.
    public static func client(_ algorithm: SCRAMAlgorithm) -> SCRAMClient {
        var client = SCRAMClient(algorithm: algorithm, username: username, password: password, clientNonce: clientNonce,
                                 minimumIterations: iterations.lowerBound, maximumIterations: iterations.upperBound)
        _ = try? client.initialResponse()
        return client
    }

    /// A mode byte and payload as one input.
    public static func encode(_ mode: SASLMode, _ payload: [UInt8]) -> [UInt8] { [mode.rawValue] + payload }

    /// A SCRAM exchange input: server-first, NUL, server-final.
    public static func exchange(_ algorithm: SCRAMAlgorithm, serverFirst: String, serverFinal: String) -> [UInt8] {
        encode(algorithm == .sha256 ? .scramSHA256Exchange : .scramSHA512Exchange,
               Array(serverFirst.utf8) + [0] + Array(serverFinal.utf8))
    }
}
