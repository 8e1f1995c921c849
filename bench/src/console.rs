//! The administration console under load: the board's API answer and first paint in
//! headless Chromium with many users all logged in, the time from an AMI login to the event
//! at a live-feed client, and login throughput with many boards open against none.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use deviceuser_kit::ami::{act, Ami, Burst};
use deviceuser_kit::web::{self, Client, Driver, Message, Ws};
use deviceuser_kit::{free_port, process, Asterisk, Builder};

use crate::conf::{self, device, user};

const LOGIN: (&str, &str) = ("bench", "bench-console");
const BOARD_REQUESTS: usize = 7;

pub struct Params {
    /// Users and devices, every one logged in before the board is measured.
    pub users: usize,
    /// Login/logout pairs of the throughput bursts.
    pub pairs: usize,
    /// Boards open during the bursts.
    pub boards: usize,
    /// Sequential logouts and logins timed to the feed.
    pub latency_pairs: usize,
    /// Bursts of each kind (alternating; the median is reported).
    pub rounds: usize,
}

pub struct Results {
    /// `GET api/board`, sorted.
    pub board_api: Vec<Duration>,
    /// Asterisk's CPU time per `GET api/board`.
    pub board_cpu: Duration,
    pub board_bytes: usize,
    /// Page loads, sorted by paint.
    pub first_paint: Result<Vec<Paint>, String>,
    /// AMI action sent → event at a feed client, sorted.
    pub feed_latency: Vec<Duration>,
    /// Login/logout bursts without boards open, each with Asterisk's CPU time until it was
    /// idle again and the driver's own.
    pub without_boards: Vec<(Burst, f64, f64)>,
    /// With boards that ask for compressed bursts (as the page does), and with boards that
    /// do not.
    pub compressed: Boards,
    pub plain: Boards,
    pub events_expected: usize,
}

/// The bursts with boards of one kind open.
#[derive(Default)]
pub struct Boards {
    /// Each burst, with Asterisk's CPU time until it was idle again and the driver's own
    /// (its boards' clients included).
    pub bursts: Vec<(Burst, f64, f64)>,
    /// For each burst, the time Asterisk's threads serving the boards (those that appeared
    /// when the boards connected: one per feed) ran until Asterisk was idle again, seconds.
    pub board_threads: Vec<f64>,
    /// Login and logout events each board received during the bursts (all of them must
    /// arrive), and the frames they came in.
    pub events_per_board: Vec<usize>,
    pub frames_per_board: Vec<usize>,
    /// The frames' bytes (payloads, as sent).
    pub bytes_per_board: Vec<usize>,
}

/// One load of the page, times from navigation start (the page's Navigation and Resource
/// Timing and its own marks).
#[derive(Clone, Copy)]
pub struct Paint {
    /// The page's script has run (`DOMContentLoaded` ended).
    pub script: Duration,
    /// `GET api/board` sent, and its answer received in full.
    pub board_sent: Duration,
    pub board_received: Duration,
    /// The first screen of rows in the document, then painted.
    pub rendered: Duration,
    pub painted: Duration,
    /// Board rows in the document.
    pub rows: u64,
}

fn check(b: &Burst, what: &str) -> Result<(), String> {
    if b.failed > 0 {
        return Err(format!(
            "{what}: {} of {} actions failed (first: {:?})",
            b.failed, b.actions, b.first_failure
        ));
    }
    Ok(())
}

