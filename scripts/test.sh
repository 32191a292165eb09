#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: formatting, lints, unit and integration tests
# (the integration tests start the real scimd binary on loopback ports), then the public SCIM
# conformance checkers against a release build (scripts/conformance.sh installs them itself), and
# the admin console in a real browser (scripts/browser.sh installs Playwright and chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
if ! command -v ldapsearch >/dev/null; then
    # The LDAP tests drive the directory with OpenLDAP's own clients.
    echo "== installing ldap-utils (Debian package: ldapsearch, ldapwhoami, ldapmodify)"
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq ldap-utils >/dev/null
fi
echo "== cargo test"
cargo test --locked
echo "== conformance checkers (scim2-tester, scim-sanity) against the release binary"
./scripts/conformance.sh
echo "== the admin console in Chromium (scripts/browser.sh installs Playwright and chromium)"
./scripts/browser.sh
echo "== the LDAP directory through a Python client (scripts/ldap-client.sh installs ldap3)"
./scripts/ldap-client.sh
echo "== export of 1,000,000 users in bounded memory"
./scripts/export-memory.sh
echo "== the Debian package: built, installed with dpkg, removed, purged (scripts/deb-test.sh)"
./scripts/deb-test.sh
echo "== load benchmark smoke (bench/run.sh --smoke --peer): proves the benchmark still runs"
./bench/run.sh --smoke --peer
echo "== LDAP benchmark smoke (bench/ldap.sh, 2,000 users, 1 s rounds): proves it still runs"
./bench/ldap.sh --users 2000 --duration 1 --rounds 1
