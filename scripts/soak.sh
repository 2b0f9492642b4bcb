#!/usr/bin/env bash
# Soak test (not in CI): the release build under a steady mixed load for MINUTES,
# sampled every minute; writes .build/soak/soak.json and soak.png and judges whether
# anything grew without bound. See docs/TESTING.md ("Soak").
#   scripts/soak.sh MINUTES [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --soak
scripts/build-release.sh
exec /usr/bin/python3 scripts/soak/soak.py "$@"
