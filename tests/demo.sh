#!/usr/bin/env bash
# The one-command demo: installs the Debian packages it needs if missing, builds grelay, and
# runs a laptop behind a home NAT, a gateway and a game server in network namespaces
# (tests/src/bin/grelay-demo.rs). Everything is removed at the end, also on Ctrl-C. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/install-deps.sh
cargo build --locked --quiet -p grelay-client -p grelay-gateway -p grelay-tests --bins
exec target/debug/grelay-demo
