#!/usr/bin/env bash
# How the admin console holds up on a large provider: seeds N users (default 1,000,000) and as
# many activity records with the benchmark's seeder, starts a release build, logs in, and
# prints the time of every page (median of 5, curl's time_total): the dashboard, the provider
# page, the lists of Users (first, deep, last and previous pages, the simple searches, a SCIM
# filter) and Groups, a user's and a large group's page, the activity log (all, one provider,
# filtered, one record), the audit log and the settings.
#
#   bench/console.sh [--users N] [--activity N]
set -euo pipefail
cd "$(dirname "$0")/.."
users=1000000
activity=""
while [ $# -gt 0 ]; do
    case "$1" in
        --users) users=$2; shift 2 ;;
        --activity) activity=$2; shift 2 ;;
        *) echo "usage: bench/console.sh [--users N] [--activity N]" >&2; exit 2 ;;
    esac
done
activity=${activity:-$users}
cargo build --release --locked --bin scimd --example seed
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
echo "== seeding $users users and $activity activity records"
./target/release/examples/seed --db "$work/s.db" --out "$work" --users "$users" --big-group 1000 \
    --activity "$activity" >/dev/null
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
# The search index is filled by a job after the start (a database seeded without the server
# has none yet): how long it takes, then the pages.
started=$(date +%s.%N)
python3 - "$work/s.db" <<'PY'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1])
while not c.execute("""SELECT built >= (SELECT max(seq) FROM resources)
                              AND followed >= (SELECT coalesce(max(seq), 0) FROM activity)
                       FROM search_text_state""").fetchone()[0]:
    time.sleep(0.5)
PY
echo "== search index of $users users built in $(echo "$(date +%s.%N) - $started" | bc | cut -c1-5) s"
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
printf '%-44s %8s\n' "contains search \"${name:3:6}\" (text index)" "$(time_of "$users_url?q=$(enc "${name:3:6}")&mode=contains")"
printf '%-44s %8s\n' "contains search \"12345\" (text index)" "$(time_of "$users_url?q=12345&mode=contains")"
printf '%-44s %8s\n' "contains search \"contoso\" (every user)" "$(time_of "$users_url?q=contoso&mode=contains")"
printf '%-44s %8s\n' "filter userName eq (indexed)" "$(time_of "$users_url?filter=$(enc "userName eq \"$name\"")")"
[ -n "$some" ] && printf '%-44s %8s\n' "a user's page" "$(time_of "$users_url/$some")"
big=$(cat "$work/big_group")
row() { printf '%-44s %8s\n' "$1" "$(time_of "$admin$2")"; }
row "Users by name, Z to A" "/providers/bench/Users?sort=-name"
row "Users by name, a page from a name" "/providers/bench/Users?sort=name&after=user5"
row "Users by name, last page" "/providers/bench/Users?sort=name&last=1"
row "Users, newest first" "/providers/bench/Users?sort=-created"
row "dashboard" "/"
row "providers" "/providers"
row "provider page" "/providers/bench"
row "first page of Groups" "/providers/bench/Groups"
row "a group of 1,000 (first 100 members)" "/providers/bench/Groups/$big"
row "activity (newest 100, every provider)" "/activity"
row "activity of one provider" "/activity?provider=bench"
row "activity, failed only" "/activity?failed=on"
row "activity, action patched" "/activity?action=patched"
row "activity, status 409" "/activity?status=409"
row "activity of one user" "/activity?resource=$some"
row "one activity record" "/activity/$((activity / 2))"
row "audit log" "/audit"
row "settings" "/settings"
