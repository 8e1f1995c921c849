//! Migration from FreePBX: an AstDB laid out as FreePBX's own code writes it is read from the
//! running Asterisk, the printed output is installed as res_deviceuser.conf as it is and
//! loads, and `apply` restores FreePBX's logins.
mod common;

use std::time::Duration;

use common::Asterisk;

/// `inject` writes a value AMI cannot carry (it has line breaks) into AstDB: the
/// configuration-injection attempt of a hostile `default_user`. `mark<N>` logs a line, to
/// know that the log lines before it are written.
const SETUP_DIALPLAN: &str = "\
[freepbx-setup]
exten => inject,1,Set(DB(DEVICE/2012/default_user)=${URIDECODE(2001%0A%5B6666%5D%0Atype%20%3D%20user%0Apassword%20%3D%200000)})
 same => n,Hangup()
exten => _markX,1,Log(NOTICE,logmark ${EXTEN})
";

/// FreePBX's keys: users as `addUser` writes them (deeper keys and other families included),
/// devices as `addDevice` writes them (`default_user` a user or `none`, `emergency_cid`),
/// logins as its login AGI leaves them, and user 2001 deleted by `delUser`, which leaves
/// devices 1001 and 2011 naming it.
fn freepbx_astdb() -> Vec<(&'static str, String, String)> {
    let mut keys = Vec::new();
    let mut put = |family: &'static str, key: &str, val: &str| {
        keys.push((family, key.to_string(), val.to_string()));
    };
    for (user, pin, name, devices) in [
        ("2010", "2468", "Reception", "2010"),
        ("4101", "1234", "Operator 4101", "1000"),
        ("4102", "2345", "Иван Петров", "1001&1005"),
        ("4103", "3456", "Smith; Front desk", "1003"),
        ("4105", "", "Мария", "4105"),
    ] {
        put("AMPUSER", &format!("{user}/password"), pin);
        put("AMPUSER", &format!("{user}/cidname"), name);
        put("AMPUSER", &format!("{user}/cidnum"), user);
        put("AMPUSER", &format!("{user}/device"), devices);
        put("AMPUSER", &format!("{user}/ringtimer"), "0");
        put("AMPUSER", &format!("{user}/voicemail"), "default");
        put(
            "AMPUSER",
            &format!("{user}/recording/in/external"),
            "dontcare",
        );
        put("AMPUSER", &format!("{user}/followme/grplist"), user);
        put("CW", user, "ENABLED");
    }
    put("AMPUSER", "4102/language", "ru");
    put("CF", "4101", "5551234");
    put("CW", "2001", "ENABLED");
    for (device, ty, dial, user, default_user) in [
        ("1000", "adhoc", "PJSIP/1000", "4101", "none"),
        ("1001", "adhoc", "PJSIP/1001", "4102", "2001"),
        ("1002", "adhoc", "PJSIP/1002", "none", "none"),
        ("1003", "adhoc", "SIP/1003", "4103", "none"),
        ("1004", "adhoc", "IAX2/1004", "none", "none"),
        ("1005", "", "", "4102", "none"),
        ("1006", "hotdesk", "PJSIP/1006", "none", "none"),
        ("1007", "adhoc", "PJSIP/10 07", "none", "none"),
        ("2010", "fixed", "PJSIP/2010", "2010", "2010"),
        ("2011", "fixed", "PJSIP/2011", "2001", "2001"),
        ("2012", "fixed", "PJSIP/2012", "none", "none"),
    ] {
        put("DEVICE", &format!("{device}/type"), ty);
        put("DEVICE", &format!("{device}/dial"), dial);
        put("DEVICE", &format!("{device}/user"), user);
        put("DEVICE", &format!("{device}/default_user"), default_user);
    }
    put("DEVICE", "1000/emergency_cid", "\"Main office\" <5550100>");
    keys
}

/// Every login FreePBX had between users and devices that exist, sorted.
const FREEPBX_LOGINS: [(&str, &str); 5] = [
    ("2010", "2010"),
    ("4101", "1000"),
    ("4102", "1001"),
    ("4102", "1005"),
    ("4103", "1003"),
];

fn bindings(ast: &Asterisk) -> Vec<(String, String)> {
    let out = ast.cli("deviceuser show bindings");
    let mut v: Vec<(String, String)> = out
        .lines()
        .skip(1)
        .filter(|l| !l.contains("found"))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect();
    v.sort();
    v
}

/// `module reload` (`n` tells the calls apart): the CLI's answer, and every log line the
/// reload wrote.
fn reload(ast: &Asterisk, n: u32) -> (String, String) {
    let mark = ast.log_mark();
    let out = ast.cli("module reload res_deviceuser.so");
    ast.cli(&format!(
        "channel originate Local/mark{n}@freepbx-setup application NoOp"
    ));
    let logged = ast.wait_log_since(mark, &format!("logmark mark{n}"), Duration::from_secs(10));
    assert!(logged, "no log mark:\n{}", ast.log_since(mark));
    (out, ast.log_since(mark))
}