/// A feed client on its own thread: every frame, with the time it arrived. Frames are
/// parsed only when a test waits for an event; counting logins and logouts (compressed
/// frames inflated first) is a substring count over each frame (a frame carries many
/// events), done after a burst, so 50 boards on the machine under test cost it little: no
/// JSON parsing, no rendering.
struct Board {
    stop: Arc<AtomicBool>,
    frames: mpsc::Receiver<(Instant, Message)>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Board {
    /// A board; `compressed`: one that asks for compressed bursts, as the page does.
    fn open(port: u16, cookie: &str, compressed: bool) -> Result<Board, String> {
        let query = if compressed { "compress=deflate" } else { "" };
        let mut ws = Ws::connect_query(port, cookie, &format!("http://127.0.0.1:{port}"), query)
            .map_err(|e| format!("feed refused: {e}"))?;
        ws.wait_event(Duration::from_secs(10), |e| e["type"] == "hello")
            .ok_or("no hello on the feed")?;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Some(m) = ws.next_message(Duration::from_millis(200)) else {
                    continue;
                };
                if tx.send((Instant::now(), m)).is_err() {
                    return;
                }
            }
        });
        Ok(Board {
            stop,
            frames: rx,
            thread: Some(thread),
        })
    }

    /// The arrival of the next event matching `pred` within `timeout`.
    fn wait(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let (at, m) = self.frames.recv_timeout(left).ok()?;
            let Ok(Value::Array(events)) = m
                .into_json()
                .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
            else {
                continue;
            };
            if events.iter().any(&pred) {
                return Some(at);
            }
        }
    }

    /// Drains what arrived: the number of login and logout events among it (the events'
    /// keys are sorted, so each carries `"type":"login"` or `"type":"logout"` verbatim), and
    /// of frames and of their bytes. Called once Asterisk is idle after a burst: it waits up
    /// to `quiet` for each frame until `expected` events are counted, then takes only what
    /// is already there.
    fn count_bindings(
        &self,
        expected: usize,
        quiet: Duration,
    ) -> Result<(usize, usize, usize), String> {
        let (mut n, mut frames, mut bytes) = (0, 0, 0);
        loop {
            let next = if n < expected {
                self.frames.recv_timeout(quiet).ok()
            } else {
                self.frames.try_recv().ok()
            };
            let Some((_, m)) = next else {
                break;
            };
            bytes += match &m {
                Message::Text(t) => t.len(),
                Message::Binary(b) => b.len(),
            };
            let text = m.into_json()?;
            n += text.matches("\"type\":\"login\"").count();
            n += text.matches("\"type\":\"logout\"").count();
            frames += 1;
        }
        Ok((n, frames, bytes))
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn first_paint(inst: &Asterisk, port: u16) -> Result<Vec<Paint>, String> {
    if !std::path::Path::new(web::CHROMIUM).exists()
        || !std::path::Path::new(web::CHROMEDRIVER).exists()
    {
        return Err("Debian's chromium and chromium-driver are not installed".into());
    }
    let driver = Driver::start(&inst.run.join("chromedriver"));
    let b = driver.browser("bench");
    let url = format!("http://127.0.0.1:{port}/deviceuser/");
    b.goto(&url);
    b.type_into("#login-user", LOGIN.0);
    b.type_into("#login-password", LOGIN.1);
    b.keys("#login-password", "\u{E007}");
    if !web::wait_until(Duration::from_secs(60), || {
        b.js("return state.session !== null", json!([])) == json!(true)
    }) {
        return Err("the console login in Chromium did not complete".into());
    }
    let mut samples = Vec::new();
    for _ in 0..3 {
        // A fresh page load with the session cookie already set.
        b.goto(&url);
        let marks = web::poll(Duration::from_secs(60), || {
            let v = b.js(
                "const r = performance.getEntriesByName('board-rendered')[0];
                 const p = performance.getEntriesByName('board-painted')[0];
                 const n = performance.getEntriesByType('navigation')[0];
                 const a = performance.getEntriesByType('resource')
                   .filter((e) => e.name.endsWith('/api/board')).pop();
                 const rows = document.querySelectorAll('#board-rows tr[data-user]').length;
                 return r && p && n && a ? [n.domContentLoadedEventEnd, a.startTime,
                   a.responseEnd, r.startTime, p.startTime, rows] : null;",
                json!([]),
            );
            v.as_array().map(|a| {
                let d = |i: usize| Duration::from_secs_f64(a[i].as_f64().unwrap_or(0.0) / 1e3);
                Paint {
                    script: d(0),
                    board_sent: d(1),
                    board_received: d(2),
                    rendered: d(3),
                    painted: d(4),
                    rows: a[5].as_u64().unwrap_or(0),
                }
            })
        })
        .ok_or("the board was not painted within 60 s")?;
        if marks.rows == 0 {
            return Err("the board was painted without rows".into());
        }
        samples.push(marks);
    }
    samples.sort_by_key(|s| s.painted);
    Ok(samples)
}

/// Runs the scenario on an instance `builder` starts (its run folder, module file), with the
/// module loaded.
pub fn run(p: &Params, builder: Builder) -> Result<Results, String> {
    let port = free_port();
    let mut deviceuser = conf::deviceuser_conf(p.users, |n| format!("Custom:dev/{n}"), None);
    deviceuser.push_str(&format!(
        "\n[{}]\ntype = console_user\nrole = admin\npassword = {}\n",
        LOGIN.0,
        deviceuser_core::hash_password(LOGIN.1)
    ));
    let inst = builder
        .module_noload(false)
        .conf("res_deviceuser.conf", &deviceuser)
        .conf(
            "http.conf",
            &format!("[general]\nenabled = yes\nbindaddr = 127.0.0.1\nbindport = {port}\n"),
        )
        .start_or_err()?;
    let mut ami = Ami::connect_with_events(inst.ami_port, "deviceuser", "deviceuser", "off")?;
    ami.timeout = Duration::from_secs(120);
    inst.settle();
    // Every device has a state in Asterisk's cache, as registered phones have.
    let states: Vec<_> = (1..=p.users)
        .map(|n| {
            act(&[
                ("Action", "Setvar"),
                ("Variable", &format!("DEVICE_STATE(Custom:dev/{n})")),
                ("Value", "NOT_INUSE"),
            ])
        })
        .collect();
    check(&ami.pipeline(&states)?, "Setvar DEVICE_STATE")?;
    inst.settle();
    let logins: Vec<_> = (1..=p.users)
        .map(|n| {
            act(&[
                ("Action", "DeviceUserLogin"),
                ("User", &user(n)),
                ("Device", &device(n)),
            ])
        })
        .collect();
    check(&ami.pipeline(&logins)?, "DeviceUserLogin")?;
    inst.settle();
    let client = Client::login(port, LOGIN.0, LOGIN.1)
        .map_err(|r| format!("console login: {} {}", r.status, r.body))?;

    eprintln!("[bench]   board API with {} users logged in", p.users);
    let mut board_api = Vec::new();
    let mut board_bytes = 0;
    let cpu0 = inst.cpu();
    for _ in 0..BOARD_REQUESTS {
        let t = Instant::now();
        let r = client.get("board");
        board_api.push(t.elapsed());
        if r.status != 200 {
            return Err(format!("GET api/board: {}", r.status));
        }
        board_bytes = r.body.len();
    }
    let board_cpu = Duration::from_secs_f64((inst.cpu() - cpu0).max(0.0) / BOARD_REQUESTS as f64);
    board_api.sort();
    eprintln!("[bench]   first paint in headless Chromium");
    let first_paint = first_paint(&inst, port);
    inst.settle();

    eprintln!(
        "[bench]   AMI → feed latency, {} logouts and logins",
        p.latency_pairs
    );
    let mut feed_latency = Vec::new();
    {
        let board = Board::open(port, &client.cookie, true)?;
        for i in 0..p.latency_pairs {
            let n = 1 + i % p.users;
            let (u, d) = (user(n), device(n));
            for (action, kind) in [("DeviceUserLogout", "logout"), ("DeviceUserLogin", "login")] {
                let t = Instant::now();
                let mut fields = vec![("Action", action), ("User", u.as_str())];
                if kind == "login" {
                    fields.push(("Device", d.as_str()));
                }
                let r = ami.try_action(&fields)?;
                if !r.is_success() {
                    return Err(format!("{action}: {}", r.val("Message")));
                }
                let at = board
                    .wait(Duration::from_secs(10), |e| {
                        e["type"] == kind && e["user"] == u.as_str()
                    })
                    .ok_or_else(|| format!("no {kind} event for {u}"))?;
                feed_latency.push(at.saturating_duration_since(t));
            }
        }
    }
    feed_latency.sort();
    inst.settle();

    eprintln!(
        "[bench]   {} login/logout pairs with 0 and {} boards open (compressed, plain), {} rounds each",
        p.pairs, p.boards, p.rounds
    );
    // Users logged in already: the bursts log them out, then in again (each action changes
    // a binding and a user state).
    let burst: Vec<_> = (1..=p.pairs)
        .map(|n| act(&[("Action", "DeviceUserLogout"), ("User", &user(n))]))
        .chain((1..=p.pairs).map(|n| {
            act(&[
                ("Action", "DeviceUserLogin"),
                ("User", &user(n)),
                ("Device", &device(n)),
            ])
        }))
        .collect();
    let mut without_boards = Vec::new();
    let new_boards = || Boards {
        events_per_board: vec![0; p.boards],
        frames_per_board: vec![0; p.boards],
        bytes_per_board: vec![0; p.boards],
        ..Boards::default()
    };
    let (mut compressed, mut plain) = (new_boards(), new_boards());
    let driver_cpu = || process::cpu_seconds(std::process::id());
    // The three kinds of burst take turns, in an order that rotates each round, so that none
    // always follows another (bursts of one kind vary by 2× on this machine from one to the
    // next: the median of many rounds is compared).
    for round in 0..p.rounds {
        for turn in 0..3 {
            let kind = (round + turn) % 3;
            let threads_before = process::thread_run_ns(inst.pid);
            let boards: Vec<Board> = match kind {
                0 => Vec::new(),
                k => (0..p.boards)
                    .map(|_| Board::open(port, &client.cookie, k == 1))
                    .collect::<Result<_, _>>()?,
            };
            inst.settle();
            // The threads that serve the boards: those that were not there before.
            let board_ns = || -> u64 {
                process::thread_run_ns(inst.pid)
                    .iter()
                    .filter(|(tid, _)| !threads_before.contains_key(tid))
                    .map(|(_, ns)| ns)
                    .sum()
            };
            let (cpu0, own0, boards0) = (inst.cpu(), driver_cpu(), board_ns());
            let b = ami.pipeline(&burst)?;
            check(&b, "burst")?;
            // The boards' clients read while the burst runs; what they read is counted after.
            inst.settle();
            let cpu_own = (inst.cpu() - cpu0, driver_cpu() - own0);
            let board_secs = board_ns().saturating_sub(boards0) as f64 / 1e9;
            let into = match kind {
                0 => {
                    without_boards.push((b, cpu_own.0, cpu_own.1));
                    continue;
                }
                1 => &mut compressed,
                _ => &mut plain,
            };
            for (i, board) in boards.iter().enumerate() {
                let (n, frames, bytes) =
                    board.count_bindings(2 * p.pairs, Duration::from_millis(500))?;
                into.events_per_board[i] += n;
                into.frames_per_board[i] += frames;
                into.bytes_per_board[i] += bytes;
            }
            into.bursts.push((b, cpu_own.0, cpu_own.1));
            into.board_threads.push(board_secs);
        }
    }
    without_boards.sort_by_key(|b| b.0.elapsed);
    compressed.bursts.sort_by_key(|b| b.0.elapsed);
    plain.bursts.sort_by_key(|b| b.0.elapsed);
    Ok(Results {
        board_api,
        board_cpu,
        board_bytes,
        first_paint,
        feed_latency,
        without_boards,
        compressed,
        plain,
        events_expected: 2 * p.pairs * p.rounds,
    })
}
