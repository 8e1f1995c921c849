//! Several Asterisk nodes sharing one PostgreSQL (`storage = realtime`): a real PostgreSQL
//! from Debian's `postgresql` package, started for the test on a free port with its own data
//! folder, and two nodes on one machine, each with its own run folder, ports, `systemname`
//! and EID, distributing `DeviceUser:` states to each other with `res_pjsip_publish_asterisk`
//! and calling each other's devices over a PJSIP trunk.
//!
//! PostgreSQL refuses to run as root: as root it runs as `nobody` (`setpriv`, which keeps
//! the PID: it is stopped by that PID).
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, fresh_dir, process, repo, runs_dir, wait_until, Asterisk, Builder};

/// The schema the tests load, as shipped.
pub fn schema_file() -> PathBuf {
    repo().join("contrib/realtime/postgresql.sql")
}

fn pg_bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    versions.retain(|v| v.join("bin/postgres").exists());
    versions.sort_by_key(|v| {
        v.file_name()
            .and_then(|n| n.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    match versions.pop() {
        Some(v) => v.join("bin"),
        None => panic!(
            "no PostgreSQL server in /usr/lib/postgresql/*/bin: run scripts/test.sh (its \
             provisioning installs Debian's postgresql package)"
        ),
    }
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A command run as the unprivileged user when we are root (PostgreSQL refuses root).
fn as_postgres_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--reset-env",
            "--",
        ]);
        c.arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn give_to_postgres_user(path: &Path) {
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown nobody {}", path.display());
    }
}

