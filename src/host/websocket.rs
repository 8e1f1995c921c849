//! WebSockets through Asterisk's `res_http_websocket`: a server of the module's own with one
//! sub-protocol, the upgrade of an HTTP request to it, and the sessions it hands over.
//!
//! `res_http_websocket` is an optional module: its functions are looked up when needed
//! (`dlsym`, it exports them globally) rather than linked, so `res_deviceuser` loads without
//! it and only the console's live feed is missing. Its exported names carry the `__` of
//! Asterisk's optional API (`__ast_websocket_uri_cb`).
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::time::Duration;

use super::doorbell::Doorbell;
use crate::sys;

type UriCb = unsafe extern "C" fn(
    *mut sys::ast_tcptls_session_instance,
    *const sys::ast_http_uri,
    *const c_char,
    sys::ast_http_method,
    *mut sys::ast_variable,
    *mut sys::ast_variable,
) -> c_int;
type ServerCreate = unsafe extern "C" fn() -> *mut sys::ast_websocket_server;
type ProtocolAlloc = unsafe extern "C" fn(*const c_char) -> *mut sys::ast_websocket_protocol;
type AddProtocol2 =
    unsafe extern "C" fn(*mut sys::ast_websocket_server, *mut sys::ast_websocket_protocol) -> c_int;
type Read = unsafe extern "C" fn(
    *mut sys::ast_websocket,
    *mut *mut c_char,
    *mut u64,
    *mut sys::ast_websocket_opcode,
    *mut c_int,
) -> c_int;
type Write = unsafe extern "C" fn(
    *mut sys::ast_websocket,
    sys::ast_websocket_opcode,
    *mut c_char,
    u64,
) -> c_int;
type Close = unsafe extern "C" fn(*mut sys::ast_websocket, u16) -> c_int;
type Unref = unsafe extern "C" fn(*mut sys::ast_websocket);
type Fd = unsafe extern "C" fn(*mut sys::ast_websocket) -> c_int;
type WaitForInput = unsafe extern "C" fn(*mut sys::ast_websocket, c_int) -> c_int;
type SetTimeout = unsafe extern "C" fn(*mut sys::ast_websocket, c_int) -> c_int;
type SetNonblock = unsafe extern "C" fn(*mut sys::ast_websocket) -> c_int;

/// The functions of `res_http_websocket` the module uses.
#[derive(Clone, Copy)]
pub struct Api {
    uri_cb: UriCb,
    server_create: ServerCreate,
    protocol_alloc: ProtocolAlloc,
    add_protocol2: AddProtocol2,
    read: Read,
    write: Write,
    close: Close,
    unref: Unref,
    fd: Fd,
    wait_for_input: WaitForInput,
    set_timeout: SetTimeout,
    set_nonblock: SetNonblock,
}

fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: RTLD_DEFAULT searches the global scope, where res_http_websocket puts its
    // symbols (AST_MODFLAG_GLOBAL_SYMBOLS); the name is NUL-terminated.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

impl Api {
    /// The functions, if `res_http_websocket` is loaded.
    pub fn get() -> Option<Api> {
        macro_rules! f {
            ($name:literal, $ty:ty) => {{
                let p = lookup($name)?;
                // SAFETY: the symbol is the function of that name in res_http_websocket,
                // whose prototype (http_websocket.h) the type alias repeats.
                unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
            }};
        }
        Some(Api {
            uri_cb: f!(c"__ast_websocket_uri_cb", UriCb),
            server_create: f!(c"__ast_websocket_server_create", ServerCreate),
            protocol_alloc: f!(c"__ast_websocket_sub_protocol_alloc", ProtocolAlloc),
            add_protocol2: f!(c"__ast_websocket_server_add_protocol2", AddProtocol2),
            read: f!(c"__ast_websocket_read", Read),
            write: f!(c"__ast_websocket_write", Write),
            close: f!(c"__ast_websocket_close", Close),
            unref: f!(c"__ast_websocket_unref", Unref),
            fd: f!(c"__ast_websocket_fd", Fd),
            wait_for_input: f!(c"__ast_websocket_wait_for_input", WaitForInput),
            set_timeout: f!(c"__ast_websocket_set_timeout", SetTimeout),
            set_nonblock: f!(c"__ast_websocket_set_nonblock", SetNonblock),
        })
    }
}

