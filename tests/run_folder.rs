//! The run folder of `scripts/run.sh`, driven through the scripts as a user drives it:
//! `scripts/asterisk.sh mkrun` keeps the administrator's files and rewrites only its own,
//! `RUN_BIND` reaches the SIP transport, a boot logs no ERROR, `scripts/cli.sh` reaches the
//! CLI, `core restart` comes back in the same process (under `start` and under `fg`, which
//! `scripts/run.sh` runs), `scripts/asterisk.sh stop` stops what `fg` started, and
//! `scripts/install.sh` finds the folders of an installation by itself.
mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{asterisk_dir, free_port, fresh_dir, module_source, repo, wait_until, Asterisk};

/// Files of `etc/` that `mkrun` rewrites at every call; every other one is the administrator's.
const GENERATED: [&str; 3] = [
    "asterisk.conf",
    "pjsip_transport.conf",
    "manager_general.conf",
];

fn script(name: &str, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts").join(name))
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{name}: {e}"))
}

/// Runs a script that must succeed; returns its stdout.
fn ok(name: &str, args: &[&str]) -> String {
    let out = script(name, args, &[]);
    assert!(
        out.status.success(),
        "scripts/{name} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn mkrun(run: &Path, sip: u16, ami: u16, bind: &str) {
    let module = module_source();
    ok(
        "asterisk.sh",
        &[
            "mkrun",
            s(run),
            "--sip-port",
            &sip.to_string(),
            "--ami-port",
            &ami.to_string(),
            "--bind",
            bind,
            "--module",
            s(&module),
        ],
    );
}

/// The PID `scripts/asterisk.sh pid` finds, if Asterisk runs in `run`.
fn pid_of(run: &Path) -> Option<u32> {
    let out = script("asterisk.sh", &["pid", s(run)], &[]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .flatten()
}

/// `scripts/asterisk.sh cli RUN cmd`.
fn cli(run: &Path, cmd: &str) -> String {
    let out = script("asterisk.sh", &["cli", s(run), cmd], &[]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fully_booted(run: &Path) -> bool {
    cli(run, "core waitfullybooted").contains("fully booted")
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn etc_files(run: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(run.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The lines of a logger.conf that configure a channel (`name => levels`).
fn logger_channels(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.split(';').next().unwrap_or("").trim())
        .filter(|l| l.contains("=>"))
        .collect()
}

#[test]
fn mkrun_writes_the_administrators_files_only_when_missing() {
    let run = fresh_dir("rf-mkrun");
    let (sip, ami) = (free_port(), free_port());
    mkrun(&run, sip, ami, "127.0.0.1");
    let files = etc_files(&run);
    for f in [
        "res_deviceuser.conf",
        "pjsip.conf",
        "extensions.conf",
        "manager.conf",
        "modules.conf",
        "logger.conf",
    ] {
        assert!(files.iter().any(|x| x == f), "no {f} in {files:?}");
    }
    for f in GENERATED {
        assert!(files.iter().any(|x| x == f), "no {f} in {files:?}");
    }
    assert!(read(&run.join("etc/pjsip_transport.conf")).contains(&format!("bind=127.0.0.1:{sip}")));

    // The administrator edits every file, and deletes one.
    const MARK: &str = "; edited by the administrator\n";
    for f in &files {
        let p = run.join("etc").join(f);
        let text = read(&p);
        fs::write(&p, format!("{text}\n{MARK}")).unwrap();
    }
    fs::remove_file(run.join("etc/extensions.conf")).unwrap();

    // scripts/run.sh runs mkrun again at every start, here with other ports and RUN_BIND.
    let (sip2, ami2) = (free_port(), free_port());
    mkrun(&run, sip2, ami2, "0.0.0.0");
    assert_eq!(etc_files(&run), files, "mkrun added or lost files");
    for f in &files {
        let text = read(&run.join("etc").join(f));
        if f == "extensions.conf" {
            let sample = read(&repo().join("samples/extensions.conf"));
            assert_eq!(text, sample, "a deleted file comes back from the sample");
        } else if GENERATED.contains(&f.as_str()) {
            assert!(!text.contains(MARK), "{f} is rewritten at every start");
        } else {
            assert!(
                text.ends_with(MARK),
                "mkrun overwrote the administrator's {f}"
            );
        }
    }
    let transport = read(&run.join("etc/pjsip_transport.conf"));
    assert!(
        transport.contains(&format!("bind=0.0.0.0:{sip2}")),
        "{transport}"
    );
    let manager = read(&run.join("etc/manager_general.conf"));
    assert!(manager.contains(&format!("port = {ami2}")), "{manager}");
    assert!(read(&run.join("etc/pjsip.conf")).contains("#include pjsip_transport.conf"));
    assert!(read(&run.join("etc/manager.conf")).contains("#include manager_general.conf"));

    // No DTMF in the logs the run folder writes.
    let logger = read(&run.join("etc/logger.conf"));
    let channels = logger_channels(&logger);
    assert!(
        channels.iter().any(|l| l.starts_with("full.log")),
        "{logger}"
    );
    for l in channels {
        assert!(!l.to_ascii_lowercase().contains("dtmf"), "logs DTMF: {l}");
    }

    // Bad values are refused with a reason, and nothing is written.
    let out = script(
        "asterisk.sh",
        &["mkrun", s(&run), "--bind", "0.0.0.0;reboot"],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not an IPv4 or IPv6 address"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read(&run.join("etc/pjsip_transport.conf")), transport);

    // A logger.conf of an older run folder that logs DTMF is kept, and called out.
    fs::write(
        run.join("etc/logger.conf"),
        "[logfiles]\nfull.log => notice,warning,error,verbose,dtmf\n",
    )
    .unwrap();
    let out = script("asterisk.sh", &["mkrun", s(&run)], &[]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("logger.conf logs dtmf"), "{err}");
    let _ = fs::remove_dir_all(&run);
}

#[test]
fn a_clean_boot_logs_no_error_and_cli_sh_and_install_sh_reach_it() {
    let mut ast = Asterisk::start("rf-boot");
    let full = ast.log();
    let errors: Vec<&str> = full.lines().filter(|l| l.contains(" ERROR[")).collect();
    assert!(errors.is_empty(), "ERROR lines at boot: {errors:#?}");
    // The console (what scripts/run.sh shows) also prints what comes before the logger
    // starts, without a level: there, any line speaking of an error counts. Its file is
    // written by Asterisk's console thread, which may still be behind the logger: wait
    // for the banner.
    wait_until(Duration::from_secs(10), || {
        ast.stdout_log().contains("Asterisk Ready")
    });
    let console = ast.stdout_log();
    let errors: Vec<&str> = console
        .lines()
        .filter(|l| {
            l.contains(" ERROR[")
                || (!l.starts_with('[') && l.to_ascii_lowercase().contains("error"))
        })
        .collect();
    assert!(
        errors.is_empty(),
        "errors on the console at boot: {errors:#?}"
    );
    assert!(console.contains("Asterisk Ready"), "{console}");
    let warnings = full.lines().filter(|l| l.contains(" WARNING[")).count();
    assert!(warnings <= 3, "{warnings} WARNINGs at boot:\n{full}");

    // scripts/cli.sh, as from a second shell.
    let run = ast.run.clone();
    let env = [("RUN_DIR", run.as_path())];
    let out = script("cli.sh", &["deviceuser", "show", "devices"], &env);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("4 devices found"),
        "{text}"
    );

    // scripts/install.sh asks the running Asterisk where its folders are.
    let dest = fresh_dir("rf-install-running");
    let wrapper = ast.run.join("bin/asterisk");
    let module = module_source();
    ok(
        "install.sh",
        &[
            "--asterisk",
            s(&wrapper),
            "--destdir",
            s(&dest),
            "--module",
            s(&module),
        ],
    );
    let staged = |p: &Path| dest.join(p.strip_prefix("/").unwrap());
    assert_eq!(
        fs::read(staged(&ast.run.join("modules/res_deviceuser.so"))).unwrap(),
        fs::read(&module).unwrap()
    );
    assert!(staged(&ast.run.join("etc/res_deviceuser.conf")).exists());
    assert!(staged(
        &ast.run
            .join("data/documentation/thirdparty/res_deviceuser-en_US.xml")
    )
    .exists());
    let _ = fs::remove_dir_all(&dest);

    ast.stop();
    let out = script("cli.sh", &["core", "show", "uptime"], &env);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no Asterisk is running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_bind_reaches_the_sip_transport() {
    let mut ast = Asterisk::start("rf-bind");
    let transports = ast.cli("pjsip show transports");
    assert!(
        transports.contains(&format!("127.0.0.1:{}", ast.sip_port)),
        "{transports}"
    );
    ast.stop();
    // What scripts/run.sh does with RUN_BIND=0.0.0.0.
    mkrun(&ast.run, ast.sip_port, ast.ami_port, "0.0.0.0");
    ast.start_again().unwrap_or_else(|e| panic!("{e}"));
    let transports = ast.cli("pjsip show transports");
    assert!(
        transports.contains(&format!("0.0.0.0:{}", ast.sip_port)),
        "{transports}"
    );
}

/// Waits for a restart asked at `mark` (a log offset) to be over: the same process logged
/// "Asterisk Ready." again and answers the CLI.
fn wait_restarted(ast: &Asterisk, mark: usize) {
    assert!(
        ast.wait_log_since(mark, "Asterisk Ready.", Duration::from_secs(60)),
        "no restart:\n{}\n{}",
        ast.log_since(mark),
        ast.stdout_log()
    );
    assert!(
        wait_until(Duration::from_secs(30), || fully_booted(&ast.run)),
        "not booted after the restart"
    );
}

#[test]
fn core_restart_comes_back_in_the_same_process() {
    let ast = Asterisk::start("rf-restart");
    assert!(ast.cli("deviceuser login 4101 1000").contains("logged in"));
    for cmd in ["core restart now", "core restart gracefully"] {
        let pid = ast.pid;
        let mark = ast.log_mark();
        ast.cli(cmd);
        wait_restarted(&ast, mark);
        assert!(ast.is_running(), "{cmd}: Asterisk is gone");
        assert_eq!(pid_of(&ast.run), Some(pid), "{cmd}: another process");
        let uptime = ast.cli("core show uptime");
        assert!(uptime.contains("System uptime: "), "{uptime}");
        assert!(
            !ast.stdout_log()
                .contains("error while loading shared libraries"),
            "{}",
            ast.stdout_log()
        );
        let bindings = ast.cli("deviceuser show bindings user 4101");
        assert!(
            bindings.contains("4101  1000"),
            "{cmd}: the login did not survive:\n{bindings}"
        );
    }
}

/// A child process killed if the test ends before it does.
struct Reaped(Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn stop_stops_what_fg_started_and_start_follows() {
    let run = fresh_dir("rf-fg");
    let (sip, ami) = (free_port(), free_port());
    mkrun(&run, sip, ami, "127.0.0.1");
    // What scripts/run.sh ends with: Asterisk in the foreground with a console. Its input
    // stays open (a terminal would), and nothing is typed.
    let console = fs::File::create(run.join("log/console.log")).unwrap();
    let fg = Command::new("bash")
        .arg(repo().join("scripts/asterisk.sh"))
        .args(["fg", s(&run)])
        .stdin(Stdio::piped())
        .stdout(console.try_clone().unwrap())
        .stderr(console)
        .spawn()
        .expect("asterisk.sh fg");
    let mut fg = Reaped(fg);
    assert!(
        wait_until(Duration::from_secs(60), || fully_booted(&run)),
        "fg did not boot:\n{}",
        read(&run.join("log/console.log"))
    );
    // asterisk.sh, bin/asterisk and the loader exec each other: one process throughout.
    let pid = fg.0.id();
    assert_eq!(pid_of(&run), Some(pid));
    assert_eq!(
        read(&run.join("rundir/asterisk.pid")).trim(),
        pid.to_string(),
        "Asterisk's own PID file is the one place"
    );

    // A restart at the console's Asterisk keeps the process and its console.
    let mark = fs::metadata(run.join("log/full.log")).unwrap().len() as usize;
    cli(&run, "core restart now");
    assert!(
        wait_until(Duration::from_secs(60), || {
            let mut log = Vec::new();
            let mut f = fs::File::open(run.join("log/full.log")).unwrap();
            f.read_to_end(&mut log).unwrap();
            String::from_utf8_lossy(&log[mark.min(log.len())..]).contains("Asterisk Ready.")
        }),
        "no restart under fg:\n{}",
        read(&run.join("log/console.log"))
    );
    assert!(wait_until(Duration::from_secs(30), || fully_booted(&run)));
    assert_eq!(pid_of(&run), Some(pid), "the restart left the process");
    assert!(
        fg.0.try_wait().unwrap().is_none(),
        "fg ended at the restart"
    );

    // scripts/asterisk.sh stop, from another shell, stops it.
    ok("asterisk.sh", &["stop", s(&run)]);
    assert!(
        wait_until(Duration::from_secs(10), || fg
            .0
            .try_wait()
            .unwrap()
            .is_some()),
        "asterisk.sh stop did not stop the fg instance"
    );
    assert_eq!(pid_of(&run), None);
    assert!(!run.join("rundir/asterisk.pid").exists());

    // And start follows on the same folder.
    let out = ok("asterisk.sh", &["start", s(&run)]);
    let started: u32 = out.trim().lines().last().unwrap().trim().parse().unwrap();
    assert_eq!(pid_of(&run), Some(started));
    assert!(cli(&run, "deviceuser show devices").contains("4 devices found"));
    ok("asterisk.sh", &["stop", s(&run)]);
    assert!(wait_until(Duration::from_secs(10), || pid_of(&run).is_none()));
    let _ = fs::remove_dir_all(&run);
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn install_finds_the_folders_of_the_provisioned_tree() {
    let tree = asterisk_dir().join("tree");
    let dest = fresh_dir("rf-install-tree");
    let module = module_source();
    let out = ok(
        "install.sh",
        &[
            "--root",
            s(&tree),
            "--destdir",
            s(&dest),
            "--module",
            s(&module),
        ],
    );
    let files = files_under(&dest);
    let find = |name: &str| -> PathBuf {
        let found: Vec<&PathBuf> = files.iter().filter(|p| p.ends_with(name)).collect();
        assert_eq!(found.len(), 1, "{name} in {files:?}\n{out}");
        found[0].clone()
    };
    // The module went where the tree keeps Asterisk's own modules, whatever the architecture.
    let moddir = find("res_deviceuser.so").parent().unwrap().to_path_buf();
    assert!(moddir.ends_with("asterisk/modules"), "{}", moddir.display());
    assert!(
        tree.join(&moddir).join("chan_pjsip.so").exists(),
        "{} is not the tree's module folder",
        moddir.display()
    );
    let docdir = find("res_deviceuser-en_US.xml")
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(
        tree.join(docdir.parent().unwrap())
            .join("core-en_US.xml")
            .exists(),
        "{} is not next to Asterisk's documentation",
        docdir.display()
    );
    assert_eq!(
        find("res_deviceuser.conf"),
        Path::new("etc/asterisk/res_deviceuser.conf")
    );
    // No script names one architecture's library folder or loader: each derives them from
    // the tree (scripts/tree-lib.sh for those that run Asterisk).
    for entry in fs::read_dir(repo().join("scripts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "sh") {
            continue;
        }
        let code: String = read(&path)
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        for arch in ["x86_64", "x86-64", "aarch64", "amd64", "arm64"] {
            assert!(
                !code.contains(arch),
                "{} names an architecture ({arch})",
                path.display()
            );
        }
    }
    let _ = fs::remove_dir_all(&dest);
}
