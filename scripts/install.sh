#!/usr/bin/env bash
# Installs a built res_deviceuser.so into an Asterisk installation.
#   install.sh [--moddir DIR] [--etcdir DIR] [--docdir DIR] [--profile release|debug]
# Defaults: Debian's layout (/usr/lib/x86_64-linux-gnu/asterisk/modules, /etc/asterisk,
# /usr/share/asterisk/documentation/thirdparty). The sample config is installed as
# res_deviceuser.conf only if none exists yet (always as res_deviceuser.conf.sample).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
moddir=/usr/lib/x86_64-linux-gnu/asterisk/modules
etcdir=/etc/asterisk
docdir=/usr/share/asterisk/documentation/thirdparty
profile=release
while [ $# -gt 0 ]; do
    case $1 in
        --moddir) moddir=$2; shift 2 ;;
        --etcdir) etcdir=$2; shift 2 ;;
        --docdir) docdir=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
so=$ROOT/target/$profile/libres_deviceuser.so
[ -f "$so" ] || { echo "install.sh: $so not built (cargo build --$profile)" >&2; exit 1; }
install -d "$moddir" "$etcdir" "$docdir"
install -m 0755 "$so" "$moddir/res_deviceuser.so"
install -m 0644 "$ROOT/res_deviceuser.conf.sample" "$etcdir/res_deviceuser.conf.sample"
[ -e "$etcdir/res_deviceuser.conf" ] || install -m 0640 "$ROOT/res_deviceuser.conf.sample" "$etcdir/res_deviceuser.conf"
install -m 0644 "$ROOT/documentation/res_deviceuser-en_US.xml" "$docdir/res_deviceuser-en_US.xml"
echo "installed res_deviceuser.so into $moddir, config into $etcdir, docs into $docdir"
