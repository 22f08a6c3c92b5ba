#!/bin/sh
# Regenerates remote.pb.swift from remote.proto. Needs protoc (Debian's
# protobuf-compiler) and protoc-gen-swift from the swift-protobuf version in
# Package.swift, built once:
#   git clone -b 1.39.0 https://github.com/apple/swift-protobuf /tmp/swpb
#   (cd /tmp/swpb && swift build -c release --product protoc-gen-swift)
#   PROTOC_GEN_SWIFT=/tmp/swpb/.build/release/protoc-gen-swift sh Sources/PilotRemoteWrite/generate.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
plugin=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift)}
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Internal \
    --proto_path="$here" --swift_out="$here" "$here/remote.proto"
