// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for every decoder of untrusted bytes in the parsing
// layers. A separate package so that the main build never sees the
// sanitizer flags; build and run with Fuzz/run.sh, which passes
// `--sanitize fuzzer --sanitize address`: libFuzzer provides `main`, each
// target exports `LLVMFuzzerTestOneInput`.
let targets = [
    "stream-frame", "json", "handshake", "reliable", "transport", "registry", "registry-client", "values",
    "datagrams", "tunnel", "beacon", "stream-mux", "event-lines", "chunks", "alerts",
]

let package = Package(
    name: "pilot-fuzz",
    platforms: [.macOS(.v15)],
    products: targets.map { .executable(name: "fuzz-\($0)", targets: ["fuzz-\($0)"]) },
    dependencies: [
        .package(name: "pilot", path: ".."),
    ],
    targets: [
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "PilotParsers", package: "pilot")]
        ),
    ] + targets.map { name in
        .executableTarget(
            name: "fuzz-\(name)",
            dependencies: ["FuzzSupport", .product(name: "PilotParsers", package: "pilot")],
            path: "Targets/\(name)",
            // No main.swift: libFuzzer's main calls LLVMFuzzerTestOneInput.
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        )
    },
    swiftLanguageModes: [.v6]
)
