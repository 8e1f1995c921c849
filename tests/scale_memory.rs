//! A config of 5,000 users and devices: load, a burst of logins and logouts, the statistics
//! and counters after it, the heap trim the commit thread makes once the burst is over, and
//! the module heap after unload and load.
mod common;

use std::fmt::Write;
use std::time::Duration;

use common::{poll, Asterisk};

const USERS: usize = 5000;
const T: Duration = Duration::from_secs(30);

fn conf() -> String {
    let mut s = String::from("[general]\nmultiple_logins = yes\n");
    for n in 1..=USERS {
        let _ = write!(
            s,
            "\n[d{n}]\ntype = device\ndial = PJSIP/d{n}\n\n[{}]\ntype = user\npassword = 1234\nfullname = Operator {n}\n",
            100_000 + n
        );
    }
    s
}

fn last_line(out: &str) -> &str {
    out.lines().last().unwrap_or("")
}

#[test]
fn a_large_config_goes_through_a_burst_a_trim_and_a_reload() {
    let ast = Asterisk::builder("scale-memory")
        .conf("res_deviceuser.conf", &conf())
        .start();
    assert_eq!(
        last_line(&ast.cli("deviceuser show users")),
        "5000 users found"
    );
    let at_load = ast.module_heap_bytes();
    // The config alone: some hundred bytes per user and device.
    assert!(
        at_load > (USERS as u64) * 100 && at_load < 16 << 20,
        "module heap at load: {at_load} bytes"
    );

    // Back-to-back logins and logouts: the commit thread takes them as a burst.
    let mut ami = ast.ami();
    for n in 1..=USERS {
        ami.login_ok(&(100_000 + n).to_string(), &format!("d{n}"));
    }
    assert_eq!(
        last_line(&ast.cli("deviceuser show bindings")),
        "5000 bindings found"
    );
    assert_eq!(
        ami.getvar("DEVICEUSER_DIAL(104321)", None).as_deref(),
        Some("PJSIP/d4321")
    );
    for n in 1..=USERS {
        ami.logout_ok(&(100_000 + n).to_string());
    }
    assert_eq!(
        last_line(&ast.cli("deviceuser show bindings")),
        "0 bindings found"
    );
    // Every user logged in once: the statistics list all of them, then the counters; the
    // summary has the counters alone.
    let full = ast.cli("deviceuser show stats");
    let (table, counters) = full
        .split_once("Logins restored from AstDB")
        .expect("counters");
    assert_eq!(last_line(table), "5000 users found");
    let summary = ast.cli("deviceuser show stats summary");
    assert!(
        summary.starts_with("Logins restored from AstDB"),
        "{summary}"
    );
    assert_eq!(
        summary.lines().count(),
        counters.lines().count(),
        "{summary}"
    );
    // The work queued by the burst is applied, then the heap is trimmed once it is quiet.
    assert!(ast.commit_work_applied(T), "commit work still queued");
    let trims = poll(T, || {
        let n = ast.stats_count("Heap trimmed after bursts of commits");
        (n >= 1).then_some(n)
    });
    assert!(
        trims.is_some(),
        "no heap trim after a burst of {USERS} commits"
    );

    // Unload frees what the module held; a fresh load holds what the first did.
    ast.unload_and_load();
    assert_eq!(
        last_line(&ast.cli("deviceuser show users")),
        "5000 users found"
    );
    let reloaded = ast.module_heap_bytes();
    assert!(
        reloaded.abs_diff(at_load) < at_load / 20,
        "module heap at load {at_load} bytes, after unload and load {reloaded} bytes"
    );
    assert_eq!(
        ast.stats_count("Heap trimmed after bursts of commits"),
        0,
        "the count starts again at load"
    );
}