/// The `session_established` callback of a protocol.
pub type Established =
    unsafe extern "C" fn(*mut sys::ast_websocket, *mut sys::ast_variable, *mut sys::ast_variable);

/// A WebSocket server of the module's own holding one sub-protocol; the data of the HTTP
/// URI that upgrades to it.
pub struct Server {
    ptr: *mut sys::ast_websocket_server,
}

// SAFETY: an ao2 object with its own lock; the module only passes it to res_http_websocket.
unsafe impl Send for Server {}
// SAFETY: as above.
unsafe impl Sync for Server {}

impl Server {
    /// A server with the sub-protocol `protocol` (static: Asterisk copies it) whose sessions
    /// go to `established`.
    pub fn new(
        api: Api,
        protocol: &'static CStr,
        established: Established,
    ) -> Result<Server, String> {
        // SAFETY: res_http_websocket is loaded (api was resolved); returns a new ao2 server
        // or NULL.
        let ptr = unsafe { (api.server_create)() };
        if ptr.is_null() {
            return Err("cannot create a WebSocket server".into());
        }
        let server = Server { ptr };
        // SAFETY: a valid name; returns a new ao2 protocol (version set) or NULL.
        let proto = unsafe { (api.protocol_alloc)(protocol.as_ptr()) };
        if proto.is_null() {
            return Err("cannot create a WebSocket protocol".into());
        }
        // SAFETY: proto is the protocol just allocated; the callback is valid until the
        // server is released (at unload, after the URI using it is unlinked and idle).
        unsafe { (*proto).session_established = Some(established) };
        // SAFETY: both valid; on success the server takes the protocol's reference, on
        // failure it is ours to release.
        if unsafe { (api.add_protocol2)(ptr, proto) } != 0 {
            // SAFETY: our reference to the protocol, released once.
            unsafe { unref_ao2(proto.cast()) };
            return Err("cannot add the WebSocket protocol".into());
        }
        Ok(server)
    }

    pub fn as_data(&self) -> *mut c_void {
        self.ptr.cast()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: our reference, released once; the URI holding it is unlinked by then.
        unsafe { unref_ao2(self.ptr.cast()) };
    }
}

/// # Safety
/// `obj` is an ao2 object the caller holds a reference to.
unsafe fn unref_ao2(obj: *mut c_void) {
    // SAFETY: per contract.
    unsafe {
        sys::__ao2_ref(
            obj,
            -1,
            c"".as_ptr(),
            c"res_deviceuser".as_ptr(),
            0,
            c"unref".as_ptr(),
        )
    };
}

/// Upgrades an HTTP request to the WebSocket server that is `urih`'s data; the protocol's
/// `established` callback runs inside, on this thread. False if res_http_websocket is not
/// loaded (nothing was answered).
///
/// # Safety
/// The arguments are those of an HTTP callback of a URI whose data is a [`Server`].
pub unsafe fn upgrade(
    ser: *mut sys::ast_tcptls_session_instance,
    urih: *const sys::ast_http_uri,
    uri: *const c_char,
    method: sys::ast_http_method,
    params: *mut sys::ast_variable,
    headers: *mut sys::ast_variable,
) -> bool {
    let Some(api) = Api::get() else {
        return false;
    };
    // SAFETY: per contract.
    unsafe { (api.uri_cb)(ser, urih, uri, method, params, headers) };
    true
}

/// A frame read from a session.
pub enum Frame {
    /// A text frame (clients of the feed have nothing to say: its content is not kept).
    Text,
    /// Binary, ping, pong or continuation: nothing the module acts on.
    Other,
    Close,
}

/// An established session, owned by the callback it was handed to; dropping it releases it.
pub struct Session {
    ptr: *mut sys::ast_websocket,
    api: Api,
}

