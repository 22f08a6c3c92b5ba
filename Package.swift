// swift-tools-version:6.1
import PackageDescription

// Layers point downward only; docs/ARCHITECTURE.md draws the graph.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]
// Code off every hot path (the CLI, the router's formats and SMTP, remote
// write's encoding) is optimised for size: the binary's budget is 36 MB.
let small: [SwiftSetting] = strict + [.unsafeFlags(["-Osize"], .when(configuration: .release))]

let package = Package(
    name: "pilot",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pilot", targets: ["pilot"]),
        // For side packages that must not change this one's build (Fuzz/).
        .library(name: "PilotParsers", targets: ["PilotCore", "PilotCrypto", "PilotWire", "PilotRegistry", "PilotEvents", "PilotStore", "PilotAlerts"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // No default traits: BinaryDelimitedStreams imports all of Foundation (+50 MB).
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0", traits: []),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Already in the build through async-http-client; named for SMTP's STARTTLS.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            path: "Sources/CSodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .systemLibrary(
            name: "CSQLite",
            path: "Sources/CSQLite",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // Snappy (block format) for Prometheus remote write; a C++ library.
        .systemLibrary(
            name: "CSnappy",
            path: "Sources/CSnappy",
            providers: [.apt(["libsnappy-dev"])]
        ),
        // The dashboard's HTML, CSS, JS and Chart.js, embedded by `.incbin`
        // (no SwiftPM resources: Bundle.module needs all of Foundation).
        .target(name: "CDashboard", path: "Sources/CDashboard", exclude: ["web"], cSettings: [.headerSearchPath("web")]),
        .target(name: "PilotCore", swiftSettings: strict),
        .target(name: "PilotCrypto", dependencies: ["CSodium", "PilotCore"], swiftSettings: strict),
        .target(name: "PilotSQLite", dependencies: ["CSQLite"], swiftSettings: strict),
        .target(name: "PilotWire", dependencies: ["PilotCore", "PilotCrypto"], swiftSettings: strict),
        .target(
            name: "PilotTransport",
            dependencies: [
                "PilotCore", "PilotCrypto", "PilotWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The hub is generic over its connection type and runs in PilotNode:
        // without cross-module optimisation every call would go through
        // unspecialised generic code (7% of the hub's time in metadata lookups).
        .target(name: "PilotEvents", dependencies: ["PilotCore", "PilotSQLite"],
                swiftSettings: strict + [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]),
        .target(name: "PilotAgent", dependencies: ["PilotCore"], swiftSettings: strict),
        .target(name: "PilotAggregator", dependencies: ["PilotCore"], swiftSettings: strict),
        .target(name: "PilotStore", dependencies: ["PilotCore", "PilotSQLite"], swiftSettings: strict),
        // The alert router's pure core: routes, grouping, inhibition,
        // silences, retries, the outbox, and the receivers' formats.
        .target(name: "PilotAlerts", dependencies: ["PilotCore", "PilotSQLite"], swiftSettings: small),
        // Prometheus remote write: the generated protobuf messages (remote.proto,
        // committed), snappy, and the store's outbox of batches to send.
        .target(
            name: "PilotRemoteWrite",
            dependencies: ["PilotCore", "PilotSQLite", "PilotStore", "CSnappy", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["remote.proto", "generate.sh"],
            swiftSettings: small
        ),
        .target(name: "PilotRegistry", dependencies: ["PilotCore", "PilotCrypto", "PilotWire", "PilotSQLite"], swiftSettings: strict),
        .target(
            name: "PilotNode",
            dependencies: [
                "PilotCore", "PilotCrypto", "PilotWire", "PilotRegistry", "PilotTransport", "PilotEvents",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "PilotRoles",
            dependencies: [
                "PilotCore", "PilotCrypto", "PilotWire", "PilotRegistry", "PilotTransport", "PilotNode", "PilotEvents", "PilotAgent", "PilotAggregator", "PilotStore", "PilotRemoteWrite", "PilotAlerts", "CDashboard",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "PilotCLI",
            dependencies: [
                "PilotCore", "PilotCrypto", "PilotSQLite", "PilotRegistry", "PilotTransport", "PilotNode", "PilotRoles", "PilotEvents", "PilotAgent", "PilotAggregator", "PilotStore", "PilotRemoteWrite", "PilotAlerts",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: small
        ),
        .executableTarget(name: "pilot", dependencies: ["PilotCLI"], swiftSettings: strict),
        // Benchmarks: a separate executable, never part of the shipped binary.
        .executableTarget(
            name: "pilot-bench",
            dependencies: [
                "PilotCore", "PilotCrypto", "PilotWire", "PilotRegistry", "PilotTransport", "PilotNode", "PilotAgent", "PilotStore", "PilotSQLite", "PilotRemoteWrite",
                "PilotRoles",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/PilotBench",
            swiftSettings: strict
        ),
        .testTarget(name: "PilotCoreTests", dependencies: ["PilotCore"], swiftSettings: strict),
        .testTarget(name: "PilotCryptoTests", dependencies: ["PilotCrypto"], swiftSettings: strict),
        .testTarget(name: "PilotSQLiteTests", dependencies: ["PilotSQLite"], swiftSettings: strict),
        .testTarget(name: "PilotWireTests", dependencies: ["PilotWire", "PilotCrypto", "PilotCore"], swiftSettings: strict),
        .testTarget(name: "PilotRegistryTests", dependencies: ["PilotRegistry", "PilotWire", "PilotCrypto", "PilotCore"], swiftSettings: strict),
        .testTarget(
            name: "PilotRolesTests",
            dependencies: [
                "PilotRoles", "PilotNode", "PilotRegistry", "PilotWire", "PilotCrypto", "PilotCore", "PilotRemoteWrite", "PilotStore", "PilotSQLite",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PilotNodeTests",
            dependencies: [
                "PilotNode", "PilotCrypto", "PilotCore", "PilotWire", "PilotTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "PilotAgentTests", dependencies: ["PilotAgent", "PilotCore"], exclude: ["Fixtures"], swiftSettings: strict),
        .testTarget(name: "PilotStoreTests", dependencies: ["PilotStore", "PilotCore", "PilotSQLite"], swiftSettings: strict),
        .testTarget(name: "PilotRemoteWriteTests", dependencies: ["PilotRemoteWrite", "PilotStore", "PilotSQLite", "PilotCore"], swiftSettings: strict),
        .testTarget(name: "PilotAggregatorTests", dependencies: ["PilotAggregator", "PilotCore"], swiftSettings: strict),
        .testTarget(name: "PilotAlertsTests", dependencies: ["PilotAlerts", "PilotCore", "PilotSQLite"], swiftSettings: strict),
        .testTarget(name: "PilotEventsTests", dependencies: ["PilotEvents", "PilotCore", "PilotSQLite"], swiftSettings: strict),
        .testTarget(name: "PilotCLITests", dependencies: ["PilotCLI"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
