//! The administration console's JSON API and live feed against a real Asterisk: served by
//! Asterisk's own HTTP server (`http.conf`), console users with roles and hashed passwords,
//! lockout, cross-site protection, edits written to `res_deviceuser.conf` through Asterisk's
//! config writer (comments kept, a backup, validated as at load, applied like a reload, ETag
//! conflicts refused), hostile input, and the WebSocket feed.
mod common;
mod console_common;
mod hotdesk_common;

use std::time::{Duration, Instant};

use serde_json::json;

use common::ami::act;
use console_common::{self as cc, request, Client, Ws, ADMIN, SUPERVISOR};
use hotdesk_common as hd;

fn admin(port: u16) -> Client {
    Client::login(port, ADMIN.0, ADMIN.1).unwrap_or_else(|r| panic!("admin login: {r:?}"))
}

fn supervisor(port: u16) -> Client {
    Client::login(port, SUPERVISOR.0, SUPERVISOR.1)
        .unwrap_or_else(|r| panic!("supervisor login: {r:?}"))
}

fn field_names(r: &cc::Resp) -> Vec<String> {
    r.json()["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["field"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_console_is_off_unless_a_console_user_is_configured() {
    let port = common::free_port();
    let ast = hd::builder("console-off")
        .conf("http.conf", &cc::http_conf(port))
        .start();
    let r = request(port, "GET", "/deviceuser/", &[], None);
    assert_eq!(r.status, 404, "{r:?}");
    assert!(
        r.body.contains("no console_user is configured"),
        "{}",
        r.body
    );
    let r = request(
        port,
        "POST",
        "/deviceuser/api/session",
        &[("Content-Type", "application/json")],
        Some(br#"{"user":"admin","password":"x"}"#),
    );
    assert_eq!(r.status, 404);
    hd::assert_alive(&ast);
}

#[test]
fn every_request_needs_a_session_and_roles_limit_what_it_may_do() {
    let (b, port) = cc::builder(
        "console-auth",
        "max_login_failures = 3\nlockout_window = 60\nlockout_time = 60",
    );
    let ast = b.start();

    // The page itself carries no data; every API path answers 401 without a session.
    let page = request(port, "GET", "/deviceuser/", &[], None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<base href=\"/deviceuser/\">"));
    assert!(page
        .header("Content-Security-Policy")
        .is_some_and(|c| c.contains("script-src 'self'")));
    for path in [
        "board",
        "devices",
        "users",
        "bindings",
        "stats",
        "session",
        "devices/1000",
    ] {
        let r = request(port, "GET", &format!("/deviceuser/api/{path}"), &[], None);
        assert_eq!(r.status, 401, "{path}: {r:?}");
        assert_eq!(r.json()["error"], "not logged in");
    }
    let r = request(
        port,
        "GET",
        "/deviceuser/api/board",
        &[("Cookie", "deviceuser_session=0123456789abcdef")],
        None,
    );
    assert_eq!(r.status, 401, "a made-up session is not one");

    // Wrong credentials: 401, and the failures lock the name out like wrong PINs do.
    let mark = ast.log_mark();
    for _ in 0..2 {
        let r = Client::login(port, ADMIN.0, "wrong")
            .err()
            .expect("refused");
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"], "wrong user or password");
    }
    let r = Client::login(port, "nobody", ADMIN.1)
        .err()
        .expect("refused");
    assert_eq!(r.status, 401);
    assert!(
        Client::login(port, ADMIN.0, ADMIN.1).is_ok(),
        "2 failures do not lock"
    );
    for _ in 0..3 {
        assert_eq!(
            Client::login(port, ADMIN.0, "wrong").err().unwrap().status,
            401
        );
    }
    let r = Client::login(port, ADMIN.0, ADMIN.1)
        .err()
        .expect("locked out");
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.header("Retry-After").is_some());
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("too many failed logins"));
    // Asterisk's logger thread writes the lines after the answers went out: wait for them.
    let mut failed = Vec::new();
    hd::wait(|| {
        failed = hd::log_lines(
            &ast,
            mark,
            "WARNING",
            &["FailedLogin", "res_deviceuser console"],
        );
        failed.len() >= 6
    });
    assert_eq!(failed.len(), 6, "{failed:#?}");
    assert!(failed.iter().any(|l| l.contains("Locked=\"yes\"")));
    assert!(
        failed.iter().all(|l| !l.contains("wrong")),
        "no password is logged"
    );
    // A name made to forge fields of the line stays one quoted value (logtext).
    let forged = "x\" Locked=\"yes";
    let mark = ast.log_mark();
    let r = Client::login(port, forged, "nothing")
        .err()
        .expect("refused");
    assert_eq!(r.status, 401, "{r:?}");
    let line = hd::wait_log_line(
        &ast,
        mark,
        "WARNING",
        &["FailedLogin", "res_deviceuser console"],
    )
    .expect("the failed login is logged");
    let fields = deviceuser_core::logtext::fields(&line[line.find("SecurityEvent=").unwrap()..])
        .unwrap_or_else(|e| panic!("{e:?}: {line}"));
    assert!(
        fields.contains(&("User".to_string(), forged.to_string())),
        "{line}"
    );
    assert!(!fields.iter().any(|(k, _)| k == "Locked"), "{line}");
    // Another console user is not locked.
    let sup = supervisor(port);

    // A supervisor sees everything...
    for path in [
        "board",
        "devices",
        "users",
        "bindings",
        "stats",
        "devices/1000",
        "users/4101",
    ] {
        assert_eq!(sup.get(path).status, 200, "{path}");
    }
    // ...logs users out and changes DND...
    let mut ami = ast.ami();
    ami.login_ok("4101", "1000");
    let r = sup.send("DELETE", "bindings/user/4101", None, None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["events"][0]["type"], "logout");
    assert_eq!(hd::user_on(&ast, "1000"), None);
    let r = sup.send("PUT", "users/4102/dnd", Some(json!({"on": true})), None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(hd::getvar(&ast, "DEVICEUSER(4102,dnd)"), "1");
    // ...but neither logs users in nor edits devices and users.
    let before = cc::conf_text(&ast);
    let r = sup.send(
        "POST",
        "bindings",
        Some(json!({"user": "4101", "device": "1000"})),
        None,
    );
    assert_eq!(r.status, 403, "{r:?}");
    let tag = sup.get("users/4101").header("ETag").unwrap().to_string();
    for (method, path, body) in [
        (
            "POST",
            "users",
            Some(json!({"id": "4199", "fullname": "X"})),
        ),
        ("PUT", "users/4101", Some(json!({"fullname": "X"}))),
        ("DELETE", "users/4101", None),
        ("POST", "devices", Some(json!({"id": "3999"}))),
        ("PUT", "devices/1000", Some(json!({"description": "X"}))),
        ("DELETE", "devices/1000", None),
    ] {
        let r = sup.send(method, path, body, Some(&tag));
        assert_eq!(r.status, 403, "{method} {path}: {r:?}");
        assert_eq!(
            r.json()["error"],
            "a supervisor may not edit devices and users"
        );
    }
    assert_eq!(cc::conf_text(&ast), before, "nothing was written");

    // Logging out of the console ends the session.
    let r = sup.send("DELETE", "session", None, None);
    assert_eq!(r.status, 200);
    assert!(r.header("Set-Cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(sup.get("board").status, 401);
    hd::assert_alive(&ast);
}

#[test]
fn edits_are_written_through_asterisks_config_writer_and_applied_like_a_reload() {
    let (b, port) = cc::builder("console-edit", "");
    let ast = b.start();
    let admin = admin(port);
    let original = cc::conf_text(&ast);
    let mut ami = ast.ami();
    ami.login_ok("4101", "1000");

    // Add a device and a user (with a PIN).
    let r = admin.send(
        "POST",
        "devices",
        Some(json!({"id": "3000", "description": "Desk 3; 2nd floor", "mode": "adhoc"})),
        None,
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("Location"), Some("/deviceuser/api/devices/3000"));
    assert_eq!(r.json()["description"], "Desk 3; 2nd floor");
    let r = admin.send(
        "POST",
        "users",
        Some(json!({"id": "4150", "fullname": "Test Operator", "password": "4321", "language": "ru"})),
        None,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let user = r.json();
    assert_eq!(user["has_password"], true);
    assert!(
        !r.body.contains("4321"),
        "the PIN is never shown back: {}",
        r.body
    );

    // In the file: comments kept, a backup of the previous file, the PIN hashed.
    let conf = cc::conf_text(&ast);
    for line in original
        .lines()
        .filter(|l| l.starts_with(';') && l.len() > 3)
        .take(40)
    {
        assert!(conf.contains(line), "comment lost: {line}");
    }
    assert!(
        conf.contains("[3000]\ntype = device\ndescription = Desk 3\\; 2nd floor"),
        "{conf}"
    );
    assert!(conf.contains("[4150]\ntype = user\nfullname = Test Operator\npassword = $argon2id$"));
    assert!(!conf.contains("4321"), "no plain PIN in the file");
    let backup = std::fs::read_to_string(ast.etc().join("res_deviceuser.conf.bak")).unwrap();
    assert!(backup.contains("[4150]") ^ original.contains("[4150]") || backup.contains("[3000]"));
    // Applied: the CLI lists both, and the still-logged-in user was not logged out.
    assert!(ast
        .cli("deviceuser show devices")
        .contains("Desk 3; 2nd floor"));
    assert!(ast
        .cli("deviceuser show users")
        .lines()
        .any(|l| l.starts_with("4150")));
    assert_eq!(hd::user_on(&ast, "1000").as_deref(), Some("4101"));
    // The new user logs in with the PIN written (the phone path checks the hash).
    ami.login_ok("4150", "3000");
    assert_eq!(hd::user_on(&ast, "3000").as_deref(), Some("4150"));

    // Changing the user keeps both logins; the ETag must be current.
    let tag = admin.get("users/4150").header("ETag").unwrap().to_string();
    assert_eq!(tag, user["etag"].as_str().unwrap());
    let r = admin.send(
        "PUT",
        "users/4150",
        Some(json!({"fullname": "Renamed"})),
        None,
    );
    assert_eq!(r.status, 428, "If-Match is required: {r:?}");
    let r = admin.send(
        "PUT",
        "users/4150",
        Some(json!({"fullname": "Renamed", "language": "ru"})),
        Some(&tag),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let new_tag = r.header("ETag").unwrap().to_string();
    assert_ne!(new_tag, tag);
    assert_eq!(r.json()["fullname"], "Renamed");
    assert_eq!(r.json()["has_password"], true, "an absent PIN is kept");
    assert_eq!(hd::user_on(&ast, "3000").as_deref(), Some("4150"));
    assert_eq!(hd::user_on(&ast, "1000").as_deref(), Some("4101"));
    // A second administrator saving with the old ETag is refused, not merged.
    let other = Client::login(port, ADMIN.0, ADMIN.1).unwrap();
    let before = cc::conf_text(&ast);
    let r = other.send(
        "PUT",
        "users/4150",
        Some(json!({"fullname": "Lost update"})),
        Some(&tag),
    );
    assert_eq!(r.status, 412, "{r:?}");
    assert_eq!(r.header("ETag"), Some(new_tag.as_str()));
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("changed by someone else"));
    assert_eq!(cc::conf_text(&ast), before);
    // A change made in the file by hand changes the ETag too.
    let edited = before.replace("fullname = Renamed", "fullname = By hand");
    ast.write_conf("res_deviceuser.conf", &edited);
    let r = admin.send(
        "PUT",
        "users/4150",
        Some(json!({"fullname": "Mine"})),
        Some(&new_tag),
    );
    assert_eq!(r.status, 412, "{r:?}");

    // Invalid values: the config file's own messages, by field; nothing is written.
    let before = cc::conf_text(&ast);
    let r = admin.send(
        "POST",
        "devices",
        Some(json!({"id": "3001", "mode": "fixed", "dial": "nothing"})),
        None,
    );
    assert_eq!(r.status, 422, "{r:?}");
    let mut fields = field_names(&r);
    fields.sort();
    assert_eq!(fields, ["default_user", "dial"], "{}", r.body);
    assert!(
        r.body.contains("a fixed device needs a default_user"),
        "{}",
        r.body
    );
    let r = admin.send(
        "POST",
        "devices",
        Some(json!({"id": "3001", "default_user": "9999", "logout_on_unregister": "soon"})),
        None,
    );
    assert_eq!(r.status, 422);
    let mut fields = field_names(&r);
    fields.sort();
    assert_eq!(
        fields,
        ["default_user", "logout_on_unregister"],
        "{}",
        r.body
    );
    let r = admin.send("POST", "users", Some(json!({"id": "4101"})), None);
    assert_eq!(r.status, 409, "exists: {r:?}");
    assert_eq!(field_names(&r), ["id"]);
    // Deleting a user who is a device's default_user would break the file.
    let tag2010 = admin.get("users/2010").header("ETag").unwrap().to_string();
    let r = admin.send("DELETE", "users/2010", None, Some(&tag2010));
    assert_eq!(r.status, 422, "{r:?}");
    assert!(
        r.json()["file_errors"]
            .as_array()
            .is_some_and(|f| f.iter().any(|m| m
                .as_str()
                .is_some_and(|m| m.contains("default_user \"2010\" is not a configured user")))),
        "{}",
        r.body
    );
    assert_eq!(cc::conf_text(&ast), before);

    // Deleting the device logs its user out, as a reload does.
    let tag = admin
        .get("devices/3000")
        .header("ETag")
        .unwrap()
        .to_string();
    let r = admin.send("DELETE", "devices/3000", None, Some(&tag));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(admin.get("devices/3000").status, 404);
    assert!(!cc::conf_text(&ast).contains("[3000]"));
    assert!(hd::devices_of(&ast, "4150").is_empty());
    assert_eq!(hd::user_on(&ast, "1000").as_deref(), Some("4101"));
    let log = ast.log();
    assert!(log.contains("console: admin added device 3000 in res_deviceuser.conf"));
    assert!(log.contains("console: admin deleted device 3000 in res_deviceuser.conf"));
    hd::assert_alive(&ast);
}

#[test]
fn the_api_logs_users_in_and_out_through_the_pipeline_with_amis_rules_and_messages() {
    let (b, port) = cc::builder("console-bindings", "commit_log = yes");
    let ast = b.start();
    let admin = admin(port);
    let mut ami = ast.ami();

    // An administrator logs a user in on a device: a commit of origin `console`.
    let mark = ast.log_mark();
    let r = admin.send(
        "POST",
        "bindings",
        Some(json!({"user": "4101", "device": "1000"})),
        None,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let e = &r.json()["events"][0];
    assert_eq!(
        (&e["type"], &e["user"], &e["device"], &e["reason"]),
        (
            &json!("login"),
            &json!("4101"),
            &json!("1000"),
            &json!("admin")
        )
    );
    assert_eq!(hd::user_on(&ast, "1000").as_deref(), Some("4101"));
    assert!(
        hd::wait_log_line(
            &ast,
            mark,
            "NOTICE",
            &[
                " commit ",
                "origin=console",
                "login",
                "user=4101",
                "device=1000"
            ]
        )
        .is_some(),
        "{}",
        ast.log_since(mark)
    );
    // The list: the fixed device's owner, and 4101 on 1000.
    let list = admin.get("bindings").json();
    let mut pairs: Vec<(String, String)> = list["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .map(|b| {
            assert!(b["since"].is_u64() && b["duration"].is_u64(), "{b}");
            (
                b["user"].as_str().unwrap().to_string(),
                b["device"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ("2010".into(), "2010".into()),
            ("4101".into(), "1000".into())
        ],
        "{list}"
    );

    // Refused logins: the core's reason, word for word as AMI gives it, on the field.
    for (user, device, field, status) in [
        ("4102", "nosuch", "device", 404),
        ("nosuch", "1001", "user", 404),
        ("4102", "2010", "device", 409),
    ] {
        let r = admin.send(
            "POST",
            "bindings",
            Some(json!({"user": user, "device": device})),
            None,
        );
        assert_eq!(r.status, status, "{user} on {device}: {r:?}");
        let f = &r.json()["fields"][0];
        assert_eq!(f["field"], field, "{r:?}");
        let reason = f["message"].as_str().expect("a message").to_string();
        let a = ami.action(&[
            ("Action", "DeviceUserLogin"),
            ("User", user),
            ("Device", device),
        ]);
        assert!(!a.is_success());
        assert!(
            a.val("Message").ends_with(&format!(": {reason}")),
            "AMI {:?}, console {reason:?}",
            a.val("Message")
        );
        assert_eq!(
            r.json()["error"].as_str().unwrap(),
            format!("c{}", &a.val("Message")[1..]),
            "the same sentence"
        );
    }
    assert_eq!(hd::user_on(&ast, "1001"), None);

    // The statistics count the login and its time.
    let stats = admin.get("stats").json();
    assert_eq!(stats["summary"]["bindings"], 2, "{stats}");
    assert_eq!(stats["summary"]["devices"], 4, "{stats}");
    let u = stats["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == "4101")
        .unwrap_or_else(|| panic!("4101 in {stats}"))
        .clone();
    assert_eq!(u["logins"], 1, "{stats}");

    // DND on and off.
    for on in [true, false] {
        let r = admin.send("PUT", "users/4101/dnd", Some(json!({"on": on})), None);
        assert_eq!(r.status, 200, "{r:?}");
        let want = if on { "1" } else { "0" };
        assert_eq!(hd::getvar(&ast, "DEVICEUSER(4101,dnd)"), want);
    }

    // Logging a device out; a second time it is not logged in, as AMI says.
    let r = admin.send("DELETE", "bindings/device/1000", None, None);
    assert_eq!(r.status, 200, "{r:?}");
    let e = &r.json()["events"][0];
    assert_eq!(
        (&e["type"], &e["reason"]),
        (&json!("logout"), &json!("admin"))
    );
    assert!(e["duration"].is_u64());
    assert_eq!(hd::user_on(&ast, "1000"), None);
    let r = admin.send("DELETE", "bindings/device/1000", None, None);
    assert_eq!(r.status, 409, "{r:?}");
    let a = ami.action(&[("Action", "DeviceUserLogout"), ("Device", "1000")]);
    assert!(!a.is_success());
    assert_eq!(
        r.json()["error"].as_str().unwrap(),
        format!("c{}", &a.val("Message")[1..]),
        "the same sentence"
    );
    let r = admin.send("DELETE", "bindings/user/nosuch", None, None);
    assert_eq!(r.status, 404, "{r:?}");
    let left = admin.get("bindings").json();
    assert_eq!(left["bindings"].as_array().unwrap().len(), 1, "{left}");
    assert_eq!(left["bindings"][0]["user"], "2010", "{left}");
    hd::assert_alive(&ast);
}

#[test]
fn hostile_input_is_refused_and_changes_nothing() {
    let (b, port) = cc::builder("console-hostile", "");
    let ast = b.start();
    let admin = admin(port);
    let before = cc::conf_text(&ast);
    let body = json!({"id": "3002"}).to_string();
    let cookie = admin.cookie.clone();

    // Cross-site: another origin, a cross-site fetch, no or a wrong CSRF token.
    for (headers, why) in [
        (
            vec![
                ("Origin", "http://evil.example"),
                ("X-CSRF-Token", admin.csrf.as_str()),
            ],
            "request from another origin refused",
        ),
        (
            vec![
                ("Sec-Fetch-Site", "cross-site"),
                ("X-CSRF-Token", admin.csrf.as_str()),
            ],
            "cross-site request refused",
        ),
        (vec![], "missing or wrong X-CSRF-Token header"),
        (
            vec![("X-CSRF-Token", "0000")],
            "missing or wrong X-CSRF-Token header",
        ),
    ] {
        let mut h = vec![
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/json"),
        ];
        h.extend(headers);
        let r = request(
            port,
            "POST",
            "/deviceuser/api/devices",
            &h,
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 403, "{why}: {r:?}");
        assert_eq!(r.json()["error"], why);
    }
    // A login from another site's page is refused too.
    let r = request(
        port,
        "POST",
        "/deviceuser/api/session",
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/json"),
        ],
        Some(
            json!({"user": ADMIN.0, "password": ADMIN.1})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 403);

    // Bodies: oversized, malformed, not JSON, not an object, unknown and wrong fields.
    let send_raw = |ctype: &str, raw: &[u8]| {
        request(
            port,
            "POST",
            "/deviceuser/api/devices",
            &[
                ("Cookie", cookie.as_str()),
                ("X-CSRF-Token", admin.csrf.as_str()),
                ("Content-Type", ctype),
            ],
            Some(raw),
        )
    };
    let huge = format!(
        "{{\"id\":\"3003\",\"description\":\"{}\"}}",
        "x".repeat(60_000)
    );
    assert_eq!(send_raw("application/json", huge.as_bytes()).status, 413);
    let r = send_raw("application/json", b"{\"id\": \"3004\",");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("malformed JSON"));
    assert_eq!(send_raw("application/json", b"\xff\xfe{}").status, 400);
    assert_eq!(send_raw("application/json", b"").status, 400);
    assert_eq!(send_raw("text/plain", b"{\"id\":\"3005\"}").status, 415);
    assert_eq!(
        send_raw("application/x-www-form-urlencoded", b"id=3006").status,
        415
    );
    let r = send_raw("application/json", b"[\"3007\"]");
    assert_eq!(r.status, 422);
    assert_eq!(field_names(&r), [""]);
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    assert!(matches!(
        send_raw("application/json", deep.as_bytes()).status,
        400 | 422
    ));
    for (bad, field) in [
        (json!({"id": "3008", "colour": "red"}), "colour"),
        (json!({"id": "3008", "description": 5}), "description"),
        (
            json!({"id": "3008", "description": "two\nlines"}),
            "description",
        ),
        (json!({"id": "x]\n[evil", "description": "a"}), "id"),
        (json!({"id": "../../etc", "description": "a"}), "id"),
        (json!({"id": "a b"}), "id"),
        (
            json!({"id": "3008", "dial": "PJSIP/1000&PJSIP/1001"}),
            "dial",
        ),
    ] {
        let r = admin.send("POST", "devices", Some(bad.clone()), None);
        assert_eq!(r.status, 422, "{bad}: {r:?}");
        assert_eq!(field_names(&r), [field], "{bad}");
    }
    let r = admin.send(
        "POST",
        "bindings",
        Some(json!({"user": 4101, "device": "1000"})),
        None,
    );
    assert_eq!(r.status, 400);
    assert_eq!(field_names(&r), ["user"]);
    assert_eq!(cc::conf_text(&ast), before, "nothing was written");

    // Markup is stored and answered as text (JSON strings), never interpreted.
    let xss = "<img src=x onerror=alert(1)>";
    let r = admin.send(
        "POST",
        "devices",
        Some(json!({"id": "3010", "description": xss})),
        None,
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(admin.get("devices/3010").json()["description"], xss);
    assert!(admin
        .get("devices")
        .header("Content-Type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        admin.get("devices").header("X-Content-Type-Options"),
        Some("nosniff")
    );

    // Paths: traversal and anything not listed is 404; methods not allowed are 405.
    for path in [
        "/deviceuser/../http.conf",
        "/deviceuser/..%2f..%2fetc%2fasterisk%2fhttp.conf",
        "/deviceuser/%2e%2e/res_deviceuser.conf",
        "/deviceuser/app.js/../../res_deviceuser.conf",
        "/deviceuser/./app.js",
        "/deviceuser/res_deviceuser.conf",
        "/deviceuser/page/app.js",
        "/deviceuser/app.js%00.png",
        "/deviceuser/api/../app.js",
        "/deviceuser/api/devices/1000/../../users",
        "/deviceuser//etc/passwd",
    ] {
        let r = request(port, "GET", path, &[("Cookie", &cookie)], None);
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
    assert_eq!(
        request(port, "GET", "/deviceuser/app.js", &[], None).status,
        200
    );
    let r = request(
        port,
        "PATCH",
        "/deviceuser/api/devices",
        &[("Cookie", &cookie)],
        None,
    );
    assert!(r.status == 405 || r.status == 501, "{r:?}");
    let r = admin.send("PUT", "devices", Some(json!({})), None);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, POST"));

    // A file made invalid behind the console's back: the save fails with the file's own
    // error, and the file is left exactly as it was.
    let broken = format!(
        "{}\n[9999]\ntype = device\nmode = sideways\n",
        cc::conf_text(&ast)
    );
    ast.write_conf("res_deviceuser.conf", &broken);
    let tag = admin
        .get("devices/1000")
        .header("ETag")
        .unwrap()
        .to_string();
    let r = admin.send(
        "PUT",
        "devices/1000",
        Some(json!({"description": "New"})),
        Some(&tag),
    );
    assert_eq!(r.status, 409, "{r:?}");
    let errors = r.json()["file_errors"].as_array().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0].as_str().unwrap();
    assert!(
        e.contains("res_deviceuser.conf line")
            && e.contains("[9999] mode: unknown mode \"sideways\""),
        "{e}"
    );
    assert_eq!(cc::conf_text(&ast), broken, "the file is untouched");
    // The running configuration is still the last good one.
    assert!(admin.get("devices/9999").status == 404);
    hd::assert_alive(&ast);
}

#[test]
fn the_live_feed_pushes_commits_and_states_to_logged_in_pages_only() {
    let (b, port) = cc::builder("console-feed", "");
    let ast = b.start();
    let admin = admin(port);
    let origin = format!("http://127.0.0.1:{port}");

    let refused = Ws::connect(port, "deviceuser_session=nope", &origin)
        .err()
        .expect("refused");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let refused = Ws::connect(port, &admin.cookie, "http://evil.example")
        .err()
        .expect("refused");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    for (query, expect) in [
        (
            "compress=gzip",
            "compress: expected deflate or none, not 'gzip'",
        ),
        ("since=0", "unknown parameter 'since'"),
    ] {
        let refused = Ws::connect_query(port, &admin.cookie, &origin, query)
            .err()
            .expect("refused");
        assert!(refused.starts_with("HTTP/1.1 400"), "{query}: {refused}");
        assert!(refused.contains(expect), "{query}: {refused}");
    }

    let mut ws = Ws::connect(port, &admin.cookie, &origin).expect("feed");
    let hello = ws
        .wait_event(Duration::from_secs(5), |_| true)
        .expect("hello");
    assert_eq!(
        hello,
        json!({"type": "hello", "user": "admin", "role": "admin"})
    );

    let mut ami = ast.ami();
    let sent = Instant::now();
    ami.login_ok("4101", "1000");
    let e = ws
        .wait_event(Duration::from_secs(5), |e| e["type"] == "login")
        .expect("login event");
    let latency = sent.elapsed();
    assert_eq!(
        (e["user"].as_str(), e["device"].as_str()),
        (Some("4101"), Some("1000"))
    );
    assert_eq!(e["reason"], "admin");
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    let st = ws
        .wait_event(Duration::from_secs(5), |e| {
            e["type"] == "state" && e["user"] == "4101"
        })
        .expect("state event");
    assert!(st["state"].is_string());

    let r = admin.send("PUT", "users/4101/dnd", Some(json!({"on": true})), None);
    assert_eq!(r.status, 200);
    let e = ws
        .wait_event(Duration::from_secs(5), |e| e["type"] == "dnd")
        .unwrap();
    assert_eq!(e, json!({"type": "dnd", "user": "4101", "on": true}));
    let e = ws
        .wait_event(Duration::from_secs(5), |e| {
            e["type"] == "state" && e["user"] == "4101"
        })
        .unwrap();
    assert_eq!(e["state"], "busy");

    ami.logout_ok("4101");
    let e = ws
        .wait_event(Duration::from_secs(5), |e| e["type"] == "logout")
        .unwrap();
    assert_eq!(e["reason"], "admin");
    assert!(e["duration"].is_u64());

    ast.cli("module reload res_deviceuser.so");
    assert!(ws
        .wait_event(Duration::from_secs(5), |e| e["type"] == "config")
        .is_some());

    // The feed ends with the console session.
    let r = admin.send("DELETE", "session", None, None);
    assert_eq!(r.status, 200);
    assert!(
        ws.closed_within(Duration::from_secs(10)),
        "feed still open after logout"
    );

    // Unloading the module with a feed open closes it and completes.
    let admin = Client::login(port, ADMIN.0, ADMIN.1).unwrap();
    let mut ws = Ws::connect(port, &admin.cookie, &origin).expect("feed");
    ws.wait_event(Duration::from_secs(5), |_| true)
        .expect("hello");
    let out = ast.cli("module unload res_deviceuser.so");
    assert!(
        ws.closed_within(Duration::from_secs(15)),
        "feed open after unload: {out}"
    );
    assert!(
        common::wait_until(Duration::from_secs(15), || ast.maps_lines("res_deviceuser")
            == 0),
        "module still mapped after unload: {out}\n{}",
        ast.log()
    );
    assert_eq!(request(port, "GET", "/deviceuser/", &[], None).status, 404);
    let out = ast.cli("module load res_deviceuser.so");
    assert!(out.contains("Loaded") || out.contains("loaded"), "{out}");
    let admin = Client::login(port, ADMIN.0, ADMIN.1).expect("console back after load");
    assert_eq!(admin.get("board").status, 200);
    hd::assert_alive(&ast);
}

#[test]
fn every_open_feed_receives_every_event_of_a_burst_once_and_in_order() {
    let (b, port) = cc::builder("console-feed-burst", "");
    let ast = b.start();
    let admin = admin(port);
    let origin = format!("http://127.0.0.1:{port}");
    // Three plain feeds, three that ask for compressed bursts.
    let compressed = |n: usize| n >= 3;
    let mut feeds: Vec<Ws> = (0..6)
        .map(|n| {
            let query = if compressed(n) {
                "compress=deflate"
            } else {
                ""
            };
            let mut ws = Ws::connect_query(port, &admin.cookie, &origin, query).expect("feed");
            ws.wait_event(Duration::from_secs(5), |e| e["type"] == "hello")
                .expect("hello");
            ws
        })
        .collect();
    // Enough events for the feed's log to fill several of its chunks while the feeds read.
    const PAIRS: usize = 500;
    let burst: Vec<_> = (0..PAIRS)
        .flat_map(|_| {
            [
                act(&[
                    ("Action", "DeviceUserLogin"),
                    ("User", "4101"),
                    ("Device", "1000"),
                ]),
                act(&[("Action", "DeviceUserLogout"), ("User", "4101")]),
            ]
        })
        .collect();
    let r = ast.ami().pipeline(&burst).expect("burst");
    assert_eq!(r.failed, 0, "{:?}", r.first_failure);
    let binding = |e: &serde_json::Value| e["type"] == "login" || e["type"] == "logout";
    let mut sequences = Vec::new();
    for (n, ws) in feeds.iter_mut().enumerate() {
        // Every event (states too), in order, as this feed received it.
        let mut seen = Vec::new();
        for i in 0..2 * PAIRS {
            let e = ws
                .wait_event(Duration::from_secs(10), |e| {
                    seen.push(e.clone());
                    binding(e)
                })
                .unwrap_or_else(|| panic!("feed {n}: only {i} of {} events", 2 * PAIRS));
            let kind = if i % 2 == 0 { "login" } else { "logout" };
            assert_eq!(
                (e["type"].as_str(), e["user"].as_str()),
                (Some(kind), Some("4101")),
                "feed {n}, event {i}"
            );
        }
        assert!(
            ws.wait_event(Duration::from_millis(500), |e| {
                seen.push(e.clone());
                binding(e)
            })
            .is_none(),
            "feed {n}: an event twice"
        );
        if compressed(n) {
            assert!(
                ws.binary_frames > 0,
                "feed {n}: the burst came uncompressed"
            );
        } else {
            assert_eq!(ws.binary_frames, 0, "feed {n}: a binary frame unasked");
        }
        sequences.push(seen);
    }
    for (n, seq) in sequences.iter().enumerate().skip(1) {
        assert!(
            seq == &sequences[0],
            "feed {n} received other events than feed 0 ({} against {})",
            seq.len(),
            sequences[0].len()
        );
    }
    hd::assert_alive(&ast);
}
