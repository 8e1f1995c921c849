//! The administration console in a real browser: Debian's Chromium, headless, driven over
//! WebDriver (`chromedriver`), against a real Asterisk serving the console from its own
//! HTTP server, with a real softphone (baresip) logging in by `*11`.
//!
//! Screenshots of each page are kept in `target/console-screenshots/`.
mod common;
mod console_common;
mod hotdesk_common;

use std::time::Duration;

use serde_json::json;

use common::ami::act;
use common::sip::Baresip;
use console_common::{self as cc, Client, ADMIN, SUPERVISOR};
use hotdesk_common::{self as hd, LONG};

/// The sample endpoints plus 3000, a phone the administrator adds as a device in the console.
fn pjsip_conf() -> String {
    format!(
        "{}\n[3000](phone)\ncallerid=\"Desk 3\" <3000>\nauth=3000\naors=3000\n\
         [3000](phone-auth)\nusername=3000\npassword=secret3000\n[3000](phone-aor)\n",
        hd::sample("pjsip.conf")
    )
}

const XSS: &str = "<img src=x onerror=alert(1)>";

/// Enter, as WebDriver sends it.
const ENTER: &str = "\u{E007}";
const ARROW_RIGHT: &str = "\u{E014}";

fn log_in(b: &cc::Browser<'_>, user: &str, password: &str) {
    b.find("#login-user");
    b.type_into("#login-user", user);
    b.type_into("#login-password", password);
    // Submitted from the keyboard.
    b.keys("#login-password", ENTER);
}

/// The keys (`data-<key>`) of the rows of `rows` not hidden by the search.
fn visible(b: &cc::Browser<'_>, rows: &str, key: &str) -> serde_json::Value {
    b.js(
        &format!(
            "return Array.from(document.querySelectorAll('{rows} tr'), tr => tr.hidden ? null : tr.dataset.{key}).filter(x => x)"
        ),
        json!([]),
    )
}

