#!/usr/bin/env bash
# scripts/tour.sh - run README's five-minute tour and check every outcome.
#
#   scripts/tour.sh [--dir D] [--base-port B]
#
# The same commands as README's tour, in the same order, against a cluster
# of its own (default: a temp dir and base port 17400, so native ports
# 17401-17403 and RESP 17501-17503; a cluster you run on 7001.. is left
# alone). Each step checks what README says it shows: GET returns hello,
# two puts without a context become siblings, writing back with the context
# resolves them, a --w 2 put succeeds with node 3 down, after `restart 3` a
# --r 3 get succeeds and repairs node 3's own copy, redis-benchmark runs
# (-n 2000). Exits 1 at the first failure, naming the step; the cluster is
# stopped (and a temp dir removed) on any exit. Builds through
# scripts/cluster.sh start, like the tour; with RINGKV_BIN_DIR=DIR it uses
# the binaries in DIR instead (how CTest runs it: the `tour` test).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
base=17400
dir=""
while [ $# -gt 0 ]; do
    case "$1" in
    --dir) dir=$2; shift 2 ;;
    --base-port) base=$2; shift 2 ;;
    -h | --help)
        awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
        exit 0
        ;;
    *) echo "tour.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
own_dir=false
if [ -z "$dir" ]; then
    dir=$(mktemp -d /tmp/ringkv-tour-XXXXXX)
    own_dir=true
fi

cluster() { "$root/scripts/cluster.sh" "$@" --dir "$dir"; }
cli() { "${RINGKV_BIN_DIR:-$root/build/bin}/ringkv-cli" "$@"; }
p1=$((base + 1)) p3=$((base + 3)) r1=$((base + 101))

cleanup() {
    local rc=$?
    if [ -d "$dir" ]; then
        cluster stop >/dev/null 2>&1 || true
    fi
    if $own_dir; then rm -rf "$dir"; fi
    exit "$rc"
}
trap cleanup EXIT

step=""
n=0
begin() {
    step=$1
    n=$((n + 1))
    printf 'tour %2d: %s\n' "$n" "$step"
}
fail() {
    echo "tour.sh: FAILED at step $n ($step): $*" >&2
    exit 1
}
# expect WHAT GOT WANT
expect() {
    [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

begin "scripts/cluster.sh start"
cluster start --base-port "$base" >/dev/null || fail "start failed"

begin "redis-cli SET greeting hello"
expect "SET" "$(redis-cli -p $r1 SET greeting hello)" "OK"

begin "redis-cli GET greeting"
expect "GET" "$(redis-cli -p $r1 GET greeting)" "hello"

begin "redis-cli MGET greeting missing"
expect "MGET" "$(redis-cli -p $r1 MGET greeting missing | tr '\n' ,)" "hello,,"

begin "two puts without a context become siblings"
expect "put apple" "$(cli -p $p1 put k apple)" "OK"
expect "put banana" "$(cli -p $p1 put k banana)" "OK"
json=$(cli -p $p1 get --json k) || fail "get --json k failed"
case "$json" in
*'"values":["banana","apple"]'* | *'"values":["apple","banana"]'*) ;;
*) fail "get --json k: want both siblings, got $json" ;;
esac

begin "write back with the context resolves the siblings"
ctx=$(cli -p $p1 get --json k | sed 's/.*"context":"\([^"]*\)".*/\1/')
[ -n "$ctx" ] || fail "no context in get --json"
expect "put with context" "$(cli -p $p1 put k fruit-salad --context "$ctx")" "OK"
expect "get k" "$(cli -p $p1 get k)" "fruit-salad"

begin "redis-cli SIBLINGS k"
expect "SIBLINGS" "$(redis-cli -p $r1 SIBLINGS k)" "fruit-salad"

begin "members and ring"
members=$(cli -p $p1 members) || fail "members failed"
expect "members alive in the ring" "$(grep -c ' alive .* member$' <<<"$members")" "3"
expect "ring | head -3" "$(cli -p $p1 ring | head -3 | wc -l)" "3"

begin "kill 3; --w 2 put succeeds with node 3 down"
cluster kill 3 || fail "kill 3 failed"
expect "--w 2 put" "$(cli -p $p1 --w 2 put k2 still-fine 2>&1)" "OK"

begin "--w 3 put: ok, or unavailable when node 3 holds a copy"
if out=$(cli -p $p1 --w 3 put k2 needs-all 2>&1); then
    expect "--w 3 put" "$out" "OK"
    want_k2=needs-all
else
    case "$out" in
    *unavailable*) want_k2=still-fine ;;
    *) fail "--w 3 put: want OK or unavailable, got '$out'" ;;
    esac
fi

begin "get --local k2 on node 1"
expect "node 1's copy" "$(cli -p $p1 get --local k2)" "$want_k2"

begin "scripts/cluster.sh restart 3"
cluster restart 3 || fail "restart 3 failed"

begin "node 3 missed the writes"
if out=$(cli -p $p3 get --local k2 2>&1); then
    # Only possible when the --w 3 put succeeded without node 3.
    [ "$want_k2" = needs-all ] || fail "node 3 already has k2: '$out'"
fi

begin "--r 3 get k2 succeeds"
out=$(cli -p $p1 --r 3 get k2 2>&1) || fail "--r 3 get k2: $out"
expect "--r 3 get" "$out" "$want_k2"

begin "read repair fixed node 3's copy"
got=""
for _ in $(seq 1 50); do
    got=$(cli -p $p3 get --local k2 2>/dev/null) && [ "$got" = "$want_k2" ] && break
    sleep 0.1
done
expect "node 3's copy after the read" "$got" "$want_k2"

begin "redis-benchmark -t set,get -n 2000"
out=$(redis-benchmark -p $r1 -t set,get -q -n 2000 2>&1) || fail "redis-benchmark: $out"
# -q redraws a progress line with \r; the last one is the result.
for t in SET GET; do
    grep -q "$t: [0-9.]* requests per second" <<<"$out" ||
        fail "redis-benchmark printed no $t result: $out"
done

begin "ringkv-cli stats"
cli -p $p1 stats | grep -q '^puts [1-9]' || fail "stats shows no puts"

begin "scripts/cluster.sh stop"
cluster stop >/dev/null || fail "stop failed"
echo "tour.sh: all $n steps passed"
