#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: formatting, lints, unit and integration tests
# (the integration tests start the real scimd binary on loopback ports), then the public SCIM
# conformance checkers against a release build (scripts/conformance.sh installs them itself), and
# the admin console in a real browser (scripts/browser.sh installs Playwright and chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage's wall time is printed when the next begins, and the whole run's at the end.
started=$SECONDS
stage_name="" stage_start=$SECONDS
stage() {
    if [ -n "$stage_name" ]; then
        echo "-- $stage_name: $((SECONDS - stage_start)) s"
    fi
    stage_name=$1 stage_start=$SECONDS
    echo "== $1"
}
trap 'status=$?; [ -n "$stage_name" ] && echo "-- $stage_name: $((SECONDS - stage_start)) s"; \
      echo "-- the test command: $((SECONDS - started)) s, exit $status"' EXIT

stage "cargo fmt --check"
cargo fmt --all -- --check
stage "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
stage "the documentation: links, figures stated once in docs/performance.md (scripts/docs-check.py)"
python3 scripts/docs-check.py
if ! command -v ldapsearch >/dev/null; then
    # The LDAP tests drive the directory with OpenLDAP's own clients.
    echo "== installing ldap-utils (Debian package: ldapsearch, ldapwhoami, ldapmodify)"
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq ldap-utils >/dev/null
fi
stage "cargo test"
cargo test --locked
stage "conformance checkers (scim2-tester, scim-sanity) against the release binary"
./scripts/conformance.sh
stage "the admin console in Chromium (scripts/browser.sh installs Playwright and chromium)"
./scripts/browser.sh
stage "sign-in with a real OpenID Connect provider (npm oidc-provider), Chromium and LDAP binds (scripts/sign-in.sh)"
./scripts/sign-in.sh
stage "the change feed to a receiver checking Standard Webhooks signatures (scripts/feed.sh)"
./scripts/feed.sh
stage "the LDAP directory through Python clients and the recipes of docs/ldap (scripts/ldap-client.sh installs ldap3, python-ldap)"
./scripts/ldap-client.sh
stage "SSSD and PAM from Debian against the LDAP directory (scripts/sssd.sh, root; puts back what it changes)"
./scripts/sssd.sh
stage "nslcd from Debian against the LDAP directory (scripts/nslcd.sh, root; puts back what it changes)"
./scripts/nslcd.sh
stage "Apache httpd mod_authnz_ldap from Debian against the LDAP directory (scripts/apache.sh)"
./scripts/apache.sh
stage "export of 1,000,000 users in bounded memory"
./scripts/export-memory.sh
stage "the Debian package: built, installed with dpkg, removed, purged (scripts/deb-test.sh)"
./scripts/deb-test.sh
stage "load benchmark smoke (bench/run.sh --smoke --peer --feeds): proves the benchmark still runs"
./bench/run.sh --smoke --peer --feeds
stage "LDAP benchmark smoke (bench/ldap.sh, 2,000 users, 1 s rounds): proves it still runs"
./bench/ldap.sh --users 2000 --duration 1 --rounds 1
stage "LDAP against slapd benchmark smoke (bench/slapd.sh installs Debian's slapd, 2,000 users, 1 s rounds)"
./bench/slapd.sh --users 2000 --duration 1 --rounds 1
