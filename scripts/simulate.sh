#!/usr/bin/env bash
# scripts/simulate.sh - build and run the deterministic simulator.
#
#   scripts/simulate.sh --seeds K [--first F] [--nodes M] [--faults F] ...
#   scripts/simulate.sh --seed S [...]      one seed with its full trace
#
# Builds ringkv-sim in the build the test command makes (build/asan, ASan +
# UBSan) when it exists, else configures build/sim (RelWithDebInfo; set
# SIM_BUILD=dir to pick another, e.g. a Release build for long runs). Every
# other option goes to ringkv-sim (ringkv-sim --help lists them). With
# --seed, the run is traced (one line per event) and the checkers' findings
# follow the trace. Exits non-zero when any seed fails; the failing seeds and
# the command reproducing each are printed at the end with the seeds/second.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

build=${SIM_BUILD:-}
if [ -z "$build" ]; then
    if [ -f build/asan/CMakeCache.txt ]; then
        build=build/asan
    else
        build=build/sim
    fi
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$log" 2>&1 ||
        { cat "$log"; exit 2; }
fi
cmake --build "$build" -j"$(nproc)" --target ringkv-sim >"$log" 2>&1 ||
    { cat "$log"; exit 2; }
rm -f "$log"
trap - EXIT

args=("$@")
for a in "$@"; do
    case "$a" in
    --seed) args+=(--trace) ;;
    -h | --help) exec "$build/bin/ringkv-sim" --help ;;
    esac
done
# Findings go to stderr: after a trace, put them last and in view.
exec "$build/bin/ringkv-sim" "${args[@]}" 2>&1
