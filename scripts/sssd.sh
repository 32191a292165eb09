#!/usr/bin/env bash
# The LDAP directory as a Linux host uses it: Debian's SSSD (sssd-ldap, libnss-sss) and PAM
# (pamtester) against the real scimd binary, with POSIX identities that the identity provider
# never sent (scimd ldap posix). Checks getent passwd/group, id with nested groups, an
# enumeration refresh that picks up a user created over SCIM, and PAM authentication with a
# password, refused when wrong and after a deactivation.
#
# Runs as root (SSSD's NSS responder is the machine's). It installs the packages when they are
# missing and puts back, also on failure, what it and their installation change:
# /etc/nsswitch.conf, /etc/pam.d (the packages add pam_sss to common-*; the test adds a service
# file) and SSSD's cache directory. It refuses to run beside an SSSD already running, whose
# sockets it would take.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "scripts/sssd.sh needs root (SSSD serves the machine's NSS)" >&2; exit 1; }
if pgrep -x sssd >/dev/null; then
    echo "an sssd already runs on this machine: stop it first (this test runs its own)" >&2
    exit 1
fi

work=$(mktemp -d)
saved=$work/saved
mkdir -p "$saved"
cp -a /etc/nsswitch.conf "$saved/nsswitch.conf"
cp -a /etc/pam.d "$saved/pam.d"
had_sss=0
if [ -d /var/lib/sss ]; then
    had_sss=1
    cp -a /var/lib/sss "$saved/sss"
fi
scimd_pid="" sssd_pid=""
restore() {
    status=$?
    [ -n "$sssd_pid" ] && kill "$sssd_pid" 2>/dev/null && wait "$sssd_pid" 2>/dev/null
    [ -n "$scimd_pid" ] && kill "$scimd_pid" 2>/dev/null && wait "$scimd_pid" 2>/dev/null
    cp -a "$saved/nsswitch.conf" /etc/nsswitch.conf
    rm -rf /etc/pam.d && cp -a "$saved/pam.d" /etc/pam.d
    if [ "$had_sss" -eq 1 ]; then
        rm -rf /var/lib/sss && cp -a "$saved/sss" /var/lib/sss
    fi
    mkdir -p target
    cp "$work/sssd.log" target/sssd.log 2>/dev/null || true
    if [ "$status" -ne 0 ]; then
        echo "== SSSD test failed; the last of sssd's log (all of it: target/sssd.log):" >&2
        tail -n 40 "$work"/sssd.log >&2 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap restore EXIT

missing=()
for p in sssd-ldap libnss-sss sssd-tools pamtester; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]} (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    # The packages' own start of sssd (where there is an init system) is not this test's.
    pkill -x sssd 2>/dev/null || true
fi
if [ "$had_sss" -eq 0 ] && [ -d /var/lib/sss ]; then
    # Installed just now: what the packages made is what is put back.
    had_sss=1
    cp -a /var/lib/sss "$saved/sss"
fi

peer_name=SSSD
. scripts/ldap-peer.sh
peer_provision sssd
"$scimd" --database "$db" ldap posix --provider contoso --on >/dev/null
"$scimd" --database "$db" provider set contoso --scim-passwords all >/dev/null
peer_serve
alice=$(post POST /Users '{"userName": "alice@contoso.com", "displayName": "Alice Adams", "password": "Correct-Horse-9"}')
bob=$(post POST /Users '{"userName": "bob@contoso.com", "displayName": "Bob Boss"}')
eng=$(post POST /Groups "{\"displayName\": \"Engineering\", \"members\": [{\"value\": \"$alice\"}]}")
post POST /Groups "{\"displayName\": \"Everyone\", \"members\": [{\"value\": \"$eng\"}, {\"value\": \"$bob\"}]}" >/dev/null

# The configuration of docs/ldap/sssd.md, as the page shows it, and settings that make the
# checks quick (an enumeration refreshed every 5 s, caches of 1 s).
python3 scripts/recipe.py docs/ldap/sssd.md sssd.conf \
    scimd.example.com:3389="$ldap" /etc/ssl/certs/scimd.pem="$work/tls.crt" \
    "<the account's secret>=$secret" >"$work/sssd.conf"
cat >>"$work/sssd.conf" <<EOF
cache_credentials = false
entry_cache_timeout = 1
enumerate = true
ldap_enumeration_refresh_timeout = 5

[nss]
# An enumeration (getent passwd) is read from SSSD's cache afresh, not kept for two minutes.
enum_cache_timeout = 1
EOF
chmod 600 "$work/sssd.conf"
# Lookups through SSSD for `id` (getent -s sss needs no change): put back on exit.
sed -i -E 's/^(passwd|group):(.*)$/\1:\2 sss/; s/ sss sss/ sss/' /etc/nsswitch.conf
sssd -i -c "$work/sssd.conf" -d 5 --logger=stderr >"$work/sssd.log" 2>&1 &
sssd_pid=$!


echo "-- getent passwd and group through SSSD"
wait_for "alice@contoso.com:*:" getent -s sss passwd alice@contoso.com
line=$(getent -s sss passwd alice@contoso.com)
uid=$(cut -d: -f3 <<<"$line")
[ "$uid" -gt 100000 ] || fail "uidNumber $uid is not from scimd's POSIX range: $line"
[ "$(cut -d: -f4 <<<"$line")" = "$uid" ] || fail "the primary group is not the user's own: $line"
[ "$(cut -d: -f6 <<<"$line")" = "/home/alice@contoso.com" ] || fail "home: $line"
[ "$(getent -s sss passwd "$uid" | cut -d: -f1)" = "alice@contoso.com" ] || fail "getpwuid($uid)"
getent -s sss group Engineering | grep -q "alice@contoso.com" || fail "Engineering lacks alice: $(getent -s sss group Engineering)"
gid=$(getent -s sss group Engineering | cut -d: -f3)
[ "$(getent -s sss group "$gid" | cut -d: -f1)" = "Engineering" ] || fail "getgrgid($gid)"

echo "-- id: the user's groups, the nested one included"
groups=$(id -Gn alice@contoso.com)
for g in Engineering Everyone; do
    grep -qw "$g" <<<"$groups" || fail "id -Gn alice@contoso.com: '$groups' lacks $g"
done

echo "-- enumeration: a user created over SCIM appears at the next refresh"
wait_for "bob@contoso.com" getent -s sss passwd
post POST /Users '{"userName": "carol@contoso.com"}' >/dev/null
wait_for "carol@contoso.com" getent -s sss passwd

echo "-- PAM: the right password, a wrong one, and after a deactivation"
printf 'auth required pam_sss.so\naccount required pam_sss.so\n' >/etc/pam.d/scimd-test
echo "Correct-Horse-9" | pamtester scimd-test alice@contoso.com authenticate ||
    fail "the right password was refused"
if echo "wrong-password" | pamtester scimd-test alice@contoso.com authenticate 2>/dev/null; then
    fail "a wrong password was accepted"
fi
post PATCH "/Users/$alice" '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "replace", "path": "active", "value": false}]}' >/dev/null
if echo "Correct-Horse-9" | pamtester scimd-test alice@contoso.com authenticate 2>/dev/null; then
    fail "a deactivated user authenticated"
fi
echo "SSSD and PAM checks passed"