#[test]
fn the_console_in_a_browser_from_adding_a_device_to_a_supervisor_logging_a_user_out() {
    let (builder, port) = cc::builder("console-browser", "");
    let ast = builder.conf("pjsip.conf", &pjsip_conf()).start();
    let shots = cc::screenshots_dir();
    let driver = cc::Driver::start(&ast.run.join("chromedriver"));
    let b = driver.browser("admin");
    let url = format!("http://127.0.0.1:{port}/deviceuser/");

    // Wrong credentials: the server answers 401 and the page says so.
    b.goto(&url);
    log_in(&b, ADMIN.0, "not-the-password");
    assert!(
        b.wait_text("#login-error", "Wrong user or password"),
        "{}",
        b.text("body")
    );
    b.screenshot(&shots.join("login.png"));
    let r = Client::login(port, ADMIN.0, "not-the-password")
        .err()
        .expect("401");
    assert_eq!(r.status, 401);

    // The administrator logs in and adds a device in the form.
    log_in(&b, ADMIN.0, ADMIN.1);
    b.find("#board-rows tr[data-user=\"4101\"]");
    assert_eq!(b.text("#who"), "admin (administrator)");
    // The tabs are keyboard-operated: arrow keys move between them.
    b.click("#tab-board");
    b.keys("#tab-board", ARROW_RIGHT);
    b.find("#devices-rows tr[data-device=\"1000\"]");
    assert_eq!(
        b.js("return document.activeElement.id", json!([])),
        json!("tab-devices")
    );
    b.click("#add-device");
    b.type_into("#device-form [name=id]", "3000");
    b.type_into("#device-form [name=description]", XSS);
    b.click("#device-save");
    b.find("#devices-rows tr[data-device=\"3000\"]");
    // The description is text: no image element, no script ran.
    let cell = b.text("#devices-rows tr[data-device=\"3000\"] td:nth-child(2)");
    assert_eq!(cell, XSS);
    assert_eq!(
        b.js(
            "return document.querySelectorAll('#devices-rows img').length",
            json!([])
        ),
        json!(0)
    );
    assert_eq!(b.alert(), None, "a script from the description ran");
    assert!(cc::conf_text(&ast)
        .contains("[3000]\ntype = device\ndescription = <img src=x onerror=alert(1)>"));
    b.screenshot(&shots.join("devices.png"));

    // The manual's columns; search; edit and delete.
    assert_eq!(
        b.js(
            "return Array.from(document.querySelectorAll('#devices thead th'), th => th.textContent)",
            json!([])
        ),
        json!([
            "Device",
            "Description",
            "Device Type",
            "Default user",
            "User",
            "Tech Type",
            "State",
            "Actions"
        ])
    );
    b.type_into("#devices-search", "ARM 3");
    assert!(common::wait_until(Duration::from_secs(5), || visible(
        &b,
        "#devices-rows",
        "device"
    ) == json!([
        "1002"
    ])));
    b.js(
        "const s = document.getElementById('devices-search'); s.value = ''; s.dispatchEvent(new Event('input'));",
        json!([]),
    );
    b.click("#devices-rows tr[data-device=\"1002\"] button[data-action=edit]");
    b.type_into("#device-form [name=description]", "ARM 3 by the window");
    b.click("#device-save");
    assert!(b.wait_text(
        "#devices-rows tr[data-device=\"1002\"]",
        "ARM 3 by the window"
    ));
    assert!(cc::conf_text(&ast).contains("description = ARM 3 by the window"));
    b.click("#devices-rows tr[data-device=\"1002\"] button[data-action=delete]");
    let asked = common::poll(Duration::from_secs(5), || b.alert()).expect("a confirmation");
    assert!(asked.contains("1002"), "{asked}");
    b.accept_alert();
    assert!(common::wait_until(Duration::from_secs(10), || b.js(
        "return document.querySelector('#devices-rows tr[data-device=\"1002\"]') === null",
        json!([])
    ) == json!(
        true
    )));
    assert!(!cc::conf_text(&ast).contains("[1002]"));

    // ...and a user with a PIN.
    b.click("#tab-users");
    b.find("#users-rows tr[data-user=\"4101\"]");
    b.click("#add-user");
    b.type_into("#user-form [name=id]", "4150");
    b.type_into("#user-form [name=fullname]", "Test Operator");
    b.type_into("#user-form [name=password]", "4321");
    b.type_into("#user-form [name=language]", "en");
    b.click("#user-save");
    b.find("#users-rows tr[data-user=\"4150\"]");
    assert!(b
        .text("#users-rows tr[data-user=\"4150\"]")
        .contains("Test Operator"));
    assert!(!b.text("body").contains("4321"), "the PIN is never shown");
    assert_eq!(
        b.js(
            "return Array.from(document.querySelectorAll('#users thead th'), th => th.textContent)",
            json!([])
        ),
        json!([
            "Extension",
            "Display name",
            "Language",
            "Devices",
            "State",
            "DND",
            "Actions"
        ])
    );
    // Editing the user without a new PIN keeps the PIN (the phone logs in with it below).
    b.click("#users-rows tr[data-user=\"4150\"] button[data-action=edit]");
    assert_eq!(
        b.js(
            "return document.querySelector('#user-form [name=password]').value",
            json!([])
        ),
        json!(""),
        "the PIN is not shown back"
    );
    b.type_into("#user-form [name=fullname]", "Test Operator Two");
    b.click("#user-save");
    assert!(b.wait_text("#users-rows tr[data-user=\"4150\"]", "Test Operator Two"));
    assert!(cc::conf_text(&ast).contains("fullname = Test Operator Two"));
    b.screenshot(&shots.join("users.png"));

    // The board, live: the phone registered as the new device logs in with *11.
    b.click("#tab-board");
    b.find("#board-rows tr[data-user=\"4150\"]");
    assert!(b.wait_text("#feed-status", "Live"));
    // The board reloaded after each edit: let the last load land.
    assert!(common::wait_until(Duration::from_secs(10), || b
        .js("return state.pending === null", json!([]))
        == json!(true)));
    b.js(
        "window.__marker = 'same page';
         window.__seen = null;
         const rows = document.getElementById('board-rows');
         new MutationObserver(() => {
           const c = document.querySelector('#board-rows tr[data-user=\"4150\"] td.devices');
           if (!window.__seen && c && c.textContent.includes('3000')) window.__seen = Date.now();
         }).observe(rows, {subtree: true, childList: true, characterData: true});",
        json!([]),
    );
    let mut events = ast.ami_events();
    let committed = std::thread::spawn(move || {
        events
            .wait_event(
                "DeviceUserLogin",
                |m| m.get("User") == Some("4150"),
                Duration::from_secs(60),
            )
            .map(|_| cc::epoch_ms())
    });
    let mut phone = Baresip::start(&ast, "3000", false);
    let mark = ast.log_mark();
    phone.dial_answered(&ast, "*11", LONG);
    assert!(hd::wait(
        || ast.prompts_played(mark, "3000", "agent-user") >= 1
    ));
    phone.send_dtmf("4150#");
    assert!(hd::wait(
        || ast.prompts_played(mark, "3000", "agent-pass") >= 1
    ));
    phone.send_dtmf("4321#");
    let status = hd::wait_status(&ast, mark, "3000", "UserLogin");
    assert_eq!(
        status.as_deref(),
        Some("SUCCESS"),
        "{}",
        ast.log_since(mark)
    );
    let committed_ms = committed.join().unwrap().expect("DeviceUserLogin event");
    let seen = common::poll(Duration::from_secs(5), || {
        b.js("return window.__seen", json!([])).as_u64()
    })
    .expect("the board never showed 4150 on 3000");
    let delay = seen as i128 - committed_ms as i128;
    println!("board updated {delay} ms after the login was announced");
    assert!(delay < 1000, "the board took {delay} ms");
    assert_eq!(
        b.js("return window.__marker", json!([])),
        json!("same page"),
        "the page was reloaded"
    );
    assert!(b
        .text("#board-rows tr[data-user=\"4150\"] td.devices")
        .contains("3000 (<img src=x onerror=alert(1)>)"));
    assert_eq!(hd::user_on(&ast, "3000").as_deref(), Some("4150"));
    phone.wait_event("CALL_CLOSED", LONG);
    b.screenshot(&shots.join("board.png"));

    // From the board: DND on and off, and a login on a device.
    for (want, badge) in [("1", "DND"), ("0", "Unavailable")] {
        b.click("#board-rows tr[data-user=\"4101\"] button[data-action=dnd]");
        assert!(hd::wait(|| hd::getvar(&ast, "DEVICEUSER(4101,dnd)") == want));
        assert!(
            b.wait_text("#board-rows tr[data-user=\"4101\"] .state", badge),
            "{}",
            b.text("#board-rows tr[data-user=\"4101\"]")
        );
    }
    b.click("#board-rows tr[data-user=\"4102\"] button[data-action=login]");
    b.find("#login-on-device");
    assert!(common::wait_until(Duration::from_secs(5), || b.js(
        "return document.querySelector('#login-on-device option[value=\"1001\"]') !== null",
        json!([])
    ) == json!(
        true
    )));
    b.js(
        "document.getElementById('login-on-device').value = '1001'",
        json!([]),
    );
    b.click("#login-on-save");
    assert!(hd::wait(
        || hd::user_on(&ast, "1001").as_deref() == Some("4102")
    ));
    assert!(common::wait_until(Duration::from_secs(5), || b
        .text("#board-rows tr[data-user=\"4102\"] td.devices")
        .contains("1001")));

    // A burst reaches the page compressed (binary frames, inflated by the browser's
    // DecompressionStream) and the board ends showing its last commit.
    let binary_before = b.js("return state.frames.binary", json!([]));
    let mut burst = Vec::new();
    for _ in 0..400 {
        burst.push(act(&[
            ("Action", "DeviceUserLogin"),
            ("User", "4101"),
            ("Device", "1000"),
        ]));
        burst.push(act(&[("Action", "DeviceUserLogout"), ("User", "4101")]));
    }
    burst.push(act(&[
        ("Action", "DeviceUserLogin"),
        ("User", "4101"),
        ("Device", "1000"),
    ]));
    let r = ast.ami().pipeline(&burst).expect("burst");
    assert_eq!(r.failed, 0, "{:?}", r.first_failure);
    assert!(
        common::wait_until(Duration::from_secs(10), || b
            .text("#board-rows tr[data-user=\"4101\"] td.devices")
            .contains("1000")),
        "the board does not show the burst's last login: {}",
        b.text("#board-rows tr[data-user=\"4101\"]")
    );
    let binary_after = b.js("return state.frames.binary", json!([]));
    assert!(
        binary_after.as_u64() > binary_before.as_u64(),
        "no compressed frame during the burst ({binary_before} then {binary_after})"
    );
    ast.ami().logout_ok("4101");
    assert!(common::wait_until(Duration::from_secs(5), || !b
        .text("#board-rows tr[data-user=\"4101\"] td.devices")
        .contains("1000")));

    // A supervisor logs the user out from the board; the phone's next call is refused.
    b.click("#logout");
    b.find("#login-user");
    log_in(&b, SUPERVISOR.0, SUPERVISOR.1);
    b.find("#board-rows tr[data-user=\"4150\"] button[data-action=logout]");
    assert_eq!(b.text("#who"), "super (supervisor)");
    // A supervisor is offered no editing...
    b.click("#tab-users");
    b.find("#users-rows tr[data-user=\"4150\"]");
    assert_eq!(
        b.js(
            "return [document.getElementById('add-user').hidden,
                     document.querySelectorAll('#users-rows button[data-action=edit]').length]",
            json!([])
        ),
        json!([true, 0])
    );
    // ...and the server refuses it even when the page's own script asks.
    let status = b.js_async(
        "const done = arguments[arguments.length - 1];
         fetch('api/users/4150', {method: 'PUT', credentials: 'same-origin',
           headers: {'Content-Type': 'application/json', 'X-CSRF-Token': state.session.csrf,
                     'If-Match': '*'},
           body: JSON.stringify({fullname: 'Changed'})}).then(r => done(r.status));",
        json!([]),
    );
    assert_eq!(status, json!(403));
    b.click("#tab-board");
    let mark = ast.log_mark();
    b.click("#board-rows tr[data-user=\"4150\"] button[data-action=logout]");
    assert!(
        hd::wait(|| hd::user_on(&ast, "3000").is_none()),
        "still logged in"
    );
    assert!(ast
        .log_since(mark)
        .contains("console: super logged out user 4150"));
    assert!(common::wait_until(Duration::from_secs(5), || b
        .text("#board-rows tr[data-user=\"4150\"] td.devices")
        == "—"));
    let mark = ast.log_mark();
    phone.dial(&ast, "4101");
    assert!(
        hd::wait(|| ast
            .log_since(mark)
            .contains("Refused call from 3000 to 4101: nobody is logged in")),
        "{}",
        ast.log_since(mark)
    );
    phone.hangup();

    // Russian, by the switch.
    b.js(
        "const s = document.getElementById('lang'); s.value = 'ru'; s.dispatchEvent(new Event('change'));",
        json!([]),
    );
    assert!(b.wait_text("#tab-board", "Табло"));
    assert!(b
        .text("#board-rows tr[data-user=\"4101\"] .state")
        .contains("Недоступен"));
    b.screenshot(&shots.join("board-ru.png"));

    // A browser whose language is Russian gets the page in Russian without the switch.
    let ru = driver.browser_lang("ru", "ru-RU");
    ru.goto(&url);
    assert!(
        ru.wait_text("#login-submit", "Войти"),
        "{}",
        ru.text("body")
    );
    assert_eq!(
        ru.js("return document.documentElement.lang", json!([])),
        json!("ru")
    );
    drop(ru);

    // A cross-origin page (localhost is another origin than 127.0.0.1) cannot change
    // anything: its POST is refused and the device does not appear.
    let other = driver.browser("other-origin");
    other.goto(&format!("http://localhost:{port}/deviceuser/"));
    other.find("#login-user");
    let mark = ast.log_mark();
    other.js_async(
        "const done = arguments[arguments.length - 1];
         fetch(arguments[0], {method: 'POST', mode: 'no-cors', credentials: 'include',
           headers: {'Content-Type': 'text/plain'}, body: '{\"id\":\"6666\"}'})
           .then(() => done('sent'), e => done(String(e)));",
        json!([format!("http://127.0.0.1:{port}/deviceuser/api/devices")]),
    );
    let admin = Client::login(port, ADMIN.0, ADMIN.1).unwrap();
    assert_eq!(admin.get("devices/6666").status, 404);
    assert!(!cc::conf_text(&ast).contains("[6666]"));
    let _ = mark;
    hd::assert_alive(&ast);
}
