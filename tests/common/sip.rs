//! SIP peers for the integration tests: sipp (scenarios in `tests/sipp/`) and
//! baresip driven over `ctrl_tcp`. Every peer runs as a child process with its
//! own folder (under the Asterisk run folder) and is killed when dropped.

use super::{free_port, poll, repo, scaled, tail, wait_until, Asterisk, TIMEOUT};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Password of a sample endpoint (`samples/pjsip.conf`): `secret<id>`.
pub fn secret(endpoint: &str) -> String {
    format!("secret{endpoint}")
}

/// Path of a scenario of `tests/sipp/`.
pub fn scenario(name: &str) -> PathBuf {
    let p = repo().join("tests/sipp").join(name);
    assert!(p.exists(), "no sipp scenario {}", p.display());
    p
}

fn peer_dir(ast: &Asterisk, kind: &str) -> PathBuf {
    let n = super::RUN_COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = ast.run.join("peers").join(format!("{kind}-{n}"));
    fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------
// sipp
// ---------------------------------------------------------------------------

/// A running (or finished) sipp process.
pub struct Sipp {
    child: Option<Child>,
    /// Folder with `messages.log` (every SIP message), `errors.log`, `screen.log`.
    pub dir: PathBuf,
    /// Local SIP port of this sipp.
    pub port: u16,
    status: Option<i32>,
}

impl Sipp {
    /// Starts sipp against `ast` with a scenario of `tests/sipp/` and extra arguments
    /// (`-s`, `-au`, `-key`, ...). The message trace goes to `messages.log`.
    pub fn spawn(ast: &Asterisk, scenario_name: &str, args: &[&str]) -> Sipp {
        let dir = peer_dir(ast, scenario_name.trim_end_matches(".xml"));
        let port = free_port();
        let screen = fs::File::create(dir.join("screen.log")).unwrap();
        let child = Command::new("sipp")
            .arg(format!("127.0.0.1:{}", ast.sip_port))
            .arg("-sf")
            .arg(scenario(scenario_name))
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "u1",
                "-nostdin",
            ])
            .args(["-trace_msg", "-message_file"])
            .arg(dir.join("messages.log"))
            .args(["-trace_err", "-error_file"])
            .arg(dir.join("errors.log"))
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(screen.try_clone().unwrap())
            .stderr(screen)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start sipp (scripts/provision.sh installs it): {e}")
            });
        Sipp {
            child: Some(child),
            dir,
            port,
            status: None,
        }
    }

    /// REGISTERs `endpoint` (password `secret<endpoint>`) once; Ok when Asterisk
    /// answered 200.
    pub fn register(ast: &Asterisk, endpoint: &str) -> Result<(), String> {
        Self::register_with(ast, endpoint, &secret(endpoint), 3600)
    }

    /// REGISTER with a given password and Expires (0 unregisters).
    pub fn register_with(
        ast: &Asterisk,
        endpoint: &str,
        password: &str,
        expires: u32,
    ) -> Result<(), String> {
        let exp = expires.to_string();
        let sipp_timeout = scaled(Duration::from_secs(20)).as_secs().to_string();
        let mut s = Self::spawn(
            ast,
            "register.xml",
            &[
                "-s",
                endpoint,
                "-au",
                endpoint,
                "-ap",
                password,
                "-key",
                "expires",
                &exp,
                "-m",
                "1",
                "-timeout",
                &sipp_timeout,
                "-timeout_error",
            ],
        );
        s.finish(Duration::from_secs(30))
    }

    /// A registered UAS as `endpoint` that answers every call (uas-answer-ooc.xml).
    /// Returns once the registration went through.
    pub fn uas(ast: &Asterisk, endpoint: &str) -> Sipp {
        Self::uas_with(ast, endpoint, "uas-answer-ooc.xml")
    }

    /// A registered UAS as `endpoint` that rings and never answers (uas-noanswer-ooc.xml).
    pub fn uas_noanswer(ast: &Asterisk, endpoint: &str) -> Sipp {
        Self::uas_with(ast, endpoint, "uas-noanswer-ooc.xml")
    }

    /// A registered UAS with a given out-of-call scenario for incoming calls.
    pub fn uas_with(ast: &Asterisk, endpoint: &str, ooc_scenario: &str) -> Sipp {
        let ooc = scenario(ooc_scenario);
        let pw = secret(endpoint);
        let s = Self::spawn(
            ast,
            "uas-register.xml",
            &[
                "-s",
                endpoint,
                "-au",
                endpoint,
                "-ap",
                &pw,
                "-key",
                "expires",
                "3600",
                "-oocsf",
                ooc.to_str().unwrap(),
                // One registration: without a call limit sipp starts a new one
                // every 100 ms.
                "-m",
                "1",
            ],
        );
        if !s.wait_message("SIP/2.0 200 OK", TIMEOUT) {
            panic!("sipp UAS {endpoint} did not register:\n{}", s.report());
        }
        s
    }

    /// A watcher: SUBSCRIBEs as `endpoint` to `exten` (Event: presence, pidf) and
    /// answers every NOTIFY. Read the bodies with [`Sipp::notify_bodies`].
    pub fn watcher(ast: &Asterisk, endpoint: &str, exten: &str) -> Sipp {
        let pw = secret(endpoint);
        Self::spawn(
            ast,
            "subscribe-pidf.xml",
            &[
                "-s",
                exten,
                "-key",
                "from_user",
                endpoint,
                "-au",
                endpoint,
                "-ap",
                &pw,
                // One subscription: without a call limit sipp starts a new one
                // every 100 ms.
                "-m",
                "1",
            ],
        )
    }

    /// A call from `endpoint` to `number` (uac-call.xml), in the background. It stays
    /// up until Asterisk hangs up (or 120 s). Check the result with [`Sipp::finish`].
    pub fn call(ast: &Asterisk, endpoint: &str, number: &str) -> Sipp {
        let pw = secret(endpoint);
        Self::spawn(
            ast,
            "uac-call.xml",
            &[
                "-s",
                number,
                "-key",
                "from_user",
                endpoint,
                "-au",
                endpoint,
                "-ap",
                &pw,
                "-m",
                "1",
            ],
        )
    }

    /// The SIP message trace so far.
    pub fn messages(&self) -> String {
        super::read_lossy(&self.dir.join("messages.log"))
    }

    /// Waits until the message trace contains `needle`.
    pub fn wait_message(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.messages().contains(needle))
    }

    /// The SIP messages of the trace, in order (each with its start line).
    pub fn sip_messages(&self) -> Vec<String> {
        split_trace(&self.messages())
    }

    /// Bodies of the NOTIFY requests received so far, in order.
    pub fn notify_bodies(&self) -> Vec<String> {
        self.sip_messages()
            .into_iter()
            .filter(|m| m.starts_with("NOTIFY "))
            .map(|m| body_of(&m))
            .collect()
    }

    /// Waits until a NOTIFY after the first `skip` ones has a body containing
    /// `needle`; returns that body.
    pub fn wait_notify(&self, skip: usize, needle: &str, timeout: Duration) -> Option<String> {
        poll(timeout, || {
            self.notify_bodies()
                .into_iter()
                .skip(skip)
                .find(|b| b.contains(needle))
        })
    }

    /// Whether sipp still runs.
    pub fn running(&mut self) -> bool {
        self.try_status().is_none()
    }

    fn try_status(&mut self) -> Option<i32> {
        if self.status.is_none() {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.status = Some(st.code().unwrap_or(-1));
                }
            }
        }
        self.status
    }

    /// Waits for sipp to exit: Ok if every call succeeded (exit code 0). `timeout` is
    /// [`scaled`].
    pub fn finish(&mut self, timeout: Duration) -> Result<(), String> {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.try_status() {
                return if code == 0 {
                    Ok(())
                } else {
                    Err(format!("sipp exited with {code}:\n{}", self.report()))
                };
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "sipp did not finish within {timeout:?}:\n{}",
                    self.report()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Exit code, if sipp has exited.
    pub fn exit_code(&mut self) -> Option<i32> {
        self.try_status()
    }

    /// Errors and the end of the message trace, for assertion messages.
    pub fn report(&self) -> String {
        format!(
            "--- sipp errors ({}) ---\n{}\n--- last messages ---\n{}",
            self.dir.display(),
            tail(&super::read_lossy(&self.dir.join("errors.log")), 20),
            tail(&self.messages(), 60)
        )
    }

    /// Kills sipp.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            if let Ok(st) = c.wait() {
                if self.status.is_none() {
                    self.status = Some(st.code().unwrap_or(-1));
                }
            }
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!("===== sipp {} =====\n{}", self.dir.display(), self.report());
        }
        self.kill();
    }
}

