#!/usr/bin/env bash
# scimd's LDAP directory against OpenLDAP's slapd serving the same entries: seeds N users
# (default 10,000) with the benchmark's seeder, reads every entry scimd serves (ldapsearch),
# loads them into a slapd of its own (Debian's slapd, back_mdb, equality indexes on uid and
# mail, started in the foreground from a configuration in a temporary directory, on loopback),
# then runs the same load against both, R rounds, alternating which server goes first:
#   (uid=...) and (mail=...)   an equality search for a random active user (subtree)
#   bind                       a simple bind of the service account, again and again on one
#                              connection (a warm bind: the secret checked before)
#   paged                      a paged read of every entry under ou=people, 1,000 per page
#                              (one "request" is the whole read)
# with benches/ldap_load (C connections on two threads). Prints req/s, p50 and p99 of each,
# scimd's figure as a share of slapd's, and each server's CPU time per request (utime + stime
# of the process over the run) and RSS.
#
#   bench/slapd.sh [--users N] [--duration D] [--rounds R] [--connections C] [--data DIR]
#
# Installs slapd and ldap-utils (Debian) when missing, without letting the package configure or
# start a server of its own (debconf slapd/no_configuration, policy-rc.d); needs root for that.
# --data keeps the seeded database and slapd's database in DIR for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/ldap-data.sh
ldap_bench_options 10000 "$@"
if ! dpkg -s slapd ldap-utils >/dev/null 2>&1; then
    echo "== installing slapd and ldap-utils (Debian packages), not configured, not started"
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    . scripts/apt-not-started.sh
    apt_install_not_started slapd ldap-utils
fi
cargo build --release --locked --bin scimd --example seed --example ldap_load
bin=target/release
tmp=$(mktemp -d)
work=${data:-$tmp}
mkdir -p "$work"
scimd_pid="" slapd_pid=""
cleanup() {
    [ -n "$scimd_pid" ] && kill "$scimd_pid" 2>/dev/null && wait "$scimd_pid" 2>/dev/null
    [ -n "$slapd_pid" ] && kill "$slapd_pid" 2>/dev/null && wait "$slapd_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
base=dc=bench,dc=scimd
service="cn=bench,ou=services,$base"

ldap_bench_seed
# A directory seeded now gets a slapd database of its own afresh.
if [ "$seeded" -eq 1 ]; then rm -rf "$work/slapd-db" "$work/entries.ldif"; fi
# The entries as LDAP clients see them without POSIX identities (slapd's nis schema makes
# posixGroup structural, which groupOfNames already is).
"$bin/scimd" --database "$work/s.db" ldap posix --provider bench --off >/dev/null
ldap_bench_serve
scimd_addr=$ldap_addr

if [ ! -f "$work/slapd-db/data.mdb" ]; then
    echo "== reading every entry scimd serves, and loading them into slapd"
    ldapsearch -LLL -x -H "ldap://$scimd_addr" -D "$service" -w "$secret" -b "$base" \
        -E pr=1000/noprompt -o ldif-wrap=no '(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))' '*' \
        >"$tmp/scimd.ldif"
    hash=$(slappasswd -s "$secret")
    {
        printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: bench\no: bench\n\n' "$base"
        for ou in people groups services; do
            printf 'dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n' "$ou" "$base" "$ou"
        done
        printf 'dn: %s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: bench\nuserPassword: %s\n\n' \
            "$service" "$hash"
        # memberOf is operational in slapd (an overlay computes it): left out.
        grep -v -e '^memberOf:' -e '^# ' "$tmp/scimd.ldif"
    } >"$work/entries.ldif"
    echo "   $(grep -c '^dn: ' "$work/entries.ldif") entries"
fi
mkdir -p "$work/slapd-db"
cat >"$tmp/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $tmp/slapd.pid
argsfile $tmp/slapd.args
sizelimit unlimited
# No per-operation logging: the fastest slapd, as a benchmark against it should be.
loglevel none
database mdb
maxsize 17179869184
suffix "$base"
rootdn "cn=admin,$base"
directory $work/slapd-db
index objectClass eq
index uid eq
index mail eq
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
EOF
if [ ! -f "$work/slapd-db/data.mdb" ]; then
    slapadd -q -f "$tmp/slapd.conf" -l "$work/entries.ldif"
fi
cat "$work/slapd-db/data.mdb" >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
slapd -f "$tmp/slapd.conf" -h "ldap://127.0.0.1:$port/" -d 0 >"$tmp/slapd.log" 2>&1 &
slapd_pid=$!
slapd_addr=127.0.0.1:$port
for _ in $(seq 1 100); do
    ldapwhoami -x -H "ldap://$slapd_addr" -D "$service" -w "$secret" >/dev/null 2>&1 && break
    sleep 0.1
done
ldapwhoami -x -H "ldap://$slapd_addr" -D "$service" -w "$secret" >/dev/null

cpu() { # pid -> utime + stime in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}
run() { # server scenario seconds -> "req/s p50 p99 cpu_us_per_request"
    local addr pid before after out rps
    case "$1" in
        scimd) addr=$scimd_addr pid=$scimd_pid ;;
        slapd) addr=$slapd_addr pid=$slapd_pid ;;
    esac
    before=$(cpu "$pid")
    out=$("$bin/examples/ldap_load" "$addr" "$service" "$secret" "$base" "$2" "$users" "$conns" "$3")
    after=$(cpu "$pid")
    rps=$(awk '{ print $1 }' <<<"$out")
    awk -v o="$out" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v s="$3" -v r="$rps" \
        'BEGIN { printf "%s %.0f\n", o, (r > 0 ? 1e6 * t / hz / (r * s) : 0) }'
}
scenarios="uid mail bind paged"
for s in $scenarios; do
    run scimd "$s" 1 >/dev/null
    run slapd "$s" 1 >/dev/null
