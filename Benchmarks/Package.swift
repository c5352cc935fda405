// swift-tools-version:6.1
//
// Encode-path microbenchmarks for Klife, as a separate package so the library itself
// keeps zero dependencies (the root package never sees this manifest). Run from this
// directory with `swift package --disable-sandbox benchmark`; see README.md.

import PackageDescription

/// Every benchmark executable: the library products it measures, the fixtures, and the
/// plugin that generates the benchmark runner boilerplate.
func benchmarkTarget(_ name: String, _ products: [String]) -> Target {
    .executableTarget(
        name: name,
        dependencies: [
            .product(name: "Benchmark", package: "benchmark"),
            "BenchmarkFixtures",
        ] + products.map { .product(name: $0, package: "klife-swift") },
        path: "Benchmarks/\(name)",
        plugins: [
            .plugin(name: "BenchmarkPlugin", package: "benchmark")
        ]
    )
}

let package = Package(
    name: "klife-benchmarks",
    products: [
        .executable(name: "klife-sink", targets: ["KlifeSink"]),
    ],
    dependencies: [
        .package(name: "klife-swift", path: "../"),
        // MallocInterposer only (no RuntimeInterposer): malloc counts without jemalloc.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Deterministic test data (records, JSON-like payloads, a Fetch response) and
        // small helpers shared by the benchmark executables. Only used outside the
        // measured regions.
        .target(
            name: "BenchmarkFixtures",
            dependencies: [.product(name: "KlifeProtocol", package: "klife-swift")],
            path: "Sources/BenchmarkFixtures"
        ),
        benchmarkTarget("RecordBatchBenchmarks", ["KlifeProtocol"]),
        benchmarkTarget("MessageBenchmarks", ["KlifeProtocol"]),
        benchmarkTarget("CodecBenchmarks", ["KlifeProtocol"]),
        // KlifeIO is not a product of its own; it comes with `Klife` and is imported directly.
        benchmarkTarget("RingBenchmarks", ["Klife"]),
        benchmarkTarget("AppendPipelineBenchmarks", ["Klife"]),
        // Against a real broker: the embedded Tansu of KlifeTesting.
        benchmarkTarget("ConsumerBenchmarks", ["Klife", "KlifeTesting"]),
        benchmarkTarget("ProducerBenchmarks", ["Klife", "KlifeTesting"]),
        // A Kafka-speaking sink broker for compare.sh --broker sink: acknowledges Produce
        // without storing and serves Fetch from a prepared record set (README.md).
        .executableTarget(
            name: "KlifeSink",
            dependencies: [.product(name: "KlifeProtocol", package: "klife-swift")],
            path: "Sources/KlifeSink"
        ),
    ],
    swiftLanguageModes: [.v6]
)
