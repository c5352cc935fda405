// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "klife-swift",
    products: [
        .library(name: "Klife", targets: ["Klife"]),
        .library(name: "KlifeProtocol", targets: ["KlifeProtocol"]),
        .library(name: "KlifeTesting", targets: ["KlifeTesting"]),
        .library(name: "KlifeSecurity", targets: ["KlifeSecurity"]),
        .executable(name: "klife", targets: ["KlifeCLI"]),
    ],
    targets: [
        // C shim: epoll/eventfd/timerfd constants, CPU affinity, CRC-32C (SSE4.2 when present).
        .target(name: "CKlifeShim"),
        // System compression libraries for Kafka's codecs (Debian -dev packages; scripts/bootstrap.sh installs them).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CLZ4", path: "Sources/CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CSnappy", path: "Sources/CSnappy", pkgConfig: "snappy", providers: [.apt(["libsnappy-dev"])]),
        // OpenSSL (Debian: libssl-dev): libcrypto for SASL/SCRAM (HMAC, PBKDF2, digests, RAND_bytes), libssl for TLS.
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto", pkgConfig: "libssl", providers: [.apt(["libssl-dev"])]),
        // Wire codec: primitives, messages, RecordBatch v2 (with gzip/snappy/lz4/zstd), error table. No I/O.
        .target(name: "KlifeProtocol", dependencies: ["CKlifeShim", "CZlib", "CLZ4", "CZstd", "CSnappy"],
                swiftSettings: strict),
        // Reactor: epoll event loop, sockets (plain or TLS over OpenSSL memory BIOs), timers, lock-free rings.
        // Uses the codec's buffers, knows no Kafka messages.
        .target(name: "KlifeIO", dependencies: ["CKlifeShim", "CCrypto", "KlifeProtocol"], swiftSettings: strict),
        // SASL mechanisms (PLAIN, SCRAM-SHA-256/512), used by connections when configured.
        .target(name: "KlifeSecurity", dependencies: ["CCrypto", "KlifeProtocol"], swiftSettings: strict),
        // Client: connections, metadata, producer, fetch, admin.
        .target(name: "Klife", dependencies: ["CKlifeShim", "KlifeProtocol", "KlifeIO", "KlifeSecurity"], swiftSettings: strict),
        // Test utilities for users' own tests: embedded broker, record assertions.
        .target(name: "KlifeTesting", dependencies: ["Klife"], swiftSettings: strict),
        .executableTarget(name: "KlifeCLI", dependencies: ["Klife", "KlifeTesting"], swiftSettings: strict),
        .testTarget(name: "KlifeProtocolTests", dependencies: ["KlifeProtocol"], swiftSettings: strict),
        // TLS tests run an OpenSSL server (CCrypto) with certificates from KlifeTesting.
        .testTarget(name: "KlifeIOTests", dependencies: ["KlifeIO", "CCrypto", "KlifeTesting"], swiftSettings: strict),
        .testTarget(name: "KlifeTests", dependencies: ["Klife", "KlifeTesting", "KlifeProtocol", "KlifeSecurity"], swiftSettings: strict),
        .testTarget(name: "KlifeSecurityTests", dependencies: ["KlifeSecurity", "KlifeProtocol"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
