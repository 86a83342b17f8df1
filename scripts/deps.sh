#!/usr/bin/env bash
# Install what ringkv needs to build and test, from Debian's packages.
# A fast no-op when everything is already present (checked with dpkg-query,
# no network); otherwise apt-get, through sudo when not root.
#
#   scripts/deps.sh            build + test dependencies
#   scripts/deps.sh --bench    also redis-server (the benchmark baseline) and
#                              gnuplot-nox (bench-quorum.sh's plots)
set -euo pipefail

pkgs=(
    build-essential cmake pkg-config   # toolchain
    clang libclang-rt-14-dev           # libFuzzer targets
    clang-format                       # style check in the test command
    libuv1-dev                         # event loop
    libmsgpack-dev                     # msgpack-c: wire codec
    libxxhash-dev                      # key -> partition hash
    liblmdb-dev                        # storage engine
    libsodium-dev                      # peer handshake: HMAC-SHA256, constant-time compare
    libcriterion-dev                   # unit + integration tests
    redis-tools                        # redis-cli / redis-benchmark: RESP tests
    python3-redis                      # redis-py: the client matrix test
)
if [ "${1:-}" = "--bench" ]; then
    pkgs+=(redis-server gnuplot-nox)
fi

missing=()
for p in "${pkgs[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = "installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
