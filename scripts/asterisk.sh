#!/usr/bin/env bash
# Run folders for the provisioned Asterisk: one folder per instance, with absolute paths,
# its own ports, a module dir of symlinks plus res_deviceuser.so, and working sound links.
#
#   asterisk.sh mkrun RUN [--sip-port N] [--ami-port N] [--module PATH] [--conf-dir DIR]
#   asterisk.sh start RUN        start in the background, wait until fully booted
#   asterisk.sh fg RUN           start in the foreground with a console (the main job)
#   asterisk.sh stop RUN         stop by PID (SIGTERM, then SIGKILL)
#   asterisk.sh cli RUN 'cmd'    run a CLI command (prints its output)
#   asterisk.sh pid RUN          print the PID of the running instance
#
# --conf-dir: a folder whose *.conf files replace or add to the generated ones.
# DEVICEUSER_VALGRIND=DIR: `start` runs Asterisk under valgrind memcheck as
# scripts/valgrind.sh does, logging to DIR/vg-<pid>.log, and waits up to 600 s for the
# boot; `stop` uses `core stop now` and waits up to 600 s for the leak check.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
AST=${DEVICEUSER_ASTERISK_DIR:-$ROOT/.asterisk}
TREE=$AST/tree
LIBDIR=$TREE/usr/lib/x86_64-linux-gnu

die() { printf '[asterisk] ERROR: %s\n' "$*" >&2; exit 1; }

VALGRIND_DIR=${DEVICEUSER_VALGRIND:-}
if [ -n "$VALGRIND_DIR" ]; then
    # shellcheck source=scripts/valgrind-lib.sh
    . "$ROOT/scripts/valgrind-lib.sh"
fi

asterisk_cmd() { # RUN args...
    local run=$1; shift
    exec_or_run "$LIBDIR/ld-linux-x86-64.so.2" --library-path "$LIBDIR" \
        "$TREE/usr/sbin/asterisk" -C "$run/etc/asterisk.conf" "$@"
}
exec_or_run() { "$@"; }

