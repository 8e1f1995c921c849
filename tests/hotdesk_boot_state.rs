//! A user's hint after Asterisk starts: users bound at start (fixed devices, logins restored
//! from AstDB) whose devices are `Local/<exten>@<context>` channels (whose state depends on
//! the dialplan, which is loaded after the module) or PJSIP endpoints (registered or not) show
//! the same state in `core show hint`, in `DEVICE_STATE(DeviceUser:<user>)` and at a phone
//! subscribed to the hint, after a fresh boot, a clean restart, a `kill -9` and a
//! `dialplan reload` that changes what the Local devices reach.
mod common;
mod hotdesk_common;

use common::sip::Sipp;
use common::Asterisk;
use hotdesk_common as hd;

const CTX: &str = "boot-hints";

/// Local devices reach `[boot-phones]`; each user owns one device.
fn deviceuser_conf() -> String {
    format!(
        "[general]
hint_context = {CTX}

[L7001]
type = device
mode = fixed
dial = Local/7001@boot-phones
default_user = 7001

[L7002]
type = device
mode = adhoc
dial = Local/7002@boot-phones

[1000]
type = device
mode = fixed
dial = PJSIP/1000
default_user = 4101

[2010]
type = device
mode = fixed
dial = PJSIP/2010
default_user = 2010

[7001]
type = user
password = 1111

[7002]
type = user
password = 2222

[4101]
type = user
password = 1234

[2010]
type = user
password = 2468
"
    )
}

const PHONES: &str = "
[boot-phones]
exten => 7001,1,Answer()
 same => n,Wait(60)
exten => 7002,1,Answer()
 same => n,Wait(60)
";

fn start() -> Asterisk {
    let pjsip = hd::sample("pjsip.conf").replace(
        "subscribe_context=deviceuser-hints",
        &format!("subscribe_context={CTX}"),
    );
    assert!(pjsip.contains(CTX));
    hd::builder("hd-boot")
        .conf(
            "extensions.conf",
            &format!("{}\n{PHONES}", hd::test_dialplan()),
        )
        .conf("pjsip.conf", &pjsip)
        .conf("res_deviceuser.conf", &deviceuser_conf())
        .start()
}

/// The `core show hint` state a `DEVICE_STATE()` value shows as.
fn hint_text(device_state: &str) -> &'static str {
    match device_state {
        "NOT_INUSE" | "UNKNOWN" => "Idle",
        "INUSE" | "BUSY" => {
            if device_state == "BUSY" {
                "Busy"
            } else {
                "InUse"
            }
        }
        "RINGING" => "Ringing",
        "ONHOLD" => "Hold",
        _ => "Unavailable",
    }
}

/// `core show hint` state of `user` in [`CTX`] and `DEVICE_STATE(DeviceUser:<user>)`.
fn states(ast: &Asterisk, user: &str) -> (String, String) {
    let hint = hd::hint_state_in(ast, user, CTX).unwrap_or_default();
    let state = hd::getvar(ast, &format!("DEVICE_STATE(DeviceUser:{user})"));
    (hint, state)
}

/// What a pidf NOTIFY body says: open or closed.
fn presence(body: &str) -> &'static str {
    if body.contains("<basic>open</basic>") {
        "open"
    } else if body.contains("<basic>closed</basic>") {
        "closed"
    } else {
        "?"
    }
}

/// Waits until every user's hint shows what `DEVICE_STATE()` says and that is `want`, and the
/// watcher's last NOTIFY (for 7001) says `presence_7001`; panics with what was seen.
fn assert_agree(
    ast: &Asterisk,
    watcher: &Sipp,
    when: &str,
    want: &[(&str, &str)],
    presence_7001: &str,
) {
    let ok = hd::wait(|| {
        want.iter().all(|(user, state)| {
            let (hint, ds) = states(ast, user);
            ds == *state && hint == hint_text(&ds)
        }) && watcher.notify_bodies().last().map(|b| presence(b)) == Some(presence_7001)
    });
    if !ok {
        let seen: Vec<_> = want.iter().map(|(u, _)| (*u, states(ast, u))).collect();
        panic!(
            "{when}: hint and DEVICE_STATE disagree or are not {want:?}: {seen:?}; NOTIFYs for 7001: {:?}\n{}\nPJSIP/1000: {}\n{}",
            watcher.notify_bodies().iter().map(|b| presence(b)).collect::<Vec<_>>(),
            ast.cli("core show hints"),
            hd::getvar(ast, "DEVICE_STATE(PJSIP/1000)"),
            ast.cli("pjsip show contacts")
        );
    }
}

const BOUND: &[(&str, &str)] = &[
    ("7001", "NOT_INUSE"),
    ("7002", "NOT_INUSE"),
    ("4101", "NOT_INUSE"),
    ("2010", "UNAVAILABLE"),
];

#[test]
fn bound_users_hints_agree_with_their_state_after_every_start_and_dialplan_reload() {
    let mut ast = start();
    // 1000 registered (fixed, 4101), 2010 not registered (fixed, 2010); 7001 on a fixed Local
    // device, 7002 logged in on an adhoc one.
    Sipp::register(&ast, "1000").expect("REGISTER 1000");
    ast.ami().login_ok("7002", "L7002");
    let watcher = Sipp::watcher(&ast, "1002", "7001");
    assert_agree(&ast, &watcher, "fresh boot", BOUND, "open");
    // Asterisk commits AstDB at most once a second: the registration and the login are on
    // disk before the kill.
    std::thread::sleep(std::time::Duration::from_secs(2));

    ast.kill9_and_restart();
    assert_agree(&ast, &watcher, "after kill -9", BOUND, "open");

    ast.restart();
    assert_agree(&ast, &watcher, "after a clean restart", BOUND, "open");

    // The Local devices' extensions go away: their users' states follow the dialplan.
    let without = format!(
        "{}\n[boot-phones]\nexten => 9999,1,Hangup()\n",
        hd::test_dialplan()
    );
    ast.write_conf("extensions.conf", &without);
    let out = ast.cli("dialplan reload");
    assert!(out.contains("Dialplan reloaded"), "{out}");
    let gone = [
        ("7001", "INVALID"),
        ("7002", "INVALID"),
        ("4101", "NOT_INUSE"),
    ];
    assert_agree(
        &ast,
        &watcher,
        "after a dialplan reload without the extensions",
        &gone,
        "closed",
    );

    ast.write_conf(
        "extensions.conf",
        &format!("{}\n{PHONES}", hd::test_dialplan()),
    );
    let out = ast.cli("dialplan reload");
    assert!(out.contains("Dialplan reloaded"), "{out}");
    assert_agree(
        &ast,
        &watcher,
        "after a dialplan reload with them back",
        BOUND,
        "open",
    );
    hd::assert_alive(&ast);
}
