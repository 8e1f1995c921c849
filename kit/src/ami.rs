//! A plain-socket AMI client, for tests and for load: synchronous actions (panicking ones for
//! tests, `Result` ones for drivers), list actions, events buffered while waiting for
//! something else, pipelined bursts (one thread writes every action while the caller reads
//! the responses, so Asterisk never waits on us), and an event counter that runs on its own
//! session and thread ([`StateWatch`]).
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{scaled, TIMEOUT};
/// One AMI message: ordered `key: value` pairs (keys may repeat, e.g. `Output`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    pub fields: Vec<(String, String)>,
}

impl Message {
    pub fn parse(text: &str) -> Message {
        let fields = text
            .split("\r\n")
            .flat_map(|l| l.split('\n'))
            .filter(|l| !l.is_empty())
            .map(|l| match l.split_once(':') {
                Some((k, v)) => (k.trim().to_string(), v.trim_start().to_string()),
                None => (String::new(), l.to_string()),
            })
            .collect();
        Message { fields }
    }

    /// First value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// All values of `key`, in order.
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `get` or "".
    pub fn val(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }

    pub fn event(&self) -> Option<&str> {
        self.get("Event")
    }

    pub fn response(&self) -> Option<&str> {
        self.get("Response")
    }

    pub fn is_success(&self) -> bool {
        self.response()
            .is_some_and(|r| r.eq_ignore_ascii_case("Success"))
    }

    /// `Output:` lines of a `Command` response, joined with newlines.
    pub fn output(&self) -> String {
        self.get_all("Output").join("\n")
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, v) in &self.fields {
            writeln!(f, "{k}: {v}")?;
        }
        Ok(())
    }
}

/// Splits a byte stream into AMI messages (blocks ending with an empty line).
struct Framer {
    buf: Vec<u8>,
    /// Where to resume looking for the terminator.
    scan: usize,
}

impl Framer {
    fn new() -> Self {
        Framer {
            buf: Vec::with_capacity(1 << 16),
            scan: 0,
        }
    }

    /// The next complete message, if the buffer holds one.
    fn next_text(&mut self) -> Option<String> {
        loop {
            let from = self.scan.saturating_sub(3);
            let pos = self.buf[from..]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|p| p + from);
            match pos {
                None => {
                    self.scan = self.buf.len();
                    return None;
                }
                Some(end) => {
                    let text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    self.buf.drain(..end + 4);
                    self.scan = 0;
                    if !text.trim().is_empty() {
                        return Some(text);
                    }
                }
            }
        }
    }

    /// The first line, if complete (the greeting has no empty line after it).
    fn take_line(&mut self) -> Option<String> {
        let i = self.buf.windows(2).position(|w| w == b"\r\n")?;
        let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
        self.buf.drain(..i + 2);
        self.scan = 0;
        Some(line)
    }
}

/// Renders one action; `fields` without `ActionID`.
pub fn render(fields: &[(&str, &str)], id: impl std::fmt::Display) -> String {
    let mut s = String::with_capacity(128);
    for (k, v) in fields {
        s.push_str(k);
        s.push_str(": ");
        s.push_str(v);
        s.push_str("\r\n");
    }
    s.push_str(&format!("ActionID: {id}\r\n\r\n"));
    s
}

/// The wire side of an AMI session: the socket, the greeting, and the framing of what
/// arrives into messages (tests that send malformed bytes use it directly).
pub struct Wire {
    stream: TcpStream,
    framer: Framer,
    /// The greeting line ("Asterisk Call Manager/x.y.z").
    pub banner: String,
}

