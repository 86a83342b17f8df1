#!/usr/bin/env bash
# scripts/check-includes.sh - the include rule: arrows point inward.
#
#   ring/, quorum/, gossip/, proto/  include no node/ or client/ header and
#                                    neither <uv.h> nor <lmdb.h>
#   proto/                           includes no other module of ours either
#                                    (ring/, quorum/, gossip/)
#   client/                          includes no node/ header
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

# check DIR RULE TARGET-REGEX: report DIR's .c/.h lines including TARGET.
check() {
    local dir=$1 rule=$2 target=$3 hit
    [ -d "$dir" ] || return 0
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

if [ "$fail" -ne 0 ]; then
    echo "check-includes: include rule violated (see above)" >&2
    exit 1
fi
echo "check-includes: ok"
