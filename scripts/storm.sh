#!/usr/bin/env bash
# Reliability runs on a real Asterisk (tests/storm.rs, ignored by the normal cargo test):
#
#   scripts/storm.sh [SECONDS]          load storm with live consistency checks (default 300 s)
#   scripts/storm.sh --crash [KILLS]    kill -9 at random points during the storm (default 10)
#   scripts/storm.sh --all [SECONDS]    both
#
# Summaries go to reliability/storm-summary.md and reliability/crash-summary.md; the run
# folders (logs, AstDB) stay under target/it-runs/. STORM_SEED repeats a run;
# STORM_OP_DELAY_MS slows the writers; DEVICEUSER_MODULE picks another build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

mode=storm
case ${1:-} in
    --crash) mode=crash; shift ;;
    --all) mode=all; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
esac

"$ROOT/scripts/provision.sh"
cargo build
export DEVICEUSER_MODULE=${DEVICEUSER_MODULE:-$ROOT/target/debug/libres_deviceuser.so}
cargo test --test storm --no-run

run() { # test-name summary-file
    STORM_OUT="$ROOT/reliability/$2" cargo test --test storm -- --ignored --exact --nocapture "$1"
}

status=0
if [ "$mode" = storm ] || [ "$mode" = all ]; then
    STORM_SECONDS=${1:-${STORM_SECONDS:-300}} run storm storm-summary.md || status=1
fi
if [ "$mode" = crash ] || [ "$mode" = all ]; then
    kills=${STORM_KILLS:-10}
    [ "$mode" = crash ] && kills=${1:-$kills}
    STORM_KILLS=$kills run crash crash-summary.md || status=1
fi
exit $status
