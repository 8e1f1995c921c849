//! `[general] hint_context`: the module keeps, in that context by itself (no hint in
//! extensions.conf), a pattern hint `_XXXX,hint,DeviceUser:${EXTEN}` from which Asterisk
//! makes a user's hint when a phone subscribes, and `exten => <user>,hint,DeviceUser:<user>`
//! for each user who is logged in; the hints survive `dialplan reload` and `module reload`,
//! and a phone subscribed to one keeps getting NOTIFYs across both.
mod common;
mod hotdesk_common;

use common::sip::Sipp;
use common::Asterisk;
use hotdesk_common as hd;

const CTX: &str = "ext-local-test";

/// The test dialplan without any `hint` line.
fn dialplan_without_hints() -> String {
    let text: String = hd::test_dialplan()
        .lines()
        .filter(|l| !l.contains(",hint,"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!text
        .lines()
        .any(|l| !l.trim_start().starts_with(';') && l.contains("DeviceUser:")));
    text
}

fn start() -> Asterisk {
    let pjsip = hd::sample("pjsip.conf").replace(
        "subscribe_context=deviceuser-hints",
        &format!("subscribe_context={CTX}"),
    );
    assert!(pjsip.contains(CTX));
    hd::builder("hd-hints")
        .conf("extensions.conf", &dialplan_without_hints())
        .conf("pjsip.conf", &pjsip)
        .conf(
            "res_deviceuser.conf",
            &hd::deviceuser_conf_with_general(&format!("hint_context = {CTX}")),
        )
        .start()
}

/// The `core show hint` line of `exten` in the test context.
fn hint_line(ast: &Asterisk, exten: &str) -> String {
    let out = ast.cli(&format!("core show hint {exten}"));
    out.lines()
        .find(|l| l.trim_start().starts_with(&format!("{exten}@{CTX}")))
        .unwrap_or_else(|| panic!("no hint {exten}@{CTX}:\n{out}"))
        .to_string()
}

/// Waits for a NOTIFY after the first `seen` whose body contains `needle`;
/// returns how many NOTIFYs there are then.
fn wait_notify(w: &Sipp, seen: usize, needle: &str) -> usize {
    w.wait_notify(seen, needle, hd::LONG)
        .unwrap_or_else(|| panic!("no NOTIFY with {needle} after #{seen}:\n{}", w.report()));
    w.notify_bodies().len()
}

const CLOSED: &str = "<basic>closed</basic>";
const OPEN: &str = "<basic>open</basic>";

#[test]
fn module_hints_serve_blf_across_dialplan_and_module_reloads() {
    let ast = start();
    // 2010 is on its fixed device: a hint of its own. 4101 and 4110 are nowhere: the pattern
    // serves them.
    assert!(hint_line(&ast, "2010").contains("DeviceUser:2010"));
    assert!(hint_line(&ast, "_XXXX").contains("DeviceUser:${EXTEN}"));
    for user in ["4101", "4110"] {
        let out = ast.cli(&format!("core show hint {user}"));
        assert!(!out.contains(&format!("{user}@{CTX}")), "{out}");
    }

    // A phone subscribes to 4101: Asterisk makes 4101's hint from the pattern.
    Sipp::register(&ast, "1000").expect("REGISTER 1000");
    let watcher = Sipp::watcher(&ast, "1002", "4101");
    let seen = wait_notify(&watcher, 0, CLOSED);
    let line = hint_line(&ast, "4101");
    assert!(
        line.contains("DeviceUser:4101")
            && line.contains("State:Unavailable")
            && line.contains("Watchers  1"),
        "{line}"
    );
    let dialplan = ast.cli(&format!("dialplan show {CTX}"));
    assert!(dialplan.contains("DeviceUser:4101"), "{dialplan}");

    hd::login_ok(&ast, "1000", "4101", "1234");
    hd::wait_hint_in(&ast, "4101", CTX, "Idle");
    let seen = wait_notify(&watcher, seen, OPEN);

    // dialplan reload: the module's hints stay, with their watcher; the next
    // change (a call to 4101's phone) is notified.
    let out = ast.cli("dialplan reload");
    assert!(out.contains("Dialplan reloaded"), "{out}");
    let line = hint_line(&ast, "4101");
    assert!(
        line.contains("DeviceUser:4101") && line.contains("State:Idle"),
        "{line}"
    );
    assert!(line.contains("Watchers  1"), "the watcher was lost: {line}");
    assert!(
        ast.cli("dialplan show ext-local-test")
            .contains("DeviceUser:4101"),
        "the hints are gone after dialplan reload"
    );
    // Something else than a login: 1000 calls the emergency number.
    let mut call = Sipp::call(&ast, "1000", "112");
    let seen = wait_notify(&watcher, seen, "on-the-phone");
    call.finish(hd::LONG).expect("the emergency call ends");
    let seen = wait_notify(&watcher, seen, "<note>Ready</note>");

    // module reload, still logged in: the binding, the hint and its watcher stay.
    let out = ast.cli("module reload res_deviceuser.so");
    assert!(out.contains("reloaded successfully"), "{out}");
    let line = hint_line(&ast, "4101");
    assert!(
        line.contains("Watchers  1") && line.contains("State:Idle"),
        "{line}"
    );
    assert_eq!(hd::user_on(&ast, "1000").as_deref(), Some("4101"));
    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    let seen = wait_notify(&watcher, seen, CLOSED);
    hd::wait_hint_in(&ast, "4101", CTX, "Unavailable");
    hd::login_ok(&ast, "1000", "4101", "1234");
    wait_notify(&watcher, seen, OPEN);
    hd::wait_hint_in(&ast, "4101", CTX, "Idle");
    hd::assert_alive(&ast);
}

/// The module's hints in `ctx`, from `dialplan show` (extension → device list).
fn module_hints(ast: &Asterisk, ctx: &str) -> Vec<(String, String)> {
    let out = ast.cli(&format!("dialplan show {ctx}"));
    let mut hints: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| {
            let (exten, rest) = l.trim().strip_prefix('\'')?.split_once('\'')?;
            let device = rest.split_whitespace().nth(2)?;
            device
                .starts_with("DeviceUser:")
                .then(|| (exten.to_string(), device.to_string()))
        })
        .collect();
    hints.sort();
    hints
}

