#!/usr/bin/env bash
# Installs what is missing (build libraries, the real clients skopeo, podman, buildah,
# docker, containerd and ORAS, Ceph's radosgw) and runs every test: the fuzzing targets
# for a bounded time, then unit, HTTP, end-to-end, and the S3 driver against a
# throw-away radosgw on loopback that this script starts and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
swift build --build-tests

# Every libFuzzer target for a short bounded time (longer: scripts/fuzz.sh SECONDS).
scripts/fuzz.sh "${REGISTRYD_FUZZ_SECONDS:-15}"

s3_dir=$(mktemp -d /tmp/registryd-radosgw.XXXXXX)
trap 'scripts/radosgw.sh stop "$s3_dir"' EXIT
scripts/radosgw.sh start "$s3_dir" >/dev/null
export REGISTRYD_TEST_S3_ENV="$s3_dir/s3.env"

# Every test is XCTest; without the flag Swift Testing adds a "0 tests" summary line.
swift test --skip-build --disable-swift-testing "$@"
