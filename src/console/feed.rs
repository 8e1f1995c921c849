//! The live feed at `/deviceuser/ws`: a WebSocket (sub-protocol `deviceuser`) that sends
//! open boards every commit and user state change as they happen, a JSON array of events
//! per frame. Only a logged-in console user's page may open it (same origin, session
//! cookie); it ends with the session, at unload, or when the client falls too far behind.
//!
//! `?compress=deflate` asks for bursts compressed: while events come faster than they are
//! sent, they go out as binary frames, each a raw DEFLATE stream (RFC 1951) of events each
//! followed by a comma, compressed once for every board that asked; other frames stay JSON
//! arrays.
use std::time::{Duration, Instant};

use deviceuser_core::console::auth::{self, Provenance};
use deviceuser_core::console::routes::Method;
use serde_json::json;

use super::api::session_of;
use super::reply::error;
use crate::feed::Out;
use crate::host::http::{Answer, Lists, Request, Response};
use crate::host::log;
use crate::host::websocket::{Frame, Session};
use crate::instance::Instance;
use crate::state::now;

/// How long a write to a client may take before the client is dropped.
const WRITE_TIMEOUT_MS: i32 = 2000;
/// Largest frame sent: res_http_websocket builds each frame on the writing thread's stack
/// (`ast_alloca`), so a backlog goes out as several frames of at most this size.
const MAX_FRAME: usize = 32 * 1024;
/// How often an idle connection checks that its session is still open.
const RECHECK: Duration = Duration::from_secs(5);
/// The pause between two frames of one feed grows with the size of the first: after a frame
/// of a few events (actions one at a time) the next may follow [`GATHER_MIN`] later; after a
/// frame of many (a burst), [`GATHER_PER_EVENT`] per event up to [`GATHER_MAX`], so that
/// during a burst each board gets a frame of many events every few tens of milliseconds
/// rather than a frame (and a thread wake-up) per commit. An event after a quiet moment (the
/// pause over) goes out at once.
const GATHER_MIN: Duration = Duration::from_millis(5);
const GATHER_PER_EVENT: Duration = Duration::from_millis(1);
const GATHER_MAX: Duration = Duration::from_millis(40);

/// The pause after a frame of `events` events.
fn pause_after(events: usize) -> Duration {
    GATHER_PER_EVENT
        .saturating_mul(u32::try_from(events).unwrap_or(u32::MAX))
        .clamp(GATHER_MIN, GATHER_MAX)
}

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
    if let Err(e) = compressed(&req.query) {
        return Answer::Respond(error(400, &e));
    }
    Answer::Upgrade
}

/// Whether the query asks for compressed bursts (`compress=deflate`); an error for any
/// other parameter or value.
fn compressed(query: &[(String, String)]) -> Result<bool, String> {
    let mut deflate = false;
    for (name, value) in query {
        match (name.as_str(), value.as_str()) {
            ("compress", "deflate") => deflate = true,
            ("compress", "none") => deflate = false,
            ("compress", other) => {
                return Err(format!(
                    "compress: expected deflate or none, not '{}'",
                    other.escape_default()
                ))
            }
            (other, _) => return Err(format!("unknown parameter '{}'", other.escape_default())),
        }
    }
    Ok(deflate)
}

/// Serves one established feed until it ends.
pub fn run(inst: &Instance, ws: Session, request: &Lists) {
    let Some((token, session)) = session_of(inst, request.header("Cookie")) else {
        ws.close(1008);
        return;
    };
    let deflate = compressed(&request.query).unwrap_or(false);
    ws.set_nonblock();
    ws.set_write_timeout(WRITE_TIMEOUT_MS);
    let feed = inst.state().feed();
    let sub = feed.subscribe();
    let hello =
        json!([{"type": "hello", "user": session.user.as_str(), "role": session.role.as_str()}]);
    let mut code = 1000;
    if ws.send_text(&hello.to_string()) {
        let mut checked = Instant::now();
        // When the last frame went out, and the pause that follows it.
        let mut last_frame: Option<(Instant, Duration)> = None;
        loop {
            if checked.elapsed() >= RECHECK {
                checked = Instant::now();
                if inst.access().sessions().peek(&token, now()).is_none() {
                    code = 1008;
                    break;
                }
            }
            let bell = match feed.doorbell(&sub) {
                Ok(b) => b,
                Err(e) => {
                    log::warning(&format!("console feed: {e}"));
                    code = 1011;
                    break;
                }
            };
            // With everything read, wait for the doorbell; with events to send, for the end of
            // the pause after the last frame (reading what the client sends meanwhile).
            let wait = match (&bell, last_frame) {
                (Some(_), _) => Some(RECHECK),
                (None, Some((at, pause))) => pause.checked_sub(at.elapsed()),
                (None, None) => None,
            };
            if let Some(wait) = wait.filter(|w| !w.is_zero()) {
                if ws.wait(bell.as_deref(), wait) {
                    if let Frame::Close = ws.read() {
                        break;
                    }
                    continue;
                }
                if bell.is_some() {
                    continue;
                }
            }
            let taken = feed.take(&sub, deflate);
            let sent = taken
                .frames(MAX_FRAME, deflate.then_some(feed))
                .iter()
                .all(|f| match f {
                    Out::Text(t) => ws.send_text(t),
                    Out::Packed(b) => ws.send_binary(b),
                });
            if !sent {
                break;
            }
            if taken.count > 0 {
                last_frame = Some((Instant::now(), pause_after(taken.count)));
            }
            if taken.closed {
                code = 1001;
                break;
            }
        }
    }
    feed.unsubscribe(&sub);
    ws.close(code);
}
