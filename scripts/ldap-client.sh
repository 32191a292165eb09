#!/usr/bin/env bash
# The LDAP directory through a Python LDAP client from PyPI (ldap3, exact version in
# tests/ldap/requirements.txt), installed into .venv-ldap by this script, against the real
# scimd binary: paged search, mapped attributes, a user's own password, writes refused.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv-ldap"
req="tests/ldap/requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/requirements.installed"; then
    echo "== installing ldap3 into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$venv/requirements.installed"
fi
cargo build --locked --bin scimd
"$venv/bin/python" tests/ldap/client_test.py "$PWD/target/debug/scimd"
