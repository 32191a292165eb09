#!/usr/bin/env bash
# The change feed end to end (tests/feed/feed_test.py): a webhook receiver on loopback that
# checks every message with the Standard Webhooks library from PyPI (exact version in
# tests/feed/requirements.txt, installed into .venv-feed by this script), against the real
# scimd binary, including SIGKILL in the middle of a burst of creates.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh .venv-feed tests/feed/requirements.txt
cargo build --locked --bin scimd
"$venv/bin/python" tests/feed/feed_test.py "$PWD/target/debug/scimd"
