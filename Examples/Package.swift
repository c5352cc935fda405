// swift-tools-version:6.1
//
// Runnable examples of Klife against real systems, as a separate package so the library
// itself keeps zero dependencies (the root package never sees this manifest).
//
//   flow-demo: a group consumer writing into a PostgreSQL that struggles for a while
//              (docs/flow-control.md, "Demo: a struggling PostgreSQL"; run it with
//              scripts/flow-demo.sh, which starts Tansu and PostgreSQL).

import PackageDescription

let package = Package(
    name: "klife-examples",
    products: [
        .executable(name: "flow-demo", targets: ["FlowDemo"]),
    ],
    dependencies: [
        .package(name: "klife-swift", path: "../"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        .executableTarget(
            name: "FlowDemo",
            dependencies: [
                .product(name: "Klife", package: "klife-swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Sources/FlowDemo"
        ),
    ],
    swiftLanguageModes: [.v6]
)
