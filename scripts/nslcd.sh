#!/usr/bin/env bash
# The LDAP directory as an RFC 2307bis resolver uses it: Debian's nslcd (nss-pam-ldapd,
# libnss-ldapd) against the real scimd binary over StartTLS with a verified certificate, with
# POSIX identities the identity provider never sent (scimd ldap posix): getent passwd and
# group by name, by number and whole, and id with a nested group.
#
# Runs as root (nslcd reads /etc/nslcd.conf only). It installs the packages when they are
# missing and puts back, also on failure, what it and their installation change:
# /etc/nslcd.conf, /etc/nsswitch.conf and /etc/pam.d. It refuses to run beside an nslcd
# already running.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "scripts/nslcd.sh needs root (nslcd serves the machine's NSS)" >&2; exit 1; }
if pgrep -x nslcd >/dev/null; then
    echo "an nslcd already runs on this machine: stop it first (this test runs its own)" >&2
    exit 1
fi

work=$(mktemp -d)
chmod 755 "$work"
saved=$work/saved
mkdir -p "$saved"
cp -a /etc/nsswitch.conf "$saved/nsswitch.conf"
cp -a /etc/pam.d "$saved/pam.d"
had_conf=0
if [ -e /etc/nslcd.conf ]; then
    had_conf=1
    cp -a /etc/nslcd.conf "$saved/nslcd.conf"
fi
scimd_pid="" nslcd_pid=""
restore() {
    status=$?
    [ -n "$nslcd_pid" ] && kill "$nslcd_pid" 2>/dev/null && wait "$nslcd_pid" 2>/dev/null
    [ -n "$scimd_pid" ] && kill "$scimd_pid" 2>/dev/null && wait "$scimd_pid" 2>/dev/null
    cp -a "$saved/nsswitch.conf" /etc/nsswitch.conf
    rm -rf /etc/pam.d && cp -a "$saved/pam.d" /etc/pam.d
    if [ "$had_conf" -eq 1 ]; then
        cp -a "$saved/nslcd.conf" /etc/nslcd.conf
    else
        rm -f /etc/nslcd.conf
    fi
    if [ "$status" -ne 0 ]; then
        echo "== nslcd test failed; the last of nslcd's output:" >&2
        tail -n 40 "$work/nslcd.log" >&2 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap restore EXIT

missing=()
for p in nslcd libnss-ldapd; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]} (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    # The package's own start of nslcd (where there is an init system) is not this test's.
    pkill -x nslcd 2>/dev/null || true
fi
if [ "$had_conf" -eq 0 ] && [ -e /etc/nslcd.conf ]; then
    # Installed just now: the package's file is what is put back.
    had_conf=1
    cp -a /etc/nslcd.conf "$saved/nslcd.conf"
fi

peer_name=nslcd
. scripts/ldap-peer.sh
peer_provision nslcd
"$scimd" --database "$db" ldap posix --provider contoso --on >/dev/null
peer_serve
alice=$(post POST /Users '{"userName": "alice@contoso.com", "displayName": "Alice Adams"}')
bob=$(post POST /Users '{"userName": "bob@contoso.com", "displayName": "Bob Boss"}')
eng=$(post POST /Groups "{\"displayName\": \"Engineering\", \"members\": [{\"value\": \"$alice\"}]}")
post POST /Groups "{\"displayName\": \"Everyone\", \"members\": [{\"value\": \"$eng\"}, {\"value\": \"$bob\"}]}" >/dev/null

# The configuration of docs/ldap/nslcd.md, as the page shows it.
python3 scripts/recipe.py docs/ldap/nslcd.md nslcd.conf \
    scimd.example.com:3389="$ldap" /etc/ssl/certs/scimd.pem="$work/tls.crt" \
    "<the account's secret>=$secret" >/etc/nslcd.conf
chmod 640 /etc/nslcd.conf
chgrp nslcd /etc/nslcd.conf
# Lookups through nslcd for `id` (getent -s ldap needs no change): put back on exit.
sed -i -E 's/^(passwd|group):(.*)$/\1:\2 ldap/' /etc/nsswitch.conf
nslcd -d >"$work/nslcd.log" 2>&1 &
nslcd_pid=$!


echo "-- getent passwd and group through nslcd"
wait_for "alice@contoso.com:" getent -s ldap passwd alice@contoso.com
line=$(getent -s ldap passwd alice@contoso.com)
uid=$(cut -d: -f3 <<<"$line")
[ "$uid" -gt 100000 ] || fail "uidNumber $uid is not from scimd's POSIX range: $line"
[ "$(cut -d: -f4 <<<"$line")" = "$uid" ] || fail "the primary group is not the user's own: $line"
[ "$(getent -s ldap passwd "$uid" | cut -d: -f1)" = "alice@contoso.com" ] || fail "getpwuid($uid)"
getent -s ldap group Engineering | grep -q "alice@contoso.com" ||
    fail "Engineering lacks alice: $(getent -s ldap group Engineering)"
gid=$(getent -s ldap group Engineering | cut -d: -f3)
[ "$(getent -s ldap group "$gid" | cut -d: -f1)" = "Engineering" ] || fail "getgrgid($gid)"
getent -s ldap passwd | grep -q "^bob@contoso.com:" || fail "enumeration lacks bob: $(getent -s ldap passwd)"

echo "-- id: the user's groups, the nested one included"
groups=$(id -Gn alice@contoso.com 2>/dev/null || true)
for g in Engineering Everyone; do
    grep -qw "$g" <<<"$groups" || fail "id -Gn alice@contoso.com: '$groups' lacks $g"
done
echo "nslcd checks passed"
