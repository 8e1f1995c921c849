//! Registration of the module's applications, dialplan functions, CLI commands and AMI
//! actions, from tables the entry layer declares with the macros below.
//!
//! Each macro turns one table entry (name, handler) into an `extern "C"` trampoline that
//! Asterisk calls: it converts the C arguments to safe types, reaches the loaded module
//! through the root accessor it was given, runs the handler inside the panic guard and
//! converts the result back. No integer id ties a C table to a Rust one: the entry is its own
//! trampoline. The names are also the keys of the XML documentation Asterisk shows
//! (`core show application`, `core show function`, `manager show command`).
//!
//! [`register`] registers whole tables and returns one [`Registered`] value; dropping it
//! unregisters everything (it is the first thing an unload drops).
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::Arc;

use super::ami::Action;
use super::channel::Channel;
use super::cli::{self as hcli, Args, Call, Outcome};
use super::from_c;
use super::guard::guard;
use super::log;
use crate::sys;

/// An application's trampoline (`int exec(struct ast_channel *, const char *)`).
pub type AppExec = unsafe extern "C" fn(*mut sys::ast_channel, *const c_char) -> c_int;
/// A dialplan function's read trampoline.
pub type FnRead = unsafe extern "C" fn(
    *mut sys::ast_channel,
    *const c_char,
    *mut c_char,
    *mut c_char,
    usize,
) -> c_int;
/// A dialplan function's write trampoline.
pub type FnWrite =
    unsafe extern "C" fn(*mut sys::ast_channel, *const c_char, *mut c_char, *const c_char) -> c_int;
/// A CLI command's trampoline.
pub type CliHandler =
    unsafe extern "C" fn(*mut sys::ast_cli_entry, c_int, *mut sys::ast_cli_args) -> *mut c_char;
/// An AMI action's trampoline.
pub type AmiHandler = unsafe extern "C" fn(*mut sys::mansession, *const sys::message) -> c_int;

/// A dialplan application (`UserLogin`).
pub struct App {
    pub name: &'static CStr,
    pub exec: AppExec,
}

/// A dialplan function (`DEVICEUSER_DIAL`).
pub struct Function {
    pub name: &'static CStr,
    pub read: FnRead,
    pub write: Option<FnWrite>,
}

/// A CLI command (`deviceuser show devices`).
pub struct CliCommand {
    pub command: &'static CStr,
    pub summary: &'static CStr,
    pub handler: CliHandler,
}

/// An AMI action (`DeviceUserLogin`), of class `agent` like app_agent_pool's.
pub struct AmiAction {
    pub name: &'static CStr,
    pub handler: AmiHandler,
}

/// An application entry: `application!(root, c"Name", handler)`, where `root` returns the
/// loaded module (`fn() -> Option<Arc<I>>`) and `handler` is `fn(&I, &Channel, &str) -> i32`.
macro_rules! application {
    ($root:path, $name:literal, $handler:path) => {{
        unsafe extern "C" fn exec(
            chan: *mut $crate::sys::ast_channel,
            data: *const ::std::os::raw::c_char,
        ) -> ::std::os::raw::c_int {
            // SAFETY: Asterisk calls an application with its running channel and argument.
            unsafe { $crate::host::register::run_app($name, chan, data, $root, $handler) }
        }
        $crate::host::register::App { name: $name, exec }
    }};
}
pub(crate) use application;

/// A dialplan function entry: `function!(root, c"NAME", read = r)` or with `, write = w`.
/// `r` is `fn(&I, Option<&Channel>, &str) -> Result<String, String>`, `w` is
/// `fn(&I, &str, &str) -> Result<(), String>` (arguments, value).
macro_rules! function {
    ($root:path, $name:literal, read = $read:path $(, write = $write:path)?) => {{
        unsafe extern "C" fn read(
            chan: *mut $crate::sys::ast_channel,
            _cmd: *const ::std::os::raw::c_char,
            data: *mut ::std::os::raw::c_char,
            buf: *mut ::std::os::raw::c_char,
            len: usize,
        ) -> ::std::os::raw::c_int {
            // SAFETY: Asterisk calls a read callback with NULL or a live channel, the
            // argument string and a buffer of `len` bytes.
            unsafe { $crate::host::register::run_read($name, chan, data, buf, len, $root, $read) }
        }
        #[allow(unused_mut, unused_assignments)]
        let mut write: Option<$crate::host::register::FnWrite> = None;
        $(
            unsafe extern "C" fn write_fn(
                _chan: *mut $crate::sys::ast_channel,
                _cmd: *const ::std::os::raw::c_char,
                data: *mut ::std::os::raw::c_char,
                value: *const ::std::os::raw::c_char,
            ) -> ::std::os::raw::c_int {
                // SAFETY: Asterisk calls a write callback with the argument and value strings.
                unsafe { $crate::host::register::run_write($name, data, value, $root, $write) }
            }
            write = Some(write_fn);
        )?
        $crate::host::register::Function { name: $name, read, write }
    }};
}
pub(crate) use function;

