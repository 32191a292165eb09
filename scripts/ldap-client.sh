#!/usr/bin/env bash
# The LDAP directory through the Python LDAP clients from PyPI (ldap3 and python-ldap, exact
# versions in tests/ldap/requirements.txt), installed into .venv-ldap by this script, against
# the real scimd binary: schema, paged search, compare, mapped attributes, a user's own
# password, writes refused. Then the recipes of docs/ldap/ (tests/ldap/apps_test.py): the Python
# blocks run as shown, and the Grafana, Gitea, Jenkins and Nextcloud configurations read from
# their pages and used as those applications use them, over StartTLS and LDAPS. python-ldap is
# built from source against OpenLDAP's library: the script installs Debian's libldap2-dev and
# libsasl2-dev for it when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! dpkg -s libldap2-dev libsasl2-dev >/dev/null 2>&1; then
    echo "== installing libldap2-dev and libsasl2-dev (Debian packages, to build python-ldap)"
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq libldap2-dev libsasl2-dev >/dev/null
fi
. scripts/venv.sh .venv-ldap tests/ldap/requirements.txt
cargo build --locked --bin scimd
"$venv/bin/python" tests/ldap/client_test.py "$PWD/target/debug/scimd"
"$venv/bin/python" tests/ldap/apps_test.py "$PWD/target/debug/scimd"
