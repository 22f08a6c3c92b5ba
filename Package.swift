// swift-tools-version:6.1
import PackageDescription

// Layers point downward only (see DESIGN.md):
//   pilot -> PilotCLI -> PilotCrypto -> PilotCore
//   PilotWire (handshake, framing, replay window) -> PilotCrypto
//   PilotCrypto -> CSodium
//   PilotSQLite (thin wrapper over the C API) -> CSQLite
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "pilot",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pilot", targets: ["pilot"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
        .target(name: "PilotCore", swiftSettings: strict),
        .target(name: "PilotCrypto", dependencies: ["CSodium", "PilotCore"], swiftSettings: strict),
        .target(name: "PilotSQLite", dependencies: ["CSQLite"], swiftSettings: strict),
        .target(name: "PilotWire", dependencies: ["PilotCore", "PilotCrypto"], swiftSettings: strict),
        .target(name: "PilotRegistry", dependencies: ["PilotCore", "PilotCrypto", "PilotWire", "PilotSQLite"], swiftSettings: strict),
        .target(
            name: "PilotCLI",
            dependencies: [
                "PilotCore", "PilotCrypto", "PilotSQLite",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(name: "pilot", dependencies: ["PilotCLI"], swiftSettings: strict),
        .testTarget(name: "PilotCoreTests", dependencies: ["PilotCore"], swiftSettings: strict),
        .testTarget(name: "PilotCryptoTests", dependencies: ["PilotCrypto"], swiftSettings: strict),
        .testTarget(name: "PilotSQLiteTests", dependencies: ["PilotSQLite"], swiftSettings: strict),
        .testTarget(name: "PilotWireTests", dependencies: ["PilotWire", "PilotCrypto"], swiftSettings: strict),
        .testTarget(name: "PilotRegistryTests", dependencies: ["PilotRegistry", "PilotWire", "PilotCrypto", "PilotCore"], swiftSettings: strict),
        .testTarget(name: "PilotCLITests", dependencies: ["PilotCLI"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
