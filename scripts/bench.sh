#!/usr/bin/env bash
# scripts/bench.sh - redis-benchmark against a ringkv node and against a
# plain redis-server, on this machine, in the same run; prints throughput
# and the ringkv/redis ratio per fsync policy. A benchmark, not a test.
#
#   scripts/bench.sh [--requests N] [--clients C] [--size D] [--keyspace R]
#                    [--fsync "never always"] [--pipeline P] [--nodes K]
#                    [-- node options...]
#
# --nodes K benchmarks node 1's RESP port of a K-node cluster (default 1;
# docs/benchmarks.md measures K=3 with the defaults N=3, R=W=2).
# Defaults, as in docs/benchmarks.md: -t set,get -c 50 -n 200000 -d 100
# -r 100000. Ports 7901.., 7951.. and 7990 are used; data lives in a temp dir removed on
# exit. redis-server runs with its defaults (RDB snapshots off, no AOF) for
# fsync never; for fsync always it runs with appendonly yes + appendfsync
# always, the closest equivalent.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
n=200000 c=50 d=100 r=100000 P=1 nodes=1
policies="never always"
node_opts=()
while [ $# -gt 0 ]; do
    case "$1" in
    --requests) n=$2; shift 2 ;;
    --clients) c=$2; shift 2 ;;
    --size) d=$2; shift 2 ;;
    --keyspace) r=$2; shift 2 ;;
    --fsync) policies=$2; shift 2 ;;
    --pipeline) P=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --) shift; node_opts=("$@"); break ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done

"$root/scripts/deps.sh" --bench
if [ ! -f "$root/build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$root/build" -j"$(nproc)" --target ringkv ringkv-cli >/dev/null

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 1 100); do
        redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench: nothing answers on port $1" >&2
    exit 1
}

# bench PORT -> "set_rps get_rps set_p50 set_p99 get_p50 get_p99"
bench() {
    redis-benchmark -p "$1" -t set,get -c "$c" -n "$n" -d "$d" -r "$r" \
        -P "$P" --csv 2>/dev/null |
        awk -F',' 'NR>1 { for (i = 1; i <= NF; i++) gsub(/"/, "", $i);
                          t[$1]=$2; p50[$1]=$5; p99[$1]=$7 }
            END { printf "%s %s %s %s %s %s\n", t["SET"], t["GET"],
                  p50["SET"], p99["SET"], p50["GET"], p99["GET"] }'
}

printf '%-7s %-8s %12s %12s %9s %9s %9s %9s\n' fsync server SET/s GET/s \
    SETp50ms SETp99ms GETp50ms GETp99ms
for pol in $policies; do
    rdir=$tmp/redis-$pol
    mkdir -p "$rdir"
    raof=no
    [ "$pol" = always ] && raof=yes
    redis-server --port 7990 --dir "$rdir" --save '' --appendonly "$raof" \
        --appendfsync always --daemonize no >"$rdir/log" 2>&1 &
    pids+=($!)
    wait_port 7990
    read -r rs rg rsp50 rsp99 rgp50 rgp99 < <(bench 7990)
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

    # ringkv: node i native 7900+i, RESP 7950+i.
    peers=""
    for i in $(seq 1 "$nodes"); do
        peers+="${peers:+,}n$i@127.0.0.1:$((7900 + i))"
    done
    kpids=()
    [ -s "$tmp/secret" ] || (umask 077 && head -c 32 /dev/urandom | base64 >"$tmp/secret")
    for i in $(seq 1 "$nodes"); do
        "$root/build/bin/ringkv" --node-id "n$i" --peers "$peers" \
            --cluster-secret-file "$tmp/secret" \
            --data-dir "$tmp/ringkv-$pol-$i" --port $((7900 + i)) \
            --resp-port $((7950 + i)) --fsync "$pol" \
            --log-file "$tmp/ringkv-$pol-$i.log" "${node_opts[@]}" &
        pids+=($!)
        kpids+=($!)
    done
    for i in $(seq 1 "$nodes"); do wait_port $((7950 + i)); done
    # Peers connect within a reconnect interval; wait until node 1 sees all.
    for _ in $(seq 1 50); do
        "$root/build/bin/ringkv-cli" -p 7901 members 2>/dev/null |
            grep -q ' down' || break
        sleep 0.1
    done
    read -r ks kg ksp50 ksp99 kgp50 kgp99 < <(bench 7951)
    kill "${kpids[@]}"; wait "${kpids[@]}" 2>/dev/null || true

    printf '%-7s %-8s %12s %12s %9s %9s %9s %9s\n' "$pol" redis "$rs" "$rg" \
        "$rsp50" "$rsp99" "$rgp50" "$rgp99"
    printf '%-7s %-8s %12s %12s %9s %9s %9s %9s\n' "$pol" ringkv "$ks" "$kg" \
        "$ksp50" "$ksp99" "$kgp50" "$kgp99"
    awk -v a="$ks" -v b="$rs" -v x="$kg" -v y="$rg" -v p="$pol" \
        'BEGIN { printf "%-7s ratio    %11.2fx %11.2fx   (ringkv/redis throughput)\n", p, a/b, x/y }'
done
echo "(redis-benchmark -t set,get -c $c -n $n -d $d -r $r -P $P against node 1 of $nodes ringkv node(s) ${node_opts[*]}; $(nproc) cores)"
