#!/usr/bin/env bash
# Runs the public SCIM conformance checkers scim2-tester and scim-sanity (PyPI, exact versions
# in tests/conformance/requirements.txt) against a freshly started release build of scimd on
# loopback. Installs them into .venv-conformance itself. Fails on any failure that
# tests/conformance/allowlist.json does not list with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building the release binary"
cargo build --release --locked --bin scimd
bin="$PWD/target/release/scimd"

. scripts/venv.sh .venv-conformance tests/conformance/requirements.txt

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

db="$work/scimd.db"
"$bin" --database "$db" provider add conformance >/dev/null
# An extension schema registered as an operator would, so the checkers also read a provider's
# own schema in /Schemas and /ResourceTypes.
"$bin" --database "$db" schema add --provider conformance tests/conformance/extension.json >/dev/null
token=$("$bin" --database "$db" token create --provider conformance --valid-for 1d | grep '^scimd_')

SCIMD_ADMIN_LISTEN=127.0.0.1:0 "$bin" --database "$db" serve --listen 127.0.0.1:0 2>"$work/server.log" &
server_pid=$!
base=""
for _ in $(seq 1 100); do
    base=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/server.log" | head -n 1)
    [ -n "$base" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
    sleep 0.1
done
[ -n "$base" ] || { echo "scimd did not start"; cat "$work/server.log"; exit 1; }
url="$base/scim/v2/conformance"
echo "== checking $url"

status=0
echo "== scim2-tester"
"$venv/bin/python" tests/conformance/run_scim2_tester.py "$url" "$token" tests/conformance/allowlist.json || status=1
echo "== scim-sanity"
"$venv/bin/python" tests/conformance/run_scim_sanity.py "$url" "$token" tests/conformance/allowlist.json || status=1
if [ "$status" -ne 0 ]; then
    echo "conformance checks failed; server log:"
    tail -n 50 "$work/server.log"
fi
exit "$status"