impl Wire {
    /// Connects to the AMI port on 127.0.0.1 and reads the greeting (not logged in yet).
    pub fn connect(port: u16) -> Result<Wire, String> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("connect to AMI port {port}: {e}"))?;
        stream.set_nodelay(true).ok();
        let mut wire = Wire {
            stream,
            framer: Framer::new(),
            banner: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(line) = wire.framer.take_line() {
                wire.banner = line;
                return Ok(wire);
            }
            if !wire.fill(deadline)? {
                return Err("no AMI greeting".into());
            }
        }
    }

    /// Reads more bytes; false at the deadline.
    fn fill(&mut self, deadline: Instant) -> Result<bool, String> {
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        self.stream
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
            .map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err("AMI connection closed".into()),
            Ok(n) => {
                self.framer.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(format!("AMI read: {e}")),
        }
    }

    /// The next complete message as received (lossy UTF-8), or None at the deadline.
    pub fn read_text(&mut self, deadline: Instant) -> Result<Option<String>, String> {
        loop {
            if let Some(t) = self.framer.next_text() {
                return Ok(Some(t));
            }
            if !self.fill(deadline)? {
                return Ok(None);
            }
        }
    }

    /// The next complete message, or None at the deadline.
    pub fn read_message(&mut self, deadline: Instant) -> Result<Option<Message>, String> {
        Ok(self.read_text(deadline)?.map(|t| Message::parse(&t)))
    }

    /// Writes bytes as they are (a rendered action, or anything a test wants to send).
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("AMI write: {e}"))
    }
}

/// Outcome of a pipelined burst.
#[derive(Clone, Debug)]
pub struct Burst {
    pub actions: usize,
    pub elapsed: Duration,
    pub failed: usize,
    pub first_failure: Option<String>,
}

impl Burst {
    pub fn per_second(&self) -> f64 {
        self.actions as f64 / self.elapsed.as_secs_f64()
    }
}

/// A logged-in AMI session. Events that arrive while it waits for something else are
/// buffered for [`Ami::wait_event`] and [`Ami::drain_events`].
pub struct Ami {
    wire: Wire,
    events: VecDeque<Message>,
    next_id: u64,
    /// The greeting line ("Asterisk Call Manager/x.y.z").
    pub banner: String,
    /// How long an action waits for its response (default 15 s, [`scaled`]).
    pub timeout: Duration,
}

impl Ami {
    /// Connects and logs in.
    pub fn connect(port: u16, user: &str, secret: &str) -> Result<Ami, String> {
        Self::login(port, &[("Username", user), ("Secret", secret)])
    }

    /// Connects and logs in with the Login's `Events` header (`off`, `call`, ...): which
    /// event classes the session receives.
    pub fn connect_with_events(
        port: u16,
        user: &str,
        secret: &str,
        events: &str,
    ) -> Result<Ami, String> {
        Self::login(
            port,
            &[("Username", user), ("Secret", secret), ("Events", events)],
        )
    }

    fn login(port: u16, fields: &[(&str, &str)]) -> Result<Ami, String> {
        let wire = Wire::connect(port)?;
        let mut ami = Ami {
            banner: wire.banner.clone(),
            wire,
            events: VecDeque::new(),
            next_id: 1,
            timeout: TIMEOUT,
        };
        let mut login = vec![("Action", "Login")];
        login.extend_from_slice(fields);
        let r = ami.try_action(&login)?;
        if !r.is_success() {
            let user = fields.first().map_or("", |(_, u)| *u);
            return Err(format!("login as {user} refused: {}", r.val("Message")));
        }
        Ok(ami)
    }

