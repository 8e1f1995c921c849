//! Counters of logins, logouts and refused logins, and their rendering in Prometheus' text
//! exposition format (what `res_prometheus` serves on `/metrics`).
use std::collections::BTreeMap;
use std::fmt::Write;

use crate::failure::LoginFailure;
use crate::table::Changes;

/// Counters since the module was loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bindings made, by reason (`manual`, `admin`, `replaced`, `default`, ...).
    pub logins: BTreeMap<String, u64>,
    /// Bindings ended, by reason (`manual`, `admin`, `timeout`, `replaced`, ...).
    pub logouts: BTreeMap<String, u64>,
    /// Refused logins, by failure.
    pub failures: BTreeMap<LoginFailure, u64>,
}

fn bump(map: &mut BTreeMap<String, u64>, key: String) {
    *map.entry(key).or_insert(0) += 1;
}

impl Counters {
    /// Counts a commit's bindings made and ended.
    pub fn apply(&mut self, changes: &Changes) {
        for (_, reason) in &changes.removed {
            bump(&mut self.logouts, reason.to_string());
        }
        for (_, reason) in &changes.added {
            bump(&mut self.logins, reason.to_string());
        }
    }

    pub fn failed(&mut self, failure: LoginFailure) {
        *self.failures.entry(failure).or_insert(0) += 1;
    }
}

/// What one scrape reports.
#[derive(Clone, Debug, Default)]
pub struct Scrape<'a> {
    pub counters: Option<&'a Counters>,
    pub users_logged_in: usize,
    pub devices_bound: usize,
    pub users_dnd: usize,
    pub lockouts: u64,
    pub users_locked: usize,
    /// Commit work queued (AstDB writes, releases, states to publish).
    pub commit_queue: usize,
    /// Queue membership and MWI work queued.
    pub follow_up_queue: usize,
}

/// Every metric's name starts with this.
pub const PREFIX: &str = "deviceuser_";

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {PREFIX}{name} {help}");
    let _ = writeln!(out, "# TYPE {PREFIX}{name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(PREFIX);
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Label values are the module's own words; escape anyway, as the format says.
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// The scrape as Prometheus text. Counters by reason list every reason seen; refused logins
/// list every failure (0 when none happened), so a rate can be taken from the first scrape.
pub fn render(s: &Scrape<'_>) -> String {
    let mut out = String::with_capacity(2048);
    let gauges: [(&str, &str, u64); 6] = [
        (
            "users_logged_in",
            "Users logged in on at least one device.",
            s.users_logged_in as u64,
        ),
        (
            "devices_bound",
            "Devices with a user on them (logins, fixed and default users).",
            s.devices_bound as u64,
        ),
        ("users_dnd", "Users in do-not-disturb.", s.users_dnd as u64),
        (
            "users_locked",
            "Users locked out after repeated wrong PINs, now.",
            s.users_locked as u64,
        ),
        (
            "commit_queue_depth",
            "Commit work not applied yet (AstDB writes, device states to publish).",
            s.commit_queue as u64,
        ),
        (
            "follow_up_queue_depth",
            "Queue membership and message-waiting work not done yet.",
            s.follow_up_queue as u64,
        ),
    ];
    for (name, help, v) in gauges {
        head(&mut out, name, "gauge", help);
        sample(&mut out, name, &[], v);
    }
    let empty = Counters::default();
    let c = s.counters.unwrap_or(&empty);
    for (name, help, map) in [
        (
            "logins_total",
            "Bindings made since the module was loaded, by reason.",
            &c.logins,
        ),
        (
            "logouts_total",
            "Bindings ended since the module was loaded, by reason.",
            &c.logouts,
        ),
    ] {
        head(&mut out, name, "counter", help);
        for (reason, n) in map {
            sample(&mut out, name, &[("reason", reason)], *n);
        }
    }
    head(
        &mut out,
        "login_failures_total",
        "counter",
        "Refused logins since the module was loaded, by reason.",
    );
    for f in LoginFailure::ALL {
        let n = c.failures.get(&f).copied().unwrap_or(0);
        sample(
            &mut out,
            "login_failures_total",
            &[("reason", f.token())],
            n,
        );
    }
    head(
        &mut out,
        "lockouts_total",
        "counter",
        "Users locked out after repeated wrong PINs since the module was loaded.",
    );
    sample(&mut out, "lockouts_total", &[], s.lockouts);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Binding, Reason};

    #[test]
    fn counters_and_text() {
        let mut c = Counters::default();
        c.apply(&Changes {
            removed: vec![(Binding::new("4101", "1000", 1), Reason::Replaced)],
            added: vec![(Binding::new("4102", "1000", 2), Reason::Manual)],
        });
        c.apply(&Changes {
            removed: vec![],
            added: vec![(Binding::new("4103", "1001", 3), Reason::Manual)],
        });
        c.failed(LoginFailure::WrongPassword);
        c.failed(LoginFailure::WrongPassword);
        let text = render(&Scrape {
            counters: Some(&c),
            users_logged_in: 2,
            devices_bound: 3,
            lockouts: 1,
            commit_queue: 4,
            ..Default::default()
        });
        for line in [
            "# TYPE deviceuser_users_logged_in gauge",
            "deviceuser_users_logged_in 2",
            "deviceuser_devices_bound 3",
            "deviceuser_commit_queue_depth 4",
            "# TYPE deviceuser_logins_total counter",
            "deviceuser_logins_total{reason=\"manual\"} 2",
            "deviceuser_logouts_total{reason=\"replaced\"} 1",
            "deviceuser_login_failures_total{reason=\"WrongPassword\"} 2",
            "deviceuser_login_failures_total{reason=\"Locked\"} 0",
            "deviceuser_lockouts_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // Every sample line is `name[{labels}] value`, every name declared before use.
        let mut declared = Vec::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                assert!(declared.iter().any(|d| d == name), "{l}");
                assert!(l.rsplit(' ').next().unwrap().parse::<u64>().is_ok(), "{l}");
            }
        }
    }
}