/// A CLI entry: `cli_command!(root, c"words", c"summary", c"usage", run = r, complete = c)`.
/// `r` is `fn(&I, &Args) -> Outcome`; `c` is `fn(&I, &Args) -> Vec<String>` (the candidates
/// for word `a.pos`).
macro_rules! cli_command {
    ($root:path, $command:literal, $summary:literal, $usage:literal, run = $run:path, complete = $complete:path) => {{
        unsafe extern "C" fn handler(
            e: *mut $crate::sys::ast_cli_entry,
            cmd: ::std::os::raw::c_int,
            a: *mut $crate::sys::ast_cli_args,
        ) -> *mut ::std::os::raw::c_char {
            // SAFETY: Asterisk calls a CLI handler with its entry and (except for CLI_INIT)
            // the arguments of the running call.
            unsafe {
                $crate::host::register::run_cli(e, cmd, a, $command, $usage, $root, $run, $complete)
            }
        }
        $crate::host::register::CliCommand {
            command: $command,
            summary: $summary,
            handler,
        }
    }};
}
pub(crate) use cli_command;

/// An AMI entry: `manager_action!(root, c"Name", h)`, `h` being `fn(&I, &Action)`; it must
/// answer the action.
macro_rules! manager_action {
    ($root:path, $name:literal, $handler:path) => {{
        unsafe extern "C" fn handler(
            s: *mut $crate::sys::mansession,
            m: *const $crate::sys::message,
        ) -> ::std::os::raw::c_int {
            // SAFETY: Asterisk calls an action handler with the session and its message.
            unsafe { $crate::host::register::run_action($name, s, m, $root, $handler) }
        }
        $crate::host::register::AmiAction {
            name: $name,
            handler,
        }
    }};
}
pub(crate) use manager_action;

fn name_of(name: &CStr) -> &str {
    name.to_str().unwrap_or("res_deviceuser")
}

/// Runs an application's handler.
///
/// # Safety
/// `chan` and `data` are what Asterisk passed to the application's callback.
pub unsafe fn run_app<I>(
    name: &CStr,
    chan: *mut sys::ast_channel,
    data: *const c_char,
    root: fn() -> Option<Arc<I>>,
    handler: fn(&I, &Channel, &str) -> i32,
) -> c_int {
    guard(name_of(name), -1, || {
        // SAFETY: Asterisk keeps chan alive for the application's run; data is NULL or a C string.
        let (Some(chan), data) = (unsafe { Channel::from_ptr(chan) }, unsafe { from_c(data) })
        else {
            return -1;
        };
        let Some(module) = root() else {
            log::warning(&format!("{}: res_deviceuser is not loaded", name_of(name)));
            return 0;
        };
        handler(&module, &chan, &data.unwrap_or_default())
    })
}

/// Runs a dialplan function's read handler and copies the result into Asterisk's buffer.
///
/// # Safety
/// `chan` is NULL or a live channel; `data` a C string; `buf` holds `len` bytes.
#[allow(clippy::type_complexity)]
pub unsafe fn run_read<I>(
    name: &CStr,
    chan: *mut sys::ast_channel,
    data: *const c_char,
    buf: *mut c_char,
    len: usize,
    root: fn() -> Option<Arc<I>>,
    read: fn(&I, Option<&Channel>, &str) -> Result<String, String>,
) -> c_int {
    let name = name_of(name);
    guard(name, -1, || {
        if buf.is_null() || len == 0 {
            return -1;
        }
        // SAFETY: buf holds len bytes (contract); start with an empty result.
        unsafe { *buf = 0 };
        // SAFETY: chan is NULL or live for this call; data is NULL or a C string.
        let (chan, data) = (unsafe { Channel::from_ptr(chan) }, unsafe { from_c(data) });
        let result = match root() {
            Some(module) => read(&module, chan.as_ref(), &data.unwrap_or_default()),
            None => Err("res_deviceuser is not loaded".into()),
        };
        match result {
            Ok(value) => {
                let bytes = value.as_bytes();
                let mut n = bytes.len().min(len - 1);
                while !value.is_char_boundary(n) {
                    n -= 1;
                }
                // SAFETY: n < len bytes fit in buf, and the NUL goes at index n < len.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
                    *buf.add(n) = 0;
                }
                0
            }
            Err(e) => {
                log::warning(&format!("{name}: {e}"));
                -1
            }
        }
    })
}

