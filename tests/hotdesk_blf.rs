//! BLF: a phone subscribed (SUBSCRIBE/NOTIFY, pidf) to a user's hint
//! `DeviceUser:<user>` sees the user log in, be on the phone, and log out, and
//! `core show hint` agrees.
mod common;
mod hotdesk_common;

use common::sip::Sipp;
use common::Asterisk;
use hotdesk_common::{self as hd, LONG};

/// What a pidf NOTIFY body says.
#[derive(Debug, PartialEq, Clone, Copy)]
enum Presence {
    /// closed: logged out (Unavailable)
    Closed,
    /// open, no activity: logged in, idle
    Ready,
    /// open, on-the-phone
    OnThePhone,
}

fn presence(body: &str) -> Option<Presence> {
    if body.contains("<basic>closed</basic>") {
        Some(Presence::Closed)
    } else if body.contains("<basic>open</basic>") && body.contains("on-the-phone") {
        Some(Presence::OnThePhone)
    } else if body.contains("<basic>open</basic>") {
        Some(Presence::Ready)
    } else {
        None
    }
}

/// Waits for a NOTIFY after the first `seen` ones that says `want`; returns the
/// number of NOTIFYs received up to and including it.
fn wait_presence(watcher: &Sipp, seen: usize, want: Presence) -> usize {
    hd::poll(|| {
        let bodies = watcher.notify_bodies();
        bodies
            .iter()
            .enumerate()
            .skip(seen)
            .find(|(_, b)| presence(b) == Some(want))
            .map(|(i, _)| i + 1)
    })
    .unwrap_or_else(|| {
        panic!(
            "no NOTIFY saying {want:?} after #{seen}; got {:?}\n{}",
            watcher
                .notify_bodies()
                .iter()
                .map(|b| presence(b))
                .collect::<Vec<_>>(),
            watcher.report()
        )
    })
}

/// The presence the last NOTIFY announced.
fn last_presence(watcher: &Sipp) -> Option<Presence> {
    watcher.notify_bodies().last().and_then(|b| presence(b))
}

fn hangup_calls_of(ast: &Asterisk, endpoint: &str) {
    let r = ast.ami().action(&[
        ("Action", "Hangup"),
        ("Channel", &format!("/^PJSIP\\/{endpoint}-/")),
    ]);
    assert!(r.is_success(), "{r}");
}

#[test]
fn watcher_sees_login_call_and_logout() {
    let ast = hd::start("hd-blf");
    let uas = Sipp::uas(&ast, "1000");
    let watcher = Sipp::watcher(&ast, "1002", "4101");

    // Logged out: closed.
    let seen = wait_presence(&watcher, 0, Presence::Closed);
    assert!(watcher.notify_bodies()[0].contains("pidf"));
    assert_eq!(hd::hint_state(&ast, "4101").as_deref(), Some("Unavailable"));

    // Login: open. (The login call itself keeps 1000 busy for a moment.)
    hd::login_ok(&ast, "1000", "4101", "1234");
    let seen = wait_presence(&watcher, seen, Presence::Ready);
    hd::wait_hint(&ast, "4101", "Idle");
    assert_eq!(last_presence(&watcher), Some(Presence::Ready));

    // The bound device in a call: on the phone.
    let mut caller = Sipp::call(&ast, "1099", "4101");
    assert!(
        uas.wait_message("INVITE sip:1000@", LONG),
        "{}",
        uas.report()
    );
    let seen = wait_presence(&watcher, seen, Presence::OnThePhone);
    hd::wait_hint(&ast, "4101", "InUse");
    hangup_calls_of(&ast, "1099");
    caller.finish(LONG).unwrap();
    let seen = wait_presence(&watcher, seen, Presence::Ready);
    hd::wait_hint(&ast, "4101", "Idle");

    // Logout: closed again.
    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    wait_presence(&watcher, seen, Presence::Closed);
    hd::wait_hint(&ast, "4101", "Unavailable");
    assert!(hd::wait(
        || last_presence(&watcher) == Some(Presence::Closed)
    ));
    // No NOTIFY of the watcher was ever about someone else: all bodies name 4101.
    for b in watcher.notify_bodies() {
        assert!(b.contains("4101"), "{b}");
    }
}

