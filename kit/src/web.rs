//! Web clients of the administration console, shared by the benchmark driver and the
//! integration tests (`deviceuser_kit::web`): a plain HTTP/1.1 client and a WebSocket client over `std::net`, and a
//! WebDriver client driving Debian's headless Chromium through `chromedriver`.
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::free_port;
pub use crate::{poll, scaled, slowdown, wait_until};

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// One request on a new connection (`Connection: close`); `body` is sent as is.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("cannot connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(scaled(Duration::from_secs(20))))
        .unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    // The server may answer (and close) before reading a body it refuses.
    let _ = s.write_all(&bytes);
    let out = read_response(&mut s);
    parse_response(&out).unwrap_or_else(|| {
        panic!(
            "no HTTP response to {method} {path}: {:?}",
            String::from_utf8_lossy(&out)
        )
    })
}

/// Reads one response: the head, then as many bytes as its Content-Length says (servers
/// that keep the connection open despite `Connection: close` are not waited for), or up to
/// the end of the connection without one.
fn read_response(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(n) = length {
                if out.len() >= end + 4 + n {
                    return out;
                }
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

fn parse_response(raw: &[u8]) -> Option<Resp> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if let Some(n) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(n);
    }
    Some(Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A console API client holding a session.
pub struct Client {
    pub port: u16,
    pub cookie: String,
    pub csrf: String,
    pub origin: String,
}

impl Client {
    pub fn base(&self) -> String {
        "/deviceuser/api/".into()
    }

    /// Logs in; `Err` with the response on failure.
    pub fn login(port: u16, user: &str, password: &str) -> Result<Client, Resp> {
        let r = request(
            port,
            "POST",
            "/deviceuser/api/session",
            &[("Content-Type", "application/json")],
            Some(
                json!({"user": user, "password": password})
                    .to_string()
                    .as_bytes(),
            ),
        );
        if r.status != 200 {
            return Err(r);
        }
        let cookie = r
            .header("Set-Cookie")
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_string();
        let csrf = r.json()["csrf"].as_str().expect("a CSRF token").to_string();
        Ok(Client {
            port,
            cookie,
            csrf,
            origin: format!("http://127.0.0.1:{port}"),
        })
    }

    pub fn get(&self, path: &str) -> Resp {
        request(
            self.port,
            "GET",
            &format!("/deviceuser/api/{path}"),
            &[("Cookie", &self.cookie)],
            None,
        )
    }

    /// A state-changing request from the console's own page: cookie, CSRF token, Origin.
    pub fn send(&self, method: &str, path: &str, body: Option<Value>, etag: Option<&str>) -> Resp {
        let mut headers = vec![
            ("Cookie", self.cookie.as_str()),
            ("X-CSRF-Token", self.csrf.as_str()),
            ("Origin", self.origin.as_str()),
        ];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        if let Some(e) = etag {
            headers.push(("If-Match", e));
        }
        let text = body.map(|b| b.to_string());
        request(
            self.port,
            method,
            &format!("/deviceuser/api/{path}"),
            &headers,
            text.as_deref().map(str::as_bytes),
        )
    }
}

// ---------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------

/// A WebSocket client of the live feed.
pub struct Ws {
    s: TcpStream,
    buf: Vec<u8>,
    /// Events of frames already read that no wait has consumed yet.
    events: std::collections::VecDeque<Value>,
    /// Binary (compressed) frames received so far.
    pub binary_frames: usize,
}

/// A data frame of the feed.
pub enum Message {
    /// A JSON array of events.
    Text(String),
    /// Compressed events (`?compress=deflate`): see [`events_of_packed`].
    Binary(Vec<u8>),
}

impl Message {
    /// The frame's events as the text of a JSON array.
    pub fn into_json(self) -> Result<String, String> {
        match self {
            Message::Text(t) => Ok(t),
            Message::Binary(b) => events_of_packed(&b),
        }
    }
}

/// The JSON array text of a compressed frame: a raw DEFLATE stream (RFC 1951) of events,
/// each followed by a comma.
pub fn events_of_packed(bytes: &[u8]) -> Result<String, String> {
    let raw = miniz_oxide::inflate::decompress_to_vec(bytes)
        .map_err(|e| format!("not a raw DEFLATE stream: {e:?}"))?;
    let text = String::from_utf8(raw).map_err(|e| format!("not UTF-8: {e}"))?;
    let events = text
        .strip_suffix(',')
        .ok_or_else(|| format!("events not ended by a comma: {text:.80}"))?;
    Ok(format!("[{events}]"))
}

impl Ws {
    /// Opens the feed with a session cookie; `Err` with the HTTP answer if refused.
    pub fn connect(port: u16, cookie: &str, origin: &str) -> Result<Ws, String> {
        Ws::connect_query(port, cookie, origin, "")
    }

    /// Opens the feed with a query (`compress=deflate`, say); `Err` with the HTTP answer if
    /// refused.
    pub fn connect_query(port: u16, cookie: &str, origin: &str, query: &str) -> Result<Ws, String> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let req = format!(
            "GET /deviceuser/ws{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: deviceuser\r\n\
             Origin: {origin}\r\nCookie: {cookie}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(scaled(Duration::from_secs(10))))
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(String::from_utf8_lossy(&buf).into_owned());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        if !head.starts_with("HTTP/1.1 101") {
            let _ = s.read_to_end(&mut buf);
            return Err(String::from_utf8_lossy(&buf).into_owned());
        }
        let rest = buf[end + 4..].to_vec();
        Ok(Ws {
            s,
            buf: rest,
            events: Default::default(),
            binary_frames: 0,
        })
    }

    /// The next frame's events as JSON array text within `timeout` (compressed frames
    /// inflated; pings and other frames are skipped); `None` on timeout, close or error.
    pub fn next_text(&mut self, timeout: Duration) -> Option<String> {
        let m = self.next_message(timeout)?;
        Some(m.into_json().expect("a valid compressed frame"))
    }

    /// The next data frame within `timeout` (pings and other frames are skipped); `None` on
    /// timeout, close or error.
    pub fn next_message(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + scaled(timeout);
        loop {
            if let Some((opcode, payload, used)) = frame(&self.buf) {
                self.buf.drain(..used);
                match opcode {
                    1 => {
                        return Some(Message::Text(
                            String::from_utf8_lossy(&payload).into_owned(),
                        ))
                    }
                    2 => {
                        self.binary_frames += 1;
                        return Some(Message::Binary(payload));
                    }
                    8 => return None,
                    _ => continue,
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }

    /// Events (the JSON arrays of the frames) until `pred` matches one; the matching event.
    pub fn wait_event(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + scaled(timeout);
        loop {
            // Events before the match are passed over; those after it wait for the next call.
            while let Some(e) = self.events.pop_front() {
                if pred(&e) {
                    return Some(e);
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let text = self.next_text(left)?;
            let v: Value = serde_json::from_str(&text).expect("a JSON frame");
            self.events
                .extend(v.as_array().expect("an array of events").iter().cloned());
        }
    }

    /// Whether the server closed the connection (a close frame or EOF) within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + scaled(timeout);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if self.next_text(left).is_none() {
                return Instant::now() < deadline;
            }
        }
        false
    }
}

/// One complete server frame at the start of `b`: (opcode, payload, bytes used).
fn frame(b: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if b.len() < 2 {
        return None;
    }
    let opcode = b[0] & 0x0f;
    let (len, mut at) = match b[1] & 0x7f {
        126 => (u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4),
        127 => (
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    if b[1] & 0x80 != 0 {
        at += 4;
    }
    let payload = b.get(at..at + len)?.to_vec();
    Some((opcode, payload, at + len))
}

// ---------------------------------------------------------------------------
// WebDriver (chromedriver + Debian's chromium, headless)
// ---------------------------------------------------------------------------

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A running chromedriver; killed when dropped.
pub struct Driver {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Driver {
    /// Starts chromedriver; panics (telling how to get it) if Chromium is not installed.
    pub fn start(dir: &Path) -> Driver {
        for p in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(p).exists(),
                "{p} is missing: the browser tests need Debian's chromium and chromium-driver \
                 (scripts/test.sh installs them through scripts/provision.sh)"
            );
        }
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start chromedriver");
        let d = Driver {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        assert!(
            wait_until(Duration::from_secs(20), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "chromedriver did not listen on {port}"
        );
        d
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let text = body.map(|b| b.to_string());
        let mut headers = vec![];
        if text.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        let r = request(
            self.port,
            method,
            path,
            &headers,
            text.as_deref().map(str::as_bytes),
        );
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        if r.status >= 400 {
            panic!("WebDriver {method} {path}: {} {}", r.status, r.body);
        }
        v["value"].clone()
    }

    /// A new headless browser with a fresh profile.
    pub fn browser(&self, name: &str) -> Browser<'_> {
        self.browser_lang(name, "en-US")
    }

    /// A browser session (its own profile) whose language, as the page reads it from
    /// `navigator.languages`, is `lang` (e.g. `ru-RU`).
    pub fn browser_lang(&self, name: &str, lang: &str) -> Browser<'_> {
        let profile = self.dir.join(format!("profile-{name}"));
        let _ = std::fs::remove_dir_all(&profile);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--no-first-run", "--no-default-browser-check",
                    "--window-size=1400,900", format!("--lang={lang}"),
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {"intl.accept_languages": lang},
            }
        }}});
        let v = self.call("POST", "/session", Some(caps));
        let id = v["sessionId"]
            .as_str()
            .expect("a WebDriver session id")
            .to_string();
        Browser { driver: self, id }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session.
pub struct Browser<'a> {
    driver: &'a Driver,
    id: String,
}

impl Browser<'_> {
    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.id)
    }

    pub fn goto(&self, url: &str) {
        self.driver
            .call("POST", &self.path("/url"), Some(json!({"url": url})));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn js(&self, script: &str, args: Value) -> Value {
        self.driver.call(
            "POST",
            &self.path("/execute/sync"),
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Runs an async script: it calls `arguments[arguments.length - 1](value)` when done.
    pub fn js_async(&self, script: &str, args: Value) -> Value {
        self.driver.call(
            "POST",
            &self.path("/execute/async"),
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The element `css` selects, once it exists (and is shown, if `visible`).
    pub fn find(&self, css: &str) -> String {
        let found = poll(Duration::from_secs(10), || {
            let ok = self.js(
                "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0;",
                json!([css]),
            );
            ok.as_bool().filter(|b| *b)
        });
        assert!(
            found.is_some(),
            "no visible element {css}: {}",
            self.text("body")
        );
        let v = self.driver.call(
            "POST",
            &self.path("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element id for {css}: {v}"))
            .to_string()
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.driver.call(
            "POST",
            &self.path(&format!("/element/{e}/click")),
            Some(json!({})),
        );
    }

    /// Clears an input and types `text` into it.
    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.driver.call(
            "POST",
            &self.path(&format!("/element/{e}/clear")),
            Some(json!({})),
        );
        self.driver.call(
            "POST",
            &self.path(&format!("/element/{e}/value")),
            Some(json!({"text": text})),
        );
    }

    /// Presses keys on the focused element (WebDriver key codes, e.g. "\u{E007}" Enter).
    pub fn keys(&self, css: &str, keys: &str) {
        let e = self.find(css);
        self.driver.call(
            "POST",
            &self.path(&format!("/element/{e}/value")),
            Some(json!({"text": keys})),
        );
    }

    /// The `textContent` of the element `css` selects ("" if none).
    pub fn text(&self, css: &str) -> String {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
            json!([css]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Waits until the text of `css` contains `needle`.
    pub fn wait_text(&self, css: &str, needle: &str) -> bool {
        wait_until(Duration::from_secs(10), || self.text(css).contains(needle))
    }

    /// A PNG screenshot of the window, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        let v = self.driver.call("GET", &self.path("/screenshot"), None);
        let png = base64_decode(v.as_str().expect("base64 PNG"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// The text of an open alert, if one is open (a script's `alert()` would open one).
    pub fn alert(&self) -> Option<String> {
        let r = request(
            self.driver.port,
            "GET",
            &self.path("/alert/text"),
            &[],
            None,
        );
        (r.status == 200).then(|| {
            serde_json::from_str::<Value>(&r.body).unwrap()["value"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
    }

    pub fn accept_alert(&self) {
        self.driver
            .call("POST", &self.path("/alert/accept"), Some(json!({})));
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = request(self.driver.port, "DELETE", &self.path(""), &[], None);
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let mut map = HashMap::new();
    for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        .chars()
        .enumerate()
    {
        map.insert(c, i as u32);
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        acc = (acc << 6) | map[&c];
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