/// An initialised, empty data folder, made once per PostgreSQL version and reused (copied
/// for each server): initdb takes seconds. The tests of one process make it one at a time
/// (they would share the temporary folder, named by the process); another process may make
/// its own meanwhile, and the first rename wins.
fn template() -> PathBuf {
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let bin = pg_bin_dir();
    let version = bin
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("x")
        .to_string();
    let dir = runs_dir()
        .join("..")
        .join("it-pg")
        .join(format!("template-{version}"));
    if dir.join("PG_VERSION").exists() {
        return dir;
    }
    let tmp = runs_dir()
        .join("..")
        .join("it-pg")
        .join(format!("template-{version}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(tmp.parent().unwrap()).unwrap();
    fs::create_dir_all(&tmp).unwrap();
    give_to_postgres_user(&tmp);
    let out = as_postgres_user(&bin.join("initdb"))
        .arg("-D")
        .arg(&tmp)
        .args([
            "-U",
            "deviceuser",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ])
        .output()
        .expect("cannot run initdb");
    assert!(
        out.status.success(),
        "initdb failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Another test process may have made it meanwhile: keep theirs.
    if fs::rename(&tmp, &dir).is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    dir
}

/// A PostgreSQL server of the test's own, with the project's schema loaded. Dropping it
/// stops it (by PID) and removes its folder unless the test failed.
pub struct Postgres {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Postgres {
    pub fn start(name: &str) -> Postgres {
        let template = template();
        let dir = fresh_dir(&format!("{name}-pg"));
        let data = dir.join("data");
        let ok = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&data)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot copy {} to {}",
            template.display(),
            data.display()
        );
        give_to_postgres_user(&dir);
        let mut pg = Postgres {
            dir,
            port: free_port(),
            child: None,
        };
        pg.start_again();
        pg.psql_file(&schema_file());
        pg
    }

    /// Starts the server (again) on the same folder and port; waits until it answers. The
    /// port lies outside the ephemeral range ([`crate::free_port`]), yet another process may
    /// still hold it a moment: the server then exits unable to listen, and is started again
    /// until it listens or 30 s pass.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is already running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let child = self.spawn();
            self.child = Some(child);
            let ready = wait_until(Duration::from_secs(30), || {
                !self.is_running() || self.try_psql("SELECT 1").is_ok()
            });
            if ready && self.is_running() {
                return;
            }
            if !ready || Instant::now() >= deadline {
                self.stop();
                panic!("PostgreSQL did not start:\n{}", self.log());
            }
            // It exited (is_running reaped it): try again once the port is free.
            self.child = None;
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn spawn(&self) -> Child {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .unwrap();
        as_postgres_user(&pg_bin_dir().join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            // A test database: no crash of the machine to survive.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start postgres")
    }

    /// Stops the server by its PID (fast shutdown: SIGINT) and waits for it to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        process::signal(child.id(), "INT");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        process::signal(child.id(), "KILL");
        let _ = child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    fn psql_cmd(&self) -> Command {
        let mut c = Command::new("psql");
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "deviceuser", "-d", "postgres"])
            .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-F", "|"])
            .stdin(Stdio::null());
        c
    }

    /// Runs SQL; the rows as `a|b|c` lines.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        let out = self
            .psql_cmd()
            .args(["-c", sql])
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql)
            .unwrap_or_else(|e| panic!("psql {sql:?}: {e}"))
    }

    pub fn psql_file(&self, file: &Path) {
        let out = self
            .psql_cmd()
            .arg("-f")
            .arg(file)
            .output()
            .expect("cannot run psql");
        assert!(
            out.status.success(),
            "psql -f {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The bindings table as sorted (user, device) pairs, the marker row left out.
    pub fn bindings(&self) -> Vec<(String, String)> {
        let out = self.psql(
            "SELECT userid, device FROM deviceuser_bindings WHERE device <> '/' AND userid <> '' ORDER BY userid, device",
        );
        out.lines()
            .filter_map(|l| {
                let (u, d) = l.split_once('|')?;
                Some((u.to_string(), d.to_string()))
            })
            .collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "===== PostgreSQL ({}) log, end =====\n{}",
                self.dir.display(),
                self.log()
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        } else if std::env::var_os("DEVICEUSER_KEEP_RUNS").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A node's name, EID and ports, known before any node starts (each node's trunk names the
/// other's port).
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub eid: String,
    pub sip_port: u16,
    pub ami_port: u16,
}

impl NodeSpec {
    pub fn new(name: &str, n: u8) -> NodeSpec {
        NodeSpec {
            name: name.to_string(),
            eid: format!("02:00:00:00:00:{n:02x}"),
            sip_port: free_port(),
            ami_port: free_port(),
        }
    }

    /// The PJSIP endpoint other nodes reach this one through (`remote_dial` default
    /// `PJSIP/${DEVICE}@${NODE}`): the node's own name.
    pub fn trunk(&self) -> &str {
        &self.name
    }
}

/// `pjsip.conf` lines for the trunk and state distribution from `me` to `peer`: an endpoint
/// named after the peer (no authentication, identified by the From user, which is the
/// sender's node name), an outbound publish of `DeviceUser:` states to it, and the inbound
/// publication accepting its states.
pub fn peer_pjsip(me: &NodeSpec, peer: &NodeSpec) -> String {
    let (p, port, mport) = (&peer.name, peer.sip_port, me.sip_port);
    let m = &me.name;
    format!(
        "
; ---- node {p}: trunk and state distribution ----
[{p}]
type=endpoint
context=from-nodes
disallow=all
allow=ulaw,alaw
aors={p}
from_user={m}
direct_media=no

[{p}]
type=aor
contact=sip:127.0.0.1:{port}

[{p}]
type=outbound-publish
server_uri=sip:{m}@127.0.0.1:{port}
from_uri=sip:{m}@127.0.0.1:{mport}
event=asterisk-devicestate
@device_state_filter=^DeviceUser:

[{p}]
type=inbound-publication
endpoint={p}
event_asterisk-devicestate={p}

[{p}]
type=asterisk-publication
devicestate_publish={p}
device_state=yes
device_state_filter=^DeviceUser:
"
    )
}

/// `res_pgsql.conf` and `extconfig.conf` for `pg`.
pub fn realtime_confs(pg: &Postgres) -> Vec<(String, String)> {
    vec![
        (
            "res_pgsql.conf".to_string(),
            format!(
                "[general]\ndbhost = 127.0.0.1\ndbport = {}\ndbname = postgres\ndbuser = deviceuser\nrequirements = warn\n",
                pg.port
            ),
        ),
        (
            "extconfig.conf".to_string(),
            "[settings]\ndeviceuser_bindings => pgsql,general,deviceuser_bindings\n\
             deviceuser_nodes => pgsql,general,deviceuser_nodes\n\
             deviceuser_pin_failures => pgsql,general,deviceuser_pin_failures\n"
                .to_string(),
        ),
    ]
}

/// `asterisk-options.conf` (included by the run folder's asterisk.conf): the node's
/// `systemname` and EID. Nodes on one machine would otherwise share the EID Asterisk
/// derives from the network card, and ignore each other's states.
pub fn options_conf(spec: &NodeSpec) -> String {
    format!("systemname = {}\nentityid = {}\n", spec.name, spec.eid)
}

/// Boots `builder` as the node `spec`: its `systemname`, EID and ports (no retry on a port
/// clash: the other node's configuration names them), with `res_config_pgsql` loaded (the
/// run folder's modules.conf keeps it from loading unless configured).
pub fn start_node(builder: Builder, spec: &NodeSpec) -> Asterisk {
    builder
        .conf("asterisk-options.conf", &options_conf(spec))
        .load_module("res_config_pgsql.so")
        .ports(spec.sip_port, spec.ami_port)
        .start_result()
        .unwrap_or_else(|e| panic!("node {} did not boot: {e}", spec.name))
}
