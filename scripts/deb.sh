#!/usr/bin/env bash
# Builds the Debian package (target/debian/scimd_*.deb) with cargo-deb, installing cargo-deb
# first when it is missing. Prints the package's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
    echo "== installing cargo-deb (cargo install, a few minutes)" >&2
    cargo install cargo-deb --locked >&2
fi
cargo build --release --locked --bin scimd >&2
mkdir -p target/deb-assets
# The packaged binary is /usr/bin/scimd; the unit in packaging/ is for a hand install.
sed 's#/usr/local/bin/scimd#/usr/bin/scimd#' packaging/scimd.service >target/deb-assets/scimd.service
cargo deb --no-build --locked >&2
ls -t target/debian/scimd_*.deb | head -n 1