/// Splits a sipp message trace into SIP messages.
fn split_trace(trace: &str) -> Vec<String> {
    // Each message follows a header line such as
    // "----------------------------------------------- 2024-01-01 ..." and a line
    // "UDP message received [N] bytes :" (or "sent").
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in trace.split('\n') {
        let l = line.trim_end_matches('\r');
        if l.starts_with("-----------------------------------------------") {
            if let Some(m) = cur.take() {
                out.push(m.trim().to_string());
            }
            continue;
        }
        if l.contains(" message received [")
            || l.contains(" message sent (")
            || l.contains(" message sent [")
        {
            cur = Some(String::new());
            continue;
        }
        if let Some(m) = cur.as_mut() {
            m.push_str(l);
            m.push('\n');
        }
    }
    if let Some(m) = cur.take() {
        out.push(m.trim().to_string());
    }
    out.into_iter().filter(|m| !m.is_empty()).collect()
}

fn body_of(msg: &str) -> String {
    match msg.split_once("\n\n") {
        Some((_, b)) => b.trim().to_string(),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------
// baresip
// ---------------------------------------------------------------------------

/// A baresip softphone registered as an endpoint, controlled over ctrl_tcp
/// (JSON netstrings). Sends an endless 440 Hz tone, plays nothing.
pub struct Baresip {
    child: Option<Child>,
    pub dir: PathBuf,
    pub endpoint: String,
    pub sip_port: u16,
    ctrl: TcpStream,
    buf: Vec<u8>,
    /// Events received so far (JSON text, in order).
    pub events: Vec<String>,
    token: u64,
}

impl Baresip {
    /// Starts baresip as `endpoint` (password `secret<endpoint>`) and waits until
    /// it is registered. Incoming calls are answered automatically when
    /// `auto_answer` is set.
    pub fn start(ast: &Asterisk, endpoint: &str, auto_answer: bool) -> Baresip {
        let dir = peer_dir(ast, &format!("baresip-{endpoint}"));
        let sip_port = free_port();
        let ctrl_port = free_port();
        let rtp_a = free_port();
        let config = format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{sip_port}\n\
             sip_transports\t\tudp\n\
             net_interface\t\t127.0.0.1\n\
             audio_player\t\taubridge,nil\n\
             audio_source\t\tausine,440\n\
             audio_alert\t\taubridge,nil\n\
             ausrc_srate\t\t48000\n\
             ausrc_channels\t\t2\n\
             rtp_ports\t\t{rtp_a}-{}\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tg711.so\n\
             module\t\t\tausine.so\n\
             module\t\t\taubridge.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             module_app\t\tctrl_tcp.so\n\
             ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n",
            rtp_a + 10
        );
        fs::write(dir.join("config"), config).unwrap();
        let answer = if auto_answer { ";answermode=auto" } else { "" };
        fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{endpoint}@127.0.0.1:{port};transport=udp>;auth_pass={pw};regint=600;audio_codecs=PCMU,PCMA{answer}\n",
                port = ast.sip_port,
                pw = secret(endpoint)
            ),
        )
        .unwrap();
        fs::write(dir.join("contacts"), "").unwrap();
        let log = fs::File::create(dir.join("baresip.log")).unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start baresip (scripts/provision.sh installs it): {e}")
            });
        let ctrl = poll(TIMEOUT, || {
            TcpStream::connect(("127.0.0.1", ctrl_port)).ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "baresip ctrl_tcp did not come up; log:\n{}",
                super::read_lossy(&dir.join("baresip.log"))
            )
        });
        let b = Baresip {
            child: Some(child),
            dir,
            endpoint: endpoint.to_string(),
            sip_port,
            ctrl,
            buf: Vec::new(),
            events: Vec::new(),
            token: 0,
        };
        // Registration may complete before ctrl_tcp is connected (its event is then
        // lost): look at Asterisk's contacts instead.
        let contact = format!("127.0.0.1:{sip_port}");
        let registered = wait_until(TIMEOUT, || {
            ast.cli(&format!("pjsip show aor {endpoint}"))
                .lines()
                .any(|l| l.contains("Contact:") && l.contains(&contact))
        });
        if !registered {
            panic!(
                "baresip {endpoint} did not register:\n{}\n{}",
                b.report(),
                ast.cli("pjsip show contacts")
            );
        }
        b
    }

    fn read_netstrings(&mut self, deadline: Instant) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            // Parse complete netstrings: "<len>:<json>,".
            while let Some(colon) = self.buf.iter().position(|&c| c == b':') {
                let Ok(len) = std::str::from_utf8(&self.buf[..colon])
                    .unwrap_or("x")
                    .trim()
                    .parse::<usize>()
                else {
                    panic!(
                        "baresip ctrl_tcp: bad netstring {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                };
                if self.buf.len() < colon + 1 + len + 1 {
                    break;
                }
                let s = String::from_utf8_lossy(&self.buf[colon + 1..colon + 1 + len]).into_owned();
                self.buf.drain(..colon + 1 + len + 1);
                got.push(s);
            }
            if !got.is_empty() {
                return got;
            }
            let now = Instant::now();
            if now >= deadline {
                return got;
            }
            self.ctrl
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 8192];
            match self.ctrl.read(&mut chunk) {
                Ok(0) => return got,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return got,
            }
        }
    }

    /// Sends a command (`dial`, `hangup`, `accept`, `sndcode`, ...) and returns the
    /// JSON response (events that come meanwhile are recorded).
    pub fn command(&mut self, command: &str, params: &str) -> String {
        self.token += 1;
        let token = self.token.to_string();
        let json = format!(
            "{{\"command\":\"{}\",\"params\":\"{}\",\"token\":\"{}\"}}",
            json_escape(command),
            json_escape(params),
            token
        );
        let ns = format!("{}:{},", json.len(), json);
        self.ctrl
            .write_all(ns.as_bytes())
            .expect("baresip ctrl_tcp write");
        let deadline = Instant::now() + scaled(TIMEOUT);
        loop {
            let msgs = self.read_netstrings(deadline);
            if msgs.is_empty() {
                panic!(
                    "baresip: no response to {command} {params}:\n{}",
                    self.report()
                );
            }
            let mut resp = None;
            for m in msgs {
                if m.contains("\"response\":true") && m.contains(&format!("\"token\":\"{token}\""))
                {
                    resp = Some(m);
                } else {
                    self.events.push(m);
                }
            }
            if let Some(r) = resp {
                return r;
            }
        }
    }

    /// Dials a number at this Asterisk (`sip:<number>@127.0.0.1:<port>`).
    pub fn dial(&mut self, ast: &Asterisk, number: &str) -> String {
        self.command("dial", &format!("sip:{number}@127.0.0.1:{}", ast.sip_port))
    }

    /// Sends DTMF digits (RFC 4733), one at a time with a pause between them.
    pub fn send_dtmf(&mut self, digits: &str) {
        for d in digits.chars() {
            self.command("sndcode", &d.to_string());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Answers an incoming call.
    pub fn accept(&mut self) -> String {
        self.command("accept", "")
    }

    /// Hangs up the current call.
    pub fn hangup(&mut self) -> String {
        self.command("hangup", "")
    }

    /// Waits for an event whose JSON contains `needle` (e.g. "CALL_ESTABLISHED",
    /// "CALL_CLOSED", "CALL_INCOMING"), including events already received;
    /// returns it and removes it (and every earlier event) from `events`. `timeout` is
    /// [`scaled`].
    pub fn wait_event(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + scaled(timeout);
        loop {
            if let Some(i) = self.events.iter().position(|e| e.contains(needle)) {
                let e = self.events[i].clone();
                self.events.drain(..=i);
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            let msgs = self.read_netstrings(deadline);
            self.events.extend(msgs);
        }
    }

    pub fn log(&self) -> String {
        super::read_lossy(&self.dir.join("baresip.log"))
    }

    pub fn report(&self) -> String {
        format!(
            "--- baresip {} ({}) ---\n{}\n--- events ---\n{}",
            self.endpoint,
            self.dir.display(),
            tail(&self.log(), 40),
            self.events.join("\n")
        )
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!("===== {}", self.report());
        }
        self.kill();
    }
}

fn json_escape(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o
}
