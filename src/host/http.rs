//! Asterisk's HTTP server (`http.conf`): the module's URIs linked with `ast_http_uri_link`,
//! requests read into safe values, answers sent with `ast_http_send`.
//!
//! Asterisk calls a URI's callback on the HTTP session's thread after it has let go of its
//! list of URIs, so unlinking a URI does not wait for requests in flight. Each linked URI
//! therefore counts the calls inside its callback, and [`Linked`] waits for them to end
//! before the module goes on unloading (WebSocket sessions run inside that callback too:
//! the module tells them to close first).
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use deviceuser_core::console::routes::Method;

use super::guard::guard;
use super::websocket::{self, Established, Server};
use super::{from_c, log};
use crate::sys;

extern "C" {
    // AST_INLINE_API functions of strings.h: bindgen skips them, the core exports them.
    fn _ast_str_create(
        init_len: usize,
        file: *const c_char,
        lineno: c_int,
        func: *const c_char,
    ) -> *mut sys::ast_str;
    fn ast_str_set_substr(
        buf: *mut *mut sys::ast_str,
        maxlen: isize,
        src: *const c_char,
        maxsrc: usize,
    ) -> *mut c_char;
}

/// An HTTP callback's trampoline.
pub type Callback = unsafe extern "C" fn(
    *mut sys::ast_tcptls_session_instance,
    *const sys::ast_http_uri,
    *const c_char,
    sys::ast_http_method,
    *mut sys::ast_variable,
    *mut sys::ast_variable,
) -> c_int;

/// A URI the module serves (relative to `http.conf`'s prefix).
pub struct Uri {
    pub uri: &'static CStr,
    pub description: &'static CStr,
    /// Whether paths below the URI come to it too.
    pub subtree: bool,
    pub callback: Callback,
    /// A WebSocket sub-protocol the URI upgrades to ([`Answer::Upgrade`]).
    pub websocket: Option<(&'static CStr, Established)>,
}

/// A URI entry: `http_uri!(root, c"path", c"description", subtree = bool, handler)`, where
/// `handler` is `fn(&I, &Request) -> Answer`.
macro_rules! http_uri {
    ($root:path, $uri:literal, $desc:literal, subtree = $subtree:expr, $handler:path $(, websocket = ($proto:literal, $established:path))?) => {{
        unsafe extern "C" fn callback(
            ser: *mut $crate::sys::ast_tcptls_session_instance,
            urih: *const $crate::sys::ast_http_uri,
            uri: *const ::std::os::raw::c_char,
            method: $crate::sys::ast_http_method,
            params: *mut $crate::sys::ast_variable,
            headers: *mut $crate::sys::ast_variable,
        ) -> ::std::os::raw::c_int {
            // SAFETY: Asterisk calls a URI's callback with the session, the URI it matched
            // (one linked by `link`), the rest of the path and the request's lists.
            unsafe {
                $crate::host::http::run($uri, ser, urih, uri, method, params, headers, $root, $handler)
            }
        }
        #[allow(unused_mut, unused_assignments)]
        let mut websocket: Option<(&'static ::std::ffi::CStr, $crate::host::websocket::Established)> = None;
        $(
            unsafe extern "C" fn established(
                session: *mut $crate::sys::ast_websocket,
                params: *mut $crate::sys::ast_variable,
                headers: *mut $crate::sys::ast_variable,
            ) -> () {
                // SAFETY: res_http_websocket hands over an established session it holds a
                // reference for, with the request's lists.
                unsafe { $crate::host::http::run_session($proto, session, params, headers, $root, $established) }
            }
            websocket = Some(($proto, established));
        )?
        $crate::host::http::Uri {
            uri: $uri,
            description: $desc,
            subtree: $subtree,
            callback,
            websocket,
        }
    }};
}
pub(crate) use http_uri;

/// A request, valid during its callback.
pub struct Request {
    ser: *mut sys::ast_tcptls_session_instance,
    headers_raw: *mut sys::ast_variable,
    pub method: Method,
    /// The path below the URI, as sent (not percent-decoded), without the query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The query's parameters, as Asterisk decoded them.
    pub query: Vec<(String, String)>,
    /// Whether the request came over TLS.
    pub tls: bool,
}

/// A request body, as `ast_http_get_json` read it.
pub enum Body {
    /// No body, or one that is not `application/json` (not read).
    None,
    /// The JSON text (as Asterisk's JSON library re-wrote it).
    Json(String),
    /// Larger than Asterisk's HTTP server accepts.
    TooLarge,
    /// Not valid JSON, or the connection failed while reading.
    Malformed,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// Reads the body (once) if it is `application/json`.
    pub fn json_body(&self) -> Body {
        // SAFETY: the live session and header list of this request; returns NULL (errno
        // says why) or a JSON value we own.
        let json = unsafe { sys::ast_http_get_json(self.ser, self.headers_raw) };
        if json.is_null() {
            return match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EFBIG) => Body::TooLarge,
                Some(libc::EIO) | Some(libc::ENOMEM) => Body::Malformed,
                _ => Body::None,
            };
        }
        // SAFETY: a valid JSON value; the string is ours to free with ast_json_free.
        let text = unsafe {
            sys::ast_json_dump_string_format(json, sys::ast_json_encoding_format_AST_JSON_COMPACT)
        };
        // SAFETY: NULL or a NUL-terminated string.
        let body = unsafe { from_c(text) };
        // SAFETY: freed once each, as json.h says.
        unsafe {
            sys::ast_json_free(text.cast());
            sys::ast_json_unref(json);
        }
        body.map_or(Body::Malformed, Body::Json)
    }

