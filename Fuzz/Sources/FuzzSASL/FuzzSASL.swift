import CLibFuzzer
import FuzzSupport
import KlifeProtocol
import KlifeSecurity

/// What a SASL server sends a client: SCRAM server-first and server-final messages (through
/// the client's state machine and its parser directly), base64, the PLAIN reply, and the
/// SaslHandshake / SaslAuthenticate response bodies. The first byte picks a ``SASLMode``.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let payload = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    switch SASLMode(selector: data[0]) {
    case .scramSHA256Exchange: exchange(.sha256, payload)
    case .scramSHA512Exchange: exchange(.sha512, payload)
    case .scramParse: parse(String(decoding: payload, as: UTF8.self))
    case .base64: base64(String(decoding: payload, as: UTF8.self))
    case .handshakeResponse: handshake(payload)
    case .authenticateResponse: authenticate(payload)
    case .plainReply: plain(Array(payload))
    }
    return 0
}

/// server-first, then (after a NUL) server-final, through a client that sent its client-first.
func exchange(_ algorithm: SCRAMAlgorithm, _ payload: UnsafeRawBufferPointer) {
    let split = payload.firstIndex(of: 0) ?? payload.count
    let serverFirst = Array(payload[..<split])
    var client = SASLScript.client(algorithm)
    guard let clientFinal = try? client.evaluate(challenge: serverFirst) else {
        fuzzCheck(!client.isComplete, "complete after a rejected server-first")
        return
    }
    let text = String(decoding: clientFinal, as: UTF8.self)
    fuzzCheck(text.hasPrefix("c=biws,r=" + SASLScript.clientNonce) && text.contains(",p="), "client-final '\(text)'")
    fuzzCheck(!client.isComplete, "complete before server-final")
    guard split < payload.count else { return }
    let serverFinal = Array(payload[(split + 1)...])
    do {
        let next = try client.evaluate(challenge: serverFinal)
        // Verified: only the signature the client computed itself gets here.
        fuzzCheck(next == nil && client.isComplete, "server-final accepted, complete: \(client.isComplete)")
        fuzzCheck(String(decoding: serverFinal, as: UTF8.self).hasPrefix("v="), "verified a server-final without v=")
    } catch {
        fuzzCheck(!client.isComplete, "complete after a rejected server-final")
    }
    do {
        _ = try client.evaluate(challenge: serverFinal)
        fuzzCheck(false, "a third server message was accepted")
    } catch {}
}

/// The server-first parser and the server-final check on their own.
func parse(_ text: String) {
    if let first = try? SCRAMClient.parse(serverFirst: text) {
        fuzzCheck(!first.nonce.isEmpty && !first.salt.isEmpty && first.iterations > 0,
                  "parsed nonce '\(first.nonce)', \(first.salt.count)-byte salt, \(first.iterations) iterations")
    }
    let expected = [UInt8](repeating: 0x5a, count: SCRAMAlgorithm.sha256.digestLength)
    if (try? SCRAMClient.verify(serverFinal: text, expected: expected)) != nil {
        fuzzCheck(text.hasPrefix("v=" + Base64.encode(expected)), "verified '\(text)'")
    }
}

/// Strict base64: what decodes re-encodes to the same text.
func base64(_ text: String) {
    guard let bytes = Base64.decode(text) else { return }
    fuzzCheck(Base64.encode(bytes) == text, "'\(text)' decoded to \(bytes.count) bytes that encode differently")
}

func handshake(_ payload: UnsafeRawBufferPointer) {
    guard let versionByte = payload.first else { return }
    let version = SaslHandshakeRequest.supportedVersions.lowerBound + Int16(versionByte % 2)
    var reader = ByteReader(payload.dropping(1))
    let response = SaslHandshakeResponse(from: &reader, version: version)
    if reader.error == nil { _ = response.mechanisms.joined(separator: ", ") }
}

/// A SaslAuthenticate answer, whose token then goes to a SCRAM client as a connection hands it.
func authenticate(_ payload: UnsafeRawBufferPointer) {
    guard let versionByte = payload.first else { return }
    let version = SaslAuthenticateRequest.supportedVersions.lowerBound + Int16(versionByte % 3)
    var reader = ByteReader(payload.dropping(1))
    let response = SaslAuthenticateResponse(from: &reader, version: version)
    guard reader.error == nil else { return }
    fuzzCheck(version >= 1 || response.sessionLifetimeMs == 0, "v0 with a session lifetime")
    var client = SASLScript.client(.sha256)
    _ = try? client.evaluate(challenge: response.authBytes)
}

/// PLAIN's only server reply must be empty.
func plain(_ reply: [UInt8]) {
    var mechanism = SASLPlain(username: SASLScript.username, password: SASLScript.password)
    _ = try? mechanism.initialResponse()
    let accepted: Bool
    do {
        accepted = try mechanism.evaluate(challenge: reply) == nil
    } catch {
        accepted = false
    }
    fuzzCheck(accepted == reply.isEmpty && mechanism.isComplete == reply.isEmpty, "PLAIN reply of \(reply.count) bytes")
}

/// SwiftPM links an executable with `main` aliased to `<module>_main`, which a library-mode
/// module never defines; this one hands the process to libFuzzer's driver.
@_cdecl("FuzzSASL_main")
func runLibFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var (argc, argv) = (argc, argv)
    return LLVMFuzzerRunDriver(&argc, &argv, fuzz)
}
