#!/usr/bin/env bash
# LDAP equality searches against SCIM lookups on the same server and data: seeds N users
# (default 1,000,000) with the benchmark's seeder, starts a release build with the LDAP
# directory on, then measures in turn, R rounds (64 connections, D s each, after warm-ups):
#   SCIM GET /Users/{id}                       (wrk, bench/load.lua get_user)
#   SCIM GET /Users?filter=userName eq "..."   (wrk, bench/load.lua filter_username)
#   SCIM GET /Users?filter=emails.value eq ... (wrk, bench/load.lua filter_email)
#   LDAP (uid=...) and LDAP (mail=...)         (benches/ldap_load.rs, one bound connection per
#                                               client, a random active user per search)
#   LDAP compare of a user's mail              (the same, a compare of the user's entry)
#   LDAP (uidNumber=...)                       (POSIX identities on: a number scimd gives)
# The scenarios alternate within each round, so a slow moment of a shared machine does not fall
# on one of them only; each figure is the median of its rounds. Prints req/s, p50 and p99, and
# each figure as a share of the SCIM GET and of the SCIM eq lookup of the same attribute in the
# same run (uid: userName eq, mail: emails.value eq).
#
#   bench/ldap.sh [--users N] [--duration D] [--rounds R] [--connections C] [--data DIR]
#
# --data keeps the seeded database in DIR and reuses it on the next run (seeding 1,000,000
# users takes about half a minute); without it a temporary directory is used and removed.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/ldap-data.sh
ldap_bench_options 1000000 "$@"
. bench/wrk.sh
cargo build --release --locked --bin scimd --example seed --example ldap_load
bin=target/release
tmp=$(mktemp -d)
work=${data:-$tmp}
mkdir -p "$work"
scimd_pid=""
cleanup() { [ -n "$scimd_pid" ] && kill "$scimd_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ldap_bench_seed
"$bin/scimd" --database "$work/s.db" ldap posix --provider bench --on >/dev/null
ldap_bench_serve
http=$http_addr ldap=$ldap_addr
scim() { # scenario seconds -> "req/s p50 p99"
    BENCH_SCENARIO=$1 BENCH_DIR=$work BENCH_BASE=/scim/v2/bench BENCH_USERS=$users \
        wrk -t2 -c"$conns" -d"${2}s" --latency -s bench/load.lua "http://$http" |
        awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
             /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec:/ { rps = $2 }
             END { printf "%.0f %.2f %.2f\n", rps, p50, p99 }'
}
search() { # attr seconds -> "req/s p50 p99"
    "$bin/examples/ldap_load" "$ldap" cn=bench,ou=services,dc=bench,dc=scimd "$secret" \
        dc=bench,dc=scimd "$1" "$users" "$conns" "$2"
}
run() { # scenario seconds
    case "$1" in
        get) scim get_user "$2" ;;
        eq) scim filter_username "$2" ;;
        eqmail) scim filter_email "$2" ;;
        uid | mail | compare | uidNumber) search "$1" "$2" ;;
    esac
}
scenarios="get eq eqmail uid mail uidNumber compare"
for s in $scenarios; do run "$s" 2 >/dev/null; done
for r in $(seq 1 "$rounds"); do
    for s in $scenarios; do
        run "$s" "$duration" >>"$tmp/$s"
    done
    echo "== round $r of $rounds done"
done
median() { # file -> the line with the median req/s
    sort -n "$1" | awk '{ line[NR] = $0 } END { print line[int((NR + 1) / 2)] }'
}
read -r get_rps _ <<<"$(median "$tmp/get")"
read -r eq_rps _ <<<"$(median "$tmp/eq")"
read -r eqmail_rps _ <<<"$(median "$tmp/eqmail")"
read -r mail_rps _ <<<"$(median "$tmp/mail")"
read -r uid_rps _ <<<"$(median "$tmp/uid")"
share() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
printf '%-40s %9s %8s %8s %8s %8s\n' scenario "req/s" "p50 ms" "p99 ms" "vs GET" "vs eq"
for s in $scenarios; do
    read -r rps p50 p99 <<<"$(median "$tmp/$s")"
    case "$s" in
        get) name="SCIM GET /Users/{id}" eq="" ;;
        eq) name="SCIM GET /Users?filter=userName eq" eq=$eq_rps ;;
        eqmail) name="SCIM GET /Users?filter=emails.value eq" eq=$eqmail_rps ;;
        uid) name="LDAP (uid=...) search" eq=$eq_rps ;;
        mail) name="LDAP (mail=...) search" eq=$eqmail_rps ;;
        uidNumber) name="LDAP (uidNumber=...) (vs eq: the uid search)" eq=$uid_rps ;;
        compare) name="LDAP compare (vs eq: the mail search)" eq=$mail_rps ;;
    esac
    printf '%-40s %9s %8s %8s %8s %8s\n' "$name" "$rps" "$p50" "$p99" \
        "$(share "$rps" "$get_rps")" "$([ -n "$eq" ] && share "$rps" "$eq" || echo -)"
done
echo "($users users, $conns connections, median of $rounds rounds of ${duration} s;" \
    "scimd RSS $(awk '$1 == "VmRSS:" { print $2 }' "/proc/$scimd_pid/status") KiB)"
