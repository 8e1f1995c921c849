#!/usr/bin/env bash
# Run folders for the provisioned Asterisk: one folder per instance, with absolute paths,
# its own ports, a module dir of symlinks plus res_deviceuser.so, and working sound links.
#
#   asterisk.sh mkrun RUN [--sip-port N] [--ami-port N] [--bind ADDR] [--module PATH] [--conf-dir DIR]
#   asterisk.sh start RUN        start in the background, wait until fully booted
#   asterisk.sh fg RUN           start in the foreground with a console (the main job)
#   asterisk.sh stop RUN         stop the instance of RUN, whichever command started it
#   asterisk.sh cli RUN 'cmd'    run a CLI command (prints its output)
#   asterisk.sh pid RUN          print the PID of the running instance
#
# The files of RUN/etc are the administrator's: mkrun writes each of them only when it is
# missing (delete one to get the shipped version back). At every call it rewrites only what
# it owns:
#   etc/asterisk.conf          the folder's paths
#   etc/pjsip_transport.conf   the SIP transport: --bind (default 127.0.0.1) and --sip-port
#   etc/manager_general.conf   the AMI listener: --ami-port on 127.0.0.1
#   bin/asterisk               Asterisk through the tree's own loader and libraries (what
#                              `core restart` re-executes), reading etc/asterisk.conf
#   modules/, data/            links into the provisioned tree, plus res_deviceuser.so
#   ports                      SIP_PORT and AMI_PORT of the folder
# --conf-dir: a folder whose *.conf files replace or add to those of etc/ (always written).
# DEVICEUSER_BOOT_TIMEOUT=S: how long `start` waits for the boot (30 s; tens of thousands of
# hints take Asterisk longer).
# The PID file is Asterisk's own, RUN/rundir/asterisk.pid, however Asterisk was started.
# DEVICEUSER_VALGRIND=DIR: `start` runs Asterisk under valgrind memcheck as
# scripts/valgrind.sh does, logging to DIR/vg-<pid>.log, and waits up to 600 s for the
# boot; `stop` uses `core stop now` and waits up to 600 s for the leak check.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
AST=${DEVICEUSER_ASTERISK_DIR:-$ROOT/.asterisk}
TREE=$AST/tree

die() { printf '[asterisk] ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/tree-lib.sh
. "$ROOT/scripts/tree-lib.sh"
# LIBDIR and LOADER; the commands that run Asterisk check them (stop may run before provisioning).
LIBDIR=; LOADER=
tree_paths 2>/dev/null || true
need_tree() { [ -n "$LOADER" ] || tree_paths || die "the provisioned Asterisk in $TREE is incomplete"; }

VALGRIND_DIR=${DEVICEUSER_VALGRIND:-}
if [ -n "$VALGRIND_DIR" ]; then
    # shellcheck source=scripts/valgrind-lib.sh
    . "$ROOT/scripts/valgrind-lib.sh"
fi

asterisk_cmd() { # RUN args...
    local run=$1; shift
    need_tree
    exec_or_run "$LOADER" --library-path "$LIBDIR" \
        "$TREE/usr/sbin/asterisk" -C "$run/etc/asterisk.conf" "$@"
}
exec_or_run() { "$@"; }

# Modules of the tree that decline to load, or log errors, without a configuration of their
# own, and that nothing in a run folder uses. An administrator who wants one removes its line
# and adds its configuration file.
UNCONFIGURED_MODULES="
app_agent_pool app_alarmreceiver app_amd app_confbridge app_page app_festival app_followme
app_minivm app_adsiprog app_getcpeid res_adsi
res_parking res_pjsip_notify res_pjsip_phoneprov_provider
res_calendar res_calendar_caldav res_calendar_ews res_calendar_exchange res_calendar_icalendar
res_odbc res_odbc_transaction res_config_odbc func_odbc cdr_odbc cel_odbc cdr_adaptive_odbc
res_config_pgsql cdr_pgsql cel_pgsql res_config_ldap res_config_sqlite3
cdr_tds cel_tds cdr_sqlite3_custom cel_sqlite3_custom cdr_custom cel_custom cdr_manager
"
# Configuration files whose modules load with an empty one but log an ERROR when it is
# missing; the run folder gets them empty (the options are in the tree's etc/asterisk/).
EMPTY_CONFIGS="acl aeap ari ccss chan_websocket cli_aliases features geolocation pjproject
pjsip_wizard res_http_media_cache stasis stir_shaken udptl websocket_client"

# write_once FILE: writes stdin to FILE unless FILE exists (the administrator's copy wins).
write_once() {
    if [ -e "$1" ]; then cat >/dev/null; else cat >"$1"; fi
}

mkrun() {
    local run=$1; shift
    local sip_port=5060 ami_port=5038 bind=127.0.0.1 module="" conf_dir=""
    while [ $# -gt 0 ]; do
        case $1 in
            --sip-port) sip_port=$2; shift 2 ;;
            --ami-port) ami_port=$2; shift 2 ;;
            --bind) bind=$2; shift 2 ;;
            --module) module=$2; shift 2 ;;
            --conf-dir) conf_dir=$2; shift 2 ;;
            *) die "mkrun: unknown option $1" ;;
        esac
    done
    [ -x "$TREE/usr/sbin/asterisk" ] || die "no provisioned Asterisk in $TREE: run scripts/provision.sh"
    need_tree
    case $sip_port in ''|*[!0-9]*) die "mkrun: SIP port '$sip_port' is not a number" ;; esac
    case $ami_port in ''|*[!0-9]*) die "mkrun: AMI port '$ami_port' is not a number" ;; esac
    case $bind in ''|*[!0-9A-Fa-f.:]*) die "mkrun: bind address '$bind' is not an IPv4 or IPv6 address" ;; esac
    mkdir -p "$run"
    run=$(cd "$run" && pwd)
    mkdir -p "$run"/{bin,etc,modules,data,lib,spool,rundir,log,log/cdr-csv,cache,keys}
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

    # Asterisk re-executes its argv[0] on `core restart`: the loader makes that this script,
    # so the restarted process gets the tree's loader and libraries again.
    cat > "$run/bin/asterisk" <<SH
