//! The Rust functions the C shim calls (cbindgen turns this file into
//! include/res_deviceuser.h). Each one converts C arguments to safe types, runs the feature
//! code inside the panic guard, and converts the result back.
use std::os::raw::{c_char, c_int, c_void};

use super::channel::Channel;
use super::cli::{self as hcli, Call};
use super::devstate;
use super::guard::guard;
use super::{from_c, log};
use crate::sys::{ast_channel, ast_cli_args, ast_cli_entry, mansession, message};
use crate::{ami, apps, cli, functions, policy, runtime};

const LOAD_SUCCESS: c_int = 0;
const LOAD_DECLINE: c_int = 1;

/// `load_module`: config, bindings, provider, subscription. Registration of applications,
/// functions and CLI commands follows in the shim, then `deviceuser_started`.
#[no_mangle]
pub extern "C" fn deviceuser_load(_module: *mut c_void) -> c_int {
    super::guard::install_panic_hook();
    guard("load", LOAD_DECLINE, || {
        if let Err(e) = runtime::start() {
            log::error(&format!("not loading: {e}"));
            return LOAD_DECLINE;
        }
        if let Err(e) = devstate::provider_add(runtime::PROVIDER_LABEL, runtime_state) {
            log::error(&e);
            runtime::stop();
            return LOAD_DECLINE;
        }
        if let Err(e) = devstate::subscribe(|c| runtime::device_changed(c.device, c.state)) {
            log::error(&e);
            devstate::provider_del(runtime::PROVIDER_LABEL);
            runtime::stop();
            return LOAD_DECLINE;
        }
        if let Err(e) = policy::start() {
            log::error(&e);
            devstate::unsubscribe();
            devstate::provider_del(runtime::PROVIDER_LABEL);
            runtime::stop();
            return LOAD_DECLINE;
        }
        LOAD_SUCCESS
    })
}

fn runtime_state(user: &str) -> devstate::DeviceState {
    // A snapshot of its own, not `with_snapshot`: computing the state calls back into
    // Asterisk (`ast_device_state`), and no writer should wait on that.
    runtime::with(|rt| runtime::user_state(&rt.table.snapshot(), user, None))
        .unwrap_or(devstate::DeviceState::UNKNOWN)
}

/// Everything is registered: publish every user's state (and add owned hints).
#[no_mangle]
pub extern "C" fn deviceuser_started() {
    guard("start", (), runtime::announce)
}

/// Non-zero while a login prompt runs on a channel: unload must wait for it.
#[no_mangle]
pub extern "C" fn deviceuser_unload_busy() -> c_int {
    guard("unload check", 1, || {
        let n = apps::running();
        if n > 0 {
            log::warning(&format!(
                "cannot unload while {n} login/logout prompt(s) are running"
            ));
        }
        c_int::from(n > 0)
    })
}

/// `unload_module`, after the shim unregistered everything.
#[no_mangle]
pub extern "C" fn deviceuser_unload() {
    guard("unload", (), || {
        policy::stop();
        devstate::unsubscribe();
        devstate::provider_del(runtime::PROVIDER_LABEL);
        runtime::stop();
    });
    super::guard::remove_panic_hook();
}

/// `module reload`: 0 on success; a bad file keeps the running config.
#[no_mangle]
pub extern "C" fn deviceuser_reload() -> c_int {
    guard("reload", -1, || match runtime::reload() {
        Ok(()) => 0,
        Err(_) => -1,
    })
}

/// Runs a dialplan application on its channel.
///
/// # Safety
/// `chan` and `data` are what Asterisk passed to the application's callback.
unsafe fn run_app(
    name: &str,
    chan: *mut ast_channel,
    data: *const c_char,
    app: fn(&Channel, &str) -> i32,
) -> c_int {
    guard(name, -1, || {
        // SAFETY: Asterisk keeps chan alive for the application's run; data is NULL or a C string.
        let (Some(chan), data) = (unsafe { Channel::from_ptr(chan) }, unsafe { from_c(data) })
        else {
            return -1;
        };
        app(&chan, &data.unwrap_or_default())
    })
}

/// `UserLogin([user[,password]])`.
///
/// # Safety
/// Called by Asterisk with the running channel and its argument string.
#[no_mangle]
pub unsafe extern "C" fn deviceuser_app_login(
    chan: *mut ast_channel,
    data: *const c_char,
) -> c_int {
    // SAFETY: forwarded from Asterisk's callback.
    unsafe { run_app("UserLogin", chan, data, apps::login) }
}

