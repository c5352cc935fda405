import Foundation

/// Writes the seed corpora of the fuzz targets to `Fuzz/Corpus/<Target>/`, replacing what
/// is there, from the golden bytes of the unit tests (`Tests/KlifeProtocolTests`,
/// `Tests/KlifeSecurityTests`) and the library's encoders. Deterministic: run it again after
/// changing the tests or the input layouts, and commit the result.
///
///     swift run --package-path Fuzz --scratch-path .build-fuzzseeds FuzzSeeds [repository root]
@main
enum FuzzSeeds {
    static func main() throws {
        let root = CommandLine.arguments.dropFirst().first.map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent()
        let golden = try GoldenSources(root: root, folders: ["KlifeProtocolTests", "KlifeSecurityTests"])
        let encoded = try MessageSeeds.encodedBodies()
        let found = MessageSeeds.goldenBodies(golden)
        let corpora = [
            try RecordBatchSeeds.corpus(golden),
            MessageSeeds.responsesCorpus(encoded: encoded, golden: found),
            MessageSeeds.framingCorpus(encoded + found),
            try SASLSeeds.corpus(golden),
        ]
        let output = root.appendingPathComponent("Fuzz").appendingPathComponent("Corpus")
        for corpus in corpora {
            try corpus.write(under: output)
            let bytes = corpus.files.reduce(0) { $0 + $1.bytes.count }
            print("\(corpus.target): \(corpus.files.count) seeds, \(bytes) bytes")
        }
    }
}
