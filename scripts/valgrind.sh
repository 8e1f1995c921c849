#!/usr/bin/env bash
# Runs the module's key flows once with Asterisk under valgrind (memcheck) and reports
# invalid reads/writes, uninitialised values and leaks whose stacks include res_deviceuser:
#
#   scripts/valgrind.sh            -> reliability/valgrind.md (+ the raw log in the run folder)
#
# Flows (tests/storm.rs valgrind_flows): AMI logins/logouts (replace, refusals), DND,
# list actions, functions, CLI commands and completion, device state changes of a bound
# device, a SIP REGISTER and a call that runs UserLogin(), reload (good and broken
# config), unload/load twice, logouts. Asterisk noise is filtered out: only error and
# leak records with a frame in res_deviceuser (or its crates) count.
# Environment: VALGRIND_OPTS_EXTRA adds valgrind options; KEEP=1 keeps the run folder.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
AST=${DEVICEUSER_ASTERISK_DIR:-$ROOT/.asterisk}
TREE=$AST/tree
LIBDIR=$TREE/usr/lib/x86_64-linux-gnu

command -v valgrind >/dev/null || {
    [ "$(id -u)" -eq 0 ] || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
    apt-get install -y -qq --no-install-recommends valgrind >/dev/null
}
"$ROOT/scripts/provision.sh"
cargo build
MODULE=${DEVICEUSER_MODULE:-$ROOT/target/debug/libres_deviceuser.so}
cargo test --test storm --no-run

# The tree's dynamic loader is stripped: memcheck needs its symbols (strlen) from the
# matching libc6-dbg of sid, fetched once with the provisioned private apt state.
DBG=$AST/dbg
LIBC_VERSION=$(dpkg-deb -f "$(ls "$AST"/debs/libc6_*_amd64.deb | head -n1)" Version)
if [ ! -d "$DBG/$LIBC_VERSION/usr/lib/debug/.build-id" ]; then
    APTDIR=$AST/apt
    mkdir -p "$DBG"
    (cd "$DBG" && apt-get -o Dir::Etc::SourceList="$APTDIR/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::State::Lists="$APTDIR/lists" -o Dir::Cache="$APTDIR/cache" -o Dir::State::status="$APTDIR/status" \
        -o Debug::NoLocking=1 -o Acquire::Languages=none -o Acquire::Check-Valid-Until=false \
        -o APT::Architecture=amd64 -qq download "libc6-dbg=$LIBC_VERSION" 2>/dev/null)
    dpkg-deb -x "$DBG/libc6-dbg_${LIBC_VERSION#*:}_amd64.deb" "$DBG/$LIBC_VERSION"
fi
# valgrind 3.19 looks for a .gnu_debuglink name under EXTRA/<object's folder>/ only.
EXTRA=$DBG/links
mkdir -p "$EXTRA$LIBDIR"
for f in "$DBG/$LIBC_VERSION"/usr/lib/debug/.build-id/*/*.debug; do
    ln -sfn "$f" "$EXTRA$LIBDIR/$(basename "$f")"
done

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
SUPP=()
[ -f "$ROOT/reliability/valgrind.supp" ] && SUPP=(--suppressions="$ROOT/reliability/valgrind.supp")
# valgrind runs the tree's dynamic loader as the program; --keep-debuginfo keeps the
# symbols of the module after `module unload` dlcloses it.
valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite --track-origins=yes --num-callers=40 --keep-debuginfo=yes \
    --error-limit=no --extra-debuginfo-path="$EXTRA" --log-file="$VGLOG" "${SUPP[@]}" ${VALGRIND_OPTS_EXTRA:-} \
    "$LIBDIR/ld-linux-x86-64.so.2" --library-path "$LIBDIR" "$TREE/usr/sbin/asterisk" \
    -C "$RUN/etc/asterisk.conf" -f -n -g >"$RUN/log/stdout.log" 2>&1 </dev/null &
VGPID=$!
echo "$VGPID" > "$RUN/asterisk.pid"
rx() { "$LIBDIR/ld-linux-x86-64.so.2" --library-path "$LIBDIR" "$TREE/usr/sbin/asterisk" -C "$RUN/etc/asterisk.conf" -rx "$1" 2>/dev/null; }
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
