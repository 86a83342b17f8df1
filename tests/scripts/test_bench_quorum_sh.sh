#!/usr/bin/env bash
# tests/scripts/test_bench_quorum_sh.sh - scripts/bench-quorum.sh's contract
# that needs no cluster and no timing (the sweep itself is a benchmark, run
# by hand, never by CTest):
#   - --help documents every option and exits 0;
#   - bad arguments exit 2 with a message naming the option, before
#     anything is built or started;
#   - the report helper's closed form agrees with ringkv-bench
#     --pbs-closed-form (RINGKV_BIN_DIR, when set) and with known values;
#   - the report from fixed points: a generator-bound point is shown in
#     parentheses without a ratio, a setting that failed 'unavailable' says
#     so, and the k-staleness check compares t = 0 reads with the closed
#     form (within / not within 0.01).
# Exits 1 at the first failure, saying which.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
script=$root/scripts/bench-quorum.sh
helper=$root/scripts/bench_quorum.py
tmp=$(mktemp -d /tmp/ringkv-bench-quorum-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "test_bench_quorum_sh: FAIL: $*" >&2
    exit 1
}

help=$("$script" --help) || fail "--help exited $?"
for o in --quick --compare --out --base-port --duration --stale-duration \
    --peer-delay --connections --pipeline --keys --settings --no-down \
    --no-plots RINGKV_BIN_DIR generator-bound results.md results.json; do
    grep -q -- "$o" <<<"$help" || fail "--help does not mention $o"
done

bad() { # expected-words... -- args...
    local want=() a
    while [ "$1" != -- ]; do want+=("$1"); shift; done
    shift
    local rc=0 err
    err=$("$script" "$@" 2>&1 >/dev/null) || rc=$?
    [ "$rc" = 2 ] || fail "'$*' exited $rc, not 2"
    for a in "${want[@]}"; do
        grep -q -- "$a" <<<"$err" || fail "'$*': message '$err' lacks '$a'"
    done
}
bad --duration -- --duration 0
bad --duration -- --duration 1s
bad --stale-duration -- --stale-duration -1
bad --connections -- --connections 4x
bad --pipeline -- --pipeline 0
bad --keys -- --keys ''
bad --peer-delay -- --peer-delay 10001
bad --settings -- --settings 4:1
bad --settings -- --settings 1:1,
bad --base-port -- --base-port 80
bad --base-port -- --base-port 65001
bad --out -- --out
bad "unknown argument" --bogus -- --bogus
bad "--quick and --compare" -- --quick --compare

# The closed form: known values, and ringkv-bench's where it is built.
cf() { python3 "$helper" closed "$@"; }
[ "$(cf 3 1 1 1)" = 0.333333 ] || fail "closed 3 1 1 1 = $(cf 3 1 1 1)"
[ "$(cf 3 1 1 2)" = 0.555556 ] || fail "closed 3 1 1 2 = $(cf 3 1 1 2)"
[ "$(cf 3 2 2 1)" = 1.000000 ] || fail "closed 3 2 2 1 = $(cf 3 2 2 1)"
[ "$(cf 2 1 1 1)" = 0.500000 ] || fail "closed 2 1 1 1 = $(cf 2 1 1 1)"
if [ -n "${RINGKV_BIN_DIR:-}" ] && [ -x "$RINGKV_BIN_DIR/ringkv-bench" ]; then
    for nrwk in "3 1 1 1" "3 1 1 2" "3 1 2 3" "3 2 1 2" "3 2 2 1" "2 1 1 3"; do
        # shellcheck disable=SC2086 # word splitting wanted
        a=$(cf $nrwk)
        # shellcheck disable=SC2086
        b=$("$RINGKV_BIN_DIR/ringkv-bench" --pbs-closed-form $nrwk)
        python3 -c "import sys; sys.exit(abs($a - $b) > 1e-5)" ||
            fail "closed form $nrwk: helper $a, ringkv-bench $b"
    done
fi