    /// The client's address.
    pub fn remote(&self) -> String {
        // SAFETY: the live session; the string is in Asterisk's thread storage, copied at once.
        unsafe {
            from_c(sys::ast_sockaddr_stringify_fmt(
                &(*self.ser).remote_address,
                sys::AST_SOCKADDR_STR_ADDR as c_int,
            ))
        }
        .unwrap_or_default()
    }
}

/// `http.conf`'s prefix (`""` or `/asterisk`).
pub fn prefix() -> String {
    let mut buf = [0 as c_char; 128];
    // SAFETY: the buffer and its length; Asterisk writes a NUL-terminated string.
    unsafe { sys::ast_http_prefix(buf.as_mut_ptr(), buf.len() as c_int) };
    // SAFETY: NUL-terminated (written by ast_copy_string or left zeroed).
    unsafe { from_c(buf.as_ptr()) }.unwrap_or_default()
}

/// An answer.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: String) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            body,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// What a handler does with a request.
pub enum Answer {
    Respond(Response),
    /// Hand the connection to the URI's WebSocket protocol.
    Upgrade,
}

fn title(status: u16) -> &'static CStr {
    match status {
        200 => c"OK",
        201 => c"Created",
        204 => c"No Content",
        302 => c"Found",
        400 => c"Bad Request",
        401 => c"Unauthorized",
        403 => c"Forbidden",
        404 => c"Not Found",
        405 => c"Method Not Allowed",
        409 => c"Conflict",
        412 => c"Precondition Failed",
        413 => c"Payload Too Large",
        415 => c"Unsupported Media Type",
        422 => c"Unprocessable Content",
        428 => c"Precondition Required",
        429 => c"Too Many Requests",
        503 => c"Service Unavailable",
        _ => c"Internal Server Error",
    }
}

/// An `ast_str` holding `s` (NULL if out of memory); Asterisk frees it.
fn ast_str(s: &str) -> *mut sys::ast_str {
    // SAFETY: allocates a string of the requested size (NULL on failure).
    let mut p =
        unsafe { _ast_str_create(s.len() + 1, c"res_deviceuser".as_ptr(), 0, c"http".as_ptr()) };
    if !p.is_null() {
        // SAFETY: p is a valid ast_str sized for s; s is read for s.len() bytes.
        unsafe { ast_str_set_substr(&mut p, 0, s.as_ptr().cast(), s.len()) };
    }
    p
}

/// Sends `r` on the session.
///
/// # Safety
/// `ser` is the live session of the request being answered.
unsafe fn send(
    ser: *mut sys::ast_tcptls_session_instance,
    method: sys::ast_http_method,
    r: &Response,
) {
    let mut head = String::new();
    for (k, v) in &r.headers {
        // A value never ends the header line early.
        let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        head.push_str(k);
        head.push_str(": ");
        head.push_str(&v);
        head.push_str("\r\n");
    }
    let (hdr, out) = (ast_str(&head), ast_str(&r.body));
    // SAFETY: per contract; ast_http_send frees both strings (NULL ones are allowed).
    unsafe {
        sys::ast_http_send(
            ser,
            method,
            c_int::from(r.status),
            title(r.status).as_ptr(),
            hdr,
            out,
            0,
            0,
        )
    };
}

