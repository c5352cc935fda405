import KlifeSecurity
import XCTest

/// SCRAM client against the RFC 7677 vector and an in-test server built from the same primitives.
final class SASLSCRAMTests: XCTestCase {
    // RFC 7677 §3.
    private let clientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    private let serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    private let clientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        + "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    private let serverFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

    private func rfcClient() -> SCRAMClient {
        SCRAMClient(algorithm: .sha256, username: "user", password: "pencil", clientNonce: "rOprNGfwEbeRWgbNEkqO")
    }

    func testRFC7677Vector() throws {
        var client = rfcClient()
        XCTAssertEqual(client.mechanismName, "SCRAM-SHA-256")
        XCTAssertEqual(String(decoding: try client.initialResponse(), as: UTF8.self), clientFirst)
        let final = try XCTUnwrap(try client.evaluate(challenge: Array(serverFirst.utf8)))
        XCTAssertEqual(String(decoding: final, as: UTF8.self), clientFinal)
        XCTAssertFalse(client.isComplete)
        XCTAssertNil(try client.evaluate(challenge: Array(serverFinal.utf8)))
        XCTAssertTrue(client.isComplete)
        XCTAssertThrowsError(try client.evaluate(challenge: [])) { XCTAssertEqual(($0 as? SASLError)?.kind, .unexpectedState) }
    }