#[test]
fn a_user_on_two_devices_stays_open_until_the_last_logout() {
    let ast = hd::start("hd-blf-two");
    let _uas0 = Sipp::uas(&ast, "1000");
    let _uas1 = Sipp::uas(&ast, "1001");
    let watcher = Sipp::watcher(&ast, "1002", "4101");
    let seen = wait_presence(&watcher, 0, Presence::Closed);

    hd::login_ok(&ast, "1000", "4101", "1234");
    hd::login_ok(&ast, "1001", "4101", "1234");
    let seen = wait_presence(&watcher, seen, Presence::Ready);
    hd::wait_hint(&ast, "4101", "Idle");

    // Logged out of one device: still open (idle on the other).
    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    hd::wait_hint(&ast, "4101", "Idle");
    assert!(hd::wait(|| last_presence(&watcher) == Some(Presence::Ready)));
    let since = watcher.notify_bodies().len();
    assert!(
        watcher.notify_bodies()[seen..since]
            .iter()
            .all(|b| presence(b) != Some(Presence::Closed)),
        "closed while still logged in on 1001"
    );

    assert_eq!(hd::logout(&ast, "1001"), "SUCCESS");
    wait_presence(&watcher, since, Presence::Closed);
    hd::wait_hint(&ast, "4101", "Unavailable");
}

/// `Device states followed: N (M of them not published yet)` of `deviceuser show stats`.
fn followed(ast: &Asterisk) -> (usize, usize) {
    let line = ast.stats_counter("Device states followed");
    let (n, rest) = line.split_once(" (").expect("N (M ...)");
    let m = rest.split_whitespace().next().expect("M");
    (n.parse().expect("N"), m.parse().expect("M"))
}

/// The module follows the state of bound devices only, including a device that never
/// published a state (so had no state topic yet: the login has Asterisk make it): its first
/// change and every later one reach the user's hint, without a subscription to all device
/// state traffic, and a freed device is no longer followed.
#[test]
fn a_bound_device_is_followed_from_its_first_state_change_on() {
    let conf = format!(
        "{}\n[fresh]\ntype = device\ndial = Custom:fresh-dev\n",
        hd::sample_deviceuser_conf()
    );
    let ast = hd::builder("hd-fresh")
        .conf("res_deviceuser.conf", &conf)
        .start();
    let (followed0, pending0) = followed(&ast);
    ast.cli("deviceuser login 4101 fresh");
    assert_eq!(
        followed(&ast),
        (followed0 + 1, pending0),
        "the bound device is followed through its own topic before its first state"
    );
    assert_eq!(
        ast.stats_counter("All device state traffic followed (for devices not published yet)"),
        "no",
        "a device that never published needs no subscription to all device state traffic"
    );
    ast.cli("devstate change Custom:fresh-dev INUSE");
    hd::wait_hint(&ast, "4101", "InUse");
    ast.cli("devstate change Custom:fresh-dev NOT_INUSE");
    hd::wait_hint(&ast, "4101", "Idle");
    ast.cli("devstate change Custom:fresh-dev RINGING");
    hd::wait_hint(&ast, "4101", "Ringing");
    ast.cli("deviceuser logout device fresh");
    hd::wait_hint(&ast, "4101", "Unavailable");
    assert_eq!(
        followed(&ast),
        (followed0, pending0),
        "a freed device is not followed"
    );
}

