#!/usr/bin/env bash
# The CLI of the Asterisk that scripts/run.sh started, from another shell:
#   scripts/cli.sh                               a remote console (as `asterisk -r`; leave with exit)
#   scripts/cli.sh deviceuser show bindings      one command, its output, then exit (`asterisk -rx`)
#   RUN_DIR    run folder (default: run/default)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${RUN_DIR:-$ROOT/run/default}
[ -x "$RUN/bin/asterisk" ] || { echo "cli.sh: $RUN is not a run folder: scripts/run.sh makes and starts it" >&2; exit 1; }
[ -S "$RUN/rundir/asterisk.ctl" ] || { echo "cli.sh: no Asterisk is running in $RUN: start it with scripts/run.sh" >&2; exit 1; }
if [ $# -eq 0 ]; then
    exec "$RUN/bin/asterisk" -r -vvv
fi
exec "$RUN/bin/asterisk" -rx "$*"
