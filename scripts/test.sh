#!/usr/bin/env bash
# Runs every test: provisions what the tests need (host packages, Asterisk), builds the
# module, then runs the core unit/property tests and
# the integration tests against a real Asterisk.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/provision.sh"
cargo build
export DEVICEUSER_MODULE="$ROOT/target/debug/libres_deviceuser.so"
lines="$ROOT/target/it-runs/module-log-lines.txt"
rm -f "$lines"
cargo test --workspace --no-fail-fast "$@"

# Security: after the whole suite, no PIN of the sample configuration appears in anything the
# module logged, in any instance (the harness collects the module's lines of every run).
[ -s "$lines" ] || { echo "no module log lines were collected: the integration tests did not run" >&2; exit 1; }
pins=$(sed -n 's/^password *= *\([0-9][0-9]*\)$/\1/p' "$ROOT/res_deviceuser.conf.sample" | sort -u | paste -sd'|')
[ -n "$pins" ] || { echo "no PINs found in the sample configuration" >&2; exit 1; }
# Only the messages are searched: the prefix Asterisk writes (time, level, thread id, call id)
# holds numbers of its own, such as a thread id equal to a PIN.
if sed -E 's/^\[[^]]*\] [A-Z]+(\[[^]]*\])+ //' "$lines" | grep -nwE "$pins" >&2; then
    echo "a configured PIN appears in the module's log lines above" >&2
    exit 1
fi
echo "PIN check: $(wc -l < "$lines") module log lines, none holds a configured PIN ($pins)"
