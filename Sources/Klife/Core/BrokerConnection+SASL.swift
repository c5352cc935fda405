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
/// Re-authentication (KIP-368): when the broker grants a session lifetime
/// (`session_lifetime_ms` > 0, SaslAuthenticate v1+), the connection re-runs SaslHandshake
/// and SaslAuthenticate on the same socket at a random 85–95 % of that lifetime, before the
/// broker would close it. Meanwhile new requests wait (they are released when it completes);
/// a failed re-authentication fails the connection like a failed first one.
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
                    if reauthenticating { reauthenticationCount += 1 }
                    reauthenticating = false
                    becomeReady()
                } else {
                    fail(.authenticationFailed("\(name): exchange ended before the server was verified", broker: broker))
                }
            }
        }
    }

    // MARK: Re-authentication (KIP-368)

    /// Arms the re-authentication timer for the lifetime the broker granted, if any.
    func scheduleReauthentication() {
        if let timer = reauthenticationTimer {
            hub.reactor.cancelTimer(timer)
            reauthenticationTimer = nil
        }
        guard saslSessionLifetimeMs > 0, hub.configuration.sasl != nil else { return }
        // A random 85–95 % of the lifetime, so a fleet of connections does not re-authenticate at once.
        let delayMs = Double(saslSessionLifetimeMs) * Double.random(in: 0.85...0.95)
        let delayNanos = UInt64(max(delayMs, 1) * 1_000_000)
        reauthenticationTimer = hub.reactor.scheduleTimer(afterNanoseconds: delayNanos) { [weak self] in
            guard let self else { return }
            reauthenticationTimer = nil
            reauthenticate()
        }
    }

    private func reauthenticate() {
        guard let sasl = hub.configuration.sasl, beginReauthentication() else { return }
        reauthenticating = true
        hub.log(.debug, "SASL session expires in \(saslSessionLifetimeMs) ms: re-authenticating", broker: address.description)
        authenticate(sasl)
    }
}
