// swift-tools-version:6.1
//
// Adapters that fit Klife into the Swift server ecosystem, as a separate package so the
// library itself keeps zero package dependencies (the root package never sees this manifest).
//
//   KlifeLogging:          the client's log hook into a swift-log Logger
//   KlifeMetrics:          producer and consumer statistics as swift-metrics counters, gauges, timers
//   KlifeServiceLifecycle: a client and a consumer as swift-service-lifecycle services
//   integrations-example:  the three together in one service (docs/integrations.md)

import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "klife-integrations",
    products: [
        .library(name: "KlifeLogging", targets: ["KlifeLogging"]),
        .library(name: "KlifeMetrics", targets: ["KlifeMetrics"]),
        .library(name: "KlifeServiceLifecycle", targets: ["KlifeServiceLifecycle"]),
        .executable(name: "integrations-example", targets: ["IntegrationsExample"]),
    ],
    dependencies: [
        .package(name: "klife-swift", path: "../"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        .target(name: "KlifeLogging",
                dependencies: [.product(name: "Klife", package: "klife-swift"),
                               .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        .target(name: "KlifeMetrics",
                dependencies: [.product(name: "Klife", package: "klife-swift"),
                               .product(name: "CoreMetrics", package: "swift-metrics")],
                swiftSettings: strict),
        .target(name: "KlifeServiceLifecycle",
                dependencies: [.product(name: "Klife", package: "klife-swift"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
                swiftSettings: strict),
        .executableTarget(name: "IntegrationsExample",
                          dependencies: ["KlifeLogging", "KlifeMetrics", "KlifeServiceLifecycle",
                                         .product(name: "Klife", package: "klife-swift"),
                                         .product(name: "Logging", package: "swift-log"),
                                         .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
                          swiftSettings: strict),
        // Imports Klife only: the client's public API needs no other module (KlifeProtocol's
        // types it names are re-exported).
        .testTarget(name: "ImportKlifeAloneTests",
                    dependencies: [.product(name: "Klife", package: "klife-swift")],
                    swiftSettings: strict),
        .testTarget(name: "KlifeLoggingTests",
                    dependencies: ["KlifeLogging",
                                   .product(name: "Klife", package: "klife-swift"),
                                   .product(name: "Logging", package: "swift-log"),
                                   .product(name: "InMemoryLogging", package: "swift-log")],
                    swiftSettings: strict),
        .testTarget(name: "KlifeMetricsTests",
                    dependencies: ["KlifeMetrics",
                                   .product(name: "Klife", package: "klife-swift"),
                                   .product(name: "KlifeTesting", package: "klife-swift"),
                                   .product(name: "MetricsTestKit", package: "swift-metrics")],
                    swiftSettings: strict),
        .testTarget(name: "KlifeServiceLifecycleTests",
                    dependencies: ["KlifeServiceLifecycle",
                                   .product(name: "Klife", package: "klife-swift"),
                                   .product(name: "KlifeTesting", package: "klife-swift"),
                                   .product(name: "Logging", package: "swift-log"),
                                   .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                                   .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle")],
                    swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
