#!/usr/bin/env bash
# tests/scripts/test_cluster_sh.sh - scripts/cluster.sh's contract, on the
# binaries in RINGKV_BIN_DIR (CTest passes build/asan/bin):
#   - --help names every command and option and exits 0;
#   - stop/status/kill/restart/logs on a folder with no cluster say so,
#     exit non-zero and do not create the folder;
#   - start fails, naming the port, when another program holds one of its
#     ports, and leaves none of its nodes running;
#   - after start, every node has a live link to every other; after
#     restart I, every other node has a live link to node I;
#   - add makes node4 a ring member on every node; leave 4 makes node4's
#     process exit and the others list it left or not in the ring.
# Ports 17600.. (below the integration tests' 20000..32767). Cleans up on
# any exit. Exits 1 at the first failure, saying which.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cluster=$root/scripts/cluster.sh
: "${RINGKV_BIN_DIR:?set RINGKV_BIN_DIR to the folder holding ringkv and ringkv-cli}"
cli=$RINGKV_BIN_DIR/ringkv-cli
base=17600
tmp=$(mktemp -d /tmp/ringkv-cluster-sh-XXXXXX)
holder=""

cleanup() {
    local rc=$?
    [ -z "$holder" ] || kill "$holder" 2>/dev/null || true
    for d in "$tmp"/c*; do
        [ -d "$d" ] && "$cluster" stop --dir "$d" >/dev/null 2>&1 || true
    done
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT

fail() {
    echo "test_cluster_sh: FAIL: $*" >&2
    exit 1
}

# --help: exit 0, every command and option named.
help=$("$cluster" --help) || fail "--help exited $?"
for w in start stop status kill stop-node restart logs --nodes --base-port \
    --dir -- RINGKV_BIN_DIR; do
    grep -q -- "$w" <<<"$help" || fail "--help does not mention '$w'"
done
# Every command the script dispatches is in the help.
for w in $(sed -n '/^case "\$cmd" in$/,/^esac$/p' "$cluster" |
    sed -n 's/^\([a-z-]*\))$/\1/p'); do
    grep -q -- "$w" <<<"$help" || fail "--help does not mention command '$w'"
done

# No cluster in the folder: say so, exit non-zero, create nothing.
for c in stop status "kill 1" "restart 1" "logs 1" "stop-node 1"; do
    # shellcheck disable=SC2086
    if out=$("$cluster" $c --dir "$tmp/none" 2>&1); then
        fail "'$c' on a folder with no cluster exited 0: $out"
    fi
    grep -q "no cluster in" <<<"$out" || fail "'$c': no 'no cluster' message: $out"
    [ ! -e "$tmp/none" ] || fail "'$c' created the folder"
done

# A port held by another program: start fails naming it; nothing left.
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
print("ready", flush=True); time.sleep(120)' $((base + 102)) >"$tmp/holder" &
holder=$!
for _ in $(seq 1 100); do grep -q ready "$tmp/holder" 2>/dev/null && break; sleep 0.1; done
if out=$("$cluster" start --dir "$tmp/c1" --base-port "$base" 2>&1); then
    fail "start succeeded with port $((base + 102)) taken: $out"
fi
grep -q "port $((base + 102))" <<<"$out" || fail "start did not name the port: $out"
for i in 1 2 3; do
    if [ -f "$tmp/c1/node$i/pid" ] && kill -0 "$(cat "$tmp/c1/node$i/pid")" 2>/dev/null; then
        fail "node$i still runs after the failed start"
    fi
done
kill "$holder"
holder=""

# start: every node linked to every other when it returns.
"$cluster" start --dir "$tmp/c2" --base-port "$base" -- --fsync never >/dev/null ||
    fail "start failed"
for i in 1 2 3; do
    m=$("$cli" -p $((base + i)) members) || fail "node$i does not answer members"
    [ "$(grep -c ' alive .* member$' <<<"$m")" = 3 ] || fail "after start node$i sees: $m"
done
# restart 3 (after kill): every other node linked to node 3 at once.
"$cluster" kill 3 --dir "$tmp/c2" || fail "kill 3"
"$cluster" restart 3 --dir "$tmp/c2" || fail "restart 3"
for i in 1 2 3; do
    m=$("$cli" -p $((base + i)) members) || fail "node$i does not answer members"
    [ "$(grep -c ' alive .* member$' <<<"$m")" = 3 ] || fail "after restart 3 node$i sees: $m"
done
# add: node4 joins; every node lists it alive and a ring member.
"$cluster" add --dir "$tmp/c2" >/dev/null || fail "add"
for i in 1 2 3 4; do
    m=$("$cli" -p $((base + i)) members) || fail "node$i does not answer members"
    grep -q '^node4 .* alive .* member$' <<<"$m" || fail "after add node$i sees: $m"
done
# leave 4: its process exits; the others list it left or outside the ring.
pid4=$(cat "$tmp/c2/node4/pid")
"$cluster" leave 4 --dir "$tmp/c2" >/dev/null || fail "leave 4"
# (a zombie waiting for its reaper counts as exited)
if [ -r "/proc/$pid4/stat" ]; then
    st=$(sed 's/.*) //' "/proc/$pid4/stat" | cut -c1)
    [ "$st" = Z ] || fail "node4 (pid $pid4, state $st) still runs after leave"
fi
for i in 1 2 3; do
    m=$("$cli" -p $((base + i)) members) || fail "node$i does not answer members"
    row=$(grep '^node4 ' <<<"$m" || true)
    [ -z "$row" ] || grep -q ' left \| none$' <<<"$row" ||
        fail "after leave 4 node$i lists: $row"
done
# A second start on the same folder refuses.
if "$cluster" start --dir "$tmp/c2" --base-port "$base" >/dev/null 2>&1; then
    fail "a second start on a running cluster succeeded"
fi
"$cluster" stop --dir "$tmp/c2" >/dev/null || fail "stop"
for i in 1 2 3; do
    [ ! -f "$tmp/c2/node$i/pid" ] || fail "node$i pid file left after stop"
done
echo "test_cluster_sh: ok"
