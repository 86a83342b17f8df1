#!/usr/bin/env bash
# scripts/cluster.sh - run a local ringkv cluster.
#
#   scripts/cluster.sh start [--nodes K] [--base-port B] [--dir D] [-- node options...]
#   scripts/cluster.sh stop [--dir D]            SIGTERM every node, wait for exit
#   scripts/cluster.sh status [--dir D]          node, pid, up/down, ports
#   scripts/cluster.sh kill I [--dir D]          SIGKILL node I
#   scripts/cluster.sh stop-node I [--dir D]     SIGTERM node I
#   scripts/cluster.sh restart I [--dir D]       start node I again with its options
#   scripts/cluster.sh logs I [--dir D]          print node I's log
#
# The K nodes form one cluster (each is told every member with --peers).
# Node i (1-based) listens natively on B+i, RESP on B+100+i (B+200+i is
# reserved for HTTP); its data is in D/nodeI/data and its log in D/nodeI/log.
# Defaults: K=3, B=7000, D=.cluster. Node options after -- go to every node
# (e.g. -- --n 3 --r 2 --w 2 --fsync never). `start` installs dependencies
# and builds first, and returns once every node answers a ping and sees all
# its peers.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/build/bin

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
nodes=3
base=7000
dir=.cluster
idx=""
node_opts=()
while [ $# -gt 0 ]; do
    case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --base-port) base=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --) shift; node_opts=("$@"); break ;;
    -h|--help) usage ;;
    [0-9]*) idx=$1; shift ;;
    *) echo "cluster.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
case "$nodes" in ''|*[!0-9]*) echo "cluster.sh: --nodes takes a number" >&2; exit 2 ;; esac
case "$base" in ''|*[!0-9]*) echo "cluster.sh: --base-port takes a number" >&2; exit 2 ;; esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

node_dir() { echo "$dir/node$1"; }
node_pid() {
    local f
    f="$(node_dir "$1")/pid"
    [ -f "$f" ] || return 1
    local p
    p=$(cat "$f")
    kill -0 "$p" 2>/dev/null || return 1
    echo "$p"
}
known_nodes() {
    local d
    for d in "$dir"/node*; do
        [ -f "$d/port" ] && basename "$d" | sed 's/^node//'
    done | sort -n
}

build() {
    "$root/scripts/deps.sh"
    if [ ! -f "$root/build/CMakeCache.txt" ]; then
        cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    cmake --build "$root/build" -j"$(nproc)" --target ringkv ringkv-cli >/dev/null
}

# Launch node $1 from the options saved in its directory.
launch() {
    local i=$1 d port
    d=$(node_dir "$i")
    port=$(cat "$d/port")
    local args=()
    mapfile -d '' -t args <"$d/args"
    setsid "$bin/ringkv" "${args[@]}" >>"$d/log" 2>&1 </dev/null &
    echo $! >"$d/pid"
}

# Wait until node $1 answers a ping, or fail after 15 s.
wait_up() {
    local i=$1 d port
    d=$(node_dir "$i")
    port=$(cat "$d/port")
    for _ in $(seq 1 150); do
        if "$bin/ringkv-cli" -p "$port" --timeout 500 ping >/dev/null 2>&1; then
            return 0
        fi
        if ! node_pid "$i" >/dev/null; then
            echo "cluster.sh: node$i exited during start-up; its log:" >&2
            tail -n 20 "$d/log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "cluster.sh: node$i did not answer within 15 s" >&2
    return 1
}

# Wait until node $1 sees every member up (peers connect within ~250 ms).
wait_members() {
    local port
    port=$(cat "$(node_dir "$1")/port")
    for _ in $(seq 1 100); do
        if ! "$bin/ringkv-cli" -p "$port" --timeout 500 members 2>/dev/null |
            grep -q ' down'; then
            return 0
        fi
        sleep 0.1
    done
    echo "cluster.sh: node$1 does not see all its peers yet" >&2
}

print_table() {
    printf '%-7s %-8s %-5s %-7s %-7s %s\n' node pid state native resp data
    local i d pid state
    for i in $(known_nodes); do
        d=$(node_dir "$i")
        if pid=$(node_pid "$i"); then state=up; else pid=-; state=down; fi
        printf '%-7s %-8s %-5s %-7s %-7s %s\n' "node$i" "$pid" "$state" \
            "$(cat "$d/port")" "$(cat "$d/resp_port")" "$d/data"
    done
}

stop_node() {
    local i=$1 sig=$2 pid
    if pid=$(node_pid "$i"); then
        kill "-$sig" "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "cluster.sh: node$i (pid $pid) did not exit in 10 s; killing" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$(node_dir "$i")/pid"
}

need_idx() {
    [ -n "$idx" ] || { echo "cluster.sh: $cmd needs a node number" >&2; exit 2; }
    [ -f "$(node_dir "$idx")/port" ] || { echo "cluster.sh: no node$idx in $dir" >&2; exit 2; }
}

case "$cmd" in
start)
    [ "$nodes" -ge 1 ] || { echo "cluster.sh: --nodes must be >= 1" >&2; exit 2; }
    for i in $(known_nodes); do
        if pid=$(node_pid "$i"); then
            echo "cluster.sh: a cluster is already running in $dir (node$i, pid $pid); 'scripts/cluster.sh stop --dir $dir' first" >&2
            exit 1
        fi
    done
    build
    peers=""
    for i in $(seq 1 "$nodes"); do
        peers+="${peers:+,}node$i@127.0.0.1:$((base + i))"
    done
    # The cluster secret peers prove they hold: made once, mode 0600.
    [ -s "$dir/secret" ] || (umask 077 && head -c 32 /dev/urandom | base64 >"$dir/secret")
    for i in $(seq 1 "$nodes"); do
        d=$(node_dir "$i")
        mkdir -p "$d"
        echo $((base + i)) >"$d/port"
        echo $((base + 100 + i)) >"$d/resp_port"
        printf '%s\0' --node-id "node$i" --data-dir "$d/data" \
            --port $((base + i)) --resp-port $((base + 100 + i)) \
            --peers "$peers" --cluster-secret-file "$dir/secret" \
            "${node_opts[@]}" >"$d/args"
        launch "$i"
    done
    for i in $(seq 1 "$nodes"); do wait_up "$i"; done
    for i in $(seq 1 "$nodes"); do wait_members "$i"; done
    print_table
    cat <<MSG

Connect:
  redis-cli -p $((base + 101))                 # RESP: SET / GET / DEL / MGET / INFO
  $bin/ringkv-cli -p $((base + 1)) put k v      # native protocol
  $bin/ringkv-cli -p $((base + 1)) get --json k
Stop:  scripts/cluster.sh stop${dir:+ --dir $dir}
MSG
    ;;
stop)
    for i in $(known_nodes); do stop_node "$i" TERM; done
    echo "cluster.sh: stopped"
    ;;
status)
    print_table
    ;;
kill)
    need_idx
    if pid=$(node_pid "$idx"); then kill -KILL "$pid"; fi
    for _ in $(seq 1 50); do node_pid "$idx" >/dev/null || break; sleep 0.1; done
    rm -f "$(node_dir "$idx")/pid"
    ;;
stop-node)
    need_idx
    stop_node "$idx" TERM
    ;;
restart)
    need_idx
    stop_node "$idx" TERM
    launch "$idx"
    wait_up "$idx"
    wait_members "$idx"
    ;;
logs)
    need_idx
    cat "$(node_dir "$idx")/log"
    ;;
*)
    usage
    ;;
esac
