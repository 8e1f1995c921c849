#!/usr/bin/env bash
# The main job: provision Asterisk, build the module, and start Asterisk in the foreground
# (with a console) loaded with res_deviceuser and the sample configuration. SIP phones can
# register on 127.0.0.1:5060 as 1000, 1001, 1002 (adhoc) or 2010 (fixed), password secret<id>.
#   RUN_DIR    run folder (default: run/default)
#   SIP_PORT   default 5060;  AMI_PORT default 5038
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/provision.sh"
(cd "$ROOT" && cargo build --release)
RUN=${RUN_DIR:-$ROOT/run/default}
"$ROOT/scripts/asterisk.sh" stop "$RUN" 2>/dev/null || true
"$ROOT/scripts/asterisk.sh" mkrun "$RUN" --sip-port "${SIP_PORT:-5060}" --ami-port "${AMI_PORT:-5038}" \
    --module "$ROOT/target/release/libres_deviceuser.so" >/dev/null
echo "Asterisk $(cat "$ROOT/.asterisk/tree/.version") with res_deviceuser; run folder $RUN"
exec "$ROOT/scripts/asterisk.sh" fg "$RUN"
