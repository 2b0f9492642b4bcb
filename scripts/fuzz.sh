#!/usr/bin/env bash
# Runs every libFuzzer target (Fuzz/) for SECONDS each (default 60), starting from its
# seed corpus in Fuzz/Corpus/<target>. Fails when a target crashes, leaks, times out on
# one input or runs out of memory; the input is left in .build-fuzz/findings/<target>/.
# An input that crashed becomes a regression test: fix the bug, then copy the input
# into Fuzz/Regressions/<target>/ (the test suite replays that folder and the seeds).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true

# Swift on Linux builds libFuzzer targets with -sanitize=fuzzer; address sanitizer
# beside it. A build directory of its own: every module is instrumented.
swift build --product registryd-fuzz --build-path .build-fuzz --sanitize=fuzzer --sanitize=address -Xswiftc -DFUZZING
binary=.build-fuzz/debug/registryd-fuzz

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    for directory in Fuzz/Corpus/*/; do targets+=("$(basename "$directory")"); done
fi

failed=()
for target in "${targets[@]}"; do
    corpus=.build-fuzz/corpus/$target          # grows with what the fuzzer finds; the seeds stay as they are
    findings=.build-fuzz/findings/$target
    mkdir -p "$corpus" "$findings"
    echo "== $target: ${seconds}s"
    if ! REGISTRYD_FUZZ_TARGET=$target "$binary" "$corpus" "Fuzz/Corpus/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$findings/" -print_final_stats=1 2>"$findings/log"; then
        failed+=("$target")
        tail -n 40 "$findings/log"
    else
        grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$findings/log" | tr '\n' ' '
        echo
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzzing found problems in: ${failed[*]} (inputs in .build-fuzz/findings/)"
    exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, nothing found"
