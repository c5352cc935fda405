import KlifeProtocol
import KlifeSecurity

/// SASL authentication of a connection, between ApiVersions and ready (KIP-152 flow):
///
///     SaslHandshake v1 (mechanism) ──► SaslAuthenticate(client token) ◄──► server token ... ──► ready
///
/// PLAIN takes one SaslAuthenticate round; SCRAM takes two (client-first → server-first,
/// client-final → server-final, whose signature must verify). Any failure fails the
/// connection, and with it every waiter, with a typed error:
/// - broker lacks SaslHandshake v1 or SaslAuthenticate → `unsupportedVersion` naming the API;
/// - `UNSUPPORTED_SASL_MECHANISM` → `brokerError` (kafkaErrorCode `.unsupportedSaslMechanism`)
///   naming the mechanism and the broker's enabled ones;
/// - `SASL_AUTHENTICATION_FAILED`, a SCRAM `e=` reply or a bad server signature → `authenticationFailed`.
///
/// Re-authentication (KIP-368) is not implemented: `session_lifetime_ms` is only recorded.
extension BrokerConnection {
    /// The mechanism's state across the rounds (closures capture it; one per attempt).
    private final class SASLSession {
        var mechanism: any SASLMechanism
        init(_ mechanism: any SASLMechanism) { self.mechanism = mechanism }
    }

    func authenticate(_ sasl: SASLConfiguration) {
        let broker = address.description
        guard let versions else {
            fail(.unsupported("SASL: connection to \(broker) has no version table"))
            return
        }
        // Only the KIP-152 flow (tokens inside SaslAuthenticate): SaslHandshake v1 and SaslAuthenticate v0+.
        guard let handshakeRange = versions.range(for: .saslHandshake), handshakeRange.contains(1) else {
            fail(.unsupported("broker \(broker) does not support SaslHandshake v1 (needed for SASL \(sasl.mechanism.name))"))
            return
        }
        guard versions.range(for: .saslAuthenticate) != nil else {
            fail(.unsupported("broker \(broker) does not support SaslAuthenticate (needed for SASL \(sasl.mechanism.name))"))
            return
        }
        let mechanism: any SASLMechanism
        switch sasl.mechanism {
        case .plain:
            mechanism = SASLPlain(username: sasl.username, password: sasl.password)
        case .scramSHA256, .scramSHA512:
            do {
                mechanism = try SCRAMClient(algorithm: sasl.mechanism == .scramSHA256 ? .sha256 : .sha512,
                                            username: sasl.username, password: sasl.password)
            } catch {
                fail(.authenticationFailed("\(sasl.mechanism.name) setup: \(error)", broker: broker))
                return
            }
        }
        let session = SASLSession(mechanism)
        let name = sasl.mechanism.name
        send(SaslHandshakeRequest(mechanism: name)) { [unowned self] result in
            switch result {
            case .failure(let error):
                fail(error)
            case .success(let response):
                let code = KafkaErrorCode(rawValue: response.errorCode)
                if code == .unsupportedSaslMechanism {
                    let enabled = response.mechanisms.isEmpty ? "none" : response.mechanisms.joined(separator: ", ")
                    fail(.broker(code, "SaslHandshake to \(broker)",
                                 message: "mechanism \(name) is not enabled; the broker enables: \(enabled)"))
                    return
                }
                guard code == .none else {
                    fail(.broker(code, "SaslHandshake (\(name)) to \(broker)"))
                    return
                }
                let first: [UInt8]
                do {
                    first = try session.mechanism.initialResponse()
                } catch {
                    fail(.authenticationFailed("\(name): \(error)", broker: broker))
                    return
                }
                saslRound(first, session: session)
            }
        }
    }

    /// Sends one client token and handles the broker's answer (next round, ready, or failure).
    private func saslRound(_ token: [UInt8], session: SASLSession) {
        let broker = address.description
        let name = session.mechanism.mechanismName
        send(SaslAuthenticateRequest(authBytes: token)) { [unowned self] result in
            switch result {
            case .failure(let error):
                fail(error)
            case .success(let response):
                let code = KafkaErrorCode(rawValue: response.errorCode)
                if code == .saslAuthenticationFailed {
                    fail(.authenticationFailed("\(name): " + (response.errorMessage ?? "SASL_AUTHENTICATION_FAILED"),
                                               broker: broker))
                    return
                }
                guard code == .none else {
                    fail(.broker(code, "SaslAuthenticate (\(name)) to \(broker)", message: response.errorMessage))
                    return
                }
                saslSessionLifetimeMs = response.sessionLifetimeMs
                let next: [UInt8]?
                do {
                    next = try session.mechanism.evaluate(challenge: response.authBytes)
                } catch {
                    fail(.authenticationFailed("\(name): \(error)", broker: broker))
                    return
                }
                if let next {
                    saslRound(next, session: session)
                } else if session.mechanism.isComplete {
                    becomeReady()
                } else {
                    fail(.authenticationFailed("\(name): exchange ended before the server was verified", broker: broker))
                }
            }
        }
    }
}
