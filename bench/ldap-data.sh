# Sourced by bench/ldap.sh and bench/slapd.sh: their options, and the directory they load.

# ldap_bench_options DEFAULT_USERS ARGS...: sets users, duration, rounds, conns and data.
ldap_bench_options() {
    users=$1 duration=10 rounds=3 conns=64 data=""
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --users) users=$2; shift 2 ;;
            --duration) duration=$2; shift 2 ;;
            --rounds) rounds=$2; shift 2 ;;
            --connections) conns=$2; shift 2 ;;
            --data) data=$2; shift 2 ;;
            *) echo "unknown option $1" >&2; exit 2 ;;
        esac
    done
}

# ldap_bench_seed: $users users in $work/s.db, seeded with the benchmark's seeder unless the
# database holds that many already, and the LDAP service account cn=bench of provider bench.
# Sets secret (the account's), and seeded to 1 when it seeded now (0 when it reused).
ldap_bench_seed() {
    seeded=0
    if [ ! -f "$work/s.db" ] || [ "$(cat "$work/users" 2>/dev/null)" != "$users" ]; then
        echo "== seeding $users users into $work"
        rm -f "$work"/s.db*
        "$bin/examples/seed" --db "$work/s.db" --out "$work" --users "$users" --big-group 1000 >/dev/null
        "$bin/scimd" --database "$work/s.db" ldap account add bench --provider bench |
            awk 'length($0) == 64' >"$work/ldap_secret"
        echo "$users" >"$work/users"
        seeded=1
    else
        echo "== reusing the $users users in $work"
    fi
    secret=$(cat "$work/ldap_secret")
}

# ldap_bench_serve: scimd serving $work/s.db (its file read into the page cache first, as on a
# server that has been running) with the LDAP directory on and passwords in clear text allowed
# from loopback; logs to $tmp/scimd.log. Sets scimd_pid, ldap_addr and http_addr (HOST:PORT).
ldap_bench_serve() {
    cat "$work/s.db" >/dev/null
    SCIMD_LDAP_LISTEN=127.0.0.1:0 SCIMD_LDAP_PLAINTEXT_LOOPBACK=on SCIMD_ADMIN_LISTEN= \
        "$bin/scimd" --database "$work/s.db" serve --listen 127.0.0.1:0 >"$tmp/scimd.log" 2>&1 &
    scimd_pid=$!
    for _ in $(seq 1 100); do
        grep -q "LDAP directory on" "$tmp/scimd.log" && grep -q "listening on" "$tmp/scimd.log" && break
        sleep 0.1
    done
    ldap_addr=$(sed -n 's/.*LDAP directory on ldap:\/\/\([0-9.:]*\).*/\1/p' "$tmp/scimd.log" | head -n 1)
    http_addr=$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$tmp/scimd.log" | head -n 1)
}