done
for r in $(seq 1 "$rounds"); do
    order="scimd slapd"
    [ $((r % 2)) -eq 0 ] && order="slapd scimd"
    for s in $scenarios; do
        for server in $order; do
            run "$server" "$s" "$duration" >>"$tmp/$server.$s"
        done
    done
    echo "== round $r of $rounds done"
done
median() { # file -> the line with the median req/s
    sort -n "$1" | awk '{ line[NR] = $0 } END { print line[int((NR + 1) / 2)] }'
}
rss() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
printf '%-30s %10s %8s %8s %8s %10s %8s %8s %8s %9s\n' scenario "scimd/s" p50 p99 "CPU us" "slapd/s" p50 p99 "CPU us" "scimd vs"
for s in $scenarios; do
    read -r a_rps a_p50 a_p99 a_cpu <<<"$(median "$tmp/scimd.$s")"
    read -r b_rps b_p50 b_p99 b_cpu <<<"$(median "$tmp/slapd.$s")"
    case "$s" in
        uid) name="(uid=...) search" ;;
        mail) name="(mail=...) search" ;;
        bind) name="warm bind" ;;
        paged) name="paged read of all users" ;;
    esac
    printf '%-30s %10s %8s %8s %8s %10s %8s %8s %8s %9s\n' "$name" "$a_rps" "$a_p50" "$a_p99" "$a_cpu" \
        "$b_rps" "$b_p50" "$b_p99" "$b_cpu" \
        "$(awk -v a="$a_rps" -v b="$b_rps" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')"
done
echo "($users users, $conns connections, median of $rounds rounds of ${duration} s, alternating;" \
    "RSS scimd $(rss "$scimd_pid") KiB, slapd $(rss "$slapd_pid") KiB; slapd $(slapd -VV 2>&1 | head -n 1 | grep -o '[0-9][0-9.]*' | head -n 1))"
