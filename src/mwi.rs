//! Voicemail follows the user: each device shows the message-waiting state of the mailbox of
//! the user logged in on it, as the mailbox `<device>@deviceuser`. An endpoint is configured
//! once with `mailboxes = <device>@deviceuser` (on its AOR for phones that subscribe); the
//! light then changes with the user on the device, with no voicemail reload and no endpoint
//! rewrite. A device with nobody on it, or whose user has no mailbox, shows no messages.
//!
//! Runs on the follow-up thread alone ([`crate::followups`]): a commit hands over the devices
//! whose user changed, the MWI subscription each change of a mailbox's state.
use std::collections::{BTreeSet, HashMap};

use deviceuser_core::logtext::value;
use deviceuser_core::Snapshot;

use crate::host::mwi::{inbox_count, mailbox_exists, voicemail_loaded, Counts, Publisher};
use crate::host::{config, log};

/// The context of the devices' mailboxes: `<device>@deviceuser`.
pub const MWI_CONTEXT: &str = "deviceuser";

/// The mailbox id a device's state is published as.
pub fn device_mailbox(device: &str) -> String {
    format!("{device}@{MWI_CONTEXT}")
}

/// Whether a mailbox id is one of the devices' (the module's own publications).
pub fn is_device_mailbox(id: &str) -> bool {
    id.rsplit_once('@')
        .is_some_and(|(_, c)| c.eq_ignore_ascii_case(MWI_CONTEXT))
}

#[derive(Default)]
pub struct DeviceMwi {
    /// One publisher per device ever shown a state, by device id.
    publishers: HashMap<String, Publisher>,
    /// What each device shows now.
    shown: HashMap<String, Counts>,
    /// Mailboxes told to be unknown or unreadable (told once).
    warned: BTreeSet<String>,
    /// voicemail.conf was looked at for `pollmailboxes`.
    polling_checked: bool,
}

impl DeviceMwi {
    /// Shows on `device` its user's mailbox, as `snap` has it (none: no messages).
    pub fn sync_device(&mut self, snap: &Snapshot, device: &str) {
        let mailbox = snap
            .user_on(device)
            .and_then(|b| snap.config().user(&b.user))
            .and_then(|u| u.mailbox.clone());
        let counts = match &mailbox {
            Some(m) => self.counts_of(m),
            None => Counts::default(),
        };
        self.show(device, counts);
    }

    /// Shows every bound device's user's mailbox (start, reload).
    pub fn sync_all(&mut self, snap: &Snapshot) {
        if !self.polling_checked {
            self.polling_checked = true;
            warn_if_polled();
        }
        let mut devices: BTreeSet<String> = snap
            .bindings()
            .into_iter()
            .filter(|b| {
                snap.config()
                    .user(&b.user)
                    .is_some_and(|u| u.mailbox.is_some())
            })
            .map(|b| b.device.to_string())
            .collect();
        // Devices shown a mailbox before whose user is gone or has none now.
        devices.extend(self.shown.keys().cloned());
        for device in devices {
            self.sync_device(snap, &device);
        }
    }

    /// A mailbox's state changed: every device whose user has it shows the new counts.
    pub fn mailbox_changed(&mut self, snap: &Snapshot, mailbox: &str, counts: Counts) {
        let devices: Vec<String> = snap
            .bindings()
            .into_iter()
            .filter(|b| {
                snap.config().user(&b.user).is_some_and(|u| {
                    u.mailbox
                        .as_deref()
                        .is_some_and(|m| m.eq_ignore_ascii_case(mailbox))
                })
            })
            .map(|b| b.device.to_string())
            .collect();
        for device in devices {
            self.show(&device, counts);
        }
    }

    fn counts_of(&mut self, mailbox: &str) -> Counts {
        if !voicemail_loaded() {
            if self.warned.insert(String::new()) {
                log::warning(
                    "no voicemail module is loaded: devices show no messages until app_voicemail is",
                );
            }
            return Counts::default();
        }
        self.warned.remove("");
        if mailbox_exists(mailbox) == Some(false) && self.warned.insert(mailbox.to_string()) {
            log::warning(&format!(
                "mailbox {} is not in voicemail.conf: the devices of its user show no messages",
                value(mailbox)
            ));
        }
        inbox_count(mailbox).unwrap_or_default()
    }

    fn show(&mut self, device: &str, counts: Counts) {
        if self.shown.get(device) == Some(&counts) {
            return;
        }
        if counts == Counts::default() && !self.publishers.contains_key(device) {
            // Never shown anything: nothing to turn off.
            return;
        }
        let publisher = match self.publishers.get(device) {
            Some(p) => p,
            None => {
                let Some(p) = Publisher::new(&device_mailbox(device)) else {
                    log::warning(&format!(
                        "cannot publish message waiting for device {}",
                        value(device)
                    ));
                    return;
                };
                self.publishers.entry(device.to_string()).or_insert(p)
            }
        };
        if publisher.publish(counts) {
            self.shown.insert(device.to_string(), counts);
            log::verbose_with(4, || {
                format!(
                    "device {}: message waiting {} ({} new, {} old)",
                    value(device),
                    if counts.new > 0 { "on" } else { "off" },
                    counts.new,
                    counts.old
                )
            });
        }
    }
}

/// app_voicemail with `pollmailboxes = yes` polls every subscribed mailbox, the devices'
/// too: it finds no `deviceuser` context in voicemail.conf and publishes "no messages" over
/// what the module shows. Told once, at start.
fn warn_if_polled() {
    let config::Loaded::Config(raw) = config::load("voicemail.conf") else {
        return;
    };
    let polled = raw
        .sections
        .iter()
        .filter(|s| s.name.eq_ignore_ascii_case("general"))
        .flat_map(|s| &s.vars)
        .rfind(|v| v.key.trim().eq_ignore_ascii_case("pollmailboxes"))
        .is_some_and(|v| {
            matches!(
                v.value.trim().to_ascii_lowercase().as_str(),
                "yes" | "true" | "y" | "t" | "1" | "on"
            )
        });
    if polled {
        log::warning(&format!(
            "voicemail.conf has pollmailboxes = yes: app_voicemail polls the devices' mailboxes (<device>@{MWI_CONTEXT}) too and turns their lights off; set pollmailboxes = no"
        ));
    }
}
