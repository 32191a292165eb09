#!/usr/bin/env bash
# The Debian package on this machine: builds it, installs it with dpkg, runs `scimd --version`
# and `check-config` as the installed account, creates a database, removes and purges the
# package (the database and the account must stay), reinstalls it over the kept data, and
# cleans up what it made. Needs root. Refuses to run where scimd is installed or
# /var/lib/scimd exists already, so it never touches a real installation.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "deb-test: needs root (dpkg -i)"; exit 1; fi
if dpkg -s scimd >/dev/null 2>&1 || [ -e /var/lib/scimd ]; then
    echo "deb-test: scimd is installed here, or /var/lib/scimd exists: not touching it"; exit 1
fi
deb=$(./scripts/deb.sh)
echo "== installing $deb"
cleanup() {
    dpkg -P scimd >/dev/null 2>&1 || true
    rm -rf /var/lib/scimd /etc/scimd
    userdel scimd >/dev/null 2>&1 || true
    groupdel scimd >/dev/null 2>&1 || true
}
trap cleanup EXIT
dpkg -i "$deb"
as_scimd() { runuser -u scimd -- "$@"; }
test "$(stat -c '%a %U' /var/lib/scimd)" = "700 scimd"
/usr/bin/scimd --version
as_scimd scimd --config /etc/scimd/config.toml check-config >/dev/null
as_scimd scimd --config /etc/scimd/config.toml provider add deb-test >/dev/null
test -f /lib/systemd/system/scimd.service
grep -q '^ExecStart=/usr/bin/scimd ' /lib/systemd/system/scimd.service
grep -q '^Type=notify' /lib/systemd/system/scimd.service
grep -q '^LimitNOFILE=65536' /lib/systemd/system/scimd.service
# The documentation the README links to, beside it.
test -f /usr/share/doc/scimd/README.md
test -f /usr/share/doc/scimd/docs/ldap/sssd.md
test -f /usr/share/doc/scimd/docs/console/04-token-created.png
echo "== removing: the database, the account and the configuration stay"
dpkg -r scimd
test -f /var/lib/scimd/scimd.db
getent passwd scimd >/dev/null
test -f /etc/scimd/config.toml
echo "== reinstalling over the kept data"
dpkg -i "$deb"
as_scimd scimd --config /etc/scimd/config.toml provider list | grep -q deb-test
echo "== purging: the database and the account still stay"
dpkg -P scimd
test -f /var/lib/scimd/scimd.db
getent passwd scimd >/dev/null
echo "deb-test: ok"
