//! baresip as a SIP peer: a softphone registered as an endpoint, controlled over ctrl_tcp.
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{peer_dir, secret};
use crate::{free_port, poll, read_lossy, scaled, tail, wait_until, Asterisk, TIMEOUT};

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
                read_lossy(&dir.join("baresip.log"))
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

    /// Dials `number` and waits up to `timeout` until Asterisk answered; panics with the
    /// phone's report if it did not.
    pub fn dial_answered(&mut self, ast: &Asterisk, number: &str, timeout: Duration) {
        self.dial(ast, number);
        if self.wait_event("CALL_ESTABLISHED", timeout).is_none() {
            panic!("call to {number} not answered:\n{}", self.report());
        }
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
        read_lossy(&self.dir.join("baresip.log"))
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
