#!/usr/bin/env bash
# LDAP equality searches against SCIM point reads on the same server and data: seeds N users
# (default 1,000,000) with the benchmark's seeder, starts a release build with the LDAP
# directory on, then measures in turn (64 connections, 10 s each, after 2 s of warm-up):
# SCIM GET /Users/{id} (wrk), LDAP (uid=...) and LDAP (mail=...) for a random active user
# (benches/ldap_load.rs, one bound connection per client). Prints req/s, p50 and p99 and each
# LDAP figure as a share of the SCIM GET.
#
#   bench/ldap.sh [--users N] [--duration S] [--connections C]
set -euo pipefail
cd "$(dirname "$0")/.."
users=1000000 duration=10 conns=64
while [ $# -gt 0 ]; do
    case "$1" in
        --users) users=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --connections) conns=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { echo "wrk is missing (bench/run.sh installs it)" >&2; exit 1; }
cargo build --release --locked --bin scimd --example seed --example ldap_load
bin=target/release
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
echo "== seeding $users users"
"$bin/examples/seed" --db "$work/s.db" --out "$work" --users "$users" --big-group 1000 >/dev/null
secret=$("$bin/scimd" --database "$work/s.db" ldap account add bench --provider bench |
    awk 'length($0) == 64')
SCIMD_LDAP_LISTEN=127.0.0.1:0 SCIMD_LDAP_PLAINTEXT_LOOPBACK=on SCIMD_ADMIN_LISTEN= \
    "$bin/scimd" --database "$work/s.db" serve --listen 127.0.0.1:0 >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    grep -q "LDAP directory on" "$work/log" && grep -q "listening on" "$work/log" && break
    sleep 0.1
done
http=$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$work/log" | head -n 1)
ldap=$(sed -n 's/.*LDAP directory on ldap:\/\/\([0-9.:]*\).*/\1/p' "$work/log" | head -n 1)
scim() { # seconds -> "req/s p50 p99"
    BENCH_SCENARIO=get_user BENCH_DIR=$work BENCH_BASE=/scim/v2/bench BENCH_USERS=$users \
        wrk -t2 -c"$conns" -d"${1}s" --latency -s bench/load.lua "http://$http" |
        awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
             /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec:/ { rps = $2 }
             END { printf "%.0f %.2f %.2f\n", rps, p50, p99 }'
}
search() { # attr seconds
    "$bin/examples/ldap_load" "$ldap" cn=bench,ou=services,dc=bench,dc=scimd "$secret" \
        dc=bench,dc=scimd "$1" "$users" "$conns" "$2"
}
scim 2 >/dev/null
get=$(scim "$duration")
search uid 2 >/dev/null
uid=$(search uid "$duration")
mail=$(search mail "$duration")
share() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
printf '%-36s %10s %9s %9s %10s\n' scenario "req/s" "p50 ms" "p99 ms" "vs GET"
read -r r p50 p99 <<<"$get"; printf '%-36s %10s %9s %9s %10s\n' "SCIM GET /Users/{id}" "$r" "$p50" "$p99" "-"
read -r r p50 p99 <<<"$uid"; printf '%-36s %10s %9s %9s %10s\n' "LDAP (uid=...) search" "$r" "$p50" "$p99" "$(share "$r" "${get%% *}")"
read -r r p50 p99 <<<"$mail"; printf '%-36s %10s %9s %9s %10s\n' "LDAP (mail=...) search" "$r" "$p50" "$p99" "$(share "$r" "${get%% *}")"
echo "($users users, $conns connections, ${duration} s each; scimd RSS $(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status") KiB)"
