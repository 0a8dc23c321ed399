#!/usr/bin/env bash
# Runs everything CI runs, in order: formatting, lints, docs, the whole test suite (unit, property,
# simulation and the end-to-end tests in network namespaces, which need root), the proof that
# the protocol core has no I/O dependencies, and a short bounded run of every fuzz target.
#
#   sudo tests/run.sh                 (FUZZ_SECONDS=N to change the per-target fuzz time)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Debian packages the tests use"
tests/install-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "protocol core has no tokio/mio/socket2 (sans-IO)"
if cargo tree -p grelay-proto -e normal --locked | grep -E '\b(tokio|mio|socket2) v'; then
    echo "grelay-proto depends on an I/O crate (see above)" >&2
    exit 1
fi
echo "ok: none"

step "cargo test --workspace (needs root for the namespace tests)"
# Build every binary first, so that no end-to-end test has to build one while timing.
cargo build --workspace --bins --locked
cargo test --workspace --locked

step "fuzz: ${FUZZ_SECONDS:-20}s per target"
shared/fuzz/run.sh "${FUZZ_SECONDS:-20}"