# The report from fixed points.
pts=$tmp/points
mkdir -p "$pts"
bench_json() { # throughput get_count put_count [by_code json] [staleness json]
    printf '{"throughput":%s,"seconds":2,"total":%s,"ops":{' "$1" $(($2 + $3))
    printf '"get":{"count":%s,"throughput":1,"p50_us":100,"p90_us":200,"p99_us":300,"p999_us":400,"max_us":500},' "$2"
    printf '"put":{"count":%s,"throughput":1,"p50_us":110,"p90_us":210,"p99_us":310,"p999_us":410,"max_us":510},' "$3"
    printf '"rmw":{"count":0,"throughput":0,"p50_us":0,"p90_us":0,"p99_us":0,"p999_us":0,"max_us":0}},'
    printf '"errors":{"definite":0,"indefinite":0,"unfinished":0,"not_found":0,"by_code":%s}%s}' \
        "${4:-{\}}" "${5:-}"
}
point() { # file kind r w down verdict gen_util server_util bench-json
    printf '{"kind":"%s","r":%s,"w":%s,"down":%s,"label":"x","verdict":"%s","gen_util":%s,"server_util":%s,"cpu_busy":{"cpu0":0.5,"cpu1":0.9},"server_us_per_req":10,"bench":%s}\n' \
        "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" >"$pts/$1.json"
}
point redis redis 0 0 0 ok 0.5 0.9 "$(bench_json 100000 50000 50000)"
point thr-1 thr 1 1 0 ok 0.3 0.9 "$(bench_json 40000 20000 20000)"
point thr-2 thr 2 2 0 generator-bound 0.97 0.3 "$(bench_json 12345 6000 6345)"
point thr-3 thr 3 3 1 ok 0.5 0.4 "$(bench_json 0 0 0 '{"unavailable":999}')"
# t = 0: 1000 reads, 330 current, 230 one behind: P = 0.330 (k=1, closed
# 0.3333: within), 0.560 (k=2, 0.5556: within), 0.600 (k=3, 0.7037: not).
stale=',"staleness":{"delays":[{"t_ms":0,"reads":1000,"p_consistent":0.33,"k":[330,230,40,0,0,0,0,0,400]},{"t_ms":5,"reads":1000,"p_consistent":0.4,"k":[400,600,0,0,0,0,0,0,0]}],"ryw_violations":7,"monotonic_violations":8,"undecodable":0,"dropped":0}'
point stale-1 stale 1 1 0 ok 0.2 0.3 "$(bench_json 1000 800 200 '{}' "$stale")"
python3 "$helper" report --dir "$pts" --out "$tmp/out" --no-plots ||
    fail "report exited $?"
md=$tmp/out/results.md
[ -s "$tmp/out/results.json" ] || fail "no results.json"
grep -q '^| 1 | 1 | 3 | 40 000 | 0.40 |' "$md" || fail "R=1 W=1 row: $(grep '^| 1 | 1 | 3 |' "$md")"
grep -q '^| 2 | 2 | 3 | (12 345) | - |.*generator-bound |$' "$md" ||
    fail "generator-bound row: $(grep '^| 2 | 2 | 3 |' "$md")"
grep -q '^| 3 | 3 | 2 | 0 | - |.*999 unavailable.*| unavailable |$' "$md" ||
    fail "unavailable row: $(grep '^| 3 | 3 | 2 |' "$md")"
grep -q '^| 1 | 1 | 1 | 1000 | 0.3300 | 0.3333 | -0.0033 |.*| yes |' "$md" ||
    fail "k=1 check: $(grep '^| 1 | 1 | 1 |' "$md")"
grep -q '^| 1 | 1 | 2 | 1000 | 0.5600 | 0.5556 | +0.0044 |.*| yes |' "$md" ||
    fail "k=2 check: $(grep '^| 1 | 1 | 2 |' "$md")"
grep -q '^| 1 | 1 | 3 | 1000 | 0.6000 | 0.7037 | -0.1037 |.*| NO |' "$md" ||
    fail "k=3 check: $(grep '^| 1 | 1 | 3 |' "$md")"
grep -q '^| 1 | 1 | 3 | 1000 | 0.330 | 0.400 | 0.333 | 7 | 8 | 0 |$' "$md" ||
    fail "staleness row: $(grep '^| 1 | 1 | 3 | 1000 | 0.330' "$md")"
echo "test_bench_quorum_sh: ok"