/// Back-to-back commits leave their AstDB writes, their published states and the release of
/// the devices they freed to the commit thread; a login follows its device before it is
/// acknowledged. A device that changes state right after its login, before the burst's work
/// is applied, shows in its user's hint; every bound device is followed and each later change
/// reaches the hint; a burst of logouts, or of logins each undone at once, leaves none
/// followed once applied; a logout right before the same device's next login leaves it
/// followed.
#[test]
fn devices_bound_in_a_burst_are_followed_as_the_table_says() {
    const N: usize = 100;
    let mut conf = hd::deviceuser_conf_with_general("hint_context = burst-hints");
    for n in 1..=N {
        conf.push_str(&format!(
            "\n[b{n}]\ntype = device\ndial = Custom:burst-{n}\n\n[{}]\ntype = user\npassword = 1234\n",
            7000 + n
        ));
    }
    let ast = hd::builder("hd-burst-follow")
        .conf("res_deviceuser.conf", &conf)
        .start();
    let mut ami = ast.ami();
    let set_state = |ami: &mut common::Ami, n: usize, state: &str| {
        ami.setvar_ok(&format!("DEVICE_STATE(Custom:burst-{n})"), state);
    };
    // Every device has a state topic (published once), so it is followed through a forward.
    for n in 1..=N {
        set_state(&mut ami, n, "NOT_INUSE");
    }
    let followed0 = followed(&ast);
    // No bound device waits for its first state, so no subscription to all device-state
    // traffic exists: only bound devices' changes reach the module.
    assert_eq!(followed0.1, 0, "devices waiting for their first state");
    let drained = || ast.commit_work_applied(LONG);
    // How many of the burst users' hints show `state`.
    let hints_in = |state: &str| {
        ast.cli("core show hints")
            .lines()
            .filter(|l| {
                let exten = l.trim_start().split('@').next().unwrap_or("");
                exten
                    .parse()
                    .is_ok_and(|u: usize| u > 7000 && u <= 7000 + N)
                    && l.contains("@burst-hints")
                    && l.contains(&format!("State:{state} "))
            })
            .count()
    };
    let wait_hints = |state: &str| {
        let ok = common::wait_until(LONG, || hints_in(state) == N);
        assert!(ok, "{} of {N} hints {state}", hints_in(state));
    };

    for n in 1..=N {
        ami.login_ok(&(7000 + n).to_string(), &format!("b{n}"));
        set_state(&mut ami, n, "RINGING");
    }
    assert!(drained(), "the burst's work is applied");
    wait_hints("Ringing");
    assert_eq!(
        followed(&ast),
        (followed0.0 + N, followed0.1),
        "every device bound in the burst is followed"
    );
    let received = || ast.stats_count("Device state messages received");
    let before = received();
    for n in 1..=N {
        set_state(&mut ami, n, "INUSE");
    }
    wait_hints("InUse");
    assert!(
        received() >= before + N as u64,
        "each change of a bound device reaches the module: {before} → {}",
        received()
    );

    for n in 1..=N {
        ami.logout_ok(&(7000 + n).to_string());
    }
    assert!(drained(), "the logouts' work is applied");
    wait_hints("Unavailable");
    assert_eq!(followed(&ast), followed0, "no freed device is followed");
    assert_eq!(
        ast.stats_counter("All device state traffic followed (for devices not published yet)"),
        "no",
        "every bound device is followed through its own topic"
    );
    let before = received();
    for n in 1..=N {
        set_state(&mut ami, n, "BUSY");
    }
    std::thread::sleep(common::scaled(std::time::Duration::from_secs(1)));
    assert_eq!(
        received(),
        before,
        "no change of a free device reaches the module"
    );

    for n in 1..=N {
        let u = (7000 + n).to_string();
        ami.login_ok(&u, &format!("b{n}"));
        ami.logout_ok(&u);
    }
    assert!(drained(), "the login/logout burst's work is applied");
    assert_eq!(
        followed(&ast),
        followed0,
        "a device logged in and out again is not followed"
    );
    wait_hints("Unavailable");

    // A logout right before the same device's next login: the release the logout queued
    // finds the device bound again and keeps following it.
    for n in 1..=N {
        ami.login_ok(&(7000 + n).to_string(), &format!("b{n}"));
    }
    for n in 1..=N {
        let u = (7000 + n).to_string();
        ami.logout_ok(&u);
        ami.login_ok(&u, &format!("b{n}"));
    }
    assert!(drained(), "the logout/login burst's work is applied");
    assert_eq!(
        followed(&ast),
        (followed0.0 + N, followed0.1),
        "a device logged out and in again is followed"
    );
    for n in 1..=N {
        set_state(&mut ami, n, "INUSE");
    }
    wait_hints("InUse");
}
