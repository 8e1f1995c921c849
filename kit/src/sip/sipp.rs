//! sipp as a SIP peer: a scenario of `tests/sipp/` against an instance, with the message
//! trace in the peer's folder.
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{peer_dir, scenario, secret};
use crate::{free_port, poll, read_lossy, scaled, tail, wait_until, Asterisk, TIMEOUT};

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
        Self::subscriber(ast, "subscribe-pidf.xml", endpoint, exten)
    }

    /// One SUBSCRIBE dialog of `scenario_name` as `endpoint` (authenticated with its
    /// secret) to `exten`, answering every NOTIFY: [`Sipp::watcher`] for presence,
    /// `subscribe-mwi.xml` for message-summary on the endpoint's own AOR.
    pub fn subscriber(ast: &Asterisk, scenario_name: &str, endpoint: &str, exten: &str) -> Sipp {
        let pw = secret(endpoint);
        Self::spawn(
            ast,
            scenario_name,
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
        read_lossy(&self.dir.join("messages.log"))
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
            tail(&read_lossy(&self.dir.join("errors.log")), 20),
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
