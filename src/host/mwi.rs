//! Message waiting (MWI): publishing a mailbox state of the module's own (the device's
//! `<device>@deviceuser`), reading a mailbox's counts from the voicemail module, and
//! following every mailbox's published state.
use std::os::raw::{c_char, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

use super::{cstring, from_c, guard::guard};
use crate::sys;

/// A mailbox's message counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub urgent: i32,
    pub new: i32,
    pub old: i32,
}

/// The publisher of one mailbox id (`1000@deviceuser`): Asterisk keeps its last state, which
/// a subscriber that comes later (a phone's MWI subscription) is given at once.
pub struct Publisher(*mut sys::ast_mwi_publisher);

// SAFETY: an ao2 object of Asterisk's, usable from any thread.
unsafe impl Send for Publisher {}

impl Publisher {
    pub fn new(mailbox_id: &str) -> Option<Publisher> {
        let id = cstring(mailbox_id);
        // SAFETY: valid C string that Asterisk copies; we own the returned reference.
        let p = unsafe { sys::ast_mwi_add_publisher(id.as_ptr()) };
        (!p.is_null()).then_some(Publisher(p))
    }

    pub fn publish(&self, c: Counts) -> bool {
        // SAFETY: our live publisher; no channel, no EID (this server).
        unsafe {
            sys::ast_mwi_publish(
                self.0,
                c.urgent,
                c.new,
                c.old,
                std::ptr::null(),
                std::ptr::null_mut(),
            ) == 0
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // SAFETY: the reference taken in `new`, released once.
        unsafe { sys::__ao2_cleanup(self.0.cast()) };
    }
}

/// Whether a voicemail module (app_voicemail) is registered.
pub fn voicemail_loaded() -> bool {
    // SAFETY: no arguments; reads a global under Asterisk's own lock.
    unsafe { sys::ast_vm_is_registered() != 0 }
}

/// A mailbox's counts as the voicemail module reports them (urgent ones counted as new, as
/// app_voicemail publishes them); `None` without a voicemail module.
pub fn inbox_count(mailbox: &str) -> Option<Counts> {
    if !voicemail_loaded() {
        return None;
    }
    let m = cstring(mailbox);
    let (mut urgent, mut new, mut old) = (0, 0, 0);
    // SAFETY: valid C string and out-pointers to locals.
    unsafe { sys::ast_app_inboxcount2(m.as_ptr(), &mut urgent, &mut new, &mut old) };
    Some(Counts {
        urgent: 0,
        new: new + urgent,
        old,
    })
}

/// Whether app_voicemail knows `mailbox` (`box@context`), through its `VM_INFO(...,exists)`;
/// `None` if the function is not there (no app_voicemail).
pub fn mailbox_exists(mailbox: &str) -> Option<bool> {
    let f = cstring(&format!("VM_INFO({mailbox},exists)"));
    let mut buf = [0 as c_char; 16];
    // SAFETY: no channel (VM_INFO's exists does not use one); the buffer is ours and its
    // length is given.
    let rc = unsafe {
        sys::ast_func_read(
            std::ptr::null_mut(),
            f.as_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: ast_func_read NUL-terminates within the given length.
    let v = unsafe { from_c(buf.as_ptr()) }.unwrap_or_default();
    Some(v.trim() == "1")
}

/// What the watch calls for each mailbox state published, with its id (`4101@default`), on
/// the subscription's own serialized thread.
pub type Handler = Box<dyn Fn(&str, Counts) + Send + Sync>;

/// A subscription to every mailbox's state.
pub struct Watch {
    sub: AtomicPtr<sys::stasis_subscription>,
    handler: Handler,
}

// SAFETY: the subscription is an Asterisk object usable from any thread; the handler is
// Send + Sync.
unsafe impl Send for Watch {}
// SAFETY: as above.
unsafe impl Sync for Watch {}

unsafe extern "C" fn on_mwi(
    data: *mut c_void,
    _sub: *mut sys::stasis_subscription,
    msg: *mut sys::stasis_message,
) {
    guard("MWI subscription", (), || {
        // SAFETY: data is the Watch given at subscription, alive until the final message
        // (`close` joins the subscription before the Watch goes).
        let w = unsafe { &*data.cast::<Watch>() };
        // SAFETY: msg is live for the callback.
        if unsafe { sys::stasis_message_type(msg) } != unsafe { sys::ast_mwi_state_type() } {
            return;
        }
        // SAFETY: messages of this type carry an ast_mwi_state.
        let state = unsafe { sys::stasis_message_data(msg) } as *const sys::ast_mwi_state;
        if state.is_null() {
            return;
        }
        // SAFETY: valid while msg is; uniqueid is a NUL-terminated string field.
        let (id, counts) = unsafe {
            (
                from_c((*state).uniqueid),
                Counts {
                    urgent: (*state).urgent_msgs,
                    new: (*state).new_msgs,
                    old: (*state).old_msgs,
                },
            )
        };
        if let Some(id) = id {
            (w.handler)(&id, counts);
        }
    })
}

impl Watch {
    /// Subscribes `handler` to every mailbox's state. The returned box must stay where it is
    /// until [`close`](Self::close) (run on drop).
    pub fn start(handler: Handler) -> Result<Box<Watch>, String> {
        let w = Box::new(Watch {
            sub: AtomicPtr::new(std::ptr::null_mut()),
            handler,
        });
        let data = (&*w as *const Watch).cast_mut().cast::<c_void>();
        // SAFETY: the MWI topic is a global of Asterisk's; the callback is a guarded extern "C"
        // function; the box outlives the subscription (joined in `close`).
        let sub = unsafe {
            sys::__stasis_subscribe_pool(
                sys::ast_mwi_topic_all(),
                Some(on_mwi),
                data,
                c"res_deviceuser".as_ptr(),
                0,
                c"mwi".as_ptr(),
            )
        };
        if sub.is_null() {
            return Err("cannot subscribe to mailbox states".into());
        }
        // SAFETY: our live subscription; only MWI states reach the callback.
        unsafe {
            sys::stasis_subscription_accept_message_type(sub, sys::ast_mwi_state_type());
            sys::stasis_subscription_set_filter(
                sub,
                sys::stasis_subscription_message_filter_STASIS_SUBSCRIPTION_FILTER_SELECTIVE,
            );
        }
        w.sub.store(sub, Ordering::Release);
        Ok(w)
    }

    /// Unsubscribes and waits for the last message. Idempotent.
    pub fn close(&self) {
        let sub = self.sub.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if !sub.is_null() {
            // SAFETY: our subscription, unsubscribed once; after the join no callback runs.
            unsafe { sys::stasis_unsubscribe_and_join(sub) };
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.close();
    }
}
