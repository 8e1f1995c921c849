//! Hints the module owns (`[general] hint_context`): `exten => <user>,hint,DeviceUser:<user>`
//! and pattern hints `exten => _XXXX,hint,DeviceUser:${EXTEN}`. They are registered under the
//! module's registrar, so `dialplan reload` keeps them, and replacing a hint keeps its watchers.
//! Also what the module reads of the dialplan as a whole: whether Asterisk is fully booted and
//! whether the dialplan was replaced (see [`dialplan_generation`]).
use std::os::raw::c_char;
use std::sync::atomic::{AtomicPtr, Ordering};

use deviceuser_core::logtext::value;

use super::{cstring, from_c};
use crate::sys;

/// The name every extension of the module is registered under.
const REGISTRAR_NAME: &std::ffi::CStr = c"res_deviceuser";

/// The registrar string the module's extensions point to. Asterisk stores an extension's
/// registrar by pointer, and makes a user's hint from a pattern hint with the pattern's
/// registrar: a hint made that way while the module unloads would outlive it. So the string
/// lives in Asterisk's heap, allocated once per load and never freed (15 bytes), not in the
/// module's image, which is unmapped at unload.
static REGISTRAR: AtomicPtr<c_char> = AtomicPtr::new(std::ptr::null_mut());

fn registrar() -> *const c_char {
    let p = REGISTRAR.load(Ordering::Acquire);
    if !p.is_null() {
        return p;
    }
    // SAFETY: __ast_strdup copies a valid C string into Asterisk's heap (file, line and
    // function are for its allocation debugging only); NULL only when out of memory.
    let fresh = unsafe {
        sys::__ast_strdup(
            REGISTRAR_NAME.as_ptr(),
            REGISTRAR_NAME.as_ptr(),
            0,
            REGISTRAR_NAME.as_ptr(),
        )
    };
    if fresh.is_null() {
        return REGISTRAR_NAME.as_ptr();
    }
    match REGISTRAR.compare_exchange(
        std::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => fresh,
        Err(won) => {
            // SAFETY: `fresh` came from __ast_strdup above and was never shared.
            unsafe {
                sys::__ast_free(
                    fresh.cast(),
                    REGISTRAR_NAME.as_ptr(),
                    0,
                    REGISTRAR_NAME.as_ptr(),
                )
            };
            won
        }
    }
}

/// Forgets the registrar string at unload (it stays allocated for the extensions that may
/// still point to it; the next load allocates its own).
pub fn forget_registrar() {
    REGISTRAR.store(std::ptr::null_mut(), Ordering::Release);
}

/// Asterisk's global contexts lock, held for reading until dropped.
struct ContextsRead(());

impl ContextsRead {
    fn lock() -> Self {
        // SAFETY: a plain lock of Asterisk's global dialplan lock; released in Drop, so on
        // every path out of the scope, a panic's unwinding included.
        unsafe { sys::ast_rdlock_contexts() };
        ContextsRead(())
    }
}

impl Drop for ContextsRead {
    fn drop(&mut self) {
        // SAFETY: this guard took the lock.
        unsafe { sys::ast_unlock_contexts() };
    }
}

/// One context's read lock, held until dropped. Borrows the contexts lock, as Asterisk's own
/// walks take the two in that order (`show_dialplan_helper` in `main/pbx.c`) and the context
/// lives only as long as the contexts lock is held.
struct ContextRead<'a> {
    con: *mut sys::ast_context,
    _contexts: &'a ContextsRead,
}

impl<'a> ContextRead<'a> {
    /// # Safety
    /// `con` is a context of the list that `contexts` keeps alive.
    unsafe fn lock(contexts: &'a ContextsRead, con: *mut sys::ast_context) -> Self {
        // SAFETY: per this function's contract `con` is live while `contexts` is held.
        unsafe { sys::ast_rdlock_context(con) };
        ContextRead {
            con,
            _contexts: contexts,
        }
    }
}

impl Drop for ContextRead<'_> {
    fn drop(&mut self) {
        // SAFETY: this guard took the context's lock, and the contexts lock it borrows is
        // still held.
        unsafe { sys::ast_unlock_context(self.con) };
    }
}

/// Adds (or replaces, keeping its watchers) the module's hint `exten` with device list
/// `devices` in `context`, creating the context if needed.
pub fn add(context: &str, exten: &str, devices: &str) -> Result<(), String> {
    let (c, e, d) = (cstring(context), cstring(exten), cstring(devices));
    let registrar = registrar();
    // SAFETY: valid C strings; a NULL context list means the global dialplan, which takes
    // and releases its own locks. The registrar lives as long as the process (see
    // [`REGISTRAR`]).
    unsafe {
        if sys::ast_context_find_or_create(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            c.as_ptr(),
            registrar,
        )
        .is_null()
        {
            return Err(format!("cannot create context {}", value(context)));
        }
        // A hint's "application" is its device list; its data is an empty string that Asterisk
        // frees with its own allocator (so nothing points into this module after unload).
        let data = sys::__ast_strdup(
            c"".as_ptr(),
            REGISTRAR_NAME.as_ptr(),
            0,
            REGISTRAR_NAME.as_ptr(),
        );
        let res = sys::ast_add_extension(
            c.as_ptr(),
            1,
            e.as_ptr(),
            HINT_PRIORITY,
            std::ptr::null(),
            std::ptr::null(),
            d.as_ptr(),
            data.cast(),
            Some(sys::ast_free_ptr),
            registrar,
        );
        if res != 0 {
            return Err(format!(
                "cannot add hint {}@{}",
                value(exten),
                value(context)
            ));
        }
    }
    Ok(())
}

