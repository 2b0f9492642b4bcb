#!/usr/bin/env bash
# Installs what is missing (build libraries, the real clients skopeo, podman, buildah,
# docker, containerd and ORAS, Ceph's radosgw) and runs every test: the fuzzing targets
# for a bounded time, then unit, HTTP, end-to-end, the S3 driver against a throw-away
# radosgw and the PostgreSQL metadata against a throw-away PostgreSQL 15, both on
# loopback, started and stopped by this script.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
# The code keeps the project's format (.swift-format: 4 spaces, lines up to 140):
# `swift format -i -r Sources Tests Fuzz Package.swift` fixes what this finds.
swift format lint --strict --recursive Sources Tests Fuzz Package.swift
swift build --build-tests
# The binaries users get (scripts/run.sh builds the same): the README's quick start test
# runs them.
scripts/build-release.sh

# Every libFuzzer target for a short bounded time (longer: scripts/fuzz.sh SECONDS).
scripts/fuzz.sh "${REGISTRYD_FUZZ_SECONDS:-15}"

s3_dir=$(mktemp -d /tmp/registryd-radosgw.XXXXXX)
postgres_dir=$(mktemp -d /tmp/registryd-postgres.XXXXXX)
trap 'scripts/radosgw.sh stop "$s3_dir"; scripts/postgres.sh stop "$postgres_dir"' EXIT
scripts/radosgw.sh start "$s3_dir" >/dev/null
export REGISTRYD_TEST_S3_ENV="$s3_dir/s3.env"
# PostgreSQL 15 for the metadata contract on PostgreSQL and the several-instance tests.
scripts/postgres.sh start "$postgres_dir" >/dev/null
export REGISTRYD_TEST_POSTGRES_ENV="$postgres_dir/postgres.env"

# Nothing is skipped in CI: the switches that skip client or S3 tests are for machines
# without them, and tests that need root fail instead of skipping when CI=true.
unset REGISTRYD_SKIP_CLIENT_TESTS REGISTRYD_SKIP_S3_TESTS

# Every test is XCTest; without the flag Swift Testing adds a "0 tests" summary line.
# The only skips allowed are the abstract contracts' own (the storage drivers' and the
# metadata backends'; their subclasses run them).
log=$(mktemp /tmp/registryd-test-log.XXXXXX)
status=0
swift test --skip-build --disable-swift-testing "$@" 2>&1 | tee "$log" || status=$?
skipped=$(grep -c "^Test Case '.*' skipped" "$log" || true)
abstract=$(grep -cE "^Test Case '(StorageDriverContract|MetadataStoreContract)\..*' skipped" "$log" || true)
rm -f "$log"
if [[ $status -eq 0 && $skipped -ne $abstract ]]; then
    echo "$((skipped - abstract)) test(s) skipped besides the abstract contracts: a skip in CI hides a test" >&2
    exit 1
fi
exit "$status"
