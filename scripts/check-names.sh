#!/usr/bin/env bash
# scripts/check-names.sh - the naming rule for functions (docs/design.md,
# "Code conventions"; shared/STYLE.md, "Modules and names").
#
#   public       mod_verb()   declared in mod/mod.h
#   cross-file   mod__verb()  declared in mod/*_internal.h
#   file-local   static verb()  no module prefix, no "__", no trailing "_"
#
# so any name that starts with a module prefix is API or cross-file, and a
# grep for it finds every user. Over the .c files of ring/, quorum/, proto/,
# node/ and client/ this reports:
#   - a static function (definition or prototype) whose name starts with a
#     prefix of its own folder (each header's name, "foo_internal.h" counting
#     as "foo", the folder's name, and the extra API prefixes below) or of
#     proto/ (every module shares proto/'s names: wire_, resp_, rk_);
#   - a static function whose name contains "__" or ends in "_";
#   - a non-static function definition named x__y that no *_internal.h of
#     its folder declares.
# Prints each as file:line: name  <- rule, and exits 1 when there is any.
# Run by scripts/test.sh next to scripts/check-includes.sh.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# API prefixes that are not a header's name.
extra_prefixes() {
    case $1 in
    proto) echo "rk" ;;
    client) echo "rkc" ;;
    esac
}

# prefixes DIR: the folder's name, its headers' names and its extras.
prefixes() {
    local dir=$1 h
    echo "$dir"
    for h in "$dir"/*.h; do
        [ -e "$h" ] || continue
        h=$(basename "$h" .h)
        echo "${h%_internal}"
    done
    extra_prefixes "$dir"
}

# One function name per line, "file:line name static|extern", for every
# function definition or prototype that starts at column 0. A "static T"
# line without "(" takes the next line's name (a long return type on its own
# line).
functions() {
    awk '
    function emit(line, text, kind,   m) {
        if (text ~ /^[[:space:]]*(typedef|extern|return|struct [a-z_0-9]+ \{)/)
            return
        # the first identifier directly followed by "(", before any "="
        sub(/=.*/, "", text)
        if (match(text, /[A-Za-z_][A-Za-z0-9_]*\(/) == 0)
            return
        m = substr(text, RSTART, RLENGTH - 1)
        if (m ~ /^(if|for|while|switch|sizeof|return|defined|__attribute__)$/)
            return
        printf "%s:%d %s %s\n", FILENAME, line, m, kind
    }
    FNR == 1 { pend = "" }
    pend != "" {
        emit(pline, pend " " $0, "static")
        pend = ""
        next
    }
    /^static / {
        if ($0 !~ /[(=;{]/) {
            pend = $0
            pline = FNR
            next
        }
        emit(FNR, $0, "static")
        next
    }
    /^[a-z][a-z0-9_]*[ *]/ && /\(/ && !/;[[:space:]]*$/ && !/^(typedef|extern) / {
        emit(FNR, $0, "extern")
    }
    ' "$@"
}

fail=0
report() {
    echo "$1: $2  <- $3" >&2
    fail=1
}

proto_prefixes=$(prefixes proto)
for dir in ring quorum proto node client; do
    [ -d "$dir" ] || continue
    mapfile -t own < <( (prefixes "$dir"; echo "$proto_prefixes") | sort -u)
    prefix_re="^($(IFS='|'; echo "${own[*]}"))_"
    internal=$(find "$dir" -maxdepth 1 -name '*_internal.h' | sort)
    while read -r where name kind; do
        if [ "$kind" = static ]; then
            if [[ $name == *__* ]]; then
                report "$where" "$name" \
                    "a static function has no \"__\" (that tier is cross-file, in *_internal.h)"
            elif [[ $name == *_ ]]; then
                report "$where" "$name" \
                    "a static function has no trailing \"_\""
            elif [[ $name =~ $prefix_re ]]; then
                report "$where" "$name" \
                    "a static function carries no module prefix (${BASH_REMATCH[1]}_ is API or cross-file)"
            fi
        elif [[ $name == *__* ]]; then
            if [ -z "$internal" ] ||
                ! grep -qwF "$name" $internal; then
                report "$where" "$name" \
                    "not declared in $dir/*_internal.h: an x__y function is cross-file (or make it a plain static)"
            fi
        fi
    done < <(find "$dir" -maxdepth 1 -name '*.c' -print0 | sort -z |
        xargs -0 -r bash -c "$(declare -f functions); functions \"\$@\"" _)
done

if [ "$fail" -ne 0 ]; then
    echo "check-names: naming rule violated (see above)" >&2
    exit 1
fi
echo "check-names: ok"
