#!/usr/bin/env bash
# Installs what is missing, builds registryd in release mode and starts it on
# 127.0.0.1:5000 with SQLite and filesystem storage under ./registry-data.
# Extra arguments go to registryd (e.g. --listen 0.0.0.0:5000, or --storage s3 … as
# docs/S3.md shows).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build-release.sh
exec .build/release/registryd --data-dir ./registry-data "$@"