    /// Reserves an ActionID for [`Ami::send_raw`] and [`Ami::wait_response`].
    pub fn reserve_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Writes an already rendered action (see [`render`]).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.wire.send(bytes)
    }

    /// Waits for the response carrying ActionID `id`; events that come first are buffered.
    pub fn wait_response(&mut self, id: u64, deadline: Instant) -> Result<Message, String> {
        let want = id.to_string();
        loop {
            match self.wire.read_message(deadline)? {
                None => return Err(format!("no response to ActionID {id}")),
                Some(m) if m.response().is_some() && m.get("ActionID") == Some(&want) => {
                    return Ok(m)
                }
                Some(m) if m.event().is_some() => self.events.push_back(m),
                Some(_) => {}
            }
        }
    }

    /// Sends an action and returns its response; Err on timeout ([`Ami::timeout`]) or a
    /// closed connection.
    pub fn try_action(&mut self, fields: &[(&str, &str)]) -> Result<Message, String> {
        let id = self.reserve_id();
        self.send_raw(render(fields, id).as_bytes())?;
        let deadline = Instant::now() + scaled(self.timeout);
        self.wait_response(id, deadline)
    }

    /// Sends an action (`[("Action","Ping")]`) and returns its response.
    pub fn action(&mut self, fields: &[(&str, &str)]) -> Message {
        self.try_action(fields)
            .unwrap_or_else(|e| panic!("AMI action {fields:?}: {e}"))
    }

    /// Sends an action that must succeed; `what` names it in the failure.
    pub fn action_ok(&mut self, fields: &[(&str, &str)], what: &str) -> Message {
        let r = self.action(fields);
        assert!(r.is_success(), "{what}: {r}");
        r
    }

    /// `DeviceUserLogin` of `user` on `device`, which must succeed.
    pub fn login_ok(&mut self, user: &str, device: &str) {
        self.action_ok(
            &[
                ("Action", "DeviceUserLogin"),
                ("User", user),
                ("Device", device),
            ],
            &format!("login of {user} on {device}"),
        );
    }

    /// `DeviceUserLogout` of `user` everywhere, which must succeed.
    pub fn logout_ok(&mut self, user: &str) {
        self.action_ok(
            &[("Action", "DeviceUserLogout"), ("User", user)],
            &format!("logout of {user}"),
        );
    }

    /// A list action (e.g. `CoreShowChannels`): the response and the events carrying
    /// its ActionID, up to the one whose name ends with "Complete" (not included).
    pub fn list_action(&mut self, fields: &[(&str, &str)]) -> (Message, Vec<Message>) {
        let id = self.reserve_id();
        self.send_raw(render(fields, id).as_bytes())
            .unwrap_or_else(|e| panic!("AMI action {fields:?}: {e}"));
        let deadline = Instant::now() + scaled(self.timeout);
        let resp = self
            .wait_response(id, deadline)
            .unwrap_or_else(|e| panic!("AMI action {fields:?}: {e}"));
        let id = id.to_string();
        let mut items = Vec::new();
        if !resp.is_success() {
            return (resp, items);
        }
        // Events of this list may already be buffered (they never are before the
        // response in practice, but be safe).
        let mut i = 0;
        while i < self.events.len() {
            if self.events[i].get("ActionID") == Some(id.as_str()) {
                let m = self.events.remove(i).unwrap();
                if m.event().is_some_and(|e| e.ends_with("Complete")) {
                    return (resp, items);
                }
                items.push(m);
            } else {
                i += 1;
            }
        }
        loop {
            match self
                .wire
                .read_message(deadline)
                .unwrap_or_else(|e| panic!("AMI list {fields:?}: {e}"))
            {
                None => panic!(
                    "AMI list {fields:?}: no *Complete event; got {} items",
                    items.len()
                ),
                Some(m) if m.get("ActionID") == Some(id.as_str()) => {
                    if m.event().is_some_and(|e| e.ends_with("Complete")) {
                        return (resp, items);
                    }
                    items.push(m);
                }
                Some(m) if m.event().is_some() => self.events.push_back(m),
                Some(_) => {}
            }
        }
    }

    /// Runs a CLI command through the `Command` action and returns its output.
    pub fn command(&mut self, cmd: &str) -> String {
        let r = self.action(&[("Action", "Command"), ("Command", cmd)]);
        r.output()
    }

    /// Runs a CLI command through the `Command` action; its output, or Err if the action
    /// failed or got no response.
    pub fn try_command(&mut self, cmd: &str) -> Result<String, String> {
        let r = self.try_action(&[("Action", "Command"), ("Command", cmd)])?;
        if !r.is_success() {
            return Err(format!("command {cmd:?} failed: {:?}", r.get("Message")));
        }
        Ok(r.output())
    }

    /// Waits for an event named `name` (case-insensitive) for which `pred` holds;
    /// earlier buffered events are searched first. Other events stay buffered.
    /// `timeout` is [`scaled`].
    pub fn wait_event(
        &mut self,
        name: &str,
        pred: impl Fn(&Message) -> bool,
        timeout: Duration,
    ) -> Option<Message> {
        let matches =
            |m: &Message| m.event().is_some_and(|e| e.eq_ignore_ascii_case(name)) && pred(m);
        if let Some(i) = self.events.iter().position(&matches) {
            return self.events.remove(i);
        }
        let deadline = Instant::now() + scaled(timeout);
        loop {
            match self.wire.read_message(deadline) {
                Ok(Some(m)) if m.event().is_some() => {
                    if matches(&m) {
                        return Some(m);
                    }
                    self.events.push_back(m);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Reads whatever arrived and returns all buffered events, emptying the buffer.
    pub fn drain_events(&mut self) -> Vec<Message> {
        let deadline = Instant::now() + Duration::from_millis(50);
        while let Ok(Some(m)) = self.wire.read_message(deadline) {
            if m.event().is_some() {
                self.events.push_back(m);
            }
        }
        self.events.drain(..).collect()
    }

    /// Forgets buffered events.
    pub fn clear_events(&mut self) {
        self.drain_events();
    }

    /// `Getvar` of a variable or function, globally or on a channel.
    pub fn getvar(&mut self, variable: &str, channel: Option<&str>) -> Option<String> {
        let mut f = vec![("Action", "Getvar"), ("Variable", variable)];
        if let Some(c) = channel {
            f.push(("Channel", c));
        }
        let r = self.action(&f);
        if r.is_success() {
            Some(r.val("Value").to_string())
        } else {
            None
        }
    }

    /// Global `Setvar` of a variable or function, which must succeed.
    pub fn setvar_ok(&mut self, variable: &str, value: &str) {
        self.action_ok(
            &[
                ("Action", "Setvar"),
                ("Variable", variable),
                ("Value", value),
            ],
            &format!("Setvar {variable} = {value}"),
        );
    }

    /// Sends every action at once from a writer thread and reads the responses here, so the
    /// socket is drained continuously. Timing runs from the first write to the last response
    /// (at most 600 s); events that come meanwhile are buffered.
    pub fn pipeline(&mut self, actions: &[Vec<(String, String)>]) -> Result<Burst, String> {
        let mut payload = Vec::with_capacity(actions.len() * 100);
        let first = self.next_id;
        for a in actions {
            let fields: Vec<(&str, &str)> =
                a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let id = self.reserve_id();
            payload.extend_from_slice(render(&fields, id).as_bytes());
        }
        let last = self.next_id - 1;
        let mut writer = self
            .wire
            .stream
            .try_clone()
            .map_err(|e| format!("clone AMI socket: {e}"))?;
        let start = Instant::now();
        let handle = thread::spawn(move || writer.write_all(&payload).map_err(|e| e.to_string()));
        let mut got = 0usize;
        let mut failed = 0usize;
        let mut first_failure = None;
        let deadline = start + Duration::from_secs(600);
        while got < actions.len() {
            let m = match self.wire.read_message(deadline)? {
                Some(m) => m,
                None => return Err(format!("pipeline: {got}/{} responses", actions.len())),
            };
            if m.response().is_none() {
                if m.event().is_some() {
                    self.events.push_back(m);
                }
                continue;
            }
            let Some(id) = m.get("ActionID").and_then(|i| i.parse::<u64>().ok()) else {
                continue;
            };
            if id < first || id > last {
                continue;
            }
            got += 1;
            if !m.is_success() {
                failed += 1;
                if first_failure.is_none() {
                    first_failure = Some(m.get("Message").unwrap_or("?").to_string());
                }
            }
        }
        let elapsed = start.elapsed();
        handle
            .join()
            .map_err(|_| "writer thread panicked".to_string())??;
        Ok(Burst {
            actions: actions.len(),
            elapsed,
            failed,
            first_failure,
        })
    }
}

impl Drop for Ami {
    fn drop(&mut self) {
        let _ = self.wire.send(b"Action: Logoff\r\n\r\n");
    }
}

/// Builds one action as owned pairs, for [`Ami::pipeline`].
pub fn act(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `Custom:dev17` → `Custom:dev`, `DeviceUser:100017` → `DeviceUser:`: the name without its
/// trailing number, which is how the benchmarks group devices.
pub fn stem(device: &str) -> &str {
    device.trim_end_matches(|c: char| c.is_ascii_digit())
}

#[derive(Default)]
struct Seen {
    /// (stem, state) → devices that reached that state since the last reset.
    devices: HashMap<(String, String), HashSet<String>>,
    /// (stem, state) → when the last new device reached it.
    last: HashMap<(String, String), Instant>,
    total_events: usize,
    closed: Option<String>,
}

/// Counts `DeviceStateChange` events on a session of its own (which receives events only,
/// filtered in Asterisk to that event for devices named `device_prefix`…, so the session
/// carries only the events a scenario waits for), on a background thread that never stalls
/// the socket.
pub struct StateWatch {
    seen: Arc<Mutex<Seen>>,
    _ami: Ami,
}

impl StateWatch {
    pub fn start(port: u16, device_prefix: &str) -> Result<StateWatch, String> {
        // DeviceStateChange belongs to the `call` class; of the events of that class, only
        // DeviceStateChange has a `Device:` header naming a device with a technology prefix.
        let mut ami = Ami::connect_with_events(port, "deviceuser", "deviceuser", "call")?;
        let r = ami.try_action(&[
            ("Action", "Filter"),
            ("Operation", "Add"),
            ("Filter", &format!("Device: {device_prefix}")),
        ])?;
        if !r.is_success() {
            return Err(format!("AMI Filter refused: {:?}", r.get("Message")));
        }
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut stream = ami
            .wire
            .stream
            .try_clone()
            .map_err(|e| format!("clone AMI socket: {e}"))?;
        stream.set_read_timeout(None).ok();
        let mut framer = Framer::new();
        std::mem::swap(&mut framer.buf, &mut ami.wire.framer.buf);
        let shared = Arc::clone(&seen);
        thread::spawn(move || {
            let mut chunk = vec![0u8; 1 << 16];
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => {
                        shared.lock().unwrap().closed = Some("AMI event session closed".into());
                        return;
                    }
                    Ok(n) => framer.buf.extend_from_slice(&chunk[..n]),
                }
                let now = Instant::now();
                let mut batch = Vec::new();
                while let Some(t) = framer.next_text() {
                    let m = Message::parse(&t);
                    if m.get("Event") != Some("DeviceStateChange") {
                        continue;
                    }
                    if let (Some(d), Some(s)) = (m.get("Device"), m.get("State")) {
                        batch.push((d.to_string(), s.to_string()));
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                let mut seen = shared.lock().unwrap();
                seen.total_events += batch.len();
                for (device, state) in batch {
                    let key = (stem(&device).to_string(), state);
                    if seen.devices.entry(key.clone()).or_default().insert(device) {
                        seen.last.insert(key, now);
                    }
                }
            }
        });
        Ok(StateWatch { seen, _ami: ami })
    }

    /// Forgets everything counted so far.
    pub fn reset(&self) {
        let mut s = self.seen.lock().unwrap();
        s.devices.clear();
        s.last.clear();
        s.total_events = 0;
    }

    /// How many distinct devices named `<stem><n>` reached `state`, and when the last did.
    pub fn count(&self, stem: &str, state: &str) -> (usize, Option<Instant>) {
        let s = self.seen.lock().unwrap();
        let key = (stem.to_string(), state.to_string());
        (
            s.devices.get(&key).map_or(0, HashSet::len),
            s.last.get(&key).copied(),
        )
    }

    pub fn total_events(&self) -> usize {
        self.seen.lock().unwrap().total_events
    }

    /// Waits until `want` devices of `stem` reached `state`, or nothing new came for `quiet`.
    /// Returns the count and the time of the last arrival.
    pub fn wait_for(
        &self,
        stem: &str,
        state: &str,
        want: usize,
        quiet: Duration,
    ) -> Result<(usize, Option<Instant>), String> {
        crate::wait_progress(want, quiet, || {
            if let Some(e) = &self.seen.lock().unwrap().closed {
                return Err(e.clone());
            }
            Ok(self.count(stem, state))
        })
    }
}
