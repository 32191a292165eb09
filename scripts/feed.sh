#!/usr/bin/env bash
# The change feed end to end (tests/feed/feed_test.py): a webhook receiver on loopback that
# checks every message with the Standard Webhooks library from PyPI (exact version in
# tests/feed/requirements.txt, installed into .venv-feed by this script), against the real
# scimd binary, including SIGKILL in the middle of a burst of creates.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv-feed"
req="tests/feed/requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/requirements.installed"; then
    echo "== installing standardwebhooks into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$venv/requirements.installed"
fi
cargo build --locked --bin scimd
"$venv/bin/python" tests/feed/feed_test.py "$PWD/target/debug/scimd"
