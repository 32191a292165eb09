#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: formatting, lints, unit and integration tests
# (the integration tests start the real scimd binary on loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked
