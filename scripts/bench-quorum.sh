#!/usr/bin/env bash
# scripts/bench-quorum.sh - sweep quorum settings on fresh local clusters,
# side by side with a plain redis-server in the same run.
#
#   scripts/bench-quorum.sh [--quick] [--out DIR] [options]   the sweep
#   scripts/bench-quorum.sh --compare [--out DIR] [options]   3 nodes vs redis
#   scripts/bench-quorum.sh --help                            this text
#
# The sweep: N = 3 with (R,W) in (1,1) (1,2) (2,1) (2,2) (1,3) (3,1) (3,3),
# each with all 3 nodes up and with node 3 killed after start (the
# generator then talks to nodes 1 and 2; R or W = 3 fails 'unavailable',
# which is reported as the result). Per setting, on fresh clusters:
#   throughput  cluster with the production switches (fanout all, read
#               repair on, no peer delay), --r R --w W --fsync never
#               (every cluster also gossips every 200 ms, so it forms in
#               ~1 s);
#               ringkv-bench workload a (50 % get / 50 % put), closed loop
#   staleness   cluster with --replica-fanout exact --read-repair off
#               --peer-delay-mean-ms D; ringkv-bench --staleness (native:
#               the version is in the value); P(consistent) against t and
#               k-staleness against PBS's closed form 1-(C(N-W,R)/C(N,R))^k
#               (from ringkv-bench --pbs-closed-form)
# and the same throughput workload against redis-server (RESP, --save ''
# --appendonly no) before and after the settings: each ops/s is also a
# ratio to redis's mean in this run.
#
# --compare: a 3-node cluster (N=3 R=W=2, production switches, fsync never)
# and redis-server: SET (--read-ratio 0) then GET (--read-ratio 1) at
# pipeline 1 and 16, 50 connections, a fixed op count, ringkv over the
# native protocol and over RESP; throughput ratios and server CPU time per
# request.
#
# Measuring: servers are pinned to cpu 0 and the generator to cpu 1 with
# taskset (when nproc >= 2; otherwise both share and the report says so).
# CPU time of the servers (utime + stime from /proc/PID/stat) and of the
# generator is sampled at the start of the measured window (after connect
# and warmup) and at its end. A point where the generator used >= 90 % of
# its core while the servers used < 80 % of theirs is marked
# "generator-bound" and not reported as a server figure (no ratio); the
# first redis run is the calibration that shows the generator's headroom.
#
# Options:
#   --quick            short runs, fewer t points (under 2 minutes)
#   --compare          the 3-node vs redis comparison instead of the sweep
#   --out DIR          results.md, results.json and PNG plots go here
#                      (default bench-results/)
#   --base-port B      ringkv nodes on B+1..B+3 (RESP B+101..B+103),
#                      redis-server on B+300 (default 18500: clear of
#                      tests/scripts' 17600.. and the integration tests'
#                      20000..)
#   --duration S       throughput seconds per point (quick 1, full 5;
#                      --compare: ignored, fixed op counts)
#   --stale-duration S staleness seconds per setting (quick 1.5, full 12)
#   --peer-delay MS    peer_delay_mean_ms of the staleness clusters (5)
#   --connections C    throughput connections (48)
#   --pipeline P       throughput pipeline depth (4)
#   --keys K           throughput key space (10000)
#   --settings LIST    only these R:W settings, e.g. 1:1,2:2 (all seven)
#   --no-down          skip the one-node-down runs
#   --no-plots         skip gnuplot
#   --repeat N         --compare: run every point N times, interleaved;
#                      the report shows the median by ops/s and every run (1)
#
# Environment: RINGKV_BIN_DIR=DIR uses ringkv, ringkv-cli and ringkv-bench
# from DIR and skips building; otherwise the script installs dependencies
# (scripts/deps.sh --bench: redis-server, gnuplot-nox) and builds build/rel
# (Release). Every cluster lives under DIR/work (removed at the end unless
# the run failed); every process the script starts is stopped on exit,
# failure, Ctrl-C, TERM or HUP. One run per --out folder at a time. Exit
# status: 0 when the results were written, 1 on a failure (a cluster that
# did not start, a port taken, the folder in use), 2 for bad usage, 130 /
# 143 / 129 when interrupted.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
helper=$root/scripts/bench_quorum.py

usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
}
die_usage() {
    echo "bench-quorum.sh: $*" >&2
    echo "run 'scripts/bench-quorum.sh --help' for usage" >&2
    exit 2
}
need_num() { # option value: a positive decimal number
    if ! [[ $2 =~ ^[0-9]+(\.[0-9]+)?$ ]] || [[ $2 =~ ^0+(\.0+)?$ ]]; then
        die_usage "$1 takes a positive number, not '$2'"
    fi
}
need_int() { # option value: a positive integer (at most 9 digits)
    if ! [[ $2 =~ ^[0-9]{1,9}$ ]] || [ "$2" -eq 0 ]; then
        die_usage "$1 takes a positive integer, not '$2'"
    fi
}

quick=0
compare=0
out="bench-results"
base=18500
duration=""
stale_duration=""
delay=5
conns=48
pipeline=4
keys=10000
settings="1:1,1:2,2:1,2:2,1:3,3:1,3:3"
down_too=1
plots=1
repeat=1
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --quick) quick=1; shift ;;
    --compare) compare=1; shift ;;
    --no-down) down_too=0; shift ;;
    --no-plots) plots=0; shift ;;
    --out | --base-port | --duration | --stale-duration | --peer-delay | \
        --connections | --pipeline | --keys | --settings | --repeat)
        [ $# -ge 2 ] || die_usage "$1 needs a value"
        case "$1" in
        --out) [ -n "$2" ] || die_usage "--out needs a directory"; out=$2 ;;
        --base-port) need_int "$1" "$2"; base=$2 ;;
        --duration) need_num "$1" "$2"; duration=$2 ;;
        --stale-duration) need_num "$1" "$2"; stale_duration=$2 ;;
        --peer-delay)
            if ! [[ $2 =~ ^[0-9]{1,5}$ ]] || [ "$2" -gt 10000 ]; then
                die_usage "--peer-delay takes 0..10000 (ms), not '$2'"
            fi
            delay=$2
            ;;
        --connections) need_int "$1" "$2"; conns=$2 ;;
        --pipeline) need_int "$1" "$2"; pipeline=$2 ;;
        --keys) need_int "$1" "$2"; keys=$2 ;;
        --repeat) need_int "$1" "$2"; repeat=$2 ;;
        --settings)
            [[ $2 =~ ^[1-3]:[1-3](,[1-3]:[1-3])*$ ]] ||
                die_usage "--settings takes R:W[,R:W...] with R, W in 1..3, not '$2'"
            settings=$2
            ;;
        esac
        shift 2
        ;;
    *) die_usage "unknown argument '$1'" ;;
    esac
done
if [ "$base" -lt 1024 ] || [ "$base" -gt 65000 ]; then
    die_usage "--base-port must be 1024..65000, not '$base'"
fi
[ "$quick" = 1 ] && [ "$compare" = 1 ] &&
    die_usage "--quick and --compare are separate runs; pick one"
if [ "$quick" = 1 ]; then
    duration=${duration:-1}
    stale_duration=${stale_duration:-1.5}
    warmup=0.3
    stale_warmup=1.5
    stale_kpc=8
    delays=0,1,5,20,100
else
    duration=${duration:-5}
    stale_duration=${stale_duration:-12}
    warmup=1
    stale_warmup=2
    stale_kpc=8
    delays=0,1,2,5,10,50,100
fi

# ---- processes we own ------------------------------------------------------
work=""
redis_pid=""
child=""    # the long step running now (a measurement, a cluster start)
clusters=() # cluster directories that may hold running nodes
# run_child CMD...: run CMD and wait for it. In the background and with
# the wait builtin, so that Ctrl-C or a TERM runs our trap at once: bash
# postpones a trap until a foreground child exits, and drops SIGINT when
# that child handled it (cluster.sh does) and exited normally.
run_child() {
    local rc=0
    "$@" &
    child=$!
    wait "$child" || rc=$?
    child=""
    return "$rc"
}
cleanup() {
    local rc=$? d
    trap - EXIT INT TERM HUP
    if [ -n "$child" ]; then # cluster.sh stops what it launched; the helper its generator
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    for d in "${clusters[@]}"; do
        if [ -d "$d" ]; then
            "$root/scripts/cluster.sh" stop --dir "$d" >/dev/null 2>&1 || true
        fi
    done
    if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    if [ -n "$work" ] && [ -d "$work" ]; then
        if [ "$rc" -eq 0 ]; then rm -rf "$work"; else
            echo "bench-quorum.sh: failed (exit $rc); logs kept in $work" >&2
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- build and tools -------------------------------------------------------
if [ -n "${RINGKV_BIN_DIR:-}" ]; then
    bin=$(cd "$RINGKV_BIN_DIR" && pwd)
else
    "$root/scripts/deps.sh" --bench
    bin=$root/build/rel/bin
    [ -f "$root/build/rel/CMakeCache.txt" ] ||
        cmake -S "$root" -B "$root/build/rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$root/build/rel" -j2 --target ringkv ringkv-cli ringkv-bench >/dev/null
fi
for b in ringkv ringkv-cli ringkv-bench; do
    [ -x "$bin/$b" ] || { echo "bench-quorum.sh: no $bin/$b" >&2; exit 1; }
done
command -v redis-server >/dev/null ||
    { echo "bench-quorum.sh: no redis-server (scripts/deps.sh --bench)" >&2; exit 1; }
export RINGKV_BIN_DIR=$bin
bench=$bin/ringkv-bench

ncpu=$(nproc)
if [ "$ncpu" -ge 2 ]; then
    pin_srv=(taskset -c 0)
    pin_gen=(taskset -c 1)
    pinning="servers on cpu 0, generator on cpu 1 (taskset)"
else
    pin_srv=()
    pin_gen=()
    pinning="not pinned: one cpu, servers and generator share it"
fi

port_taken() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
for p in $((base + 1)) $((base + 2)) $((base + 3)) $((base + 101)) \
    $((base + 102)) $((base + 103)) $((base + 300)); do
    if port_taken "$p"; then
        echo "bench-quorum.sh: port $p is in use; pick another --base-port" >&2
        exit 1
    fi
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
# One run per --out folder: another one's clusters live in DIR/work.
if [ -f "$out/work/pid" ] && read -r other <"$out/work/pid" &&
    kill -0 "$other" 2>/dev/null; then
    echo "bench-quorum.sh: another run (pid $other) uses $out; pick another --out" >&2
    exit 1
fi
work=$out/work
rm -rf "$work"
mkdir -p "$work/points"
echo $$ >"$work/pid"
rm -f "$out"/*.png "$out"/*.dat

mode=full
[ "$quick" = 0 ] || mode=quick
[ "$compare" = 0 ] || mode=compare
machine="Machine: $(nproc) cpu(s) ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), \
$(uname -sr); commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')\
$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (uncommitted changes)'); \
load average at start $(cut -d' ' -f1-3 /proc/loadavg); $pinning; \
run $(date -u '+%Y-%m-%d %H:%M UTC'); mode $mode."

# ---- redis-server ------------------------------------------------------------
redis_port=$((base + 300))
start_redis() {
    "${pin_srv[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 \
        --save '' --appendonly no --daemonize no --dir "$work" \
        --logfile "$work/redis.log" &
    redis_pid=$!
    for _ in $(seq 1 100); do
        port_taken "$redis_port" && return 0
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench-quorum.sh: redis-server did not start; see $work/redis.log" >&2
    exit 1
}

# ---- clusters ----------------------------------------------------------------
cdir=$work/cluster
# start_cluster R W [node options...]: a fresh 3-node cluster in $cdir.
start_cluster() {
    local r=$1 w=$2
    shift 2
    rm -rf "$cdir"
    clusters=("$cdir")
    # Gossip every 200 ms: the cluster forms in ~1 s instead of ~3 s (the
    # default 1 s rounds), at a few small messages per second.
    run_child "${pin_srv[@]}" "$root/scripts/cluster.sh" start --nodes 3 \
        --base-port "$base" --dir "$cdir" -- --n 3 --r "$r" --w "$w" \
        --fsync never --gossip-interval 200ms --gossip-timeout 80ms "$@" \
        >"$work/cluster-start.log" 2>&1 || {
        cat "$work/cluster-start.log" >&2
        exit 1
    }
}
stop_cluster() {
    "$root/scripts/cluster.sh" stop --dir "$cdir" >/dev/null 2>&1 || true
    rm -rf "$cdir"
    clusters=()
}
# Kill node 3 and wait until nodes 1 and 2 refuse a write with w = 3 as
# 'unavailable' (a coordinator counts a replica reachable by its live peer
# link, which breaks at once; gossip calls it suspect only seconds later),
# so R or W = 3 answers 'unavailable' at once instead of waiting for a
# timeout.
kill_node3() {
    "$root/scripts/cluster.sh" kill 3 --dir "$cdir" >/dev/null
    local i out
    for i in 1 2; do
        for _ in $(seq 1 100); do
            out=$("$bench" --json --nodes "127.0.0.1:$((base + i))" --ops 1 \
                --connections 1 --read-ratio 0 --w 3 --keys 1 2>/dev/null) || true
            case $out in *'"unavailable"'*) break ;; esac
            sleep 0.05
        done
        case $out in *'"unavailable"'*) ;; *)
            echo "bench-quorum.sh: node$i still accepts w = 3 writes with node3 killed" >&2
            exit 1
            ;;
        esac
    done
}
node_pids() { # the running nodes' pids, comma-separated
    local i p ps=""
    for i in 1 2 3; do
        [ -f "$cdir/node$i/pid" ] || continue
        read -r p <"$cdir/node$i/pid"
        ps+="${ps:+,}$p"
    done
    echo "$ps"
}
targets() { # native (or, with resp, RESP) addresses of the nodes up
    local n=$1 off=${2:-0} i t=""
    for i in $(seq 1 "$n"); do t+="${t:+,}127.0.0.1:$((base + off + i))"; done
    echo "$t"
}

# measure FILE META SETTLE PIDS -- bench args...: one point.
measure() {
    local f=$1 meta=$2 settle=$3 pids=$4
    shift 5
    run_child python3 "$helper" run --out "$work/points/$f.json" --meta "$meta" \
        --pids "$pids" --settle "$settle" -- \
        "${pin_gen[@]}" "$bench" --json "$@" || true
}

thr_args=(--workload a --connections "$conns" --pipeline "$pipeline"
    --keys "$keys" --warmup "$warmup" --duration "$duration")
settle=$(awk -v w="$warmup" 'BEGIN { print w + 0.2 }')
stale_settle=$(awk -v w="$stale_warmup" 'BEGIN { print w + 0.2 }')

redis_point() { # NAME: the sweep's throughput workload against redis
    measure "redis-$1" "{\"kind\":\"redis\",\"label\":\"redis-server ($1)\"}" \
        "$settle" "$redis_pid" -- --resp --nodes "127.0.0.1:$redis_port" "${thr_args[@]}"
}

meta_json() { # kind r w down [extra json]
    local extra=${5:-}
    printf '{"kind":"%s","r":%s,"w":%s,"down":%s,"label":"%s R=%s W=%s %s"%s}' \
        "$1" "$2" "$3" "$4" "$1" "$2" "$3" "$([ "$4" = 1 ] && echo 'node3 down' || echo 'all up')" \
        "$extra"
}

sweep() {
    local s r w down n meta cf k
    start_redis
    echo "bench-quorum.sh: calibration: the workload against redis-server" >&2
    redis_point "calibration, before the sweep"
    for s in ${settings//,/ }; do
        r=${s%:*}
        w=${s#*:}
        for down in 0 $([ "$down_too" = 1 ] && echo 1); do
            n=$((3 - down))
            echo "bench-quorum.sh: R=$r W=$w, $n node(s) up" >&2
            start_cluster "$r" "$w"
            [ "$down" = 0 ] || kill_node3
            measure "thr-$r-$w-$down" "$(meta_json thr "$r" "$w" "$down")" \
                "$settle" "$(node_pids)" -- --nodes "$(targets "$n")" "${thr_args[@]}"
            stop_cluster

            start_cluster "$r" "$w" --replica-fanout exact --read-repair off \
                --peer-delay-mean-ms "$delay"
            [ "$down" = 0 ] || kill_node3
            cf=""
            for k in 1 2 3; do
                cf+="${cf:+,}\"$k\":$("$bench" --pbs-closed-form "$n" "$r" "$w" "$k" 2>/dev/null || echo null)"
            done
            meta=$(meta_json stale "$r" "$w" "$down" ",\"closed_form\":{$cf},\"peer_delay_ms\":$delay")
            # 12 clients with stale_kpc keys each. The warmup gives every key
            # dozens of versions first: a read of version v < k is "fewer
            # than k behind" whatever it finds (version 0, not found, is on
            # every replica), which would flatter k-staleness (shorter
            # warmups measured +0.01..0.025 at k = 2; docs/benchmarks.md).
            # A key's next version comes stale_kpc writes later, which is
            # what lifts P(consistent) at the larger t.
            measure "stale-$r-$w-$down" "$meta" "$stale_settle" "$(node_pids)" -- \
                --nodes "$(targets "$n")" --staleness --connections 12 \
                --pipeline 8 --keys $((12 * stale_kpc)) --warmup "$stale_warmup" \
                --duration "$stale_duration" --delays "$delays"
            stop_cluster
        done
    done
    redis_point "after the sweep"
}

compare_run() {
    local op pl ops rr target rep
    start_redis
    start_cluster 2 2
    for rep in $(seq 1 "$repeat"); do
    for pl in 1 16; do
        ops=$([ "$pl" = 1 ] && echo 200000 || echo 1000000)
        for op in SET GET; do
            rr=$([ "$op" = SET ] && echo 0 || echo 1)
            for target in redis ringkv-native ringkv-resp; do
                echo "bench-quorum.sh: $op P=$pl $target" >&2
                local meta="{\"kind\":\"compare\",\"op\":\"$op\",\"pipeline\":$pl,\"target\":\"$target\",\"run\":$rep,\"label\":\"$op P=$pl $target run $rep\"}"
                local args=(--connections 50 --pipeline "$pl" --ops "$ops"
                    --keys 100000 --value-size 100 --read-ratio "$rr")
                case $target in
                redis) measure "cmp-$op-$pl-0redis-$rep" "$meta" 0.1 "$redis_pid" -- \
                    --resp --nodes "127.0.0.1:$redis_port" "${args[@]}" ;;
                ringkv-native) measure "cmp-$op-$pl-1native-$rep" "$meta" 0.1 "$(node_pids)" -- \
                    --nodes "$(targets 3)" "${args[@]}" ;;
                ringkv-resp) measure "cmp-$op-$pl-2resp-$rep" "$meta" 0.1 "$(node_pids)" -- \
                    --resp --nodes "$(targets 3 100)" "${args[@]}" ;;
                esac
            done
        done
    done
    done
    stop_cluster
}

t0=$(date +%s)
if [ "$compare" = 1 ]; then
    compare_run
    title="bench-quorum --compare: 3-node ringkv (N=3 R=W=2) and redis-server"
else
    sweep
    title="bench-quorum sweep: N=3, (R,W) and one node down, against redis-server"
fi
python3 - "$work/points/0-machine.json" "$machine" <<'PY'
import json, sys
json.dump({"kind": "machine", "machine": sys.argv[2]}, open(sys.argv[1], "w"))
PY
report_args=(--dir "$work/points" --out "$out" --title "$title")
[ "$plots" = 1 ] || report_args+=(--no-plots)
python3 "$helper" report "${report_args[@]}"
rm -f "$out"/*.dat
echo "bench-quorum.sh: done in $(($(date +%s) - t0)) s: $out/results.md" >&2