/// A linked URI: Asterisk's structure first, so the pointer it passes back leads here.
#[repr(C)]
struct Linked1 {
    uri: sys::ast_http_uri,
    /// Calls inside the callback now.
    inflight: AtomicUsize,
    /// The WebSocket server the URI upgrades to (the URI's data).
    server: Option<Server>,
}

/// The module's linked URIs; dropping them unlinks them and waits for the calls in flight.
pub struct Linked {
    /// Boxed: Asterisk keeps their addresses while they are linked.
    #[allow(clippy::vec_box)]
    uris: Vec<Box<Linked1>>,
    linked: bool,
}

// SAFETY: Asterisk reads the URI structures under its own lock until they are unlinked; the
// module only reads the atomic counters.
unsafe impl Send for Linked {}
// SAFETY: as above.
unsafe impl Sync for Linked {}

/// Links `uris`. A URI with a WebSocket protocol gets a server of its own when
/// res_http_websocket is loaded; without it, its upgrades are answered 503.
pub fn link(uris: &'static [Uri]) -> Linked {
    let mut linked = Linked {
        uris: Vec::new(),
        linked: true,
    };
    for u in uris {
        let server = u.websocket.and_then(|(proto, established)| {
            let Some(api) = websocket::Api::get() else {
                log::notice(&format!(
                    "res_http_websocket is not loaded: /{} is not served",
                    u.uri.to_string_lossy()
                ));
                return None;
            };
            Server::new(api, proto, established)
                .map_err(|e| {
                    log::warning(&format!("{e}: /{} is not served", u.uri.to_string_lossy()))
                })
                .ok()
        });
        let mut uri = sys::ast_http_uri {
            description: u.description.as_ptr(),
            uri: u.uri.as_ptr(),
            callback: Some(u.callback),
            data: server
                .as_ref()
                .map_or(std::ptr::null_mut(), Server::as_data),
            key: c"res_deviceuser".as_ptr(),
            ..Default::default()
        };
        uri.set_has_subtree(u32::from(u.subtree));
        // Segments are decoded one by one by the module, so an encoded '/' stays in its segment.
        uri.set_no_decode_uri(1);
        let mut l = Box::new(Linked1 {
            uri,
            inflight: AtomicUsize::new(0),
            server,
        });
        // SAFETY: the structure is boxed (a stable address) and lives until unlinked; its
        // strings are static.
        unsafe { sys::ast_http_uri_link(&mut l.uri) };
        linked.uris.push(l);
    }
    linked
}

impl Linked {
    /// Stops new requests from reaching the module.
    pub fn unlink(&mut self) {
        if !std::mem::take(&mut self.linked) {
            return;
        }
        for l in &mut self.uris {
            // SAFETY: linked by `link`, unlinked once.
            unsafe { sys::ast_http_uri_unlink(&mut l.uri) };
        }
    }

    /// Calls inside the module's callbacks now.
    pub fn in_flight(&self) -> usize {
        self.uris
            .iter()
            .map(|l| l.inflight.load(Ordering::SeqCst))
            .sum()
    }

    /// Waits until no call is inside a callback; false if some still are after `timeout`.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.in_flight() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Linked {
    fn drop(&mut self) {
        self.unlink();
        // A request that found a URI just before it was unlinked enters the callback a moment
        // later: give it that moment, then wait for what is inside.
        std::thread::sleep(Duration::from_millis(20));
        // A feed reading a client's half-sent frame may take res_http_websocket's 10 s to
        // give up.
        if !self.wait_idle(Duration::from_secs(15)) {
            log::error(&format!(
                "{} HTTP request(s) still inside the module after 15 s",
                self.in_flight()
            ));
        }
    }
}

struct InFlight<'a>(&'a AtomicUsize);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn method_of(m: sys::ast_http_method) -> Method {
    match m {
        sys::ast_http_method_AST_HTTP_GET => Method::Get,
        sys::ast_http_method_AST_HTTP_HEAD => Method::Head,
        sys::ast_http_method_AST_HTTP_POST => Method::Post,
        sys::ast_http_method_AST_HTTP_PUT => Method::Put,
        sys::ast_http_method_AST_HTTP_DELETE => Method::Delete,
        sys::ast_http_method_AST_HTTP_OPTIONS => Method::Options,
        _ => Method::Other,
    }
}

