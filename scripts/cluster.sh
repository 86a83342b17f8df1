#!/usr/bin/env bash
# scripts/cluster.sh - run a local ringkv cluster.
#
#   scripts/cluster.sh start [--nodes K] [--base-port B] [--dir D] [-- node options...]
#   scripts/cluster.sh stop [--dir D]          SIGTERM every node, wait for exit
#   scripts/cluster.sh status [--dir D]        node, pid, up/down, ports, data
#   scripts/cluster.sh kill I [--dir D]        SIGKILL node I
#   scripts/cluster.sh stop-node I [--dir D]   SIGTERM node I, wait for exit
#   scripts/cluster.sh restart I [--dir D]     start node I again with its options
#   scripts/cluster.sh add [--dir D]           start one more node that joins
#   scripts/cluster.sh leave I [--dir D]       node I hands its data over, exits
#   scripts/cluster.sh logs I [--dir D]        print node I's log
#   scripts/cluster.sh --help                  this text
#
# Options:
#   --nodes K       start: cluster size (default 3)
#   --base-port B   start: node I listens natively on B+I and RESP on B+100+I
#                   (B+200+I is reserved for HTTP); default 7000
#   --dir D         the cluster's folder (default .cluster): D/nodeI holds
#                   node I's data/, log, pid, ports and saved options
#   -- OPTS...      start: options for every node, e.g.
#                   -- --n 3 --r 2 --w 2 --fsync never (docs/config.md)
#
# The K nodes form one cluster through gossip: node1 founds it and the
# others start with --seeds node1 and join (docs/design.md, "Membership").
# `start` installs dependencies and builds first, refuses ports that are
# already taken, and returns once every node answers as itself (its node id
# and process id, so another cluster or program on a port is caught) and
# every node lists every other alive and in the ring with no change pending;
# on any failure it stops every node it launched and exits 1. `restart I`
# returns once every running node lists node I alive at its new
# incarnation. `add` starts node K+1 with --seeds (a running node) and
# returns once it is in the ring everywhere; `leave I` returns once node I
# handed its partitions over and exited. Waits are bounded (15 s each; 120 s
# for leave) and say what they waited for. Commands other than start on a
# folder that holds no cluster say so and exit 1.
#
# RINGKV_BIN_DIR=DIR uses the ringkv and ringkv-cli already built in DIR
# (e.g. build/asan/bin) and skips installing and building.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${RINGKV_BIN_DIR:-$root/build/bin}
cli=$bin/ringkv-cli
wait_s=15

usage() {
    # The header comment, up to the first line that is not a comment.
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
}
die_usage() {
    echo "cluster.sh: $*" >&2
    echo "run 'scripts/cluster.sh --help' for usage" >&2
    exit 2
}

cmd=${1:-}
case "$cmd" in
'') usage >&2; exit 2 ;;
-h | --help | help) usage; exit 0 ;;
esac
shift
nodes=3
base=7000
dir=.cluster
idx=""
node_opts=()
while [ $# -gt 0 ]; do
    case "$1" in
    --nodes | --base-port | --dir)
        [ $# -ge 2 ] || die_usage "$1 needs a value"
        case "$1" in
        --nodes) nodes=$2 ;;
        --base-port) base=$2 ;;
        --dir) dir=$2 ;;
        esac
        shift 2
        ;;
    --) shift; node_opts=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    [0-9]*) idx=$1; shift ;;
    *) die_usage "unknown argument '$1'" ;;
    esac
done
case "$nodes" in '' | *[!0-9]*) die_usage "--nodes takes a number" ;; esac
case "$base" in '' | *[!0-9]*) die_usage "--base-port takes a number" ;; esac
case "$idx" in *[!0-9]*) die_usage "node number '$idx' is not a number" ;; esac