#[test]
fn module_reload_adds_and_removes_the_hints_that_changed() {
    let ast = start();
    let own = |u: &str| (u.to_string(), format!("DeviceUser:{u}"));
    let pattern = ("_XXXX".to_string(), "DeviceUser:${EXTEN}".to_string());
    assert_eq!(module_hints(&ast, CTX), [own("2010"), pattern.clone()]);
    // A login gives the user a hint of their own, which stays after the logout.
    let mut ami = ast.ami();
    ami.login_ok("4102", "1001");
    hd::wait_hint_in(&ast, "4102", CTX, "Unavailable");
    ami.logout_ok("4102");
    assert!(ast.commit_work_applied(hd::LONG));
    // Asked for a number that is no user, Asterisk makes a hint from the pattern too.
    let r = ami.action(&[
        ("Action", "ExtensionState"),
        ("Exten", "4199"),
        ("Context", CTX),
    ]);
    assert_eq!(r.get("Hint"), Some("DeviceUser:4199"), "{r:?}");
    let before = module_hints(&ast, CTX);
    assert_eq!(
        before,
        [own("2010"), own("4102"), own("4199"), pattern.clone()]
    );
    // Asterisk logs every extension it adds at debug level 1.
    ast.cli("core set debug 1");
    let added_since = |mark: usize| -> Vec<String> {
        (ast.log_since(mark).lines())
            .filter(|l| l.contains("Added extension '") && l.contains(&format!(" to {CTX} ")))
            .map(|l| l.split('\'').nth(1).unwrap_or_default().to_string())
            .collect()
    };

    // An unchanged configuration adds nothing and removes the hint of the number that is no
    // user.
    let mark = ast.log_mark();
    let out = ast.cli("module reload res_deviceuser.so");
    assert!(out.contains("reloaded successfully"), "{out}");
    assert_eq!(added_since(mark), Vec::<String>::new());
    assert_eq!(
        module_hints(&ast, CTX),
        [own("2010"), own("4102"), pattern.clone()]
    );

    // The config loses 4102 and gains alice, whose id no pattern matches: only alice's hint
    // is added, 4102's removed.
    let conf = hd::deviceuser_conf_with_general(&format!("hint_context = {CTX}")).replacen(
        "[4102]\n",
        "[alice]\n",
        1,
    );
    ast.write_conf("res_deviceuser.conf", &conf);
    let mark = ast.log_mark();
    let out = ast.cli("module reload res_deviceuser.so");
    assert!(out.contains("reloaded successfully"), "{out}");
    assert_eq!(added_since(mark), ["alice"]);
    ast.cli("core set debug 0");
    let expected = [own("2010"), pattern.clone(), own("alice")];
    assert_eq!(module_hints(&ast, CTX), expected);
    assert!(hint_line(&ast, "alice").contains("State:Unavailable"));
    assert!(!ast
        .cli("core show hint 4102")
        .contains(&format!("4102@{CTX}")));

    // Another hint context: every hint moves there.
    let other = "moved-hints";
    ast.write_conf(
        "res_deviceuser.conf",
        &conf.replace(
            &format!("hint_context = {CTX}"),
            &format!("hint_context = {other}"),
        ),
    );
    let out = ast.cli("module reload res_deviceuser.so");
    assert!(out.contains("reloaded successfully"), "{out}");
    assert_eq!(module_hints(&ast, CTX), Vec::new());
    assert_eq!(module_hints(&ast, other), expected);
    hd::assert_alive(&ast);
}

