/// The client side of SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677), without channel
/// binding (gs2 header `n,,`), as Kafka uses it.
///
///     client-first  n,,n=<user>,r=<cnonce>
///     server-first  r=<cnonce+snonce>,s=<salt b64>,i=<iterations>
///     client-final  c=biws,r=<nonce>,p=<ClientProof b64>
///     server-final  v=<ServerSignature b64>   or   e=<error>
///
/// The username is escaped (`=` → `=3D`, `,` → `=2C`); full SASLprep is not applied, so
/// the password bytes are its UTF-8 as given (Kafka's own client does the same).
public struct SCRAMClient: SASLMechanism {
    private enum State: Sendable {
        case initial
        case sentClientFirst
        case sentClientFinal(serverSignature: [UInt8])
        case complete
        case failed
    }

    /// The hash in use.
    public let algorithm: SCRAMAlgorithm
    /// The authentication identity, unescaped.
    public let username: String
    /// The lowest iteration count accepted from the server (RFC 7677 and Kafka use 4096).
    public let minimumIterations: Int
    /// The highest iteration count accepted, so a hostile server cannot make the client burn CPU.
    public let maximumIterations: Int
    /// The client nonce (printable, no `,`).
    public let clientNonce: String
    private let password: [UInt8]
    private var state = State.initial

    /// `"SCRAM-SHA-256"` or `"SCRAM-SHA-512"`.
    public var mechanismName: String { algorithm.mechanismName }

    /// Whether the server's signature was verified.
    public var isComplete: Bool {
        if case .complete = state { return true }
        return false
    }

    /// Creates a client with a fresh random nonce (24 bytes from `RAND_bytes`, base64).
    public init(algorithm: SCRAMAlgorithm, username: String, password: String,
                minimumIterations: Int = 4096, maximumIterations: Int = 1_000_000) throws(SASLError) {
        let nonce = Base64.encode(try SCRAMAlgorithm.randomBytes(24))
        self.init(algorithm: algorithm, username: username, password: password, clientNonce: nonce,
                  minimumIterations: minimumIterations, maximumIterations: maximumIterations)
    }

    /// Creates a client with a fixed nonce. Only for deterministic tests (RFC test vectors):
    /// a reused nonce weakens SCRAM.
    public init(algorithm: SCRAMAlgorithm, username: String, password: String, clientNonce: String,
                minimumIterations: Int = 4096, maximumIterations: Int = 1_000_000) {
        self.algorithm = algorithm
        self.username = username
        self.password = Array(password.utf8)
        self.clientNonce = clientNonce
        self.minimumIterations = minimumIterations
        self.maximumIterations = maximumIterations
    }

    /// Escapes a SCRAM `saslname`: `=` → `=3D`, `,` → `=2C`.
    public static func escape(username: String) -> String {
        var out = ""
        for ch in username {
            switch ch {
            case "=": out += "=3D"
            case ",": out += "=2C"
            default: out.append(ch)
            }
        }
        return out
    }

    /// `n=<user>,r=<cnonce>`.
    public var clientFirstMessageBare: String { "n=\(Self.escape(username: username)),r=\(clientNonce)" }

    /// `n,,` + ``clientFirstMessageBare``.
    public var clientFirstMessage: String { "n,," + clientFirstMessageBare }

    /// The client-first message bytes.
    public mutating func initialResponse() throws(SASLError) -> [UInt8] {
        guard case .initial = state else { throw SASLError(.unexpectedState, "client-first already sent") }
        state = .sentClientFirst
        return Array(clientFirstMessage.utf8)
    }

    /// Handles server-first (returns client-final) or server-final (verifies it, returns `nil`).
    public mutating func evaluate(challenge: [UInt8]) throws(SASLError) -> [UInt8]? {
        guard let message = String(validating: challenge, as: UTF8.self) else {
            state = .failed
            throw .invalidServerMessage("not UTF-8")
        }
        switch state {
        case .sentClientFirst:
            do {
                let final = try clientFinalMessage(serverFirst: message)
                state = .sentClientFinal(serverSignature: final.serverSignature)
                return Array(final.message.utf8)
            } catch {
                state = .failed
                throw error
            }
        case .sentClientFinal(let expected):
            do {
                try Self.verify(serverFinal: message, expected: expected)
                state = .complete
                return nil
            } catch {
                state = .failed
                throw error
            }
        case .initial, .complete, .failed:
            throw SASLError(.unexpectedState, "no server message expected now")
        }
    }

