#!/usr/bin/env bash
# scripts/check-includes.sh - the include rule: arrows point inward.
#
#   ring/, quorum/, gossip/, proto/  include no node/ or client/ header and
#                                    neither <uv.h> nor <lmdb.h>
#   proto/                           includes no other module of ours either
#                                    (ring/, quorum/, gossip/)
#   client/                          includes no node/ header
#   the core (ringkv_core: node/core.*, env.h, storage_op.h, log.*,
#   peer_auth.*)                     includes no <uv.h> or <lmdb.h>, nor a
#                                    node/ header outside the core
#
# (docs/design.md, "The pieces"; shared/DESIGN.md's module table.) Prints
# every violation as file:line: the include and the rule, and exits 1 when
# there is any, 0 otherwise. Run by scripts/test.sh; quick enough to run by
# hand before committing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# An #include of one of the given targets, in either spelling:
# "node/x.h", <node/x.h>, <uv.h>. Spaces after '#' are allowed.
inc='^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]'

fail=0

# check PATH RULE TARGET-REGEX: report the .c/.h lines under PATH (a folder
# or one file) including TARGET.
check() {
    local dir=$1 rule=$2 target=$3 hit
    [ -e "$dir" ] || return 0
    while IFS= read -r hit; do
        echo "$hit  <- $rule" >&2
        fail=1
    done < <(find "$dir" -name '*.[ch]' -print0 | sort -z |
        xargs -0 -r grep -nHE "${inc}(${target})" || true)
}

for dir in ring quorum gossip proto; do
    check "$dir" "$dir/ is pure: no node/ or client/ header, no libuv, no LMDB" \
        'node/|client/|uv\.h>|lmdb\.h>'
done
check proto "proto/ depends on no other module of ours" 'ring/|quorum/|gossip/'
check client "client/ shares only proto/ with the node: no node/ header" \
    'node/'

core_files="node/core.h node/core.c node/env.h node/storage_op.h node/log.h
    node/log.c node/peer_auth.h node/peer_auth.c"
for f in $core_files; do
    check "$f" "the core is libuv-free (ringkv_core; the simulator links it \
alone)" 'uv\.h>|lmdb\.h>|node/(storage|env_uv|peer|server[a-z_]*|stream)\.h'
done

if [ "$fail" -ne 0 ]; then
    echo "check-includes: include rule violated (see above)" >&2
    exit 1
fi
echo "check-includes: ok"
