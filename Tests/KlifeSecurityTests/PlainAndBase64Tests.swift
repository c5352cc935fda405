import KlifeSecurity
import XCTest

final class SASLPlainTests: XCTestCase {
    func testPlainEncodingBytes() throws {
        var plain = SASLPlain(username: "tim", password: "tanstaaftanstaaf")
        XCTAssertEqual(plain.mechanismName, "PLAIN")
        XCTAssertEqual(plain.handshakeRequest.mechanism, "PLAIN")
        XCTAssertEqual(try plain.initialResponse(),
                       [0x00] + Array("tim".utf8) + [0x00] + Array("tanstaaftanstaaf".utf8))
        XCTAssertFalse(plain.isComplete)
        XCTAssertNil(try plain.evaluate(challenge: []))
        XCTAssertTrue(plain.isComplete)
    }

    func testPlainWithAuthzidAndUTF8() throws {
        let plain = SASLPlain(username: "Kurt", password: "xipj3plmq€", authorizationID: "Ursel")
        XCTAssertEqual(try plain.message(),
                       Array("Ursel".utf8) + [0] + Array("Kurt".utf8) + [0] + [0x78, 0x69, 0x70, 0x6a, 0x33, 0x70, 0x6c,
                                                                               0x6d, 0x71, 0xe2, 0x82, 0xac])
    }

    func testPlainRejectsNULAndEmptyAndBadServerReplies() throws {
        XCTAssertThrowsError(try SASLPlain(username: "a\u{0}b", password: "p").message()) {
            XCTAssertEqual(($0 as? SASLError)?.kind, .invalidCredentials)
        }
        XCTAssertThrowsError(try SASLPlain(username: "a", password: "").message()) {
            XCTAssertEqual(($0 as? SASLError)?.kind, .invalidCredentials)
        }
        var plain = SASLPlain(username: "a", password: "b")
        XCTAssertThrowsError(try plain.evaluate(challenge: [])) { XCTAssertEqual(($0 as? SASLError)?.kind, .unexpectedState) }
        _ = try plain.initialResponse()
        XCTAssertThrowsError(try plain.initialResponse()) { XCTAssertEqual(($0 as? SASLError)?.kind, .unexpectedState) }
        XCTAssertThrowsError(try plain.evaluate(challenge: [1])) {
            XCTAssertEqual(($0 as? SASLError)?.kind, .invalidServerMessage)
        }
    }
}

final class SASLBase64Tests: XCTestCase {
    // RFC 4648 §10.
    private let vectors = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
                           ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]

    func testRFC4648Vectors() {
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(encoded), Array(plain.utf8))
        }
    }

    func testAllByteValuesRoundTrip() {
        let all = (0...255).map { UInt8($0) }
        for n in 0...all.count { XCTAssertEqual(Base64.decode(Base64.encode(Array(all[0..<n]))), Array(all[0..<n])) }
    }

    func testStrictDecodingRejectsMalformed() {
        for bad in ["Zg", "Zg=", "Z===", "Zg==Zg==", "Zm9v\n", "Zm 9", "Zh==", "Zm9=", "Zm9v*A==", "=Zg="] {
            XCTAssertNil(Base64.decode(bad), bad)
        }
    }
}