/// A request's list of headers or of query parameters, as pairs.
///
/// # Safety
/// `list` is NULL or a valid variable list.
unsafe fn variable_list(list: *mut sys::ast_variable) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut v = list;
    while !v.is_null() {
        // SAFETY: a live element of the list.
        let (n, value, next) = unsafe { (from_c((*v).name), from_c((*v).value), (*v).next) };
        out.push((n.unwrap_or_default(), value.unwrap_or_default()));
        v = next;
    }
    out
}

/// Runs a URI's handler and answers (or upgrades).
///
/// # Safety
/// The arguments are those Asterisk passes to the callback of a URI linked by [`link`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn run<I>(
    name: &CStr,
    ser: *mut sys::ast_tcptls_session_instance,
    urih: *const sys::ast_http_uri,
    uri: *const c_char,
    method: sys::ast_http_method,
    params: *mut sys::ast_variable,
    headers: *mut sys::ast_variable,
    root: fn() -> Option<Arc<I>>,
    handler: fn(&I, &Request) -> Answer,
) -> c_int {
    // SAFETY: urih is the first field of a Linked1 (repr(C)) that lives until the module
    // stops waiting for calls in flight.
    let linked = unsafe { &*urih.cast::<Linked1>() };
    linked.inflight.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight(&linked.inflight);
    let what = name.to_str().unwrap_or("http");
    let answer = guard(what, Answer::Respond(internal_error()), || {
        let Some(module) = root() else {
            return Answer::Respond(Response::new(
                503,
                "text/plain; charset=utf-8",
                "res_deviceuser is not loaded\n".into(),
            ));
        };
        // SAFETY: the session's stream is live during the callback.
        let tls = unsafe {
            !(*ser).stream.is_null() && !sys::ast_iostream_get_ssl((*ser).stream).is_null()
        };
        let request = Request {
            ser,
            headers_raw: headers,
            method: method_of(method),
            // SAFETY: NULL or the path string of this request.
            path: unsafe { from_c(uri) }.unwrap_or_default(),
            // SAFETY: the request's header list.
            headers: unsafe { variable_list(headers) },
            // SAFETY: the request's query parameter list.
            query: unsafe { variable_list(params) },
            tls,
        };
        handler(&module, &request)
    });
    match answer {
        // SAFETY: the live session of this request.
        Answer::Respond(r) => unsafe { send(ser, method, &r) },
        Answer::Upgrade => {
            let upgraded = linked.server.is_some()
                // SAFETY: the callback's arguments; urih's data is its WebSocket server.
                && unsafe { websocket::upgrade(ser, urih, uri, method, params, headers) };
            if !upgraded {
                let r = Response::new(
                    503,
                    "text/plain; charset=utf-8",
                    "the live feed needs res_http_websocket\n".into(),
                );
                // SAFETY: the live session of this request.
                unsafe { send(ser, method, &r) };
            }
        }
    }
    0
}

fn internal_error() -> Response {
    Response::new(
        500,
        "application/json",
        r#"{"error":"internal error"}"#.into(),
    )
}

/// The headers and query parameters of the request that opened a WebSocket session.
pub struct Lists {
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
}

impl Lists {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }
}

/// The value of the header `name` (case-insensitive) among `headers`.
fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Runs a WebSocket protocol's handler on an established session.
///
/// # Safety
/// `session`, `params` and `headers` are what res_http_websocket passed to
/// `session_established`.
pub unsafe fn run_session<I>(
    name: &CStr,
    session: *mut sys::ast_websocket,
    params: *mut sys::ast_variable,
    headers: *mut sys::ast_variable,
    root: fn() -> Option<Arc<I>>,
    handler: fn(&I, websocket::Session, &Lists),
) {
    // SAFETY: per contract: the reference is handed over to the Session.
    let Some(session) = (unsafe { websocket::Session::from_established(session) }) else {
        return;
    };
    let lists = Lists {
        // SAFETY: the request's header list.
        headers: unsafe { variable_list(headers) },
        // SAFETY: the request's query parameter list.
        query: unsafe { variable_list(params) },
    };
    guard(
        name.to_str().unwrap_or("websocket"),
        (),
        move || match root() {
            Some(module) => handler(&module, session, &lists),
            None => session.close(1001),
        },
    );
}
