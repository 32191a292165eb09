#!/usr/bin/env bash
# The LDAP directory as a web server uses it: Debian's Apache httpd 2.4 with mod_authnz_ldap
# against the real scimd binary, over StartTLS with a verified certificate. Checks `Require
# valid-user` (a user's bind with the password the identity provider sent), `Require
# ldap-group` for a direct and a nested member (LDAP compare of `member`, and the subgroup
# search), and `Require ldap-attribute` (compare of an attribute of the user's entry).
#
# Runs as root. Installs apache2 when it is missing, without letting the package start its
# own server, and runs httpd in the foreground from a configuration of its own in a
# temporary directory: nothing under /etc is changed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "scripts/apache.sh needs root (to install apache2)" >&2; exit 1; }

if ! dpkg -s apache2 >/dev/null 2>&1; then
    echo "== installing apache2 (Debian package), not started"
    . scripts/apt-not-started.sh
    apt_install_not_started apache2
fi

work=$(mktemp -d)
chmod 755 "$work"
scimd_pid="" httpd_pid=""
finish() {
    status=$?
    [ -n "$httpd_pid" ] && kill "$httpd_pid" 2>/dev/null && wait "$httpd_pid" 2>/dev/null
    [ -n "$scimd_pid" ] && kill "$scimd_pid" 2>/dev/null && wait "$scimd_pid" 2>/dev/null
    if [ "$status" -ne 0 ]; then
        echo "== Apache test failed; httpd's error log:" >&2
        tail -n 30 "$work/error.log" >&2 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap finish EXIT

peer_name=Apache
. scripts/ldap-peer.sh
peer_provision apache
"$scimd" --database "$db" provider set contoso --scim-passwords all >/dev/null
peer_serve
alice=$(post POST /Users '{"userName": "alice@contoso.com", "title": "Engineer", "password": "Alice-Pass-1"}')
bob=$(post POST /Users '{"userName": "bob@contoso.com", "title": "Sales", "password": "Bob-Pass-1"}')
eng=$(post POST /Groups "{\"displayName\": \"Engineering\", \"members\": [{\"value\": \"$alice\"}]}")
post POST /Groups "{\"displayName\": \"Everyone\", \"members\": [{\"value\": \"$eng\"}]}" >/dev/null

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mods=/usr/lib/apache2/modules
mkdir -p "$work/www/intranet" "$work/www/engineering" "$work/www/staff" "$work/www/engineers"
for d in intranet engineering staff engineers; do echo "ok $d" >"$work/www/$d/index.html"; done
# A server of its own around the configuration of docs/ldap/apache.md, as the page shows it.
cat >"$work/httpd.conf" <<EOF
ServerName 127.0.0.1
ServerRoot $work
Listen 127.0.0.1:$port
PidFile $work/httpd.pid
ErrorLog $work/error.log
LogLevel warn
User www-data
Group www-data
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule authn_core_module $mods/mod_authn_core.so
LoadModule authz_user_module $mods/mod_authz_user.so
LoadModule auth_basic_module $mods/mod_auth_basic.so
LoadModule dir_module $mods/mod_dir.so
LoadModule mime_module $mods/mod_mime.so
LoadModule ldap_module $mods/mod_ldap.so
LoadModule authnz_ldap_module $mods/mod_authnz_ldap.so
TypesConfig /etc/mime.types
DirectoryIndex index.html
DocumentRoot $work/www
<Directory $work/www>
    Require all granted
</Directory>
EOF
python3 scripts/recipe.py docs/ldap/apache.md apache.conf \
    scimd.example.com:3389="$ldap" /etc/ssl/certs/scimd.pem="$work/tls.crt" \
    "<the account's secret>=$secret" >>"$work/httpd.conf"
apache2 -f "$work/httpd.conf" -DFOREGROUND &
httpd_pid=$!
for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done

# The status Apache answers a user's request for a path.
status() { curl -s -o /dev/null -w '%{http_code}' -u "$2" "http://127.0.0.1:$port/$1/"; }
expect() { # path user:password status what
    local got
    got=$(status "$1" "$2")
    [ "$got" = "$3" ] || { echo "Apache check failed: $4: got $got, want $3" >&2; exit 1; }
    echo "   $4: $got"
}
echo "-- Require valid-user, ldap-group (direct, nested) and ldap-attribute"
expect intranet alice@contoso.com:Alice-Pass-1 200 "valid-user, right password"
expect intranet alice@contoso.com:wrong 401 "valid-user, wrong password"
expect intranet nobody@contoso.com:Alice-Pass-1 401 "valid-user, no such user"
expect engineering alice@contoso.com:Alice-Pass-1 200 "ldap-group, a direct member"
expect engineering bob@contoso.com:Bob-Pass-1 401 "ldap-group, not a member"
expect staff alice@contoso.com:Alice-Pass-1 200 "ldap-group, a member through a nested group"
expect staff bob@contoso.com:Bob-Pass-1 401 "ldap-group, nested, not a member"
expect engineers alice@contoso.com:Alice-Pass-1 200 "ldap-attribute title=Engineer, holds"
expect engineers bob@contoso.com:Bob-Pass-1 401 "ldap-attribute title=Engineer, does not"
post PATCH "/Users/$alice" '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "replace", "path": "active", "value": false}]}' >/dev/null
expect intranet alice@contoso.com:Alice-Pass-1 401 "valid-user, after a deactivation"
echo "Apache checks passed"