    /// A parsed server-first message.
    public struct ServerFirst: Sendable, Equatable {
        /// The combined nonce (client nonce + server nonce).
        public var nonce: String
        /// The decoded salt.
        public var salt: [UInt8]
        /// The PBKDF2 iteration count.
        public var iterations: Int
    }

    /// Parses `r=...,s=...,i=...[,ext]`, rejecting a mandatory `m=` extension, bad base64,
    /// an empty salt and a non-numeric iteration count. Does not check the nonce or limits.
    public static func parse(serverFirst message: String) throws(SASLError) -> ServerFirst {
        let parts = message.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count >= 3 else { throw .invalidServerMessage("server-first needs r=, s= and i=") }
        if parts[0].hasPrefix("m=") { throw .invalidServerMessage("mandatory extension not supported") }
        guard parts[0].hasPrefix("r="), parts[1].hasPrefix("s="), parts[2].hasPrefix("i=") else {
            if parts[0].hasPrefix("e=") { throw .serverError(String(parts[0].dropFirst(2))) }
            throw .invalidServerMessage("server-first attributes must be r=, s=, i= in order")
        }
        let nonce = String(parts[0].dropFirst(2))
        guard !nonce.isEmpty else { throw .invalidServerMessage("empty nonce") }
        guard let salt = Base64.decode(String(parts[1].dropFirst(2))), !salt.isEmpty else {
            throw .invalidServerMessage("salt is not valid base64")
        }
        let iterationText = parts[2].dropFirst(2)
        guard !iterationText.isEmpty, iterationText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              iterationText.utf8.count <= 10, let iterations = Int(iterationText), iterations > 0 else {
            throw .invalidServerMessage("bad iteration count '\(iterationText)'")
        }
        return ServerFirst(nonce: nonce, salt: salt, iterations: iterations)
    }

    /// Builds client-final from server-first; also returns the ServerSignature the server must present.
    public func clientFinalMessage(serverFirst message: String) throws(SASLError)
        -> (message: String, serverSignature: [UInt8]) {
        let first = try Self.parse(serverFirst: message)
        guard first.nonce.hasPrefix(clientNonce), first.nonce.utf8.count > clientNonce.utf8.count else {
            throw .nonceMismatch
        }
        guard first.iterations >= minimumIterations else {
            throw .iterationCountTooLow(first.iterations, minimum: minimumIterations)
        }
        guard first.iterations <= maximumIterations else {
            throw .invalidServerMessage("iteration count \(first.iterations) above the maximum \(maximumIterations)")
        }
        let salted = try algorithm.saltedPassword(password, salt: first.salt, iterations: first.iterations)
        let keys = try algorithm.keys(saltedPassword: salted)
        let withoutProof = "c=biws,r=\(first.nonce)"   // biws = base64("n,,")
        let authMessage = Array("\(clientFirstMessageBare),\(message),\(withoutProof)".utf8)
        let clientSignature = try algorithm.hmac(key: keys.storedKey, data: authMessage)
        let proof = SCRAMAlgorithm.xor(keys.clientKey, clientSignature)
        let serverSignature = try algorithm.hmac(key: keys.serverKey, data: authMessage)
        return ("\(withoutProof),p=\(Base64.encode(proof))", serverSignature)
    }

    /// Checks server-final: `e=` → ``SASLError/Kind/serverError``; `v=` compared in constant time.
    public static func verify(serverFinal message: String, expected: [UInt8]) throws(SASLError) {
        let first = message.split(separator: ",", omittingEmptySubsequences: false)[0]
        if first.hasPrefix("e=") { throw .serverError(String(first.dropFirst(2))) }
        guard first.hasPrefix("v="), let signature = Base64.decode(String(first.dropFirst(2))) else {
            throw .invalidServerMessage("server-final must be v=<base64> or e=<error>")
        }
        guard SCRAMAlgorithm.constantTimeEqual(signature, expected) else { throw .serverSignatureMismatch }
    }
}