# A process that exited but was not reaped yet (a zombie) is not running:
# `kill -0` still succeeds on it, and where PID 1 reaps lazily (containers)
# a stopped node stays a zombie for about a second.
alive() {
    local st
    if [ -r "/proc/$1/stat" ]; then
        # "pid (comm) S ...": the state is the first field after the last ')'.
        { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
        st=${st##*) }
    else
        kill -0 "$1" 2>/dev/null || return 1
        st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    fi
    case "$st" in Z* | X*) return 1 ;; esac
    return 0
}
node_pid() {
    local p
    [ -f "$dir/node$1/pid" ] || return 1
    read -r p <"$dir/node$1/pid"
    alive "$p" || return 1
    echo "$p"
}
known_nodes() {
    local d
    for d in "$dir"/node*; do
        [ -f "$d/port" ] && echo "${d##*/node}"
    done | sort -n
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_taken() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

build() {
    if [ -n "${RINGKV_BIN_DIR:-}" ]; then
        [ -x "$bin/ringkv" ] && [ -x "$cli" ] || {
            echo "cluster.sh: RINGKV_BIN_DIR=$bin holds no ringkv and ringkv-cli" >&2
            exit 1
        }
        return 0
    fi
    "$root/scripts/deps.sh"
    if [ ! -f "$root/build/CMakeCache.txt" ]; then
        cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    cmake --build "$root/build" -j"$(nproc)" --target ringkv ringkv-cli >/dev/null
}

# The one place that says how node $1 is started: writes its options to
# D/nodeI/args (NUL-separated), which launch and restart replay. $2 is the
# --seeds list (empty: the node founds the cluster).
write_args() {
    local i=$1 seeds=$2
    local extra=()
    [ -z "$seeds" ] || extra=(--seeds "$seeds")
    printf '%s\0' \
        --node-id "node$i" \
        --data-dir "$dir/node$i/data" \
        --port $((base + i)) \
        --resp-port $((base + 100 + i)) \
        "${extra[@]}" \
        --cluster-secret-file "$dir/secret" \
        "${node_opts[@]}" >"$dir/node$i/args"
}

# Launch node $1 from the options saved in its directory.
launch() {
    local i=$1 d
    d=$dir/node$i
    local args=()
    mapfile -d '' -t args <"$d/args"
    setsid "$bin/ringkv" "${args[@]}" >>"$d/log" 2>&1 </dev/null &
    echo $! >"$d/pid"
}

# Wait until node $1 answers as itself: the process on its port reports
# node id nodeI and the pid this script launched. Fails at once when the
# node exits or another process answers on its port.
wait_up() {
    local i=$1 d port pid out id rpid
    d=$dir/node$i
    read -r port <"$d/port"
    read -r pid <"$d/pid"
    for _ in $(seq 1 $((wait_s * 10))); do
        if out=$("$cli" -p "$port" --timeout 500 stats 2>/dev/null); then
            id=$(awk '$1 == "node_id" { print $2 }' <<<"$out")
            rpid=$(awk '$1 == "pid" { print $2 }' <<<"$out")
            if [ "$id" = "node$i" ] && [ "$rpid" = "$pid" ]; then
                return 0
            fi
            if ! alive "$pid"; then
                echo "cluster.sh: port $port is held by another ringkv (node id '$id', pid ${rpid:-?}), not node$i of $dir; its log:" >&2
                tail -n 5 "$d/log" >&2
                return 1
            fi
        fi
        if ! alive "$pid"; then
            echo "cluster.sh: node$i (port $port) exited during start-up; its log:" >&2
            tail -n 20 "$d/log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "cluster.sh: node$i (port $port) did not answer as itself within $wait_s s" >&2
    return 1
}

# What node $1 reports for member node$2: "STATE INCARNATION RING"
# (members: alive/suspect/dead/left, ring role member/joining/leaving/none).
member_row() {
    local port
    read -r port <"$dir/node$1/port"
    "$cli" -p "$port" --timeout 500 members 2>/dev/null |
        awk -v m="node$2" '$1 == m { print $3, $4, $6 }'
}

# True when node $1 reports a ring change in progress.
ring_pending() {
    local port
    read -r port <"$dir/node$1/port"
    "$cli" -p "$port" --timeout 500 members 2>/dev/null | grep -q "change pending"
}

# Wait until node $1 lists node$2 alive and a ring member, no change
# pending; $3 (optional) is the incarnation it must be listed at.
wait_member() {
    local from=$1 to=$2 inc=${3:-} row
    for _ in $(seq 1 $((wait_s * 10))); do
        row=$(member_row "$from" "$to")
        if [ "${row%% *}" = alive ] && [ "${row##* }" = member ] &&
            { [ -z "$inc" ] || [ "$(awk '{ print $2 }' <<<"$row")" = "$inc" ]; } &&
            ! ring_pending "$from"; then
            return 0
        fi
        node_pid "$from" >/dev/null || {
            echo "cluster.sh: node$from exited while waiting for node$to" >&2
            return 1
        }
        sleep 0.1
    done
    echo "cluster.sh: node$from does not list node$to alive in the ring after $wait_s s (it says: ${row:-nothing})" >&2
    return 1
}

print_table() {
    printf '%-7s %-8s %-5s %-7s %-7s %s\n' node pid state native resp data
    local i d pid state
    for i in $(known_nodes); do
        d=$dir/node$i
        if pid=$(node_pid "$i"); then state=up; else pid=-; state=down; fi
        printf '%-7s %-8s %-5s %-7s %-7s %s\n' "node$i" "$pid" "$state" \
            "$(cat "$d/port")" "$(cat "$d/resp_port")" "$d/data"
    done
}

# Send signal $1 to every node listed after it, then wait for each to exit
# (10 s, then SIGKILL); their pid files are removed.
stop_nodes() {
    local sig=$1 i pid
    shift
    local pids=()
    for i in "$@"; do
        if pid=$(node_pid "$i"); then
            kill "-$sig" "$pid" 2>/dev/null || true
            pids+=("$i:$pid")
        fi
    done
    for i in "${pids[@]}"; do
        pid=${i#*:}
        for _ in $(seq 1 500); do
            alive "$pid" || break
            sleep 0.02
        done
        if alive "$pid"; then
            echo "cluster.sh: node${i%%:*} (pid $pid) did not exit in 10 s; killing" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for i in "$@"; do rm -f "$dir/node$i/pid"; done
}

# Every command but start needs a cluster in --dir; none creates it.
need_cluster() {
    if [ ! -d "$dir" ] || [ -z "$(known_nodes)" ]; then
        echo "cluster.sh: no cluster in '$dir' (start one with 'scripts/cluster.sh start --dir $dir')" >&2
        exit 1
    fi
    dir=$(cd "$dir" && pwd)
}
need_idx() {
    need_cluster
    [ -n "$idx" ] || die_usage "$cmd needs a node number"
    [ -f "$dir/node$idx/port" ] || {
        echo "cluster.sh: no node$idx in $dir (nodes: $(known_nodes | tr '\n' ' '))" >&2
        exit 1
    }
}

launched=()
# start failed: stop what it launched, then exit 1.
start_fail() {
    local i
    [ ${#launched[@]} -eq 0 ] || stop_nodes TERM "${launched[@]}"
    echo "cluster.sh: start failed; stopped the ${#launched[@]} node(s) it had launched" >&2
    exit 1
}

case "$cmd" in
start)
    [ "$nodes" -ge 1 ] || die_usage "--nodes must be >= 1"
    trap start_fail INT TERM # interrupted: stop what was launched, too
    for i in $(known_nodes); do
        if pid=$(node_pid "$i"); then
            echo "cluster.sh: a cluster is already running in $dir (node$i, pid $pid); 'scripts/cluster.sh stop --dir $dir' first" >&2
            exit 1
        fi
    done
    for i in $(seq 1 "$nodes"); do
        for p in $((base + i)) $((base + 100 + i)); do
            if port_taken "$p"; then
                echo "cluster.sh: port $p (node$i) is already in use by another process; pick another --base-port" >&2
                exit 1
            fi
        done
    done
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    build
    # The cluster secret peers prove they hold: made once, mode 0600.
    [ -s "$dir/secret" ] || (umask 077 && head -c 32 /dev/urandom | base64 >"$dir/secret")
    for i in $(seq 1 "$nodes"); do
        d=$dir/node$i
        mkdir -p "$d"
        echo $((base + i)) >"$d/port"
        echo $((base + 100 + i)) >"$d/resp_port"
        seeds=""
        [ "$i" = 1 ] || seeds=127.0.0.1:$((base + 1))
        write_args "$i" "$seeds"
        launched+=("$i")
        launch "$i"
        # node1 founds the cluster before the others ask to join it
        [ "$i" != 1 ] || wait_up 1 || start_fail
    done
    for i in $(seq 1 "$nodes"); do wait_up "$i" || start_fail; done
    for i in $(seq 1 "$nodes"); do
        for j in $(seq 1 "$nodes"); do
            wait_member "$i" "$j" || start_fail
        done
    done
    trap - INT TERM
    print_table
    cat <<MSG

Connect:
  redis-cli -p $((base + 101))                 # RESP: SET / GET / DEL / MGET / INFO
  $cli -p $((base + 1)) put k v      # native protocol
  $cli -p $((base + 1)) get --json k
Stop:  scripts/cluster.sh stop --dir $dir
MSG
    ;;
stop)
    need_cluster
    stop_nodes TERM $(known_nodes)
    echo "cluster.sh: stopped"
    ;;
status)
    need_cluster
    print_table
    ;;
kill)
    need_idx
    if pid=$(node_pid "$idx"); then kill -KILL "$pid"; fi
    for _ in $(seq 1 50); do node_pid "$idx" >/dev/null || break; sleep 0.1; done
    rm -f "$dir/node$idx/pid"
    ;;
stop-node)
    need_idx
    stop_nodes TERM "$idx"
    ;;
