import CCrypto

/// The hash behind a SCRAM mechanism, with the RFC 5802 primitives built on OpenSSL's
/// libcrypto (EVP digests, `HMAC`, `PKCS5_PBKDF2_HMAC`, `CRYPTO_memcmp`, `RAND_bytes`).
///
/// Public so tests and a future embedded-broker SCRAM server can use the very same primitives.
public enum SCRAMAlgorithm: Sendable, Equatable, CaseIterable {
    /// SCRAM-SHA-256 (RFC 7677).
    case sha256
    /// SCRAM-SHA-512 (as Kafka uses it; same construction with SHA-512).
    case sha512

    /// The SASL mechanism name.
    public var mechanismName: String {
        switch self {
        case .sha256: "SCRAM-SHA-256"
        case .sha512: "SCRAM-SHA-512"
        }
    }

    /// The digest length in bytes (32 or 64).
    public var digestLength: Int {
        switch self {
        case .sha256: 32
        case .sha512: 64
        }
    }

    private var md: OpaquePointer? {
        switch self {
        case .sha256: EVP_sha256()
        case .sha512: EVP_sha512()
        }
    }

    /// `H(data)`.
    public func hash(_ data: [UInt8]) throws(SASLError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: digestLength)
        var length: UInt32 = 0
        let ok = data.withUnsafeBytes { d in
            out.withUnsafeMutableBufferPointer { o in
                EVP_Digest(d.baseAddress, d.count, o.baseAddress, &length, md, nil)
            }
        }
        guard ok == 1, Int(length) == digestLength else { throw SASLError(.cryptoFailure, "EVP_Digest failed") }
        return out
    }

    /// `HMAC(key, data)`.
    public func hmac(key: [UInt8], data: [UInt8]) throws(SASLError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: digestLength)
        var length: UInt32 = 0
        let result = key.withUnsafeBytes { k in
            data.withUnsafeBytes { d in
                out.withUnsafeMutableBufferPointer { o in
                    HMAC(md, k.baseAddress, Int32(k.count), d.baseAddress?.assumingMemoryBound(to: UInt8.self), d.count,
                         o.baseAddress, &length)
                }
            }
        }
        guard result != nil, Int(length) == digestLength else { throw SASLError(.cryptoFailure, "HMAC failed") }
        return out
    }

    /// `Hi(password, salt, iterations)`: PBKDF2-HMAC with one output block (SaltedPassword).
    public func saltedPassword(_ password: [UInt8], salt: [UInt8], iterations: Int) throws(SASLError) -> [UInt8] {
        guard iterations > 0, iterations <= Int(Int32.max) else { throw SASLError(.cryptoFailure, "bad iteration count") }
        var out = [UInt8](repeating: 0, count: digestLength)
        let length = Int32(digestLength)
        let ok = password.withUnsafeBytes { p in
            salt.withUnsafeBytes { s in
                out.withUnsafeMutableBufferPointer { o in
                    PKCS5_PBKDF2_HMAC(p.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(p.count),
                                      s.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(s.count),
                                      Int32(iterations), md, length, o.baseAddress)
                }
            }
        }
        guard ok == 1 else { throw SASLError(.cryptoFailure, "PKCS5_PBKDF2_HMAC failed") }
        return out
    }

    /// The keys derived from a SaltedPassword (RFC 5802 §3).
    public struct Keys: Sendable, Equatable {
        /// `HMAC(SaltedPassword, "Client Key")`.
        public var clientKey: [UInt8]
        /// `H(ClientKey)`: what a server stores.
        public var storedKey: [UInt8]
        /// `HMAC(SaltedPassword, "Server Key")`.
        public var serverKey: [UInt8]
    }

    /// Derives ClientKey, StoredKey and ServerKey from `saltedPassword`.
    public func keys(saltedPassword: [UInt8]) throws(SASLError) -> Keys {
        let clientKey = try hmac(key: saltedPassword, data: Array("Client Key".utf8))
        return Keys(clientKey: clientKey, storedKey: try hash(clientKey),
                    serverKey: try hmac(key: saltedPassword, data: Array("Server Key".utf8)))
    }

    /// Byte-wise XOR of two equal-length arrays (ClientProof = ClientKey XOR ClientSignature).
    public static func xor(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        precondition(a.count == b.count, "xor of unequal lengths")
        return zip(a, b).map { $0 ^ $1 }
    }

    /// Constant-time equality (`CRYPTO_memcmp`); different lengths compare unequal.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, x.count) == 0 } }
    }

    /// `count` cryptographically secure random bytes from `RAND_bytes`.
    public static func randomBytes(_ count: Int) throws(SASLError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        guard ok == 1 else { throw SASLError(.cryptoFailure, "RAND_bytes failed") }
        return out
    }
}
