#!/usr/bin/env bash
# Runs Asterisk under valgrind (memcheck) and reports invalid reads/writes, uninitialised
# values and leaks whose stacks include res_deviceuser:
#
#   scripts/valgrind.sh            the key flows once -> reliability/valgrind.md
#                                  (+ the raw log in the run folder)
#   scripts/valgrind.sh --suite    the whole integration suite, every Asterisk under
#                                  memcheck -> reliability/valgrind-suite.md
#                                  (+ the raw logs in target/valgrind-suite/)
#
# Flows (tests/storm.rs valgrind_flows): AMI logins/logouts (replace, refusals), DND,
# list actions, functions, CLI commands and completion, device state changes of a bound
# device, a SIP REGISTER and a call that runs UserLogin(), reload (good and broken
# config), unload/load twice, logouts. Asterisk noise is filtered out: only error and
# leak records with a frame in res_deviceuser (or its crates) count.
#
# Suite: `cargo test --workspace --tests -- --test-threads=1` with DEVICEUSER_VALGRIND set,
# so that scripts/asterisk.sh starts every instance (restarts included) under memcheck with
# one vg-<pid>.log each, and the harness scales its waits (DEVICEUSER_VALGRIND_SCALE,
# default 10). Instances killed with SIGKILL by their test leave no leak summary; their
# errors still count.
# Environment: VALGRIND_OPTS_EXTRA adds valgrind options; KEEP=1 keeps the run folder.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
AST=${DEVICEUSER_ASTERISK_DIR:-$ROOT/.asterisk}
TREE=$AST/tree
# shellcheck source=scripts/tree-lib.sh
. "$ROOT/scripts/tree-lib.sh"
tree_paths || exit 1
# shellcheck source=scripts/valgrind-lib.sh
. "$ROOT/scripts/valgrind-lib.sh"

MODE=flows
case ${1:-} in
    "") ;;
    --suite) MODE=suite; shift ;;
    *) echo "usage: scripts/valgrind.sh [--suite [--test NAME]...]" >&2; exit 2 ;;
esac
# --suite with `--test NAME` arguments runs only those test files (cargo's selectors);
# VALGRIND_SUITE_NAME names the run (target/<name>/, reliability/<name>.md).
SELECT=("$@")
for a in "${SELECT[@]}"; do
    case $a in --test) ;; -*) echo "only --test NAME selects test files: $a" >&2; exit 2 ;; esac
done
SUITE_NAME=${VALGRIND_SUITE_NAME:-valgrind-suite}

command -v valgrind >/dev/null || {
    [ "$(id -u)" -eq 0 ] || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
    apt-get install -y -qq --no-install-recommends valgrind >/dev/null
}
"$ROOT/scripts/provision.sh"
# The headers of the provisioned tree, wherever it is.
[ -n "${ASTERISK_INCLUDE_DIR:-}" ] || export ASTERISK_INCLUDE_DIR=$AST/include
cargo build
MODULE=${DEVICEUSER_MODULE:-$ROOT/target/debug/libres_deviceuser.so}
vg_prepare
vg_check

