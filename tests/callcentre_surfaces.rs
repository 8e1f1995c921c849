//! Surfaces for integrators on the real Asterisk: refused logins from phones as Asterisk
//! security events (the `security` log channel, what fail2ban reads) with a fixed reason
//! token in `DeviceUserLoginFailed`, and the module's metrics in Asterisk's `/metrics`
//! (res_prometheus), scraped over HTTP.
mod common;
mod hotdesk_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Asterisk;
use hotdesk_common::{self as hd, LONG};

/// The `SECURITY` lines of the log after `mark` naming `event`.
fn security_lines(ast: &Asterisk, mark: usize, event: &str) -> Vec<String> {
    let needle = format!("SecurityEvent=\"{event}\"");
    ast.log_since(mark)
        .lines()
        .filter(|l| l.contains("SECURITY[") && l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// Waits for a security event line of the module's service with all of `fields`.
fn wait_security(ast: &Asterisk, mark: usize, event: &str, fields: &[&str]) -> String {
    hd::poll(|| {
        security_lines(ast, mark, event)
            .into_iter()
            .find(|l| l.contains("Service=\"DeviceUser\"") && fields.iter().all(|f| l.contains(f)))
    })
    .unwrap_or_else(|| {
        panic!(
            "no {event} security event with {fields:?}:\n{}",
            ast.log_since(mark)
        )
    })
}

#[test]
fn refused_logins_are_security_events_with_a_reason_token() {
    let ast = hd::start_with_general(
        "surf-security",
        "max_login_failures = 2\nmultiple_logins = no",
    );
    let mut ami = ast.ami_events();

    // A wrong PIN: InvalidPassword, with the phone's address.
    let mark = ast.log_mark();
    assert_eq!(hd::login(&ast, "1000", "4101", "9999"), "FAILED");
    let line = wait_security(
        &ast,
        mark,
        "InvalidPassword",
        &["AccountID=\"4101\"", "SessionID=\"PJSIP/1000-"],
    );
    assert!(
        line.contains("RemoteAddress=\"IPV4/UDP/127.0.0.1/"),
        "{line}"
    );
    assert!(!line.contains("9999"), "the PIN is in the event: {line}");
    let ev = ami
        .wait_event(
            "DeviceUserLoginFailed",
            |m| m.get("User") == Some("4101"),
            LONG,
        )
        .expect("DeviceUserLoginFailed");
    assert_eq!(ev.get("Reason"), Some("WrongPassword"), "{ev}");
    assert_eq!(ev.get("ReasonText"), Some("wrong password"), "{ev}");
    assert_eq!(ev.get("Device"), Some("1000"), "{ev}");

    // An unknown user: InvalidAccountID.
    let mark = ast.log_mark();
    assert_eq!(hd::login(&ast, "1001", "4999", "1234"), "NOUSER");
    wait_security(&ast, mark, "InvalidAccountID", &["AccountID=\"4999\""]);
    let ev = ami
        .wait_event(
            "DeviceUserLoginFailed",
            |m| m.get("User") == Some("4999"),
            LONG,
        )
        .expect("DeviceUserLoginFailed for 4999");
    assert_eq!(ev.get("Reason"), Some("NoSuchUser"), "{ev}");

    // The second wrong PIN locks 4101; the next try is refused as Locked.
    assert_eq!(hd::login(&ast, "1000", "4101", "9998"), "LOCKED");
    let mark = ast.log_mark();
    assert_eq!(hd::login(&ast, "1000", "4101", "1234"), "LOCKED");
    wait_security(
        &ast,
        mark,
        "RequestNotAllowed",
        &["RequestType=\"UserLogin\"", "RequestParams=\"Locked\""],
    );
    assert!(ami
        .wait_event(
            "DeviceUserLoginFailed",
            |m| m.get("Reason") == Some("Locked"),
            LONG
        )
        .is_some());

    // multiple_logins = no: Denied.
    hd::login_ok(&ast, "1000", "4102", "2345");
    let mark = ast.log_mark();
    assert_eq!(hd::login(&ast, "1001", "4102", "2345"), "DENIED");
    wait_security(
        &ast,
        mark,
        "RequestNotAllowed",
        &["AccountID=\"4102\"", "RequestParams=\"Denied\""],
    );

    // A fixed phone: Fixed.
    let mark = ast.log_mark();
    assert_eq!(
        hd::call_for_status(&ast, "2010", "*11", "UserLogin"),
        "FIXED"
    );
    wait_security(
        &ast,
        mark,
        "RequestNotAllowed",
        &["SessionID=\"PJSIP/2010-", "RequestParams=\"Fixed\""],
    );
    assert!(ami
        .wait_event(
            "DeviceUserLoginFailed",
            |m| m.get("Reason") == Some("Fixed"),
            LONG
        )
        .is_some());
}

/// A request to Asterisk's HTTP server: (status code, body).
fn http(port: u16, method: &str, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    Ok((code, body.to_string()))
}

/// GET `path`; the body of a 200.
fn http_get(port: u16, path: &str) -> Result<String, String> {
    match http(port, "GET", path)? {
        (200, body) => Ok(body),
        (code, body) => Err(format!("{code}: {body}")),
    }
}

/// The value of one sample line (`name` with its labels exactly as printed).
fn metric(body: &str, sample: &str) -> Option<u64> {
    body.lines().find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn metrics_are_served_on_asterisks_metrics_page() {
    let http_port = common::free_port();
    let read = |f: &str| {
        std::fs::read_to_string(common::repo().join("samples/prometheus").join(f)).unwrap()
    };
    let http = read("http.conf").replace("bindport = 8088", &format!("bindport = {http_port}"));
    assert!(http.contains(&http_port.to_string()));
    let ast = hd::builder("surf-prometheus")
        .conf(
            "res_deviceuser.conf",
            &hd::deviceuser_conf_with_general("max_login_failures = 2"),
        )
        .conf("http.conf", &http)
        .conf("prometheus.conf", &read("prometheus.conf"))
        .load_module("res_prometheus.so")
        .start();
    let scrape = || {
        let body = hd::poll(|| {
            http_get(http_port, "/metrics")
                .ok()
                .filter(|b| b.contains("deviceuser_users_logged_in"))
        });
        body.unwrap_or_else(|| {
            panic!(
                "no deviceuser metrics on /metrics: {:?}\n{}",
                http_get(http_port, "/metrics"),
                ast.log()
            )
        })
    };
    let body = scrape();
    // Only the fixed phone's owner at first.
    assert_eq!(metric(&body, "deviceuser_devices_bound"), Some(1), "{body}");
    assert_eq!(
        metric(&body, "deviceuser_users_logged_in"),
        Some(1),
        "{body}"
    );
    assert!(
        body.contains("# TYPE deviceuser_logins_total counter"),
        "{body}"
    );

    let mut ami = ast.ami();
    ami.login_ok("4101", "1000");
    ami.login_ok("4101", "1001");
    ami.login_ok("4102", "1002");
    ami.logout_ok("4102");
    ami.setvar_ok("DEVICEUSER(4103,dnd)", "1");
    assert_eq!(hd::login(&ast, "1002", "4104", "0000"), "FAILED");
    assert_eq!(hd::login(&ast, "1002", "4104", "0001"), "LOCKED");
    assert_eq!(hd::login(&ast, "1002", "4999", "1234"), "NOUSER");

    let body = scrape();
    let expect = [
        ("deviceuser_devices_bound", 3),
        ("deviceuser_users_logged_in", 2),
        ("deviceuser_users_dnd", 1),
        ("deviceuser_users_locked", 1),
        ("deviceuser_logins_total{reason=\"admin\"}", 3),
        ("deviceuser_logouts_total{reason=\"admin\"}", 1),
        (
            "deviceuser_login_failures_total{reason=\"WrongPassword\"}",
            2,
        ),
        ("deviceuser_login_failures_total{reason=\"NoSuchUser\"}", 1),
        ("deviceuser_login_failures_total{reason=\"Denied\"}", 0),
        ("deviceuser_lockouts_total", 1),
        ("deviceuser_commit_queue_depth", 0),
        ("deviceuser_follow_up_queue_depth", 0),
    ];
    for (sample, want) in expect {
        assert_eq!(metric(&body, sample), Some(want), "{sample}:\n{body}");
    }
    // Asterisk's own metrics are on the same page.
    assert!(body.contains("asterisk_"), "{body}");

    // Unloaded, the module's metrics leave the page and Asterisk keeps serving it.
    ast.cli("module unload res_deviceuser.so");
    let gone = hd::wait(|| {
        http_get(http_port, "/metrics")
            .is_ok_and(|b| !b.contains("deviceuser_") && b.contains("asterisk_"))
    });
    assert!(gone, "{:?}", http_get(http_port, "/metrics"));
    ast.cli("module load res_deviceuser.so");
    let body = scrape();
    assert_eq!(metric(&body, "deviceuser_devices_bound"), Some(3), "{body}");
    hd::assert_alive(&ast);
}

/// A websocket client of ARI's `/ari/events` (text frames from the server, unmasked).
struct AriEvents {
    s: TcpStream,
    buf: Vec<u8>,
}

impl AriEvents {
    fn connect(port: u16, app: &str) -> AriEvents {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET /ari/events?app={app}&api_key=deviceuser:deviceuser HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut ws = AriEvents { s, buf: Vec::new() };
        let head = loop {
            if let Some(i) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&ws.buf[..i]).into_owned();
                ws.buf.drain(..i + 4);
                break head;
            }
            assert!(
                ws.fill(Duration::from_secs(10)),
                "no websocket handshake answer"
            );
        };
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "websocket refused:\n{head}"
        );
        ws
    }

    /// Reads more bytes; false on timeout or close.
    fn fill(&mut self, timeout: Duration) -> bool {
        self.s.set_read_timeout(Some(timeout)).unwrap();
        let mut chunk = [0u8; 4096];
        match self.s.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next text frame, if one comes within `timeout`.
    fn next(&mut self, timeout: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.buf.len() >= 2 {
                let opcode = self.buf[0] & 0x0f;
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&self.buf[2..10]);
                        (u64::from_be_bytes(b) as usize, 10)
                    }
                    n if n < 126 => (n as usize, 2),
                    _ => (usize::MAX, 0),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let payload: Vec<u8> = self.buf.drain(..at + len).skip(at).collect();
                    if opcode == 1 {
                        return Some(String::from_utf8_lossy(&payload).into_owned());
                    }
                    continue;
                }
            }
            let now = std::time::Instant::now();
            if now >= deadline || !self.fill(deadline - now) {
                return None;
            }
        }
    }

    /// The next event whose JSON contains every one of `needles`; earlier ones are skipped.
    fn wait(&mut self, needles: &[&str]) -> String {
        let deadline = std::time::Instant::now() + LONG;
        let mut seen = Vec::new();
        while let Some(e) = self.next(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            if needles.iter().all(|n| e.contains(n)) {
                return e;
            }
            seen.push(e);
        }
        panic!("no ARI event with {needles:?}; got:\n{}", seen.join("\n"))
    }

    /// Events that come within `d`, of the module's types.
    fn module_events(&mut self, d: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + d;
        let mut v = Vec::new();
        while let Some(e) = self.next(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            if e.contains("\"type\":\"DeviceUser") {
                v.push(e);
            }
        }
        v
    }
}