#!/bin/sh
# Asterisk of the run folder $run, written by scripts/asterisk.sh.
case " \$* " in
    *" -C "*) ;;
    *) set -- -C "$run/etc/asterisk.conf" "\$@" ;;
esac
exec "$LOADER" --library-path "$LIBDIR" --argv0 "$run/bin/asterisk" \\
    "$TREE/usr/sbin/asterisk" "\$@"
SH
    chmod 0755 "$run/bin/asterisk"

    cat > "$run/etc/asterisk.conf" <<CONF
; Written by scripts/asterisk.sh at every start: the paths of this run folder.
[directories]
astetcdir => $run/etc
astmoddir => $run/modules
astvarlibdir => $run/lib
astdbdir => $run/lib
astkeydir => $run
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
    local addr=$bind
    case $bind in *:*) addr="[$bind]" ;; esac
    cat > "$run/etc/pjsip_transport.conf" <<CONF
; Written by scripts/asterisk.sh at every start from RUN_BIND and SIP_PORT;
; pjsip.conf includes it. Edit pjsip.conf, not this file.
[transport-udp]
type=transport
protocol=udp
bind=$addr:$sip_port
CONF
    cat > "$run/etc/manager_general.conf" <<CONF
; Written by scripts/asterisk.sh at every start from AMI_PORT; manager.conf includes it
; in its [general] section. Edit manager.conf, not this file.
port = $ami_port
bindaddr = 127.0.0.1
CONF

    {
        cat <<'CONF'
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
; Not configured in this folder (they would only log errors at boot). To use one, delete
; its line and add its configuration file (samples in the Asterisk tree's etc/asterisk/).
CONF
        for m in $UNCONFIGURED_MODULES; do echo "noload = $m.so"; done
    } | write_once "$run/etc/modules.conf"
    write_once "$run/etc/logger.conf" <<'CONF'
[general]
dateformat = %F %T.%3q
[logfiles]
; No "dtmf" level anywhere: it would write every key pressed, the PINs typed at the
; UserLogin prompts included.
messages.log => notice,warning,error,verbose,security
full.log => notice,warning,error,debug,verbose,security
console => notice,warning,error
CONF
    write_once "$run/etc/manager.conf" <<'CONF'
[general]
enabled = yes
; port and bindaddr: manager_general.conf, written at every start from AMI_PORT.
#include manager_general.conf

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
    write_once "$run/etc/cdr.conf" <<'CONF'
[general]
enable = yes
[csv]
usegmtime = yes
loguniqueid = yes
loguserfield = yes
accountlogs = no
CONF
    write_once "$run/etc/cel.conf" <<'CONF'
; CEL is off. res_deviceuser records logins and logouts from phones as CEL user events
; (USER_DEFINED); "events = ALL" would also record DTMF events, the digits of PINs among them.
[general]
enable = no
CONF
    printf '[startup_commands]\n' | write_once "$run/etc/cli.conf"
    local f
    for f in $EMPTY_CONFIGS; do
        printf '; Empty: nothing of %s is configured in this run folder.\n' "$f" | write_once "$run/etc/$f.conf"
    done
    # Call progress tones (ringback, busy, congestion) by country: Asterisk's own file.
    write_once "$run/etc/indications.conf" < "$TREE/etc/asterisk/indications.conf"
    # The sample configuration of the project.
    write_once "$run/etc/res_deviceuser.conf" < "$ROOT/res_deviceuser.conf.sample"
    for f in "$ROOT"/samples/*.conf; do
        [ -f "$f" ] && sed "s/127\.0\.0\.1:5060/127.0.0.1:$sip_port/g" "$f" | write_once "$run/etc/$(basename "$f")"
    done
    # voicemail.conf comes from samples/; without it, an empty one.
    printf '[general]\n' | write_once "$run/etc/voicemail.conf"
    if [ -n "$conf_dir" ]; then
        for f in "$conf_dir"/*.conf; do
            [ -f "$f" ] && sed "s/127\.0\.0\.1:5060/127.0.0.1:$sip_port/g" "$f" > "$run/etc/$(basename "$f")"
        done
    fi
    printf 'SIP_PORT=%s\nAMI_PORT=%s\n' "$sip_port" "$ami_port" > "$run/ports"
    # The administrator's files are kept: say when one (e.g. from an older run folder)
    # defeats what the options ask for.
    if grep -v '^[[:space:]]*;' "$run/etc/logger.conf" | grep -q '=>.*dtmf'; then
        echo "[asterisk] WARNING: $run/etc/logger.conf logs dtmf: every key pressed, PINs included, goes to the log" >&2
    fi
    grep -q '^#include *"\{0,1\}pjsip_transport.conf' "$run/etc/pjsip.conf" 2>/dev/null || \
        echo "[asterisk] WARNING: $run/etc/pjsip.conf does not include pjsip_transport.conf: RUN_BIND and SIP_PORT do not apply" >&2
    grep -q '^#include *"\{0,1\}manager_general.conf' "$run/etc/manager.conf" 2>/dev/null || \
        echo "[asterisk] WARNING: $run/etc/manager.conf does not include manager_general.conf: AMI_PORT does not apply" >&2
    echo "$run"
}

# The PID of the Asterisk of RUN, from Asterisk's own PID file: only if that process is alive
# and reads this folder's asterisk.conf (a stale file may name a PID in use by another).
pid_of() {
    local run pid
    run=$(cd "$1" 2>/dev/null && pwd) || return 1
    pid=$(cat "$run/rundir/asterisk.pid" 2>/dev/null) || return 1
    case $pid in ''|*[!0-9]*) return 1 ;; esac
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$run/etc/asterisk.conf" || return 1
    echo "$pid"
}

start() {
    local run; run=$(cd "$1" && pwd)
    [ -f "$run/etc/asterisk.conf" ] || die "$run is not a run folder (use mkrun)"
    [ -x "$run/bin/asterisk" ] || die "$run has no bin/asterisk (made by an older mkrun: run mkrun again)"
    if pid_of "$run" >/dev/null; then die "already running in $run (pid $(pid_of "$run"))"; fi
    local limit=${DEVICEUSER_BOOT_TIMEOUT:-30} pause=0.1
    if [ -n "$VALGRIND_DIR" ]; then
        vg_check || die "cannot run Asterisk under valgrind"
        mkdir -p "$VALGRIND_DIR" || die "cannot create $VALGRIND_DIR"
        vg_args "$(cd "$VALGRIND_DIR" && pwd)/vg-%p.log"
        limit=600 pause=1
        # valgrind runs the loader as its program (it would trace the shell of bin/asterisk).
        ( exec valgrind "${VG_ARGS[@]}" "$LOADER" --library-path "$LIBDIR" \
            "$TREE/usr/sbin/asterisk" -C "$run/etc/asterisk.conf" -f -n -g \
            >"$run/log/stdout.log" 2>&1 </dev/null ) &
    else
        # exec all the way down (subshell, bin/asterisk, the loader): $! is Asterisk's PID.
        ( exec "$run/bin/asterisk" -f -n -g >"$run/log/stdout.log" 2>&1 </dev/null ) &
    fi
    local pid=$!
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
    local run pid
    run=$(cd "$1" 2>/dev/null && pwd) || die "no run folder $1"
    pid=$(pid_of "$run") || return 0
    if [ -n "$VALGRIND_DIR" ]; then
        # memcheck's leak check runs at exit: give it time.
        asterisk_cmd "$run" -rx 'core stop now' >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
        echo "[asterisk] Asterisk $pid under valgrind did not exit within 600 s: SIGKILL" >&2
    else
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
    fi
    kill -KILL "$pid" 2>/dev/null || true
    # Asterisk removes its PID file when it ends, but not when it is killed.
    rm -f "$run/rundir/asterisk.pid"
}

cmd=${1:-}; [ $# -gt 0 ] && shift
case $cmd in
    mkrun) [ $# -ge 1 ] || die "usage: mkrun RUN [options]"; mkrun "$@" ;;
    start) [ $# -eq 1 ] || die "usage: start RUN"; start "$1" ;;
    fg)
        [ $# -eq 1 ] || die "usage: fg RUN"
        run=$(cd "$1" && pwd)
        [ -x "$run/bin/asterisk" ] || die "$run has no bin/asterisk (run mkrun first)"
        if pid_of "$run" >/dev/null; then die "already running in $run (pid $(pid_of "$run"))"; fi
        exec "$run/bin/asterisk" -f -c -vvv -g ;;
    stop) [ $# -eq 1 ] || die "usage: stop RUN"; stop "$1" ;;
    cli)
        [ $# -eq 2 ] || die "usage: cli RUN 'command'"
        [ -d "$1" ] || die "no run folder $1"
        asterisk_cmd "$(cd "$1" && pwd)" -rx "$2" ;;
    pid) [ $# -eq 1 ] || die "usage: pid RUN"; pid_of "$1" ;;
    *) die "usage: asterisk.sh mkrun|start|fg|stop|cli|pid RUN ..." ;;
esac
