#!/usr/bin/env bash
# The main job: provision Asterisk, build the module, and start Asterisk in the foreground
# (with a console) loaded with res_deviceuser and the sample configuration. SIP phones can
# register on 127.0.0.1:5060 as 1000, 1001, 1002 (adhoc) or 2010 (fixed), password secret<id>.
# The first run takes several minutes (it downloads and unpacks Asterisk); later ones seconds.
#   RUN_DIR    run folder (default: run/default). The files of its etc/ are the
#              administrator's: written from the samples only when missing, never overwritten.
#   SIP_PORT   default 5060;  AMI_PORT default 5038
#   RUN_BIND   the address SIP listens on: default 127.0.0.1 (this machine only);
#              0.0.0.0 lets phones on the network register (see README, "Connecting real phones")
# From a second shell: scripts/cli.sh (a remote console) or scripts/cli.sh 'command'.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AST=${DEVICEUSER_ASTERISK_DIR:-$ROOT/.asterisk}
[ -f "$AST/tree/.version" ] || echo "First run: downloading Asterisk and building the module take several minutes."
"$ROOT/scripts/provision.sh"
(cd "$ROOT" && cargo build --release)
RUN=${RUN_DIR:-$ROOT/run/default}
"$ROOT/scripts/asterisk.sh" stop "$RUN" 2>/dev/null || true
"$ROOT/scripts/asterisk.sh" mkrun "$RUN" --sip-port "${SIP_PORT:-5060}" --ami-port "${AMI_PORT:-5038}" \
    --bind "${RUN_BIND:-127.0.0.1}" --module "$ROOT/target/release/libres_deviceuser.so" >/dev/null
echo "Asterisk $(cat "$AST/tree/.version") with res_deviceuser; run folder $RUN"
echo "SIP on ${RUN_BIND:-127.0.0.1}:${SIP_PORT:-5060}, AMI on 127.0.0.1:${AMI_PORT:-5038}; from another shell: scripts/cli.sh"
exec "$ROOT/scripts/asterisk.sh" fg "$RUN"
