//! The live feed at `/deviceuser/ws`: a WebSocket (sub-protocol `deviceuser`) that sends
//! open boards every commit and user state change as they happen, a JSON array of events
//! per frame. Only a logged-in console user's page may open it (same origin, session
//! cookie); it ends with the session, at unload, or when the client falls too far behind.
use std::sync::Arc;
use std::time::{Duration, Instant};

use deviceuser_core::console::auth::{self, Provenance};
use deviceuser_core::console::routes::Method;
use serde_json::json;

use super::api::session_of;
use super::reply::error;
use crate::host::http::{Answer, Request, Response};
use crate::host::log;
use crate::host::websocket::{Frame, Pipe, Session};
use crate::instance::Instance;
use crate::state::now;

/// How long a write to a client may take before the client is dropped.
const WRITE_TIMEOUT_MS: i32 = 2000;
/// Largest frame sent: res_http_websocket builds each frame on the writing thread's stack
/// (`ast_alloca`), so a backlog goes out as several frames of at most this size.
const MAX_FRAME: usize = 32 * 1024;
/// How often an idle connection checks that its session is still open.
const RECHECK: Duration = Duration::from_secs(5);
/// Frames of one feed are at least this far apart: an event after a quiet moment goes out at
/// once, and a burst goes out as a few frames of many events rather than a frame (and a
/// thread wake-up) per event for every open board.
const GATHER: Duration = Duration::from_millis(5);

/// The URI handler of `/deviceuser/ws`: upgrades a logged-in page's request.
pub fn upgrade(inst: &Instance, req: &Request) -> Answer {
    if inst.snapshot().config().console_users.is_empty() {
        return Answer::Respond(Response::new(
            404,
            "text/plain; charset=utf-8",
            "Not found\n".into(),
        ));
    }
    if req.method != Method::Get {
        return Answer::Respond(error(405, "method not allowed").header("Allow", "GET"));
    }
    // Browsers send Origin with every WebSocket request: another site's page is refused.
    let prov = Provenance {
        host: req.header("Host"),
        origin: req.header("Origin"),
        fetch_site: req.header("Sec-Fetch-Site"),
    };
    if let Err(e) = auth::same_origin(&prov) {
        return Answer::Respond(error(403, e.message()));
    }
    if session_of(inst, req.header("Cookie")).is_none() {
        return Answer::Respond(error(401, "not logged in"));
    }
    Answer::Upgrade
}

fn cookie_of(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Cookie"))
        .map(|(_, v)| v.as_str())
}

/// Serves one established feed until it ends.
pub fn run(inst: &Instance, ws: Session, headers: &[(String, String)]) {
    let Some((token, session)) = session_of(inst, cookie_of(headers)) else {
        ws.close(1008);
        return;
    };
    let pipe = match Pipe::new() {
        Ok(p) => Arc::new(p),
        Err(e) => {
            log::warning(&format!("console feed: {e}"));
            ws.close(1011);
            return;
        }
    };
    ws.set_nonblock();
    ws.set_write_timeout(WRITE_TIMEOUT_MS);
    let feed = inst.state().feed();
    let waker = Arc::clone(&pipe);
    let sub = feed.subscribe(Box::new(move || waker.wake()));
    let hello =
        json!([{"type": "hello", "user": session.user.as_str(), "role": session.role.as_str()}]);
    let mut code = 1000;
    if ws.send_text(&hello.to_string()) {
        let mut checked = Instant::now();
        let mut last_frame = Instant::now();
        loop {
            let ready = ws.wait(&pipe, RECHECK);
            if ready.input {
                if let Frame::Close = ws.read() {
                    break;
                }
            }
            if ready.woken {
                pipe.drain();
                if let Some(rest) = GATHER.checked_sub(last_frame.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            let taken = sub.take();
            if !send_events(&ws, &taken.events) {
                break;
            }
            if !taken.events.is_empty() {
                last_frame = Instant::now();
            }
            if taken.closed {
                code = 1001;
                break;
            }
            if checked.elapsed() >= RECHECK {
                checked = Instant::now();
                if inst.access().sessions().peek(&token, now()).is_none() {
                    code = 1008;
                    break;
                }
            }
        }
    }
    feed.unsubscribe(&sub);
    ws.close(code);
}

/// Sends events as JSON arrays in frames of at most [`MAX_FRAME`] bytes (an event larger than
/// that, which the module never makes, goes alone); false if the client is gone.
fn send_events(ws: &Session, events: &[Arc<str>]) -> bool {
    let mut frame =
        String::with_capacity(MAX_FRAME.min(events.iter().map(|e| e.len() + 1).sum::<usize>() + 2));
    for e in events {
        if frame.len() > 1 && frame.len() + e.len() + 2 > MAX_FRAME {
            frame.push(']');
            if !ws.send_text(&frame) {
                return false;
            }
            frame.clear();
        }
        frame.push(if frame.is_empty() { '[' } else { ',' });
        frame.push_str(e);
    }
    if frame.is_empty() {
        return true;
    }
    frame.push(']');
    ws.send_text(&frame)
}