/// The pattern hint the README suggests for large user counts (Asterisk's behaviour, checked
/// here because the README relies on it): Asterisk makes a hint for one user
/// (`DeviceUser:<user>`) when it is first asked for, and that hint follows the user.
#[test]
fn a_pattern_hint_becomes_a_hint_per_user_on_demand() {
    const PAT: &str = "pattern-hints";
    let ast = hd::builder("hd-pattern-hints")
        .conf(
            "extensions.conf",
            &format!(
                "{}\n[{PAT}]\nexten => _41XX,hint,DeviceUser:${{EXTEN}}\n",
                hd::test_dialplan()
            ),
        )
        .start();
    assert!(!ast
        .cli("core show hint 4101")
        .contains(&format!("4101@{PAT}")));
    let mut ami = ast.ami();
    let r = ami.action(&[
        ("Action", "ExtensionState"),
        ("Exten", "4101"),
        ("Context", PAT),
    ]);
    assert_eq!(r.get("Hint"), Some("DeviceUser:4101"), "{r:?}");
    assert_eq!(r.get("StatusText"), Some("Unavailable"), "{r:?}");
    let line = ast.cli("core show hint 4101");
    assert!(
        line.contains(&format!("4101@{PAT}")) && line.contains("DeviceUser:4101"),
        "{line}"
    );

    Sipp::register(&ast, "1000").expect("REGISTER 1000");
    hd::login_ok(&ast, "1000", "4101", "1234");
    hd::wait_hint_in(&ast, "4101", PAT, "Idle");
    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    hd::wait_hint_in(&ast, "4101", PAT, "Unavailable");
    hd::assert_alive(&ast);
}

/// 50,000 more users in `hint_context`: `module reload` registers a pattern for their id
/// length, not a hint each (Asterisk scans all its hints for every one it adds: a hint per
/// user took 22 s for 10,000), answers the CLI throughout, and a user gets a hint the moment
/// someone asks for it.
#[test]
fn many_users_in_hint_context_register_only_the_hints_in_use() {
    const EXTRA: usize = 50_000;
    let ast = start();
    let base = hd::deviceuser_conf_with_general(&format!("hint_context = {CTX}"));
    let mut many = base.clone();
    for n in 1..=EXTRA {
        many.push_str(&format!(
            "\n[{}]\ntype = user\npassword = 1234\n",
            100_000 + n
        ));
    }
    ast.write_conf("res_deviceuser.conf", &many);
    let done = std::sync::atomic::AtomicBool::new(false);
    let (reload, longest_cli) = std::thread::scope(|s| {
        let probe = s.spawn(|| {
            let mut longest = std::time::Duration::ZERO;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = std::time::Instant::now();
                let out = ast.cli("core show hints");
                assert!(out.contains("hints registered"), "{out}");
                longest = longest.max(t.elapsed());
            }
            longest
        });
        let t = std::time::Instant::now();
        let out = ast.cli("module reload res_deviceuser.so");
        let reload = t.elapsed();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(out.contains("reloaded successfully"), "{out}");
        (reload, probe.join().expect("the CLI probe"))
    });
    eprintln!("module reload adding {EXTRA} users: {reload:?}; longest CLI answer {longest_cli:?}");
    assert!(
        reload < common::scaled(std::time::Duration::from_secs(10)),
        "module reload adding {EXTRA} users took {reload:?}"
    );
    assert!(
        longest_cli < common::scaled(std::time::Duration::from_secs(2)),
        "the CLI waited {longest_cli:?} during the reload"
    );
    let own = |u: &str| (u.to_string(), format!("DeviceUser:{u}"));
    let pattern = |p: &str| (p.to_string(), "DeviceUser:${EXTEN}".to_string());
    assert_eq!(
        module_hints(&ast, CTX),
        [own("2010"), pattern("_XXXX"), pattern("_XXXXXX")]
    );
    let r = ast.ami().action(&[
        ("Action", "ExtensionState"),
        ("Exten", "150000"),
        ("Context", CTX),
    ]);
    assert_eq!(r.get("Hint"), Some("DeviceUser:150000"), "{r:?}");
    assert!(hint_line(&ast, "150000").contains("State:Unavailable"));

    ast.write_conf("res_deviceuser.conf", &base);
    let out = ast.cli("module reload res_deviceuser.so");
    assert!(out.contains("reloaded successfully"), "{out}");
    assert_eq!(module_hints(&ast, CTX), [own("2010"), pattern("_XXXX")]);
    hd::assert_alive(&ast);
}
