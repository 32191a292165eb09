#!/usr/bin/env bash
# The LDAP directory through the Python LDAP clients from PyPI (ldap3 and python-ldap, exact
# versions in tests/ldap/requirements.txt), installed into .venv-ldap by this script, against
# the real scimd binary: schema, paged search, compare, mapped attributes, a user's own
# password, writes refused. python-ldap is built from source against OpenLDAP's library: the
# script installs Debian's libldap2-dev and libsasl2-dev for it when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! dpkg -s libldap2-dev libsasl2-dev >/dev/null 2>&1; then
    echo "== installing libldap2-dev and libsasl2-dev (Debian packages, to build python-ldap)"
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq libldap2-dev libsasl2-dev >/dev/null
fi
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
