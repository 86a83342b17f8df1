#!/usr/bin/env bash
# scripts/test.sh - install dependencies, build, and run every test.
#
# Steps: dependencies (scripts/deps.sh) -> clang-format check -> include
# rule (scripts/check-includes.sh) -> naming rule (scripts/check-names.sh)
# -> ASan+UBSan
# build with -Werror in build/asan -> a Release -Werror build (build/werror)
# -> each libFuzzer target for a short run
# over its committed corpus (clang build in build/fuzz) -> every unit and
# integration test through CTest. Exits non-zero on any failure; the CTest
# summary is the last thing printed.
#
#   FUZZ_SECONDS=N   seconds per fuzz target (default 20; 0 skips fuzzing)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)

echo "== dependencies"
scripts/deps.sh

# The client matrix (tests/integration/test_clients.c) runs ioredis from npm
# when the registry answers; without it that one test skips, saying why.
echo "== client matrix: ioredis (npm)"
if command -v npm >/dev/null &&
    (cd tests/clients && timeout 180 npm ci --no-audit --no-fund >/dev/null 2>&1); then
    echo "ioredis $(node -p "require('./tests/clients/node_modules/ioredis/package.json').version")"
else
    echo "ioredis not installed (no npm, or the registry did not answer): its test skips"
fi

echo "== clang-format"
mapfile -t srcs < <(find node proto ring quorum gossip client tests -name '*.[ch]' 2>/dev/null | sort)
clang-format --dry-run -Werror "${srcs[@]}"

echo "== include rule (pure modules and the client include no node/, libuv, LMDB)"
scripts/check-includes.sh

echo "== naming rule (public mod_x, cross-file mod__x, file-local static x)"
scripts/check-names.sh

echo "== build (ASan + UBSan, -Werror)"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Asan -DRINGKV_WERROR=ON >/dev/null
cmake --build build/asan -j"$jobs"

# -O2 finds warnings -O1 does not (maybe-uninitialized, use-after-free).
echo "== build (Release, -Werror)"
cmake -S . -B build/werror -DCMAKE_BUILD_TYPE=Release -DRINGKV_WERROR=ON >/dev/null
cmake --build build/werror -j"$jobs" >/dev/null

fuzz_seconds=${FUZZ_SECONDS:-20}
if [ "$fuzz_seconds" -gt 0 ]; then
    echo "== fuzz (${fuzz_seconds}s per target)"
    CC=clang cmake -S . -B build/fuzz -DRINGKV_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
        -DRINGKV_WERROR=ON >/dev/null
    cmake --build build/fuzz -j"$jobs"
    for f in build/fuzz/bin/fuzz_*; do
        name=$(basename "$f" | sed 's/^fuzz_//')
        corpus=tests/fuzz/corpus/$name
        scratch=$(mktemp -d)
        trap 'rm -rf "$scratch"' EXIT
        echo "-- fuzz_$name"
        # New inputs go to the scratch dir; the committed corpus is read only.
        if ! "$f" -max_total_time="$fuzz_seconds" -rss_limit_mb=1024 \
            -artifact_prefix="$scratch/" "$scratch" "$corpus" \
            >"$scratch/log" 2>&1; then
            tail -n 40 "$scratch/log"
            echo "fuzz_$name FAILED; reproducer(s) in $scratch" >&2
            trap - EXIT
            exit 1
        fi
        grep -E '^(#[0-9]+ *DONE|Done)' "$scratch/log" | tail -n 1 || true
        rm -rf "$scratch"
        trap - EXIT
    done
fi

echo "== tests"
ctest --test-dir build/asan --output-on-failure -j2 --timeout 600
