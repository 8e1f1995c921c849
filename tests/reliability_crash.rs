//! A kill -9 right after an acknowledged change loses nothing: the journal next to AstDB
//! closes the second in which AstDB has not committed yet.
mod common;

use common::Asterisk;

fn bound(ast: &Asterisk, device: &str) -> Option<String> {
    ast.cli(&format!("deviceuser show bindings device {device}"))
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(device))
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
}

#[test]
fn acknowledged_changes_survive_an_immediate_kill() {
    let mut ast = Asterisk::start("crash-journal");
    for round in 0..3 {
        let (a, b) = if round % 2 == 0 {
            ("4101", "4102")
        } else {
            ("4103", "4104")
        };
        {
            let mut ami = ast.ami();
            for (user, device) in [(a, "1000"), (b, "1001"), (a, "1002")] {
                let r = ami.action(&[
                    ("Action", "DeviceUserLogin"),
                    ("User", user),
                    ("Device", device),
                ]);
                assert!(r.is_success(), "{r}");
            }
            let r = ami.action(&[("Action", "DeviceUserLogout"), ("Device", "1001")]);
            assert!(r.is_success(), "{r}");
            let on = if round % 2 == 0 { "on" } else { "off" };
            let r = ami.action(&[("Action", "DeviceUserDND"), ("User", "4105"), ("DND", on)]);
            assert!(r.is_success(), "{r}");
            // No pause: the kill follows the last acknowledgement at once.
        }
        ast.kill9_and_restart();
        assert_eq!(bound(&ast, "1000").as_deref(), Some(a), "round {round}");
        assert_eq!(bound(&ast, "1001"), None, "round {round}");
        assert_eq!(bound(&ast, "1002").as_deref(), Some(a), "round {round}");
        let dnd = ast.ami().getvar("DEVICEUSER(4105,dnd)", None);
        assert_eq!(
            dnd.as_deref(),
            Some(if round % 2 == 0 { "1" } else { "0" }),
            "round {round}"
        );
        // What the journal restored is in AstDB too (the journal may be emptied later).
        let db = ast.cli("database show deviceuser");
        let in_db = db.lines().any(|l| {
            l.starts_with("/deviceuser/binding/1000 ")
                && l.split(':')
                    .nth(1)
                    .is_some_and(|v| v.trim().starts_with(&format!("{a};")))
        });
        assert!(in_db, "{a} on 1000 not in AstDB:\n{db}");
    }
    let log = ast.log();
    assert!(
        !log.contains("journal write failed"),
        "journal errors in the log"
    );
}
