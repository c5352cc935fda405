import FuzzSupport
import KlifeProtocol
import KlifeSecurity

/// Seeds for `FuzzSASL`: complete SCRAM exchanges the fixed client accepts (computed here
/// at a low iteration count), the server messages of the SCRAM tests, the base64 strings of
/// the base64 tests, the SaslHandshake/SaslAuthenticate bodies of the message tests, and
/// PLAIN replies.
enum SASLSeeds {
    static func corpus(_ golden: GoldenSources) throws -> Corpus {
        var corpus = Corpus("FuzzSASL")
        for algorithm in SCRAMAlgorithm.allCases {
            let serverFirst = "r=\(SASLScript.clientNonce)3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=16"
            let client = SASLScript.client(algorithm)
            let signature = try client.clientFinalMessage(serverFirst: serverFirst).serverSignature
            let name = algorithm.mechanismName.lowercased()
            corpus.add("\(name)-exchange", SASLScript.exchange(algorithm, serverFirst: serverFirst,
                                                               serverFinal: "v=\(Base64.encode(signature))"))
            corpus.add("\(name)-server-error", SASLScript.exchange(algorithm, serverFirst: serverFirst,
                                                                   serverFinal: "e=invalid-proof"))
        }
        if let scram = golden.file("SCRAMTests") {
            let server = scram.strings.filter { ["r=", "s=", "m=", "v=", "e="].contains(String($0.prefix(2))) }
            for (i, text) in server.enumerated().prefix(12) {
                corpus.add("SCRAMTests-\(i)-parse", SASLScript.encode(.scramParse, Array(text.utf8)))
            }
            // The RFC 7677 exchange: its 4096 iterations are above the fuzz client's maximum.
            if let first = server.first(where: { $0.hasPrefix("r=rOprNGfwEbeRWgbNEkqO%") }),
               let final = server.first(where: { $0.hasPrefix("v=") }) {
                corpus.add("SCRAMTests-rfc7677-exchange", SASLScript.exchange(.sha256, serverFirst: first, serverFinal: final))
            }
        }
        if let base64 = golden.file("PlainAndBase64Tests") {
            let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= *\n")
            let candidates = base64.strings.enumerated().filter { $1.count >= 2 && $1.allSatisfy(alphabet.contains) }
            for (i, text) in candidates.prefix(8) {
                corpus.add("PlainAndBase64Tests-\(i)-base64", SASLScript.encode(.base64, Array(text.utf8)))
            }
        }
        if let messages = golden.file("SASLMessageTests") {
            for (name, bytes) in messages.arrays {
                for version: Int16 in 0...2 where decodes(SaslAuthenticateResponse.self, bytes, version) {
                    corpus.add("SASLMessageTests-\(name)-authenticate-v\(version)",
                               SASLScript.encode(.authenticateResponse, [UInt8(version)] + bytes))
                }
                for version: Int16 in 0...1 where decodes(SaslHandshakeResponse.self, bytes, version) {
                    corpus.add("SASLMessageTests-\(name)-handshake-v\(version)",
                               SASLScript.encode(.handshakeResponse, [UInt8(version)] + bytes))
                }
            }
        }
        corpus.add("plain-empty-reply", SASLScript.encode(.plainReply, []) + [])
        corpus.add("plain-reply", SASLScript.encode(.plainReply, Array("unexpected".utf8)))
        return corpus
    }

    static func decodes<R: KafkaResponse>(_: R.Type, _ bytes: [UInt8], _ version: Int16) -> Bool {
        bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            _ = R(from: &reader, version: version)
            return reader.isAtEnd
        }
    }
}