/// `UserLogout([user])`.
///
/// # Safety
/// As for `deviceuser_app_login`.
#[no_mangle]
pub unsafe extern "C" fn deviceuser_app_logout(
    chan: *mut ast_channel,
    data: *const c_char,
) -> c_int {
    // SAFETY: forwarded from Asterisk's callback.
    unsafe { run_app("UserLogout", chan, data, apps::logout) }
}

/// Read callback of the dialplan functions; `which` is FN_DIAL, FN_USER or FN_FIELD.
///
/// # Safety
/// `chan` is NULL or a live channel; `data` a C string; `buf` holds `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn deviceuser_func_read(
    which: c_int,
    chan: *mut ast_channel,
    data: *const c_char,
    buf: *mut c_char,
    len: usize,
) -> c_int {
    guard(functions::name(which), -1, || {
        if buf.is_null() || len == 0 {
            return -1;
        }
        // SAFETY: buf holds len bytes (contract); start with an empty result.
        unsafe { *buf = 0 };
        // SAFETY: chan is NULL or live for this call; data is NULL or a C string.
        let (chan, data) = (unsafe { Channel::from_ptr(chan) }, unsafe { from_c(data) });
        match functions::read(which, chan.as_ref(), &data.unwrap_or_default()) {
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
                log::warning(&format!("{}: {e}", functions::name(which)));
                -1
            }
        }
    })
}

/// Write callback of the dialplan functions.
///
/// # Safety
/// `data` and `value` are C strings.
#[no_mangle]
pub unsafe extern "C" fn deviceuser_func_write(
    which: c_int,
    _chan: *mut ast_channel,
    data: *const c_char,
    value: *const c_char,
) -> c_int {
    guard(functions::name(which), -1, || {
        // SAFETY: NULL or C strings, per contract.
        let (data, value) = unsafe { (from_c(data), from_c(value)) };
        match functions::write(which, &data.unwrap_or_default(), &value.unwrap_or_default()) {
            Ok(()) => 0,
            Err(e) => {
                log::warning(&format!("{}: {e}", functions::name(which)));
                -1
            }
        }
    })
}

/// Handler of CLI entry `id` (the order of the shim's table).
///
/// # Safety
/// `e` and `a` are the entry and arguments of the running CLI call.
#[no_mangle]
pub unsafe extern "C" fn deviceuser_cli(
    id: c_int,
    e: *mut ast_cli_entry,
    cmd: c_int,
    a: *mut ast_cli_args,
) -> *mut c_char {
    guard("CLI command", hcli::CLI_FAILURE, || {
        match hcli::call_kind(cmd) {
            Call::Init => {
                if let Some((command, usage)) = cli::entry(id) {
                    // SAFETY: e is the entry being initialized; the strings are static.
                    unsafe { hcli::init_entry(e, command, usage) };
                }
                std::ptr::null_mut()
            }
            Call::Generate => {
                // SAFETY: a holds the arguments of this completion request.
                let args = unsafe { hcli::args(a) };
                let c = cli::candidates(id, &args);
                hcli::complete(&args.word, args.n, c.iter().map(String::as_str))
            }
            Call::Run => {
                // SAFETY: a holds the arguments of this call.
                let args = unsafe { hcli::args(a) };
                match cli::run(id, &args) {
                    cli::Outcome::Done(text) => {
                        hcli::print(args.fd, &text);
                        hcli::CLI_SUCCESS
                    }
                    cli::Outcome::Usage => hcli::CLI_SHOWUSAGE,
                    cli::Outcome::Failed(text) => {
                        hcli::print(args.fd, &text);
                        hcli::CLI_FAILURE
                    }
                }
            }
        }
    })
}

/// Handler of AMI action `id` (the order of the shim's table). Always answers the action.
///
/// # Safety
/// `s` and `m` are the session and message of the running action.
#[no_mangle]
pub unsafe extern "C" fn deviceuser_ami(id: c_int, s: *mut mansession, m: *const message) -> c_int {
    // SAFETY: per contract; the Action is used only during this call.
    let action = unsafe { super::ami::Action::new(s, m) };
    let answered = guard(ami::name(id), false, || {
        ami::handle(id, &action);
        true
    });
    if !answered {
        action.error("Internal error");
    }
    0
}
