//! The module builds, loads, unloads and reloads in a real Asterisk 22, reads its config
//! through Asterisk's config engine, refuses bad configs with precise messages, and shows
//! devices, users and bindings on the CLI.
mod common;

use std::time::Duration;

use common::Asterisk;

const SAMPLE_DEVICES: &[(&str, &str, &str)] = &[
    ("1000", "ARM 1", "adhoc"),
    ("1001", "ARM 2", "adhoc"),
    ("1002", "ARM 3", "adhoc"),
    ("2010", "2010 Fixed", "fixed"),
];

fn row<'a>(text: &'a str, first: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(first))
}

/// The cells of a CLI table row (columns are separated by at least two spaces).
fn cells(row: &str) -> Vec<&str> {
    row.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

fn module_running(ast: &Asterisk) -> bool {
    ast.cli("module show like res_deviceuser").lines().any(|l| {
        l.starts_with("res_deviceuser.so") && l.contains(" Running") && !l.contains("Not Running")
    })
}

#[test]
fn sample_config_loads_and_show_commands_list_it() {
    let ast = Asterisk::start("show");
    assert!(
        module_running(&ast),
        "{}",
        ast.cli("module show like res_deviceuser")
    );

    let devices = ast.cli("deviceuser show devices");
    for (id, description, mode) in SAMPLE_DEVICES {
        let r = row(&devices, id).unwrap_or_else(|| panic!("device {id} missing:\n{devices}"));
        assert!(r.contains(description) && r.contains(mode), "{r}");
        assert!(
            r.contains(&format!("PJSIP/{id}")),
            "dial string of {id}: {r}"
        );
    }
    let fixed = cells(row(&devices, "2010").unwrap());
    assert_eq!(
        fixed,
        ["2010", "2010 Fixed", "fixed", "2010", "2010", "PJSIP/2010"],
        "fixed device 2010: id, description, mode, default user, current user, dial"
    );
    let adhoc = cells(row(&devices, "1000").unwrap());
    assert_eq!(adhoc, ["1000", "ARM 1", "adhoc", "-", "-", "PJSIP/1000"]);
    assert_eq!(devices.lines().last(), Some("4 devices found"), "{devices}");

    let users = ast.cli("deviceuser show users");
    for u in (4101..=4110).map(|u| u.to_string()).chain(["2010".into()]) {
        assert!(row(&users, &u).is_some(), "user {u} missing:\n{users}");
    }
    assert!(
        row(&users, "2010").unwrap().trim_end().ends_with("2010"),
        "2010 is on its device"
    );
    assert!(
        row(&users, "4101").unwrap().trim_end().ends_with('-'),
        "4101 is on no device"
    );
    assert_eq!(users.lines().last(), Some("11 users found"), "{users}");

    let bindings = ast.cli("deviceuser show bindings");
    let r = row(&bindings, "2010").unwrap_or_else(|| panic!("{bindings}"));
    assert!(r.split_whitespace().nth(1) == Some("2010"), "{r}");
    assert_eq!(
        bindings.lines().last(),
        Some("1 binding found"),
        "{bindings}"
    );

    let filtered = ast.cli("deviceuser show bindings user 4101");
    assert_eq!(
        filtered.lines().last(),
        Some("0 bindings found"),
        "{filtered}"
    );
    let unknown = ast.cli("deviceuser show bindings device 9999");
    assert!(unknown.contains("No such device \"9999\""), "{unknown}");
    let usage = ast.cli("deviceuser show bindings sideways");
    assert!(usage.contains("Usage: deviceuser show bindings"), "{usage}");
}

#[test]
fn tab_completion_offers_ids() {
    let ast = Asterisk::start("complete");
    let out = ast.cli("_command matchesarray \"deviceuser show bindings \" \"\"");
    assert!(out.contains("user") && out.contains("device"), "{out}");
    let out = ast.cli("_command matchesarray \"deviceuser show bindings user 410\" \"410\"");
    for u in 4101..=4109 {
        assert!(out.contains(&u.to_string()), "{u} not offered: {out}");
    }
    assert!(!out.contains("2010"), "{out}");
    let out = ast.cli("_command matchesarray \"deviceuser show bindings device \" \"\"");
    assert!(out.contains("1000") && out.contains("2010"), "{out}");
}

#[test]
fn unload_really_unmaps_and_load_reload_work_again() {
    let ast = Asterisk::start("lifecycle");
    assert!(ast.maps_lines("res_deviceuser.so") > 0);
    for round in 0..3 {
        let out = ast.cli("module unload res_deviceuser.so");
        assert!(
            out.contains("Unloaded res_deviceuser.so"),
            "round {round}: {out}"
        );
        assert_eq!(
            ast.maps_lines("res_deviceuser.so"),
            0,
            "round {round}: the library is still mapped after unload"
        );
        let gone = ast.cli("deviceuser show devices");
        assert!(gone.contains("No such command"), "round {round}: {gone}");
        let out = ast.cli("module load res_deviceuser.so");
        assert!(
            out.contains("Loaded res_deviceuser.so"),
            "round {round}: {out}"
        );
        assert!(module_running(&ast));
        let out = ast.cli("module reload res_deviceuser.so");
        assert!(
            out.contains("reloaded successfully"),
            "round {round}: {out}"
        );
        assert!(ast
            .cli("deviceuser show devices")
            .contains("4 devices found"));
    }
    // The hint state survives the reloads: a user on no device is unavailable.
    let hint = ast.cli("core show hint 4101");
    assert!(hint.contains("State:Unavailable"), "{hint}");
    assert!(ast.is_running());
    assert!(!ast.log().contains("panic"), "a panic was logged");
}

const BAD_CONFIG: &str = "\
[general]
multiple_logins = sometimes

[1000]
type = device
mode = adhoc

[1000]
type = device

[2010]
type = device
mode = fixed

[3000]
type = device
mode = roaming

[3001]
type = device
mode = adhoc
default_user = 9999

[bad/id]
type = device

[a&b]
type = user

[4101]
type = user
password = 1234
";

#[test]
fn bad_config_at_load_declines_with_file_section_and_key() {
    let ast = Asterisk::builder("badconf")
        .conf("res_deviceuser.conf", BAD_CONFIG)
        .start();
    assert!(
        !module_running(&ast),
        "the module must decline a bad config"
    );
    let log = ast.log();
    let expect = [
        ("[general]", "multiple_logins"),
        ("[1000]", "duplicate"),
        ("[2010]", "default_user"),
        ("[3000]", "mode"),
        ("[3001]", "default_user"),
        ("[bad/id]", "/"),
        ("[a&b]", "&"),
    ];
    for (section, key) in expect {
        assert!(
            log.lines().any(|l| l.contains("ERROR")
                && l.contains("res_deviceuser.conf")
                && l.contains(section)
                && l.contains(key)),
            "no error naming the file, {section} and {key} in the log"
        );
    }
    assert!(log.contains("not loading"), "the decline is explained");
    assert!(ast.is_running(), "a bad config must not take Asterisk down");
}

#[test]
fn bad_config_at_reload_keeps_the_running_one() {
    let ast = Asterisk::start("badreload");
    assert!(module_running(&ast));
    ast.write_conf("res_deviceuser.conf", BAD_CONFIG);
    let mark = ast.log_mark();
    ast.cli("module reload res_deviceuser.so");
    assert!(
        ast.wait_log_since(
            mark,
            "keeping the running configuration",
            Duration::from_secs(5)
        ),
        "{}",
        ast.log_since(mark)
    );
    assert!(
        ast.log_since(mark).contains("[3000] mode"),
        "{}",
        ast.log_since(mark)
    );
    assert!(module_running(&ast));
    let devices = ast.cli("deviceuser show devices");
    assert_eq!(devices.lines().last(), Some("4 devices found"), "{devices}");
}

#[test]
fn missing_config_declines_cleanly() {
    let ast = Asterisk::builder("noconf")
        .conf("res_deviceuser.conf", "")
        .start();
    // An empty file is a valid (empty) config; a missing one is not.
    assert!(module_running(&ast));
    assert!(ast
        .cli("deviceuser show devices")
        .contains("0 devices found"));
    std::fs::remove_file(ast.etc().join("res_deviceuser.conf")).unwrap();
    let mark = ast.unload_and_load();
    assert!(
        ast.wait_log_since(
            mark,
            "res_deviceuser.conf is missing",
            Duration::from_secs(5)
        ),
        "{}",
        ast.log_since(mark)
    );
    assert!(!module_running(&ast));
}

#[test]
fn install_script_puts_module_config_and_docs_in_place() {
    let dest = common::fresh_dir("install");
    let (moddir, etcdir, docdir) = (dest.join("modules"), dest.join("etc"), dest.join("doc"));
    let module = common::module_source();
    // target/<profile>/libres_deviceuser.so
    let profile = module
        .parent()
        .and_then(|p| p.file_name())
        .unwrap()
        .to_owned();
    let install = || {
        let out = std::process::Command::new("bash")
            .arg(common::repo().join("scripts/install.sh"))
            .arg("--profile")
            .arg(&profile)
            .arg("--moddir")
            .arg(&moddir)
            .arg("--etcdir")
            .arg(&etcdir)
            .arg("--docdir")
            .arg(&docdir)
            .output()
            .expect("run install.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    install();
    let installed = std::fs::read(moddir.join("res_deviceuser.so")).unwrap();
    assert_eq!(
        installed,
        std::fs::read(&module).unwrap(),
        "the module is the built one"
    );
    for f in ["res_deviceuser.conf", "res_deviceuser.conf.sample"] {
        assert!(etcdir.join(f).exists(), "{f} not installed");
    }
    assert!(docdir.join("res_deviceuser-en_US.xml").exists());
    // An existing configuration is never overwritten.
    std::fs::write(etcdir.join("res_deviceuser.conf"), "; mine\n").unwrap();
    install();
    assert_eq!(
        std::fs::read_to_string(etcdir.join("res_deviceuser.conf")).unwrap(),
        "; mine\n"
    );
}

/// The sample configuration with `extra` appended, and the line `extra`'s first line is on.
fn sample_with(extra: &str) -> (String, usize) {
    let sample =
        std::fs::read_to_string(common::repo().join("res_deviceuser.conf.sample")).unwrap();
    let sample = if sample.ends_with('\n') {
        sample
    } else {
        format!("{sample}\n")
    };
    let first = sample.lines().count() + 1;
    (format!("{sample}{extra}"), first)
}

#[test]
fn users_without_a_password_are_warned_about_at_load_and_shown() {
    let (conf, first) = sample_with("[4199]\ntype = user\nfullname = Temp\n");
    let ast = Asterisk::builder("nopassword")
        .conf("res_deviceuser.conf", &conf)
        .start();
    assert!(module_running(&ast));
    let warnings: Vec<String> = ast
        .log()
        .lines()
        .filter(|l| l.contains(" WARNING[") && l.contains("without a password"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, for 4199 only: {warnings:#?}"
    );
    assert!(
        warnings[0].contains(&format!("res_deviceuser.conf line {first}: [4199] user without a password: cannot log in from a phone")),
        "{}",
        warnings[0]
    );
    let shown = ast.cli("deviceuser show user 4199");
    assert!(
        shown.contains(
            "Password:         none: cannot log in from a phone (UserLogin sets NOPASSWORD)\n"
        ),
        "{shown}"
    );
    let shown = ast.cli("deviceuser show user 4101");
    assert!(shown.contains("Password:         set\n"), "{shown}");
    assert!(!shown.contains("1234"), "the PIN is never shown: {shown}");
    assert!(ast
        .cli("deviceuser show user nobody")
        .contains("No such user \"nobody\""));
    assert!(ast
        .cli("deviceuser show user")
        .contains("Usage: deviceuser show user"));
}

#[test]
fn a_language_that_is_not_a_language_tag_is_refused_with_file_line_and_value() {
    let (conf, first) = sample_with("[4199]\ntype = user\npassword = 4711\nlanguage = xx yy\n");
    let line = first + 3;
    let ast = Asterisk::builder("badlanguage")
        .conf("res_deviceuser.conf", &conf)
        .start();
    assert!(!module_running(&ast), "the module must decline the file");
    let want = format!(
        "res_deviceuser.conf line {line}: [4199] language: \"xx yy\" is not a language tag"
    );
    assert!(
        ast.log()
            .lines()
            .any(|l| l.contains(" ERROR[") && l.contains(&want)),
        "no ERROR saying {want:?}:\n{}",
        ast.log()
    );
    // At reload the running configuration stays.
    let ast = Asterisk::start("badlanguage-reload");
    ast.write_conf("res_deviceuser.conf", &conf.replace("xx yy", "pt_BR"));
    ast.cli("module reload res_deviceuser.so");
    assert!(ast.cli("deviceuser show users").contains("4199"));
    ast.write_conf("res_deviceuser.conf", &conf.replace("xx yy", "../en"));
    let mark = ast.log_mark();
    ast.cli("module reload res_deviceuser.so");
    assert!(
        ast.wait_log_since(
            mark,
            "keeping the running configuration",
            Duration::from_secs(5)
        ),
        "{}",
        ast.log_since(mark)
    );
    let want = format!(
        "res_deviceuser.conf line {line}: [4199] language: \"../en\" is not a language tag"
    );
    assert!(
        ast.log_since(mark).contains(&want),
        "{}",
        ast.log_since(mark)
    );
    assert!(module_running(&ast));
    assert!(ast
        .cli("deviceuser show user 4199")
        .contains("Language:         pt_BR\n"));
}

#[test]
fn log_lines_name_the_module_once() {
    let ast = Asterisk::start("logprefix");
    let (conf, _) = sample_with("[4199]\ntype = user\npassword = 4711\ncolour = blue\n");
    ast.write_conf("res_deviceuser.conf", &conf);
    let mark = ast.log_mark();
    ast.cli("module reload res_deviceuser.so");
    assert!(ast.wait_log_since(mark, "unknown option \"colour\"", Duration::from_secs(5)));
    // full.log and the console (stdout.log: the format of `asterisk -r` and of the console
    // that scripts/run.sh opens) both name the module once.
    let console = ast.stdout_log();
    for (name, text) in [("full.log", ast.log_since(mark)), ("console", console)] {
        let line = text
            .lines()
            .find(|l| l.contains("unknown option \"colour\""))
            .unwrap_or_else(|| panic!("no warning on the {name}:\n{text}"));
        assert_eq!(line.matches("res_deviceuser:").count(), 1, "{name}: {line}");
    }
}
