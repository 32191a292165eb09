#!/usr/bin/env bash
# `scimd export` streams in bounded memory: seeds 1,000,000 users with the benchmark's seeder
# (release build), exports them as JSON lines and as CSV, and fails when a run's peak RSS
# passes 64 MiB or a line is missing. Prints the figures. About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/time ]; then
    echo "== installing GNU time from Debian's packages (peak RSS)"
    apt-get install -y -qq time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
fi
cargo build --release --locked --bin scimd --example seed
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
users=1000000
./target/release/examples/seed --db "$work/s.db" --out "$work" --users "$users" --big-group 1000 >/dev/null
expected=$((users + 1000))
for format in jsonl csv; do
    /usr/bin/time -f "%M %e" -o "$work/time" \
        ./target/release/scimd --database "$work/s.db" export --provider bench --format "$format" \
        2>/dev/null | wc -l >"$work/lines"
    read -r rss secs <"$work/time"
    lines=$(cat "$work/lines")
    [ "$format" = csv ] && lines=$((lines - 1))
    echo "export --format $format: $lines users in ${secs} s, peak RSS $((rss / 1024)) MiB"
    if [ "$lines" -ne "$expected" ]; then echo "expected $expected users"; exit 1; fi
    if [ "$rss" -gt $((64 * 1024)) ]; then echo "peak RSS over 64 MiB"; exit 1; fi
done
