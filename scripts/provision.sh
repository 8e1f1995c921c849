#!/usr/bin/env bash
# Provision everything res_deviceuser needs to build and to be tested on a real Asterisk:
#   - host packages (libclang-dev for bindgen, sip-tester and baresip-core as SIP peers,
#     chromium and chromium-driver for the console's browser tests,
#     postgresql for the tests of storage = realtime, which start servers of their own: the
#     package's default cluster is not created);
#   - Debian sid's asterisk, asterisk-dev and core sound packs (en, ru), unpacked into
#     .asterisk/tree (git-ignored), with the debs cached in .asterisk/debs.
# Idempotent: a second run with everything in place does no network work.
# Environment: DEBIAN_MIRROR overrides the Debian mirror (default: the host's own mirror).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
AST=${DEVICEUSER_ASTERISK_DIR:-$ROOT/.asterisk}
TREE=$AST/tree
DEBS=$AST/debs
APTDIR=$AST/apt

log() { printf '[provision] %s\n' "$*" >&2; }
die() { printf '[provision] ERROR: %s\n' "$*" >&2; exit 1; }

host_packages() {
    # chromium and chromium-driver: the console's browser tests (headless, through WebDriver).
    local want=(libclang-dev sip-tester baresip-core postgresql chromium chromium-driver) missing=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing host packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    if printf '%s\n' "${missing[@]}" | grep -qx postgresql && [ ! -d /etc/postgresql-common ]; then
        # The tests start PostgreSQL servers of their own: no system cluster is wanted.
        $sudo mkdir -p /etc/postgresql-common/createcluster.d
        echo 'create_main_cluster = false' | $sudo tee /etc/postgresql-common/createcluster.d/res-deviceuser.conf >/dev/null
    fi
    $sudo apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || die "cannot install host packages: ${missing[*]}"
    for bin in /usr/bin/chromium /usr/bin/chromedriver; do
        [ -x "$bin" ] || die "$bin is missing after installing chromium and chromium-driver"
    done
}

host_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local m=""
    m=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1 | awk '{print $2}') || true
    if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
        m=$(grep -E '^deb ' /etc/apt/sources.list | grep -v security | head -n1 | sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1}') || true
    fi
    [ -n "$m" ] || die "cannot find the host's Debian mirror; set DEBIAN_MIRROR"
    echo "$m"
}

apt_opts() {
    echo "-o Dir::Etc::SourceList=$APTDIR/sources.list -o Dir::Etc::SourceParts=/dev/null \
 -o Dir::State::Lists=$APTDIR/lists -o Dir::Cache=$APTDIR/cache -o Dir::State::status=$APTDIR/status \
 -o APT::Install-Recommends=false -o Debug::NoLocking=1 -o Acquire::Languages=none \
 -o Acquire::Check-Valid-Until=false -o APT::Architecture=$(dpkg --print-architecture) -o Dir::Cache::archives=$DEBS"
}

fetch_debs() {
    if [ -f "$DEBS/.complete" ]; then return 0; fi
    mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache" "$DEBS/partial"
    : > "$APTDIR/status"
    local mirror; mirror=$(host_mirror)
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror sid main" > "$APTDIR/sources.list"
    log "fetching Asterisk from Debian sid ($mirror)"
    # shellcheck disable=SC2046
    apt-get $(apt_opts) update -qq || die "apt-get update of the sid index failed"
    # shellcheck disable=SC2046
    apt-get $(apt_opts) -y -qq --download-only install asterisk asterisk-core-sounds-en asterisk-core-sounds-ru \
        >/dev/null || die "downloading asterisk debs failed"
    # shellcheck disable=SC2046
    (cd "$DEBS" && apt-get $(apt_opts) -qq download asterisk-dev asterisk-core-sounds-en-gsm asterisk-core-sounds-ru-gsm) \
        || die "downloading asterisk-dev failed"
    ls "$DEBS"/asterisk_*.deb >/dev/null 2>&1 || die "no asterisk deb was downloaded"
    touch "$DEBS/.complete"
}

unpack() {
    local version; version=$(dpkg-deb -f "$(ls "$DEBS"/asterisk_*.deb | head -n1)" Version)
    if [ -f "$TREE/.version" ] && [ "$(cat "$TREE/.version")" = "$version" ]; then return 0; fi
    log "unpacking $(ls "$DEBS"/*.deb | wc -l) debs into $TREE"
    rm -rf "$TREE.tmp"; mkdir -p "$TREE.tmp"
    for d in "$DEBS"/*.deb; do dpkg-deb -x "$d" "$TREE.tmp" || die "cannot unpack $d"; done
    [ -x "$TREE.tmp/usr/sbin/asterisk" ] || die "unpacked tree has no usr/sbin/asterisk"
    [ -f "$TREE.tmp/usr/include/asterisk.h" ] || die "unpacked tree has no asterisk.h (asterisk-dev)"
    echo "$version" > "$TREE.tmp/.version"
    rm -rf "$TREE"; mv "$TREE.tmp" "$TREE"
}

# An include folder holding only asterisk.h and asterisk/: the tree's usr/include also
# carries sid's libc headers, which must not shadow the host's.
include_dir() {
    local inc=$AST/include
    mkdir -p "$inc"
    local name
    for name in asterisk asterisk.h; do
        [ "$(readlink "$inc/$name" 2>/dev/null)" = "$TREE/usr/include/$name" ] || \
            ln -sfn "$TREE/usr/include/$name" "$inc/$name"
    done
}

host_packages
fetch_debs
unpack
include_dir
log "Asterisk $(cat "$TREE/.version") ready in $TREE"
