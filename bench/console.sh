#!/usr/bin/env bash
# How the admin console's Users pages hold up on a large provider: seeds N users (default
# 1,000,000) with the benchmark's seeder, starts a release build, logs in, and prints the time
# of each page (median of 5, curl's time_total): the first page, a page near the end (cursor
# paging), the last and a previous page, a userName search from the simple box, a search for
# text inside names and emails, a SCIM eq filter, and a user's page.
#
#   bench/console.sh [--users N]
set -euo pipefail
cd "$(dirname "$0")/.."
users=1000000
[ "${1:-}" = "--users" ] && users=$2
cargo build --release --locked --bin scimd --example seed
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
echo "== seeding $users users"
./target/release/examples/seed --db "$work/s.db" --out "$work" --users "$users" --big-group 1000 >/dev/null
pw="console bench password"
echo "$pw" | ./target/release/scimd --database "$work/s.db" admin add bench --password-stdin >/dev/null
SCIMD_ADMIN_LISTEN=127.0.0.1:0 ./target/release/scimd --database "$work/s.db" serve \
    --listen 127.0.0.1:0 >"$work/log" 2>&1 &
pid=$!
admin=""
for _ in $(seq 1 100); do
    admin=$(sed -n 's/.*admin console and \/metrics on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/log" | head -n 1)
    [ -n "$admin" ] && break
    sleep 0.1
done
[ -n "$admin" ] || { cat "$work/log"; exit 1; }
cookie=$(curl -s -o /dev/null -D - --data-urlencode name=bench --data-urlencode "password=$pw" \
    "$admin/login" | sed -n 's/^set-cookie: \(scimd_console=[0-9a-f]*\).*/\1/Ip')
time_of() { # median of 5 runs, in ms
    for _ in 1 2 3 4 5; do
        curl -s -o /dev/null -w '%{time_total}\n' -H "Cookie: $cookie" "$1"
    done | sort -n | sed -n 3p | awk '{ printf "%.1f", $1 * 1000 }'
}
users_url="$admin/providers/bench/Users"
last_seq=$(curl -s -H "Cookie: $cookie" "$users_url" | grep -o 'after=[0-9]*' | head -n 1 | cut -d= -f2)
some=$(head -n 1 "$work/user_ids" 2>/dev/null || true)
name=$(curl -s -H "Cookie: $cookie" "$users_url" | grep -o '/Users/[0-9a-f-]*">[^<]*' | head -n 1 | sed 's/.*">//')
printf '%-44s %8s\n' page "ms"
printf '%-44s %8s\n' "first page (50 of $users)" "$(time_of "$users_url")"
printf '%-44s %8s\n' "page after user $((users - 100))" "$(time_of "$users_url?after=$((users - 100))")"
printf '%-44s %8s\n' "second page (cursor from the first)" "$(time_of "$users_url?after=$last_seq")"
printf '%-44s %8s\n' "last page" "$(time_of "$users_url?last=1")"
printf '%-44s %8s\n' "previous page (before user $((users - 100)))" "$(time_of "$users_url?before=$((users - 100))&from=$((users - 150))")"
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1"; }
printf '%-44s %8s\n' "simple search \"${name:0:12}\"" "$(time_of "$users_url?q=$(enc "${name:0:12}")")"
printf '%-44s %8s\n' "contains search \"${name:3:6}\" (reads every user)" "$(time_of "$users_url?q=$(enc "${name:3:6}")&mode=contains")"
printf '%-44s %8s\n' "filter userName eq (indexed)" "$(time_of "$users_url?filter=$(enc "userName eq \"$name\"")")"
[ -n "$some" ] && printf '%-44s %8s\n' "a user's page" "$(time_of "$users_url/$some")"