/// Runs a dialplan function's write handler.
///
/// # Safety
/// `data` and `value` are NULL or C strings.
pub unsafe fn run_write<I>(
    name: &CStr,
    data: *const c_char,
    value: *const c_char,
    root: fn() -> Option<Arc<I>>,
    write: fn(&I, &str, &str) -> Result<(), String>,
) -> c_int {
    let name = name_of(name);
    guard(name, -1, || {
        // SAFETY: NULL or C strings, per contract.
        let (data, value) = unsafe { (from_c(data), from_c(value)) };
        let result = match root() {
            Some(module) => write(
                &module,
                &data.unwrap_or_default(),
                &value.unwrap_or_default(),
            ),
            None => Err("res_deviceuser is not loaded".into()),
        };
        match result {
            Ok(()) => 0,
            Err(e) => {
                log::warning(&format!("{name}: {e}"));
                -1
            }
        }
    })
}

/// Runs a CLI command: fills in the entry at `CLI_INIT`, completes at `CLI_GENERATE`, runs
/// otherwise.
///
/// # Safety
/// `e` is the entry being called; `a` the arguments of the running call (unused at `CLI_INIT`).
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub unsafe fn run_cli<I>(
    e: *mut sys::ast_cli_entry,
    cmd: c_int,
    a: *mut sys::ast_cli_args,
    command: &'static CStr,
    usage: &'static CStr,
    root: fn() -> Option<Arc<I>>,
    run: fn(&I, &Args) -> Outcome,
    complete: fn(&I, &Args) -> Vec<String>,
) -> *mut c_char {
    guard(
        name_of(command),
        hcli::CLI_FAILURE,
        || match hcli::call_kind(cmd) {
            Call::Init => {
                // SAFETY: e is the entry being initialized; the strings are static.
                unsafe { hcli::init_entry(e, command, usage) };
                std::ptr::null_mut()
            }
            Call::Generate => {
                // SAFETY: a holds the arguments of this completion request.
                let args = unsafe { hcli::args(a) };
                let candidates = root().map(|m| complete(&m, &args)).unwrap_or_default();
                hcli::complete(&args.word, args.n, candidates.iter().map(String::as_str))
            }
            Call::Run => {
                // SAFETY: a holds the arguments of this call.
                let args = unsafe { hcli::args(a) };
                let outcome = match root() {
                    Some(m) => run(&m, &args),
                    None => Outcome::Failed("res_deviceuser is not loaded\n".into()),
                };
                hcli::finish(args.fd, outcome)
            }
        },
    )
}

/// Runs an AMI action's handler; the action is always answered.
///
/// # Safety
/// `s` and `m` are the session and message of the running action.
pub unsafe fn run_action<I>(
    name: &CStr,
    s: *mut sys::mansession,
    m: *const sys::message,
    root: fn() -> Option<Arc<I>>,
    handler: fn(&I, &Action),
) -> c_int {
    // SAFETY: per contract; the Action is used only during this call.
    let action = unsafe { Action::new(s, m) };
    let answered = guard(name_of(name), false, || {
        match root() {
            Some(module) => handler(&module, &action),
            None => action.error("res_deviceuser is not loaded"),
        }
        true
    });
    if !answered {
        action.error("Internal error");
    }
    0
}

/// This module's handle in Asterisk (`ast_module_info->self`), given to `load`.
#[derive(Clone, Copy)]
pub struct ModuleHandle(*mut c_void);

// SAFETY: the handle is an opaque pointer Asterisk owns for the module's whole load; it is
// only passed back to Asterisk's registration functions.
unsafe impl Send for ModuleHandle {}
// SAFETY: as above; nothing is read or written through it on the Rust side.
unsafe impl Sync for ModuleHandle {}

impl ModuleHandle {
    pub fn new(ptr: *mut c_void) -> Self {
        ModuleHandle(ptr)
    }
}