impl Session {
    /// # Safety
    /// `ptr` is the session res_http_websocket handed to `session_established`, whose
    /// reference the callback owns.
    pub unsafe fn from_established(ptr: *mut sys::ast_websocket) -> Option<Session> {
        let api = Api::get()?;
        (!ptr.is_null()).then_some(Session { ptr, api })
    }

    /// Non-blocking reads, as ARI's sessions use: a client that stops in the middle of a
    /// frame is dropped after res_http_websocket's ten 1-second retries instead of holding
    /// the thread.
    pub fn set_nonblock(&self) {
        // SAFETY: a live session.
        unsafe { (self.api.set_nonblock)(self.ptr) };
    }

    /// Write timeout, milliseconds: a client that does not read is dropped.
    pub fn set_write_timeout(&self, ms: i32) {
        // SAFETY: a live session.
        unsafe { (self.api.set_timeout)(self.ptr, ms) };
    }

    /// Waits up to `timeout` for input on the session or, if given, for `bell` to ring;
    /// whether there is input.
    pub fn wait(&self, bell: Option<&Doorbell>, timeout: Duration) -> bool {
        // SAFETY: a live session; a 0 ms wait also reports what TLS has buffered.
        if unsafe { (self.api.wait_for_input)(self.ptr, 0) } > 0 {
            return true;
        }
        // SAFETY: a live session.
        let fd = unsafe { (self.api.fd)(self.ptr) };
        if fd < 0 {
            return true;
        }
        let mut fds = [
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: bell.map_or(-1, Doorbell::fd),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = timeout.as_millis().min(i32::MAX as u128) as c_int;
        // SAFETY: two valid pollfd entries (poll skips a negative descriptor).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if n <= 0 {
            return false;
        }
        fds[0].revents != 0
    }

    /// Reads one frame (answering pings itself); `Close` also on errors.
    pub fn read(&self) -> Frame {
        let mut payload: *mut c_char = std::ptr::null_mut();
        let mut len: u64 = 0;
        let mut opcode: sys::ast_websocket_opcode = 0;
        let mut fragmented: c_int = 0;
        // SAFETY: a live session; the outputs are valid; the payload stays owned by the
        // session (valid until the next read).
        let rc = unsafe {
            (self.api.read)(
                self.ptr,
                &mut payload,
                &mut len,
                &mut opcode,
                &mut fragmented,
            )
        };
        if rc != 0 || opcode == sys::ast_websocket_opcode_AST_WEBSOCKET_OPCODE_CLOSE {
            return Frame::Close;
        }
        if opcode == sys::ast_websocket_opcode_AST_WEBSOCKET_OPCODE_TEXT {
            return Frame::Text;
        }
        Frame::Other
    }

    /// Sends a text frame; false if the session failed (it is then closing).
    pub fn send_text(&self, text: &str) -> bool {
        self.send(
            sys::ast_websocket_opcode_AST_WEBSOCKET_OPCODE_TEXT,
            text.as_bytes(),
        )
    }

    /// Sends a binary frame; false if the session failed (it is then closing).
    pub fn send_binary(&self, bytes: &[u8]) -> bool {
        self.send(sys::ast_websocket_opcode_AST_WEBSOCKET_OPCODE_BINARY, bytes)
    }

    fn send(&self, opcode: sys::ast_websocket_opcode, payload: &[u8]) -> bool {
        // SAFETY: a live session; the payload is only read (the prototype lacks const: it
        // is copied into the frame).
        let rc = unsafe {
            (self.api.write)(
                self.ptr,
                opcode,
                payload.as_ptr().cast_mut().cast(),
                payload.len() as u64,
            )
        };
        rc == 0
    }

    /// Closes with a status code (1000 normal, 1001 going away, 1008 policy violation).
    pub fn close(&self, code: u16) {
        // SAFETY: a live session; closing twice is a no-op in res_http_websocket.
        unsafe { (self.api.close)(self.ptr, code) };
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: the reference handed to the established callback, released once.
        unsafe { (self.api.unref)(self.ptr) };
    }
}
