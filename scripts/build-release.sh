#!/usr/bin/env bash
# Builds registryd and registryctl in release mode, the way they are measured and run:
# the Swift standard library linked in, every function in its own section so that the
# linker can place the functions a running registry executes next to each other
# (scripts/link-order/registryd.order; see docs/PERFORMANCE.md, "Memory").
set -euo pipefail
cd "$(dirname "$0")/.."
flags=(-c release --static-swift-stdlib -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections)
swift build "${flags[@]}" --product registryd
swift build "${flags[@]}" --product registryctl
