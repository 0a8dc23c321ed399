#!/usr/bin/env bash
# Runs every fuzz target of grelay-proto for a bounded time, starting from the committed seeds.
#
#   shared/fuzz/run.sh [SECONDS_PER_TARGET]     (default 20)
#
# New inputs libFuzzer finds go to corpus/<target>/ and crashes to artifacts/<target>/ (both
# git-ignored); seeds/<target>/ is only read (regenerate it with make_seeds.py). Every target
# runs even if an earlier one crashed; the script exits non-zero if any target failed to build
# or found a crash, and prints the executions each target managed.
set -euo pipefail

secs="${1:-20}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz needs nightly-only flags (sanitizers); without a nightly toolchain, let stable
# accept them.
if cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

mkdir -p artifacts
status=0
summary=()
for target in $("${fuzz[@]}" list); do
    mkdir -p "corpus/$target"
    log="artifacts/$target.log"
    echo "== $target: ${secs}s"
    if "${fuzz[@]}" run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 2>&1 | tee "$log"; then
        result="ok"
    else
        result="FAILED (see $log and artifacts/$target/)"
        status=1
    fi
    runs=$(grep -Eo '^Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' || echo "?")
    summary+=("$target: $runs execs in ${secs}s, $result")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$status"