/// Everything [`register`] registered; dropping it unregisters it all.
pub struct Registered {
    apps: Vec<&'static CStr>,
    /// Asterisk keeps pointers to these until they are unregistered (boxed: stable addresses).
    #[allow(clippy::vec_box)]
    functions: Vec<Box<sys::ast_custom_function>>,
    cli: Vec<sys::ast_cli_entry>,
    cli_registered: bool,
    actions: Vec<&'static CStr>,
}

// SAFETY: the structures Asterisk links into its lists are touched by Asterisk alone, under
// its own locks, until they are unregistered in `drop`; the Rust side never reads them.
unsafe impl Send for Registered {}
// SAFETY: as above: no method reads or writes through the registered structures.
unsafe impl Sync for Registered {}

/// Registers the tables; on any failure, unregisters what was registered and says which
/// entry failed.
pub fn register(
    module: ModuleHandle,
    apps: &'static [App],
    functions: &'static [Function],
    cli: &'static [CliCommand],
    actions: &'static [AmiAction],
) -> Result<Registered, String> {
    let mut r = Registered {
        apps: Vec::new(),
        functions: Vec::new(),
        cli: Vec::new(),
        cli_registered: false,
        actions: Vec::new(),
    };
    for app in apps {
        // SAFETY: the name is static and the trampoline stays valid until unregistered
        // (before the module is unmapped). NULL synopsis and description: Asterisk takes
        // them from the module's XML documentation.
        let rc = unsafe {
            sys::ast_register_application2(
                app.name.as_ptr(),
                Some(app.exec),
                std::ptr::null(),
                std::ptr::null(),
                module.0,
            )
        };
        if rc != 0 {
            return Err(format!("cannot register application {}", name_of(app.name)));
        }
        r.apps.push(app.name);
    }
    for f in functions {
        let mut acf = Box::new(sys::ast_custom_function {
            name: f.name.as_ptr(),
            read: Some(f.read),
            write: f.write,
            ..Default::default()
        });
        // SAFETY: acf is zero-initialized as a static C definition would be, with a static
        // name; it stays at this address until unregistered in drop.
        let rc = unsafe { sys::__ast_custom_function_register(&mut *acf, module.0.cast()) };
        if rc != 0 {
            return Err(format!("cannot register function {}", name_of(f.name)));
        }
        r.functions.push(acf);
    }
    r.cli = cli
        .iter()
        .map(|c| sys::ast_cli_entry {
            summary: c.summary.as_ptr(),
            handler: Some(c.handler),
            ..Default::default()
        })
        .collect();
    if !r.cli.is_empty() {
        // SAFETY: the entries are zero-initialized like AST_CLI_DEFINE's, and the vector is
        // never resized while registered, so the addresses Asterisk links stay valid.
        let rc = unsafe {
            sys::__ast_cli_register_multiple(
                r.cli.as_mut_ptr(),
                r.cli.len() as c_int,
                module.0.cast(),
            )
        };
        r.cli_registered = true;
        if rc != 0 {
            let names: Vec<&str> = cli.iter().map(|c| name_of(c.command)).collect();
            return Err(format!(
                "cannot register the CLI commands ({})",
                names.join(", ")
            ));
        }
    }
    for a in actions {
        // SAFETY: the name is static (Asterisk keeps the pointer); the trampoline stays valid
        // until unregistered. NULL texts: the XML documentation has them.
        let rc = unsafe {
            sys::ast_manager_register2(
                a.name.as_ptr(),
                sys::EVENT_FLAG_AGENT as c_int,
                Some(a.handler),
                module.0.cast(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(format!("cannot register AMI action {}", name_of(a.name)));
        }
        r.actions.push(a.name);
    }
    Ok(r)
}

impl Drop for Registered {
    fn drop(&mut self) {
        for name in self.apps.drain(..) {
            // SAFETY: a name registered by `register`.
            unsafe { sys::ast_unregister_application(name.as_ptr()) };
        }
        for mut acf in self.functions.drain(..) {
            // SAFETY: registered by `register`; Asterisk unlinks it (waiting for readers of
            // its function list) before the box is freed here.
            unsafe { sys::ast_custom_function_unregister(&mut *acf) };
        }
        if self.cli_registered {
            // SAFETY: the entries registered by `register`, at the same addresses.
            unsafe {
                sys::ast_cli_unregister_multiple(self.cli.as_mut_ptr(), self.cli.len() as c_int)
            };
        }
        for name in self.actions.drain(..) {
            // SAFETY: a name registered by `register`; unregistering waits for running calls.
            unsafe { sys::ast_manager_unregister(name.as_ptr()) };
        }
    }
}
