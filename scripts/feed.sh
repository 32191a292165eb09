#!/usr/bin/env bash
# The change feed end to end, against the real scimd binary: tests/feed/feed_test.py (a
# webhook receiver on loopback that checks every message with the Standard Webhooks library
# from PyPI, including SIGKILL in the middle of a burst of creates) and tests/feed/set_test.py
# (Security Event Tokens pushed and pulled, each verified with PyJWT against the published
# keys). Exact versions in tests/feed/requirements.txt, installed into .venv-feed by this
# script.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh .venv-feed tests/feed/requirements.txt
cargo build --locked --bin scimd
"$venv/bin/python" tests/feed/feed_test.py "$PWD/target/debug/scimd"
"$venv/bin/python" tests/feed/set_test.py "$PWD/target/debug/scimd"
