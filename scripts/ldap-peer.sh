# Sourced by scripts/sssd.sh, nslcd.sh and apache.sh: the real scimd (debug build) serving one
# provider, contoso, over HTTPS and LDAP with StartTLS, with a certificate for 127.0.0.1 that
# the client under test verifies. Expects $work (a temporary directory) to be set; the caller
# stops $scimd_pid on exit.

# peer_provision ACCOUNT: builds scimd and makes the database, the provider, a token and an
# LDAP service account named ACCOUNT. Sets scimd, db, token and secret.
peer_provision() {
    cargo build --locked --bin scimd
    scimd=$PWD/target/debug/scimd
    db=$work/scimd.db
    "$scimd" --database "$db" provider add contoso >/dev/null
    token=$("$scimd" --database "$db" token create --provider contoso --valid-for 1d |
        grep -o 'scimd_[A-Za-z0-9_]*' | head -n 1)
    secret=$("$scimd" --database "$db" ldap account add "$1" --provider contoso |
        awk 'length($0) == 64')
}

# peer_serve: a certificate in $work/tls.crt (readable by daemons that drop privileges), then
# scimd serving the database. Sets scimd_pid, ldap (HOST:PORT) and scim (the SCIM base URL).
peer_serve() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
    chmod 644 "$work/tls.crt"
    SCIMD_LDAP_LISTEN=127.0.0.1:0 SCIMD_ADMIN_LISTEN= \
        SCIMD_TLS_CERT="$work/tls.crt" SCIMD_TLS_KEY="$work/tls.key" \
        "$scimd" --database "$db" serve --listen 127.0.0.1:0 >"$work/scimd.log" 2>&1 &
    scimd_pid=$!
    for _ in $(seq 1 100); do
        grep -q "LDAP directory on" "$work/scimd.log" && grep -q "listening on" "$work/scimd.log" && break
        sleep 0.1
    done
    local http
    http=$(sed -n 's/.*listening on https:\/\/\([0-9.:]*\).*/\1/p' "$work/scimd.log" | head -n 1)
    ldap=$(sed -n 's/.*LDAP directory on ldap:\/\/\([0-9.:]*\).*/\1/p' "$work/scimd.log" | head -n 1)
    scim="https://$http/scim/v2/contoso"
}

# post METHOD PATH BODY: a SCIM request; prints the answer's id (or nothing).
post() {
    curl -sf --cacert "$work/tls.crt" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/scim+json' -X "$1" -d "$3" "$scim$2" |
        python3 -c 'import json, sys; t = sys.stdin.read(); print(json.loads(t).get("id", "") if t else "")'
}

# fail MESSAGE: the check failed (the caller's trap puts things back).
fail() { echo "${peer_name:-LDAP client} check failed: $*" >&2; exit 1; }

# wait_for TEXT COMMAND...: waits up to 60 s for the command's output to contain TEXT.
wait_for() {
    local want=$1; shift
    for _ in $(seq 1 120); do
        "$@" 2>/dev/null | grep -qF -- "$want" && return 0
        sleep 0.5
    done
    fail "'$*' never showed '$want'; it shows: $("$@" 2>&1 || true)"
}