const ARI_CONF: &str = "
[general]
enabled = yes

[deviceuser]
type = user
read_only = no
password = deviceuser
";

#[test]
fn ari_applications_receive_login_logout_and_dnd_events() {
    let http_port = common::free_port();
    let ast = hd::builder("surf-ari")
        .conf(
            "http.conf",
            &format!("[general]\nenabled = yes\nbindaddr = 127.0.0.1\nbindport = {http_port}\n"),
        )
        .conf("ari.conf", ARI_CONF)
        .start();
    let key = "api_key=deviceuser:deviceuser";
    let mut wall = AriEvents::connect(http_port, "wall");
    let mut audit = AriEvents::connect(http_port, "audit");
    // wall follows 4101; audit every user.
    let subscribe = |app: &str, source: &str| {
        hd::poll(|| {
            let r = http(
                http_port,
                "POST",
                &format!("/ari/applications/{app}/subscription?eventSource={source}&{key}"),
            )
            .ok()?;
            (r.0 == 200).then_some(r.1)
        })
        .unwrap_or_else(|| panic!("{app} could not subscribe to {source}:\n{}", ast.log()))
    };
    let app = subscribe("wall", "deviceUser:4101");
    assert!(app.contains("\"device_user_ids\":[\"4101\"]"), "{app}");
    subscribe("audit", "deviceUser:");
    // A user the module does not know is no event source.
    let (code, body) = http(
        http_port,
        "POST",
        &format!("/ari/applications/wall/subscription?eventSource=deviceUser:4999&{key}"),
    )
    .unwrap();
    assert!((400..500).contains(&code), "{code} {body}");

    let mut ami = ast.ami();
    ami.login_ok("4101", "1000");
    let e = wall.wait(&["\"type\":\"DeviceUserLogin\"", "\"user\":\"4101\""]);
    for field in [
        "\"application\":\"wall\"",
        "\"device\":\"1000\"",
        "\"reason\":\"admin\"",
        "\"timestamp\":\"",
    ] {
        assert!(e.contains(field), "{field} missing: {e}");
    }
    audit.wait(&[
        "\"type\":\"DeviceUserLogin\"",
        "\"user\":\"4101\"",
        "\"application\":\"audit\"",
    ]);

    // 4102 reaches audit only.
    ami.login_ok("4102", "1001");
    audit.wait(&["\"type\":\"DeviceUserLogin\"", "\"user\":\"4102\""]);

    std::thread::sleep(Duration::from_secs(1));
    ami.logout_ok("4101");
    let e = wall.wait(&["\"type\":\"DeviceUserLogout\"", "\"user\":\"4101\""]);
    assert!(e.contains("\"reason\":\"admin\""), "{e}");
    let duration: u64 = e
        .split("\"duration\":")
        .nth(1)
        .and_then(|r| r.split(['}', ',']).next())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no duration: {e}"));
    assert!(duration >= 1, "{e}");

    ami.setvar_ok("DEVICEUSER(4101,dnd)", "1");
    wall.wait(&[
        "\"type\":\"DeviceUserDND\"",
        "\"user\":\"4101\"",
        "\"dnd\":true",
    ]);
    let rest = wall.module_events(Duration::from_secs(2));
    assert!(
        rest.iter().all(|e| e.contains("\"user\":\"4101\"")),
        "wall got another user's event: {rest:?}"
    );

    // Unsubscribed, wall gets nothing more.
    let (code, _) = http(
        http_port,
        "DELETE",
        &format!("/ari/applications/wall/subscription?eventSource=deviceUser:4101&{key}"),
    )
    .unwrap();
    assert_eq!(code, 200);
    ami.setvar_ok("DEVICEUSER(4101,dnd)", "0");
    audit.wait(&["\"type\":\"DeviceUserDND\"", "\"dnd\":false"]);
    assert!(wall.module_events(Duration::from_secs(2)).is_empty());
    hd::assert_alive(&ast);
}
