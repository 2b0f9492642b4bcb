#!/usr/bin/env bash
# Installs what is missing (build libraries and the real clients: skopeo, podman,
# buildah) and runs every test: unit, HTTP and end-to-end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
swift build --build-tests
# Every test is XCTest; without the flag Swift Testing adds a "0 tests" summary line.
swift test --skip-build --disable-swift-testing "$@"
