/// Why a TLS session could not be established or broke down, carried by ``IOError/Kind/tls(_:)``.
///
/// ``reason`` is OpenSSL's reason string (`certificate verify failed`, `wrong version
/// number`, `tlsv13 alert certificate required`, …). When the peer's certificate was
/// rejected, ``verificationError`` says why in X.509 terms (`unable to get local issuer
/// certificate`, `hostname mismatch`, `certificate has expired`, …).
public struct TLSFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// When the failure happened.
    public enum Stage: Sendable, Equatable {
        /// Before the session carried any application data: the handshake itself, a
        /// certificate the peer refused, or an alert the peer sent right after the handshake
        /// (TLS 1.3 servers reject client certificates that way).
        case handshake
        /// After application data flowed (a corrupted record, an unexpected alert).
        case session
    }

    /// When the failure happened.
    public var stage: Stage
    /// OpenSSL's reason string, or our own words when OpenSSL gave none.
    public var reason: String
    /// `X509_verify_cert_error_string` of the verification result, when the peer's
    /// certificate did not verify; `nil` otherwise.
    public var verificationError: String?
    /// The X.509 verification code (`X509_V_ERR_*`) that goes with ``verificationError``.
    public var verificationCode: Int?

    /// Creates a failure description.
    /// - Parameters:
    ///   - stage: Handshake or established session.
    ///   - reason: What went wrong, in OpenSSL's words when it gave some.
    ///   - verificationError: Why the peer's certificate was rejected, if it was.
    ///   - verificationCode: The `X509_V_ERR_*` code for `verificationError`.
    public init(stage: Stage, reason: String, verificationError: String? = nil, verificationCode: Int? = nil) {
        self.stage = stage
        self.reason = reason
        self.verificationError = verificationError
        self.verificationCode = verificationCode
    }

    /// Whether the peer's certificate (chain or name) failed verification.
    public var isCertificateVerificationFailure: Bool { verificationError != nil }

    /// For example `certificate verify failed: hostname mismatch`.
    public var description: String {
        guard let verificationError else { return reason }
        return "\(reason): \(verificationError)"
    }
}