#[test]
fn freepbx_layout_is_installed_as_printed_and_apply_restores_its_logins() {
    let ast = Asterisk::builder("import-freepbx")
        .conf("extensions.conf", SETUP_DIALPLAN)
        .start();
    let mut ami = ast.ami();
    for (family, key, val) in freepbx_astdb() {
        let r = ami.action(&[
            ("Action", "DBPut"),
            ("Family", family),
            ("Key", &key),
            ("Val", &val),
        ]);
        assert!(r.is_success(), "DBPut {family}/{key}: {r}");
    }
    ast.cli("channel originate Local/inject@freepbx-setup application NoOp");
    let injected = common::wait_until(Duration::from_secs(10), || {
        ast.cli("database get DEVICE 2012/default_user")
            .contains("[6666]")
    });
    assert!(injected, "the hostile default_user did not reach AstDB");
    let before = bindings(&ast);

    let out = ast.cli("deviceuser import freepbx");
    for warning in [
        "; warning: device 1001: default_user \"2001\" is not a user (left behind when a user is deleted in FreePBX); dropped",
        "; warning: device 2011 is fixed in FreePBX but has no valid default user; imported as adhoc",
        "; warning: device 2011: DEVICE/2011/user names \"2001\", who is not a user",
        "; warning: device 2012: default_user \"2001\\n[6666]\\ntype = user\\npassword = 0000\" is not a user",
        "; warning: device 2012 is fixed in FreePBX but has no valid default user; imported as adhoc",
        "; warning: device 1007: dial string \"PJSIP/10 07\" contains a space (expected Tech/resource, e.g. PJSIP/1007); using PJSIP/1007",
        "; warning: device 1003: dial SIP/1003 needs chan_sip, which Asterisk 22 does not have",
        "; warning: device 1004: dial IAX2/1004 needs chan_iax2, which may not be loaded",
        "; warning: device 1005 has no type in FreePBX; imported as adhoc",
        "; warning: device 1006: type \"hotdesk\" is neither fixed nor adhoc; imported as adhoc",
        "; warning: device 1005 has no dial string in FreePBX; using PJSIP/1005",
        "; warning: user 4105 has no password in FreePBX: cannot log in from a phone",
    ] {
        assert!(out.contains(warning), "no {warning:?} in:\n{out}");
    }
    assert!(
        out.contains("dial = SIP/1003\n; once the phone is on PJSIP: dial = PJSIP/1003\n"),
        "{out}"
    );
    assert!(out.contains("\nhint_context = deviceuser-hints\n"), "{out}");
    assert!(
        out.contains("\nemergency_callerid = \"Main office\" <5550100>\n"),
        "{out}"
    );
    assert!(out.contains("fullname = Smith\\; Front desk\n"), "{out}");
    assert!(
        out.lines().last() == Some("; 11 devices, 5 users, 5 logins found"),
        "{out}"
    );
    assert!(out.contains("; nothing written"), "{out}");
    assert_eq!(bindings(&ast), before, "no change without apply");

    // The whole output, as printed, is the new res_deviceuser.conf.
    ast.write_conf("res_deviceuser.conf", &out);
    let (out, log) = reload(&ast, 1);
    assert!(out.contains("reloaded successfully"), "{out}");
    for bad in ["keeping the running configuration", "No '='", "too long"] {
        assert!(!log.contains(bad), "{bad:?} in the reload's log:\n{log}");
    }
    let devices = ast.cli("deviceuser show devices");
    assert!(devices.contains("11 devices found"), "{devices}");
    let users = ast.cli("deviceuser show users");
    assert!(users.contains("5 users found"), "{users}");
    assert!(
        users.contains("Иван Петров") && users.contains("Smith; Front desk"),
        "{users}"
    );
    assert!(
        !users.contains("6666"),
        "the injection made a user:\n{users}"
    );
    let refused = ast.cli("deviceuser login 6666 1002");
    assert!(refused.contains("no such user"), "{refused}");
    // hint_context: the pattern serves the users nobody has logged in yet.
    let hint = ast.cli("core show hint _XXXX");
    assert!(hint.contains("_XXXX@deviceuser-hints"), "{hint}");
    assert!(hint.contains("DeviceUser:${EXTEN}"), "{hint}");

    let out = ast.cli("deviceuser import freepbx apply");
    assert!(out.contains("; already in place: 2010 on 2010\n"), "{out}");
    for (user, device) in FREEPBX_LOGINS.iter().filter(|(u, _)| *u != "2010") {
        let line = format!("; applied: {user} logged in on {device}\n");
        assert!(out.contains(&line), "no {line:?} in:\n{out}");
    }
    assert!(!out.contains("; skipped"), "{out}");
    assert!(!out.contains("nothing written"), "{out}");
    let want: Vec<(String, String)> = FREEPBX_LOGINS
        .iter()
        .map(|(u, d)| (u.to_string(), d.to_string()))
        .collect();
    assert_eq!(
        bindings(&ast),
        want,
        "every login FreePBX had, and no other"
    );

    // Logged in: a hint of their own.
    assert!(ast.commit_work_applied(common::TIMEOUT));
    let hint = ast.cli("core show hint 4102");
    assert!(hint.contains("4102@deviceuser-hints"), "{hint}");
    assert!(hint.contains("DeviceUser:4102"), "{hint}");

    let again = ast.cli("deviceuser import freepbx apply");
    assert_eq!(again.matches("; already in place: ").count(), 5, "{again}");

    // The configuration check refuses a dial string with a space: file, line and value.
    let conf = ast.read_conf("res_deviceuser.conf");
    let line = 1 + conf
        .lines()
        .position(|l| l == "dial = PJSIP/1007")
        .expect("device 1007's dial line");
    ast.write_conf(
        "res_deviceuser.conf",
        &conf.replace("dial = PJSIP/1007\n", "dial = PJSIP/10 07\n"),
    );
    let (_, log) = reload(&ast, 2);
    let refusal = format!(
        "res_deviceuser.conf line {line}: [1007] dial: dial string \"PJSIP/10 07\" contains a space"
    );
    assert!(log.contains(&refusal), "no {refusal:?} in:\n{log}");
    assert!(log.contains("keeping the running configuration"), "{log}");
    assert_eq!(bindings(&ast), want);

    let out = ast.cli("deviceuser import freepbx sideways");
    assert!(out.contains("Usage: deviceuser import freepbx"), "{out}");
}
