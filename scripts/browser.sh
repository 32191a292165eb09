#!/usr/bin/env bash
# Browser tests of the admin console: Playwright for Python (PyPI, exact version in
# tests/browser/requirements.txt) driving Debian's chromium package against the real scimd
# binary. Installs both itself (chromium with apt; Playwright into .venv-browser) and never
# downloads a browser of its own. Screenshots of every page go to target/browser-artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    echo "== installing chromium (Debian package)"
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >/dev/null
fi

venv="$PWD/.venv-browser"
req="tests/browser/requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/requirements.installed"; then
    echo "== installing Playwright for Python into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$venv/requirements.installed"
fi

echo "== building scimd"
cargo build --locked --bin scimd
artifacts="$PWD/target/browser-artifacts"
rm -rf "$artifacts"
CHROMIUM="$chromium" "$venv/bin/python" tests/browser/console_test.py "$PWD/target/debug/scimd" "$artifacts"