    func testTamperedServerSignatureIsTypedError() throws {
        var client = rfcClient()
        _ = try client.initialResponse()
        _ = try client.evaluate(challenge: Array(serverFirst.utf8))
        // Flip one signature character (6 → 7) but keep valid base64.
        let tampered = "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        XCTAssertThrowsError(try client.evaluate(challenge: Array(tampered.utf8))) {
            XCTAssertEqual(($0 as? SASLError)?.kind, .serverSignatureMismatch)
        }
        XCTAssertFalse(client.isComplete)
    }

    func testServerFinalErrorIsTyped() throws {
        var client = rfcClient()
        _ = try client.initialResponse()
        _ = try client.evaluate(challenge: Array(serverFirst.utf8))
        XCTAssertThrowsError(try client.evaluate(challenge: Array("e=invalid-proof".utf8))) {
            XCTAssertEqual($0 as? SASLError, .serverError("invalid-proof"))
        }
    }

    func testNonceMismatchIsTypedError() throws {
        for bad in ["r=XOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                    "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"] {   // no server part
            var client = rfcClient()
            _ = try client.initialResponse()
            XCTAssertThrowsError(try client.evaluate(challenge: Array(bad.utf8))) {
                XCTAssertEqual(($0 as? SASLError)?.kind, .nonceMismatch, bad)
            }
        }
    }

    func testIterationCountTooLow() throws {
        var client = rfcClient()
        _ = try client.initialResponse()
        let weak = "r=rOprNGfwEbeRWgbNEkqO%hv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095"
        XCTAssertThrowsError(try client.evaluate(challenge: Array(weak.utf8))) {
            XCTAssertEqual(($0 as? SASLError)?.kind, .iterationCountTooLow)
        }
        // A configurable minimum.
        var lenient = SCRAMClient(algorithm: .sha256, username: "user", password: "pencil",
                                  clientNonce: "rOprNGfwEbeRWgbNEkqO", minimumIterations: 1000)
        _ = try lenient.initialResponse()
        XCTAssertNotNil(try lenient.evaluate(challenge: Array(weak.utf8)))
    }

    func testMalformedServerFirst() throws {
        let cases = ["", "r=rOprNGfwEbeRWgbNEkqOx", "s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqOx,i=4096",
                     "m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                     "r=rOprNGfwEbeRWgbNEkqOx,s=not*base64,i=4096", "r=rOprNGfwEbeRWgbNEkqOx,s=,i=4096",
                     "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-5",
                     "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999999999",
                     "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2000000000"]   // above the maximum
        for message in cases {
            var client = rfcClient()
            _ = try client.initialResponse()
            XCTAssertThrowsError(try client.evaluate(challenge: Array(message.utf8))) {
                XCTAssertEqual(($0 as? SASLError)?.kind, .invalidServerMessage, message)
            }
        }
        var client = rfcClient()
        _ = try client.initialResponse()
        XCTAssertThrowsError(try client.evaluate(challenge: [0xff, 0xfe])) {
            XCTAssertEqual(($0 as? SASLError)?.kind, .invalidServerMessage)
        }
    }

    func testUsernameEscapingAndRandomNonce() throws {
        XCTAssertEqual(SCRAMClient.escape(username: "a=b,c"), "a=3Db=2Cc")
        let a = try SCRAMClient(algorithm: .sha512, username: "u,=", password: "p")
        let b = try SCRAMClient(algorithm: .sha512, username: "u,=", password: "p")
        XCTAssertNotEqual(a.clientNonce, b.clientNonce)
        XCTAssertEqual(a.clientNonce.utf8.count, 32)   // 24 random bytes, base64
        XCTAssertFalse(a.clientNonce.contains(","))
        XCTAssertEqual(a.clientFirstMessage, "n,,n=u=2C=3D,r=\(a.clientNonce)")
    }

    func testSHA512RoundTripAgainstTestServer() throws {
        for algorithm in SCRAMAlgorithm.allCases {
            let server = try TestSCRAMServer(algorithm: algorithm, username: "alice,=x", password: "s3cr€t", iterations: 4096)
            var client = try SCRAMClient(algorithm: algorithm, username: "alice,=x", password: "s3cr€t")
            XCTAssertEqual(client.handshakeRequest.mechanism, algorithm.mechanismName)
            var exchange = server.start()
            let first = try exchange.serverFirst(clientFirst: try client.initialResponse())
            let final = try XCTUnwrap(try client.evaluate(challenge: first))
            let verdict = try exchange.serverFinal(clientFinal: final)
            XCTAssertEqual(String(decoding: verdict, as: UTF8.self).prefix(2), "v=")
            XCTAssertNil(try client.evaluate(challenge: verdict))
            XCTAssertTrue(client.isComplete, "\(algorithm)")
        }
    }

    func testWrongPasswordIsRejectedByServerAndClientReportsIt() throws {
        let server = try TestSCRAMServer(algorithm: .sha512, username: "alice", password: "right", iterations: 4096)
        var client = try SCRAMClient(algorithm: .sha512, username: "alice", password: "wrong")
        var exchange = server.start()
        let first = try exchange.serverFirst(clientFirst: try client.initialResponse())
        let final = try XCTUnwrap(try client.evaluate(challenge: first))
        let verdict = try exchange.serverFinal(clientFinal: final)
        XCTAssertEqual(String(decoding: verdict, as: UTF8.self), "e=invalid-proof")
        XCTAssertThrowsError(try client.evaluate(challenge: verdict)) {
            XCTAssertEqual($0 as? SASLError, .serverError("invalid-proof"))
        }
    }

    func testImpostorServerWithoutCredentialsFailsVerification() throws {
        // A server that knows the salt but not the password cannot produce ServerSignature.
        let real = try TestSCRAMServer(algorithm: .sha512, username: "alice", password: "right", iterations: 4096)
        var impostor = try TestSCRAMServer(algorithm: .sha512, username: "alice", password: "guess", iterations: 4096)
        impostor.salt = real.salt
        var client = try SCRAMClient(algorithm: .sha512, username: "alice", password: "right")
        var exchange = impostor.start(acceptAnyProof: true)
        let first = try exchange.serverFirst(clientFirst: try client.initialResponse())
        let final = try XCTUnwrap(try client.evaluate(challenge: first))
        let verdict = try exchange.serverFinal(clientFinal: final)
        XCTAssertThrowsError(try client.evaluate(challenge: verdict)) {
            XCTAssertEqual(($0 as? SASLError)?.kind, .serverSignatureMismatch)
        }
    }

    func testPrimitivesMatchRFC7677Intermediates() throws {
        let salt = try XCTUnwrap(Base64.decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
        let salted = try SCRAMAlgorithm.sha256.saltedPassword(Array("pencil".utf8), salt: salt, iterations: 4096)
        XCTAssertEqual(salted.count, 32)
        XCTAssertTrue(SCRAMAlgorithm.constantTimeEqual(salted, salted))
        XCTAssertFalse(SCRAMAlgorithm.constantTimeEqual(salted, Array(salted.dropLast())))
        XCTAssertFalse(SCRAMAlgorithm.constantTimeEqual(salted, SCRAMAlgorithm.xor(salted, [1] + [UInt8](repeating: 0, count: 31))))
        // SHA-256("abc") (FIPS 180-2).
        XCTAssertEqual(Base64.encode(try SCRAMAlgorithm.sha256.hash(Array("abc".utf8))),
                       "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
        // RFC 4231 test case 2: HMAC-SHA-256(key "Jefe", "what do ya want for nothing?").
        let mac = try SCRAMAlgorithm.sha256.hmac(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8))
        XCTAssertEqual(mac.map { String($0, radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }.joined(),
                       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}

/// A minimal SCRAM server (RFC 5802 §3, §5) built from ``SCRAMAlgorithm``'s primitives,
/// storing only StoredKey and ServerKey as a real broker does.
struct TestSCRAMServer {
    let algorithm: SCRAMAlgorithm
    let username: String
    let iterations: Int
    var salt: [UInt8]
    private let password: [UInt8]

    init(algorithm: SCRAMAlgorithm, username: String, password: String, iterations: Int) throws {
        self.algorithm = algorithm
        self.username = username
        self.iterations = iterations
        self.password = Array(password.utf8)
        self.salt = try SCRAMAlgorithm.randomBytes(16)
    }

    func start(acceptAnyProof: Bool = false) -> Exchange {
        Exchange(server: self, acceptAnyProof: acceptAnyProof)
    }

    struct Exchange {
        let server: TestSCRAMServer
        let acceptAnyProof: Bool
        var clientFirstBare = ""
        var serverFirst = ""
        var nonce = ""

        init(server: TestSCRAMServer, acceptAnyProof: Bool) {
            self.server = server
            self.acceptAnyProof = acceptAnyProof
        }

        mutating func serverFirst(clientFirst bytes: [UInt8]) throws -> [UInt8] {
            let message = String(decoding: bytes, as: UTF8.self)
            XCTAssertTrue(message.hasPrefix("n,,"))
            clientFirstBare = String(message.dropFirst(3))
            let attrs = clientFirstBare.split(separator: ",")
            XCTAssertEqual(attrs.count, 2)
            let user = unescape(String(attrs[0].dropFirst(2)))
            XCTAssertEqual(user, server.username)
            nonce = String(attrs[1].dropFirst(2)) + Base64.encode(try SCRAMAlgorithm.randomBytes(18))
            serverFirst = "r=\(nonce),s=\(Base64.encode(server.salt)),i=\(server.iterations)"
            return Array(serverFirst.utf8)
        }

        private func unescape(_ name: String) -> String {
            var out = "", rest = Substring(name)
            while let c = rest.first {
                if rest.hasPrefix("=2C") { out += ","; rest = rest.dropFirst(3) }
                else if rest.hasPrefix("=3D") { out += "="; rest = rest.dropFirst(3) }
                else { out.append(c); rest = rest.dropFirst() }
            }
            return out
        }

        func serverFinal(clientFinal bytes: [UInt8]) throws -> [UInt8] {
            let message = String(decoding: bytes, as: UTF8.self)
            let attrs = message.split(separator: ",")
            XCTAssertEqual(attrs.count, 3)
            XCTAssertEqual(attrs[0], "c=biws")
            XCTAssertEqual(String(attrs[1]), "r=\(nonce)")
            let proof = try XCTUnwrap(Base64.decode(String(attrs[2].dropFirst(2))))
            let withoutProof = attrs[0...1].joined(separator: ",")
            let authMessage = Array("\(clientFirstBare),\(serverFirst),\(withoutProof)".utf8)
            // The server's stored credential: StoredKey and ServerKey only.
            let a = server.algorithm
            let keys = try a.keys(saltedPassword: try a.saltedPassword(server.password, salt: server.salt,
                                                                          iterations: server.iterations))
            let clientSignature = try a.hmac(key: keys.storedKey, data: authMessage)
            guard proof.count == clientSignature.count else { return Array("e=invalid-proof".utf8) }
            let clientKey = SCRAMAlgorithm.xor(proof, clientSignature)
            let proofVerifies = SCRAMAlgorithm.constantTimeEqual(try a.hash(clientKey), keys.storedKey)
            guard acceptAnyProof || proofVerifies else {
                return Array("e=invalid-proof".utf8)
            }
            return Array("v=\(Base64.encode(try a.hmac(key: keys.serverKey, data: authMessage)))".utf8)
        }
    }
}
