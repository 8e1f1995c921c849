//! The commit pipeline on a real Asterisk: with `commit_log = yes` a sink is added that logs
//! every commit with its sequence number and origin. Commits from every origin — a phone
//! (`UserLogin` over SIP), the dialplan (`DEVICEUSER(user,dnd)`), AMI, the CLI, the policy
//! timer and a config reload — reach it, once each, in the order they were made.
mod common;
mod hotdesk_common;

use std::time::Duration;

use common::Asterisk;
use hotdesk_common as hd;

/// `(seq, origin, what, user, device-or-dnd)` of the commit lines logged after `mark`.
fn commits(ast: &Asterisk, mark: usize) -> Vec<(u64, String, String, String, String)> {
    ast.log_since(mark)
        .lines()
        .filter(|l| l.contains("NOTICE") && l.contains(" commit "))
        .map(|l| {
            let rest = &l[l.find(" commit ").unwrap() + 8..];
            let mut words = rest.split_whitespace();
            let seq: u64 = words.next().unwrap().parse().unwrap();
            let field = |w: Option<&str>, key: &str| {
                let w = w.unwrap_or_else(|| panic!("no {key} in {l}"));
                w.strip_prefix(&format!("{key}="))
                    .unwrap_or_else(|| panic!("{w} is not {key}= in {l}"))
                    .to_string()
            };
            let origin = field(words.next(), "origin");
            let what = words.next().unwrap().to_string();
            let user = field(words.next(), "user");
            let last = words.next().unwrap().to_string();
            (seq, origin, what, user, last)
        })
        .collect()
}

#[test]
fn every_origins_commits_reach_an_added_sink_in_order() {
    let conf = hd::deviceuser_conf_with_general("commit_log = yes").replace(
        "fullname = Operator 4103\n",
        "fullname = Operator 4103\nmax_login_time = 2\n",
    );
    assert!(
        conf.contains("max_login_time = 2"),
        "the sample has no user 4103"
    );
    let ast = hd::builder("pipeline-origins")
        .conf("res_deviceuser.conf", &conf)
        .start();
    let mark = ast.log_mark();
    let mut ami = ast.ami();

    hd::login_ok(&ast, "1000", "4101", "1234");
    ami.login_ok("4102", "1001");
    assert!(ast
        .cli("deviceuser logout device 1001")
        .contains("1 binding(s) removed"));
    ami.setvar_ok("DEVICEUSER(4101,dnd)", "1");
    ami.login_ok("4103", "1002");
    assert!(
        hd::wait(|| hd::user_on(&ast, "1002").is_none()),
        "max_login_time did not log 4103 out"
    );
    // A reload that removes device 1000 logs its user out.
    let without_1000 = {
        let start = conf.find("[1000]").expect("device 1000 in the sample");
        let end = start + conf[start + 1..].find("\n[").expect("a section after 1000") + 1;
        format!("{}{}", &conf[..start], &conf[end..])
    };
    ast.write_conf("res_deviceuser.conf", &without_1000);
    ast.cli("module reload res_deviceuser.so");
    assert!(
        hd::wait(|| commits(&ast, mark).len() >= 7),
        "{}",
        ast.log_since(mark)
    );
    std::thread::sleep(Duration::from_millis(300));

    let got = commits(&ast, mark);
    let seqs: Vec<u64> = got.iter().map(|c| c.0).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence numbers not consecutive: {seqs:?}"
    );
    let got: Vec<(&str, &str, &str, &str)> = got
        .iter()
        .map(|(_, o, w, u, d)| (o.as_str(), w.as_str(), u.as_str(), d.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("phone", "login", "4101", "device=1000"),
            ("ami", "login", "4102", "device=1001"),
            ("cli", "logout", "4102", "device=1001"),
            ("dialplan", "dnd", "4101", "dnd=on"),
            ("ami", "login", "4103", "device=1002"),
            ("policy", "logout", "4103", "device=1002"),
            ("reload", "logout", "4101", "device=1000"),
        ],
        "{}",
        ast.log_since(mark)
    );
}

#[test]
fn without_the_option_the_sink_logs_nothing() {
    let ast = hd::start("pipeline-off");
    let mark = ast.log_mark();
    let mut ami = ast.ami();
    ami.login_ok("4102", "1001");
    ami.logout_ok("4102");
    assert!(hd::user_on(&ast, "1001").is_none());
    assert!(commits(&ast, mark).is_empty(), "{}", ast.log_since(mark));
}