if [ "$MODE" = suite ]; then
    OUT=$ROOT/target/$SUITE_NAME
    rm -rf "$OUT"
    mkdir -p "$OUT/logs"
    # Tests that cannot run under valgrind, with the reason (passed to libtest as --skip).
    SKIP=()
    skip_args=()
    for t in "${SKIP[@]}"; do skip_args+=(--skip "${t%%:*}"); done
    [ ${#SELECT[@]} -gt 0 ] || SELECT=(--workspace --tests)
    cargo test "${SELECT[@]}" --no-run
    echo "[valgrind] the integration suite with every Asterisk under memcheck (logs: $OUT/logs)"
    status=0
    t0=$SECONDS
    DEVICEUSER_MODULE=$MODULE DEVICEUSER_VALGRIND=$OUT/logs \
        cargo test "${SELECT[@]}" --no-fail-fast -- --test-threads=1 "${skip_args[@]}" \
        2>&1 | tee "$OUT/cargo-test.log" || status=1
    duration=$((SECONDS - t0))
    shopt -s nullglob
    logs=("$OUT"/logs/vg-*.log)
    [ ${#logs[@]} -gt 0 ] || { echo "[valgrind] no memcheck log in $OUT/logs: no Asterisk ran under valgrind" >&2; exit 1; }
    skipped=()
    for t in "${SKIP[@]}"; do skipped+=(--skipped "$t"); done
    python3 "$ROOT/reliability/valgrind_filter.py" --suite --tests "$OUT/cargo-test.log" \
        --duration "$duration" "${skipped[@]}" "${logs[@]}" > "$ROOT/reliability/$SUITE_NAME.md" || status=1
    cat "$ROOT/reliability/$SUITE_NAME.md"
    echo "[valgrind] raw logs: $OUT/logs; test output: $OUT/cargo-test.log"
    exit $status
fi

cargo test --test storm --no-run

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SIP_PORT=$(free_port); AMI_PORT=$(free_port)
RUN=$ROOT/target/it-runs/valgrind-$$
rm -rf "$RUN"
"$ROOT/scripts/asterisk.sh" mkrun "$RUN" --sip-port "$SIP_PORT" --ami-port "$AMI_PORT" --module "$MODULE" >/dev/null
# A device whose state can be set from AMI, and the test login extension **<user><pin>.
cat >> "$RUN/etc/res_deviceuser.conf" <<'CONF'

[vg]
type = device
mode = adhoc
dial = Custom:vg/1
description = valgrind
CONF
cat >> "$RUN/etc/extensions.conf" <<'CONF'

[from-devices]
exten => _**XXXX.,1,UserLogin(${EXTEN:2:4},${EXTEN:6})
 same => n,NoOp(UserLogin: ${USERLOGINSTATUS})
 same => n,Hangup()
CONF

VGLOG=$RUN/log/valgrind.log
vg_args "$VGLOG"
# valgrind runs the tree's dynamic loader as the program.
valgrind "${VG_ARGS[@]}" \
    "$LOADER" --library-path "$LIBDIR" "$TREE/usr/sbin/asterisk" \
    -C "$RUN/etc/asterisk.conf" -f -n -g >"$RUN/log/stdout.log" 2>&1 </dev/null &
VGPID=$!
rx() { "$LOADER" --library-path "$LIBDIR" "$TREE/usr/sbin/asterisk" -C "$RUN/etc/asterisk.conf" -rx "$1" 2>/dev/null; }
t0=$SECONDS
until rx 'core waitfullybooted' | grep -q 'fully booted'; do
    kill -0 "$VGPID" 2>/dev/null || { tail -30 "$RUN/log/stdout.log" "$VGLOG" >&2; echo "Asterisk under valgrind exited during boot" >&2; exit 1; }
    [ $((SECONDS - t0)) -lt 600 ] || { kill -9 "$VGPID"; echo "boot under valgrind took over 600 s" >&2; exit 1; }
    sleep 1
done
echo "[valgrind] Asterisk booted under memcheck in $((SECONDS - t0)) s (pid $VGPID)"

status=0
VALGRIND_AMI_PORT=$AMI_PORT VALGRIND_SIP_PORT=$SIP_PORT VALGRIND_RUN=$RUN \
    STORM_OUT="$RUN/log/flows.txt" \
    cargo test --test storm -- --ignored --exact --nocapture valgrind_flows || status=1

echo "[valgrind] stopping Asterisk (leak check follows)"
rx 'core stop now' >/dev/null || kill -TERM "$VGPID" 2>/dev/null || true
for _ in $(seq 1 600); do kill -0 "$VGPID" 2>/dev/null || break; sleep 1; done
kill -0 "$VGPID" 2>/dev/null && { kill -9 "$VGPID"; echo "valgrind did not finish: killed" >&2; status=1; }
wait "$VGPID" 2>/dev/null || true

python3 "$ROOT/reliability/valgrind_filter.py" "$VGLOG" "$RUN/log/flows.txt" > "$ROOT/reliability/valgrind.md" || status=1
cat "$ROOT/reliability/valgrind.md"
echo "[valgrind] raw log: $VGLOG"
exit $status
