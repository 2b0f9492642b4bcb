#!/usr/bin/env bash
# Benchmarks registryd side by side with CNCF distribution (Debian's docker-registry)
# on this machine: installs what is missing, builds registryd in release mode (Swift
# standard library linked statically), runs scripts/bench/benchmark.py and prints one
# line per metric. See docs/PERFORMANCE.md.
#
#   scripts/bench.sh                 # full run (~22 minutes, the many-connections rows included), prints the table
#   scripts/bench.sh --write-docs    # and writes docs/PERFORMANCE.md + the chart
#   scripts/bench.sh --quick         # short workloads, 256 MiB blobs, no skopeo image
#   scripts/bench.sh --scale-out     # SQLite, PostgreSQL, nginx + 1 and + 3 instances (~3 minutes)
#   scripts/bench.sh --connections   # 64 / 1,000 / 4,000 connections, 10,000 idle, an accept storm (~10 minutes)
#   scripts/bench.sh --s3            # registryd on radosgw against aws s3 cp to the same radosgw (~3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --bench
scripts/build-release.sh
if [[ ${1:-} == --scale-out ]]; then
    shift
    exec /usr/bin/python3 scripts/bench/scale_out.py "$@"
fi
if [[ ${1:-} == --s3 ]]; then
    shift
    exec /usr/bin/python3 scripts/bench/s3.py "$@"
fi
if [[ ${1:-} == --connections ]]; then
    shift
    exec /usr/bin/python3 scripts/bench/connections.py "$@"
fi
exec /usr/bin/python3 scripts/bench/benchmark.py "$@"
