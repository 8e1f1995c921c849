#!/usr/bin/env bash
# docs/benchmarks.md and docs/reliability.md end with a copy of the result file their runs
# write (bench/results.md by scripts/bench.sh, reliability/results.md); this refreshes the
# copies. Everything above the marker line is the page's own text.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
copy() { # page result
    local page=$ROOT/$1 result=$ROOT/$2
    local marker="<!-- Below: a copy of $2, written by scripts/docs.sh. Edit above this line. -->"
    [ -f "$result" ] || { echo "docs.sh: no $2" >&2; exit 1; }
    local head
    head=$(awk -v m="$marker" '$0 == m { exit } { print }' "$page" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}')
    { printf '%s\n\n%s\n\n' "$head" "$marker"; cat "$result"; } > "$page.tmp"
    mv "$page.tmp" "$page"
}
copy docs/benchmarks.md bench/results.md
copy docs/reliability.md reliability/results.md