restart)
    need_idx
    stop_nodes TERM "$idx"
    others=()
    for j in $(known_nodes); do
        [ "$j" != "$idx" ] && node_pid "$j" >/dev/null && others+=("$j")
    done
    launch "$idx"
    wait_up "$idx" || exit 1
    # A new process has a new incarnation: the others list that one alive.
    inc=""
    for _ in $(seq 1 $((wait_s * 10))); do
        inc=$(member_row "$idx" "$idx" | awk '{ print $2 }')
        [ -n "$inc" ] && break
        sleep 0.1
    done
    for j in "${others[@]}"; do
        wait_member "$j" "$idx" "$inc" || exit 1
        wait_member "$idx" "$j" || exit 1
    done
    ;;
add)
    need_cluster
    build
    seed=""
    for j in $(known_nodes); do
        if node_pid "$j" >/dev/null; then seed=$j; break; fi
    done
    [ -n "$seed" ] || { echo "cluster.sh: no node of $dir is running: nothing to join" >&2; exit 1; }
    last=$(known_nodes | tail -n 1)
    idx=$((last + 1))
    base=$(($(cat "$dir/node$seed/port") - seed))
    for p in $((base + idx)) $((base + 100 + idx)); do
        if port_taken "$p"; then
            echo "cluster.sh: port $p (node$idx) is already in use by another process" >&2
            exit 1
        fi
    done
    # The new node takes the options the seed was started with.
    mapfile -d '' -t seed_args <"$dir/node$seed/args"
    node_opts=()
    for ((k = 0; k < ${#seed_args[@]}; k++)); do
        case "${seed_args[$k]}" in
        --node-id | --data-dir | --port | --resp-port | --seeds | --cluster-secret-file) k=$((k + 1)) ;;
        *) node_opts+=("${seed_args[$k]}") ;;
        esac
    done
    d=$dir/node$idx
    mkdir -p "$d"
    echo $((base + idx)) >"$d/port"
    echo $((base + 100 + idx)) >"$d/resp_port"
    write_args "$idx" "127.0.0.1:$((base + seed))"
    launch "$idx"
    wait_up "$idx" || exit 1
    for j in $(known_nodes); do
        node_pid "$j" >/dev/null || continue
        wait_member "$j" "$idx" || exit 1
    done
    echo "cluster.sh: node$idx joined (native $((base + idx)), resp $((base + 100 + idx)))"
    ;;
leave)
    need_idx
    pid=$(node_pid "$idx") || { echo "cluster.sh: node$idx is not running" >&2; exit 1; }
    "$cli" -p "$(cat "$dir/node$idx/port")" leave
    for _ in $(seq 1 1200); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
        echo "cluster.sh: node$idx is still handing its data over after 120 s (see 'ringkv-cli -p $(cat "$dir/node$idx/port") transfers')" >&2
        exit 1
    fi
    rm -f "$dir/node$idx/pid"
    echo "cluster.sh: node$idx left the cluster and stopped"
    ;;
logs)
    need_idx
    cat "$dir/node$idx/log"
    ;;
*)
    die_usage "unknown command '$cmd'"
    ;;
esac
