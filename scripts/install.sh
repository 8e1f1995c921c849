#!/usr/bin/env bash
# Installs a built res_deviceuser.so into an Asterisk installation.
#   install.sh [--asterisk CMD] [--root DIR] [--destdir DIR]
#              [--moddir DIR] [--etcdir DIR] [--docdir DIR] [--profile release|debug] [--module FILE]
#
# Where the files go, for each folder not given as an option:
#   1. what the running Asterisk says (`CMD -rx 'core show settings'`: its module,
#      configuration and data directories). CMD defaults to `asterisk`; give
#      `--asterisk 'asterisk -C /etc/asterisk/asterisk.conf'` or a run folder's bin/asterisk.
#   2. with no running Asterisk (or with --root DIR, an installation that is not running,
#      default /): the installation's own folders: the `asterisk/modules` folder that holds
#      Asterisk's modules under usr/lib*, usr/local/lib* (so multiarch, lib64 and /usr/local
#      layouts need no option), etc/asterisk, and the data folder that holds Asterisk's
#      documentation/ (usr/share/asterisk, var/lib/asterisk, ...).
# --destdir DIR puts the files under DIR instead of the installation (as packagers' DESTDIR).
# The module is target/<profile>/libres_deviceuser.so (default release), or --module FILE.
# The sample config is installed as res_deviceuser.conf only if none exists (always as
# res_deviceuser.conf.sample): the administrator's configuration is never overwritten.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "install.sh: $*" >&2; exit 1; }

moddir="" etcdir="" docdir="" profile=release module="" root="" destdir="" asterisk=""
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || die "option $1 needs a value"
    case $1 in
        --moddir) moddir=$2 ;;
        --etcdir) etcdir=$2 ;;
        --docdir) docdir=$2 ;;
        --profile) profile=$2 ;;
        --module) module=$2 ;;
        --root) root=$2 ;;
        --destdir) destdir=$2 ;;
        --asterisk) asterisk=$2 ;;
        *) die "unknown option $1" ;;
    esac
    shift 2
done
[ -n "$module" ] || module=$ROOT/target/$profile/libres_deviceuser.so
[ -f "$module" ] || die "$module not built (cargo build --$profile)"

# A folder of `core show settings`: "  Module directory:   /usr/lib/.../modules".
setting() { sed -n "s/^ *$1: *//p" <<<"$settings" | head -n1; }

settings=""
if [ -z "$root" ] && { [ -z "$moddir" ] || [ -z "$etcdir" ] || [ -z "$docdir" ]; }; then
    cmd=${asterisk:-asterisk}
    read -r -a cmd_words <<<"$cmd"
    if command -v "${cmd_words[0]}" >/dev/null 2>&1; then
        settings=$("${cmd_words[@]}" -rx 'core show settings' 2>/dev/null) || settings=""
    fi
    if [ -z "$(setting 'Module directory')" ]; then
        [ -z "$asterisk" ] || die "'$asterisk -rx \"core show settings\"' did not answer: is that Asterisk running?"
        settings=""
    fi
fi

if [ -n "$settings" ]; then
    from="the running Asterisk"
    [ -n "$moddir" ] || moddir=$(setting 'Module directory')
    [ -n "$etcdir" ] || etcdir=$(setting 'Configuration directory')
    [ -n "$etcdir" ] || etcdir=$(dirname "$(setting 'Configuration file')")
    [ -n "$docdir" ] || docdir=$(setting 'Data directory')/documentation/thirdparty
else
    from="the installation under ${root:-/}"
    base=${root%/}
    [ -d "${base:-/}" ] || die "--root $root is not a folder"
    if [ -z "$moddir" ]; then
        found=()
        for lib in "$base"/usr/lib "$base"/usr/lib64 "$base"/usr/local/lib "$base"/usr/local/lib64; do
            [ -d "$lib" ] || continue
            while IFS= read -r d; do
                compgen -G "$d/*.so" >/dev/null && found+=("$d")
            done < <(find "$lib" -maxdepth 3 -type d -path '*/asterisk/modules' 2>/dev/null)
        done
        [ ${#found[@]} -gt 0 ] || die "no Asterisk modules folder (…/asterisk/modules) under ${root:-/}usr/lib*: is Asterisk installed? Give --moddir"
        [ ${#found[@]} -eq 1 ] || die "several Asterisk modules folders: ${found[*]}; give --moddir"
        moddir=${found[0]#"$base"}
    fi
    if [ -z "$docdir" ]; then
        for d in /usr/share/asterisk /var/lib/asterisk /usr/local/share/asterisk /usr/local/var/lib/asterisk; do
            if compgen -G "$base$d/documentation/core-*.xml" >/dev/null; then docdir=$d/documentation/thirdparty; break; fi
        done
        [ -n "$docdir" ] || die "no Asterisk documentation folder (…/asterisk/documentation/core-*.xml) under ${root:-/}: give --docdir"
    fi
    [ -n "$etcdir" ] || etcdir=/etc/asterisk
    # Folders found under --root are installed into it, unless --destdir says otherwise.
    [ -n "$destdir" ] || destdir=$base
fi

stage=${destdir%/}
install -d "$stage$moddir" "$stage$etcdir" "$stage$docdir"
install -m 0755 "$module" "$stage$moddir/res_deviceuser.so"
install -m 0644 "$ROOT/res_deviceuser.conf.sample" "$stage$etcdir/res_deviceuser.conf.sample"
[ -e "$stage$etcdir/res_deviceuser.conf" ] || install -m 0640 "$ROOT/res_deviceuser.conf.sample" "$stage$etcdir/res_deviceuser.conf"
install -m 0644 "$ROOT/documentation/res_deviceuser-en_US.xml" "$stage$docdir/res_deviceuser-en_US.xml"
echo "folders from $from"
echo "installed res_deviceuser.so into $stage$moddir, config into $stage$etcdir, docs into $stage$docdir"
