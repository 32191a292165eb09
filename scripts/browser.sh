#!/usr/bin/env bash
# Browser tests of the admin console: Playwright for Python (PyPI, exact version in
# tests/browser/requirements.txt) driving Debian's chromium package against the real scimd
# binary. Installs both itself (scripts/browser-env.sh) and never downloads a browser of its
# own. Screenshots of every page go to target/browser-artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/browser-env.sh

echo "== building scimd"
cargo build --locked --bin scimd
artifacts="$PWD/target/browser-artifacts"
rm -rf "$artifacts"
CHROMIUM="$chromium" "$venv/bin/python" tests/browser/console_test.py "$PWD/target/debug/scimd" "$artifacts"
