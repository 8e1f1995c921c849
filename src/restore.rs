//! At load: the bindings and DND states saved in AstDB, plus what the journal holds that
//! AstDB had not committed when the process last died, restored into a new table; then AstDB
//! brought in line with the result in one pass. Nobody reads the table yet, so this runs
//! before the commit pipeline exists and writes AstDB itself.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use deviceuser_core::astdb::{
    binding_key, binding_value, decode_binding, decode_dnd_key, dnd_key, DND_VALUE, FAMILY,
};
use deviceuser_core::logtext::{quoted, value};
use deviceuser_core::{BindingTable, Changes};

use crate::host::{astdb, log};
use crate::journal;

/// Restores into `table`; returns how many bindings AstDB and the journal held, and the
/// changes the restore made (the restored logins, for the statistics).
pub fn restore(table: &BindingTable, now: u64) -> (usize, Changes) {
    let mut saved_values = HashMap::new();
    let mut saved = BTreeMap::new();
    for (key, value) in astdb::tree(FAMILY, "binding") {
        match decode_binding(&key, &value) {
            Ok(b) => {
                saved_values.insert(b.device.to_string(), value);
                saved.insert(b.device.to_string(), b);
            }
            Err(e) => {
                log::warning(&format!(
                    "ignoring AstDB entry {}: {e}",
                    quoted(&format!("/{FAMILY}/{key}"))
                ));
                astdb::del(FAMILY, &key);
            }
        }
    }
    let saved_dnd: BTreeSet<String> = astdb::tree(FAMILY, "dnd")
        .into_iter()
        .filter_map(|(key, _)| decode_dnd_key(&key))
        .collect();
    let mut dnd = saved_dnd.clone();
    for problem in deviceuser_core::journal::replay(&journal::read(), &mut saved, &mut dnd) {
        log::warning(&format!("journal: {problem}"));
    }
    let count = saved.len();
    let (changes, dropped) = table.restore(saved.into_values().collect(), now, |_| {});
    for (b, why) in &dropped {
        log::notice(&format!(
            "dropping saved login of user {} on device {}: {why}",
            value(&b.user),
            value(&b.device)
        ));
    }
    table.with_snapshot(|s| {
        for b in s.bindings() {
            let value = binding_value(b);
            if saved_values.remove(b.device.as_str()).as_deref() != Some(value.as_str()) {
                if let Err(e) = astdb::put(FAMILY, &binding_key(&b.device), &value) {
                    log::warning(&e);
                }
            }
        }
    });
    for device in saved_values.keys() {
        astdb::del(FAMILY, &binding_key(device));
    }
    apply_dnd(table, &saved_dnd, dnd);
    (count, changes)
}

/// With `storage = realtime`: bindings come from the database (see [`crate::cluster`]);
/// only DND states are restored from AstDB.
pub fn restore_dnd(table: &BindingTable) {
    let saved: BTreeSet<String> = astdb::tree(FAMILY, "dnd")
        .into_iter()
        .filter_map(|(key, _)| decode_dnd_key(&key))
        .collect();
    apply_dnd(table, &saved, saved.clone());
}

/// Turns DND on for `dnd`, then brings AstDB (which held `saved_dnd`) in line.
fn apply_dnd(table: &BindingTable, saved_dnd: &BTreeSet<String>, dnd: BTreeSet<String>) {
    for user in table.restore_dnd(dnd.into_iter().collect()) {
        log::notice(&format!(
            "dropping saved DND of unknown user {}",
            value(&user)
        ));
    }
    table.with_snapshot(|s| {
        let now_on: BTreeSet<&str> = s.dnd_users().into_iter().collect();
        for user in &now_on {
            if !saved_dnd.contains(*user) {
                if let Err(e) = astdb::put(FAMILY, &dnd_key(user), DND_VALUE) {
                    log::warning(&e);
                }
            }
        }
        for user in saved_dnd.iter().filter(|u| !now_on.contains(u.as_str())) {
            astdb::del(FAMILY, &dnd_key(user));
        }
    });
}
