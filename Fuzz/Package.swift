// swift-tools-version:6.1
//
// libFuzzer targets for every decoder that reads bytes from the network, as a separate
// package so the library keeps its plain manifest. Build and run them with
// `bash scripts/fuzz.sh` from the repository root. The seed corpora under Corpus/ are
// written by `swift run --package-path Fuzz --scratch-path .build-fuzzseeds FuzzSeeds`
// (no sanitizer flags). See docs/testing.md, "Fuzzing".

import PackageDescription

/// The root package as a path dependency is known by its directory's name (SwiftPM's
/// identity for local packages), which is the checkout's name, not "klife-swift".
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map { $0.lowercased() } ?? "main"

/// One fuzz target: an executable with no top-level code (built with `-parse-as-library`
/// and `-sanitize=fuzzer`) exporting `LLVMFuzzerTestOneInput`. SwiftPM aliases an
/// executable's `main` to `<module>_main`, so each target defines that symbol and hands the
/// process to libFuzzer's driver (`LLVMFuzzerRunDriver`, from the same runtime as its `main`).
func fuzzTarget(_ name: String, _ products: [String]) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["CLibFuzzer", "FuzzSupport"] + products.map { .product(name: $0, package: root) }
    )
}

let package = Package(
    name: "klife-fuzz",
    dependencies: [
        .package(path: ".."),
    ],
    targets: [
        // The prototype of libFuzzer's driver entry point; the symbol comes with -sanitize=fuzzer.
        .systemLibrary(name: "CLibFuzzer"),
        // Input layouts shared by the targets and the seed generator: which message
        // type and version the first bytes select, how a framing input describes the
        // requests in flight, the SASL modes.
        .target(
            name: "FuzzSupport",
            dependencies: [
                .product(name: "KlifeProtocol", package: root),
                .product(name: "KlifeSecurity", package: root),
            ]
        ),
        fuzzTarget("FuzzRecordBatch", ["KlifeProtocol"]),
        fuzzTarget("FuzzResponses", ["KlifeProtocol"]),
        fuzzTarget("FuzzFraming", ["KlifeProtocol"]),
        fuzzTarget("FuzzSASL", ["KlifeProtocol", "KlifeSecurity"]),
        // Writes Corpus/<Target>/ from the golden bytes of the unit tests and from the
        // library's own encoders. Built without sanitizers.
        .executableTarget(name: "FuzzSeeds", dependencies: ["FuzzSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