pub fn remove(context: &str, exten: &str) {
    let (c, e) = (cstring(context), cstring(exten));
    // SAFETY: valid C strings; Asterisk compares the registrar by its text.
    unsafe {
        sys::ast_context_remove_extension(c.as_ptr(), e.as_ptr(), HINT_PRIORITY, registrar())
    };
}

/// The hints the module registered in `context` (by its registrar's name, so also those
/// Asterisk made from the module's pattern hints): (extension, device list) pairs, read in one
/// walk of the context. The walk holds Asterisk's global contexts lock (a mutex in Asterisk
/// 22, so dialplan lookups wait for it; about a millisecond for 10,000 extensions) and the
/// context's read lock, taken in that order as Asterisk's own `dialplan show` does
/// (`show_dialplan_helper` in `main/pbx.c`). Only the hints found are copied.
pub fn owned(context: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let registrar = REGISTRAR_NAME.to_bytes();
    let contexts = ContextsRead::lock();
    // SAFETY: the contexts lock keeps the list of contexts and every context alive while we
    // walk; the context's own read lock keeps its extensions and their strings alive until it
    // is dropped. Names are compared in place (non-NULL, NUL-terminated strings Asterisk
    // owns) and only matching entries are copied, before the locks are released. Nothing
    // else of Asterisk is called while they are held.
    unsafe {
        let is = |p: *const c_char, want: &[u8]| {
            !p.is_null() && std::ffi::CStr::from_ptr(p).to_bytes() == want
        };
        let mut con = sys::ast_walk_contexts(std::ptr::null_mut());
        while !con.is_null() && !is(sys::ast_get_context_name(con), context.as_bytes()) {
            con = sys::ast_walk_contexts(con);
        }
        if con.is_null() {
            return found;
        }
        let _context = ContextRead::lock(&contexts, con);
        let mut e = sys::ast_walk_context_extensions(con, std::ptr::null_mut());
        while !e.is_null() {
            let mut p = sys::ast_walk_extension_priorities(e, std::ptr::null_mut());
            while !p.is_null() {
                if sys::ast_get_extension_priority(p) == HINT_PRIORITY
                    && is(sys::ast_get_extension_registrar(p), registrar)
                {
                    if let (Some(name), Some(app)) = (
                        from_c(sys::ast_get_extension_name(p)),
                        from_c(sys::ast_get_extension_app(p)),
                    ) {
                        found.push((name, app));
                    }
                }
                p = sys::ast_walk_extension_priorities(e, p);
            }
            e = sys::ast_walk_context_extensions(con, e);
        }
    }
    found
}

/// The priority of a hint (`PRIORITY_HINT` in pbx.h).
const HINT_PRIORITY: i32 = -1;

/// Whether Asterisk has finished booting (`core waitfullybooted` returns; the `FullyBooted`
/// AMI event was sent). Modules load before the dialplan does (`pbx_config`), so device
/// states that depend on it (`Local/<exten>@<context>`) are only right from then on.
pub fn fully_booted() -> bool {
    // SAFETY: a plain read of Asterisk's option flags, a global it sets once at boot; a torn
    // or stale read only delays noticing by one poll.
    let flags = unsafe { std::ptr::read_volatile(std::ptr::addr_of!(sys::ast_options.flags)) };
    flags & sys::ast_option_flags_AST_OPT_FLAG_FULLY_BOOTED as u64 != 0
}

/// Something that changes when the dialplan is replaced: the first context of Asterisk's list
/// and the number of contexts. `dialplan reload` (and `module reload pbx_config`) builds a new
/// list and swaps it in (`ast_merge_contexts_and_delete`), and sends no event a module can
/// wait for; a context created or destroyed changes it too. Read under the contexts lock, in
/// microseconds (one step per context).
pub fn dialplan_generation() -> (usize, usize) {
    let _contexts = ContextsRead::lock();
    // SAFETY: the contexts lock keeps the list alive and unchanged while it is walked; only
    // the pointers are read.
    unsafe {
        let first = sys::ast_walk_contexts(std::ptr::null_mut());
        let mut count = 0usize;
        let mut con = first;
        while !con.is_null() {
            count += 1;
            con = sys::ast_walk_contexts(con);
        }
        (first as usize, count)
    }
}
