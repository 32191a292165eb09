#!/usr/bin/env bash
# Where scimd's writer thread spends its time under creates: seeds 10,000 users with the
# benchmark's seeder, optionally adds two change feeds and pauses them (so each change writes
# its outbox event but nothing is delivered), drives POST /Users with wrk (64 connections) and
# records the writer thread with perf (DWARF call graphs), then prints the share of the
# writer's samples in the parts of a create: the resource's rows, the activity record (and the
# feed event written inside it), the commit.
#
#   bench/writer-profile.sh [--paused-feeds] [--seconds S]
#
# Needs perf (Debian's linux-perf) and wrk. Compare a run with --paused-feeds against one
# without to see what the outbox costs the writer.
set -euo pipefail
cd "$(dirname "$0")/.."
feeds=0 seconds=6
while [ $# -gt 0 ]; do
    case "$1" in
        --paused-feeds) feeds=1; shift ;;
        --seconds) seconds=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
command -v perf >/dev/null || { echo "perf is missing (Debian: linux-perf)" >&2; exit 1; }
. bench/wrk.sh
cargo build --release --locked --bin scimd --example seed
bin=target/release
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$bin/examples/seed" --db "$work/scimd.db" --out "$work" --users 10000 --big-group 1000 >/dev/null
if [ "$feeds" -eq 1 ]; then
    for i in 1 2; do
        "$bin/scimd" --database "$work/scimd.db" feed add "paused$i" --provider bench \
            --url "http://127.0.0.1:9/hook" >/dev/null
        "$bin/scimd" --database "$work/scimd.db" feed pause "paused$i" >/dev/null
    done
fi
SCIMD_ADMIN_LISTEN= "$bin/scimd" --database "$work/scimd.db" serve --listen 127.0.0.1:0 >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/log" && break; sleep 0.1; done
addr=$(sed -n 's/.*listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/log" | head -n 1)
writer=$(ps -T -p "$pid" -o spid=,comm= | awk '$2 == "scimd-writer" { print $1 }')
load() { BENCH_SCENARIO=create_user BENCH_DIR=$work wrk -t2 -c64 -d"${1}s" -s bench/load.lua "$addr"; }
load 2 >/dev/null
perf record -F 999 --call-graph dwarf,16384 -t "$writer" -o "$work/perf.data" -- sleep "$seconds" \
    >/dev/null 2>&1 &
recorder=$!
load "$seconds" | grep "Requests/sec"
wait "$recorder"
echo "share of the writer thread's samples ($([ "$feeds" -eq 1 ] && echo "two paused feeds" || echo "no feed")):"
perf report -i "$work/perf.data" --children --sort symbol --stdio 2>/dev/null |
    awk '/^ +[0-9.]+%/ {
        sym = $0; sub(/.*\[[.k]\] /, "", sym); sub(/ +-.*$/, "", sym); sub(/ +$/, "", sym)
        if (sym ~ /store::resources::create$|store::activity::record_change$|^sqlite3PagerCommitPhaseOne/ && !seen[sym]++)
            printf "  %-45s %s\n", sym, $1 }'