mkrun() {
    local run=$1; shift
    local sip_port=5060 ami_port=5038 module="" conf_dir=""
    while [ $# -gt 0 ]; do
        case $1 in
            --sip-port) sip_port=$2; shift 2 ;;
            --ami-port) ami_port=$2; shift 2 ;;
            --module) module=$2; shift 2 ;;
            --conf-dir) conf_dir=$2; shift 2 ;;
            *) die "mkrun: unknown option $1" ;;
        esac
    done
    [ -x "$TREE/usr/sbin/asterisk" ] || die "no provisioned Asterisk in $TREE: run scripts/provision.sh"
    mkdir -p "$run"
    run=$(cd "$run" && pwd)
    mkdir -p "$run"/{etc,modules,data,lib,spool,rundir,log,log/cdr-csv,cache,keys}
    # Module dir: every module of the tree, plus ours.
    find "$run/modules" -maxdepth 1 -type l -delete
    for m in "$LIBDIR"/asterisk/modules/*.so; do ln -s "$m" "$run/modules/"; done
    if [ -n "$module" ]; then
        [ -f "$module" ] || die "module $module does not exist (build it first)"
        rm -f "$run/modules/res_deviceuser.so"
        cp "$module" "$run/modules/res_deviceuser.so"
    fi
    # Data dir: the tree's data, with sound links that work outside a chroot.
    for e in "$TREE"/usr/share/asterisk/*; do
        case $(basename "$e") in sounds|documentation) continue ;; esac
        ln -sfn "$e" "$run/data/"
    done
    mkdir -p "$run/data/sounds" "$run/data/documentation/thirdparty"
    ln -sfn "$TREE/usr/share/asterisk/sounds/en_US_f_Allison" "$run/data/sounds/en"
    ln -sfn "$TREE/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU" "$run/data/sounds/ru"
    for f in "$TREE"/usr/share/asterisk/documentation/*; do
        [ "$(basename "$f")" = thirdparty ] || ln -sfn "$f" "$run/data/documentation/"
    done
    [ -f "$ROOT/documentation/res_deviceuser-en_US.xml" ] && \
        cp "$ROOT/documentation/res_deviceuser-en_US.xml" "$run/data/documentation/thirdparty/"

    cat > "$run/etc/asterisk.conf" <<CONF
[directories]
astetcdir => $run/etc
astmoddir => $run/modules
astvarlibdir => $run/lib
astdbdir => $run/lib
astkeydir => $run/keys
astdatadir => $run/data
astagidir => $run/data/agi-bin
astspooldir => $run/spool
astrundir => $run/rundir
astlogdir => $run/log
astsbindir => $TREE/usr/sbin
astcachedir => $run/cache

[options]
documentation_language = en_US
runuser =
rungroup =
; More options of this instance (systemname, entityid), if the file exists.
#tryinclude "$run/etc/asterisk-options.conf"
CONF
    cat > "$run/etc/modules.conf" <<'CONF'
[modules]
autoload = yes
; No audio hardware here.
noload = chan_alsa.so
noload = chan_console.so
noload = chan_oss.so
; Listeners on fixed ports would clash between instances running side by side.
noload = chan_iax2.so
noload = chan_unistim.so
noload = chan_motif.so
noload = pbx_dundi.so
noload = res_xmpp.so
noload = res_hep.so
noload = res_hep_pjsip.so
noload = res_hep_rtcp.so
noload = res_snmp.so
noload = res_statsd.so
noload = res_prometheus.so
noload = res_phoneprov.so
noload = res_stun_monitor.so
noload = cdr_radius.so
noload = cel_radius.so
; app_voicemail and app_voicemail_odbc clash: keep the file-based one.
noload = app_voicemail_odbc.so
noload = pbx_lua.so
noload = pbx_ael.so
CONF
    cat > "$run/etc/logger.conf" <<'CONF'
[general]
dateformat = %F %T.%3q
[logfiles]
messages.log => notice,warning,error,verbose,security
full.log => notice,warning,error,debug,verbose,dtmf,security
console => notice,warning,error
CONF
    cat > "$run/etc/manager.conf" <<CONF
[general]
enabled = yes
port = $ami_port
bindaddr = 127.0.0.1

[deviceuser]
secret = deviceuser
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = all

; A manager user without the agent class, to check permissions.
[readonly]
secret = readonly
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = system,call,log,verbose,command,reporting
write = system,command,reporting
CONF
    cat > "$run/etc/cdr.conf" <<'CONF'
[general]
enable = yes
[csv]
usegmtime = yes
loguniqueid = yes
loguserfield = yes
accountlogs = no
CONF
    cat > "$run/etc/cli.conf" <<'CONF'
[startup_commands]
CONF
    printf '[general]\n' > "$run/etc/voicemail.conf"
    # The sample configuration of the project, with this instance's SIP port.
    cp "$ROOT/res_deviceuser.conf.sample" "$run/etc/res_deviceuser.conf"
    for f in "$ROOT"/samples/*.conf; do
        [ -f "$f" ] && sed "s/127\.0\.0\.1:5060/127.0.0.1:$sip_port/g" "$f" > "$run/etc/$(basename "$f")"
    done
    if [ -n "$conf_dir" ]; then
        for f in "$conf_dir"/*.conf; do
            [ -f "$f" ] && sed "s/127\.0\.0\.1:5060/127.0.0.1:$sip_port/g" "$f" > "$run/etc/$(basename "$f")"
        done
    fi
    printf 'SIP_PORT=%s\nAMI_PORT=%s\n' "$sip_port" "$ami_port" > "$run/ports"
    echo "$run"
}

pid_of() {
    local run=$1 f=$1/asterisk.pid
    [ -f "$f" ] || return 1
    local pid; pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

start() {
    local run; run=$(cd "$1" && pwd)
    [ -f "$run/etc/asterisk.conf" ] || die "$run is not a run folder (use mkrun)"
    if pid_of "$run" >/dev/null; then die "already running in $run (pid $(pid_of "$run"))"; fi
    local wrapper=() limit=30 pause=0.1
    if [ -n "$VALGRIND_DIR" ]; then
        vg_check || die "cannot run Asterisk under valgrind"
        mkdir -p "$VALGRIND_DIR" || die "cannot create $VALGRIND_DIR"
        vg_args "$(cd "$VALGRIND_DIR" && pwd)/vg-%p.log"
        wrapper=(valgrind "${VG_ARGS[@]}")
        limit=600 pause=1
    fi
    # The dynamic loader's PID is Asterisk's PID (valgrind's when under valgrind, which
    # runs the loader as its program): exec keeps it.
    ( exec "${wrapper[@]}" "$LIBDIR/ld-linux-x86-64.so.2" --library-path "$LIBDIR" "$TREE/usr/sbin/asterisk" \
        -C "$run/etc/asterisk.conf" -f -n -g >"$run/log/stdout.log" 2>&1 </dev/null ) &
    local pid=$!
    echo "$pid" > "$run/asterisk.pid"
    local deadline=$((SECONDS + limit))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$run/log/stdout.log" >&2 || true
            die "Asterisk exited during boot (log: $run/log)"
        fi
        if [ -S "$run/rundir/asterisk.ctl" ] && \
            asterisk_cmd "$run" -rx 'core waitfullybooted' 2>/dev/null | grep -q 'fully booted'; then
            break
        fi
        [ $SECONDS -lt $deadline ] || { kill -9 "$pid" 2>/dev/null || true; die "Asterisk did not boot within $limit s"; }
        sleep "$pause"
    done
    echo "$pid"
}

stop() {
    local run=$1 pid
    pid=$(pid_of "$run") || return 0
    if [ -n "$VALGRIND_DIR" ]; then
        # memcheck's leak check runs at exit: give it time.
        asterisk_cmd "$(cd "$run" && pwd)" -rx 'core stop now' >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || { rm -f "$run/asterisk.pid"; return 0; }; sleep 1; done
        echo "[asterisk] Asterisk $pid under valgrind did not exit within 600 s: SIGKILL" >&2
    else
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || { rm -f "$run/asterisk.pid"; return 0; }; sleep 0.05; done
    fi
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$run/asterisk.pid"
}

cmd=${1:-}; [ $# -gt 0 ] && shift
case $cmd in
    mkrun) [ $# -ge 1 ] || die "usage: mkrun RUN [options]"; mkrun "$@" ;;
    start) [ $# -eq 1 ] || die "usage: start RUN"; start "$1" ;;
    fg)
        [ $# -eq 1 ] || die "usage: fg RUN"
        run=$(cd "$1" && pwd)
        exec "$LIBDIR/ld-linux-x86-64.so.2" --library-path "$LIBDIR" "$TREE/usr/sbin/asterisk" \
            -C "$run/etc/asterisk.conf" -f -c -vvv -g ;;
    stop) [ $# -eq 1 ] || die "usage: stop RUN"; stop "$1" ;;
    cli)
        [ $# -eq 2 ] || die "usage: cli RUN 'command'"
        [ -d "$1" ] || die "no run folder $1"
        asterisk_cmd "$(cd "$1" && pwd)" -rx "$2" ;;
    pid) [ $# -eq 1 ] || die "usage: pid RUN"; pid_of "$1" ;;
    *) die "usage: asterisk.sh mkrun|start|fg|stop|cli|pid RUN ..." ;;
esac
