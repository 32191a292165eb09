#!/usr/bin/env bash
# Sign-in with the identity provider, end to end: a real OpenID Connect provider (npm's
# oidc-provider, exact version in tests/oidc/package-lock.json, run by tests/oidc/issuer.mjs
# on 127.0.0.2), Chromium through Playwright and LDAP binds through ldap3 against the real
# scimd binary (tests/browser/sign_in_test.py). Installs what it needs: chromium and the
# Python packages and Node.js (scripts/browser-env.sh), the npm package (npm ci). Screenshots go to target/sign-in-artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/browser-env.sh

if ! cmp -s tests/oidc/package-lock.json tests/oidc/node_modules/.installed-lock 2>/dev/null; then
    echo "== installing oidc-provider (npm ci)"
    (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error &&
        cp package-lock.json node_modules/.installed-lock)
fi

echo "== building scimd"
cargo build --locked --bin scimd
artifacts="$PWD/target/sign-in-artifacts"
rm -rf "$artifacts"
CHROMIUM="$chromium" "$venv/bin/python" tests/browser/sign_in_test.py \
    "$PWD/target/debug/scimd" "$PWD/tests/oidc/issuer.mjs" "$artifacts"
