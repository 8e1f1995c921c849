//! The manual and the XML documentation held to the code: the values of `USERLOGINSTATUS`
//! and `USERLOGOUTSTATUS` and the prompts (`core/src/apps.rs`, which the applications play)
//! are the ones documented, and exist in the provisioned sound packs; the module speaks of
//! users, not agents; no logger configuration of the project writes DTMF; every CLI command
//! and AMI action of the entry table is documented; the README has what a new user needs
//! (the run folder, real phones, PINs in the logs) and leaves measured figures to `docs/`.
mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use deviceuser_core::apps::{self, LoginStatus, LogoutStatus, PROMPTS};

fn read(rel: &str) -> String {
    let p = common::repo().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn xml() -> String {
    read("documentation/res_deviceuser-en_US.xml")
}

/// `&amp;` as `&`, and so on: what an XML attribute or text says.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// The text between `start` (which must occur once) and the next `end` after it.
fn block<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    assert_eq!(text.matches(start).count(), 1, "{start} must occur once");
    let i = text.find(start).unwrap();
    let j = text[i..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end} after {start}"));
    &text[i..i + j]
}

/// The values of `attr="..."` of every `<tag ` in `text`, in order.
fn attrs(text: &str, tag: &str, attr: &str) -> Vec<String> {
    let open = format!("<{tag} ");
    let key = format!("{attr}=\"");
    text.match_indices(&open)
        .filter_map(|(i, _)| {
            let rest = &text[i..];
            let rest = &rest[..rest.find('>')?];
            let v = &rest[rest.find(&key)? + key.len()..];
            Some(unescape(&v[..v.find('"')?]))
        })
        .collect()
}

/// The `<literal>` texts of `text`.
fn literals(text: &str) -> Vec<String> {
    text.split("<literal>")
        .skip(1)
        .filter_map(|s| s.find("</literal>").map(|j| unescape(&s[..j])))
        .collect()
}

fn sounds(lang_dir: &str) -> PathBuf {
    common::asterisk_dir()
        .join("tree/usr/share/asterisk/sounds")
        .join(lang_dir)
}

/// The sound files (names without extension) of a provisioned language pack.
fn sound_names(lang_dir: &str) -> BTreeSet<String> {
    let dir = sounds(lang_dir);
    let names: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "no sound pack at {}: run scripts/test.sh (it provisions Asterisk): {e}",
                dir.display()
            )
        })
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            Some(name.split('.').next()?.to_string())
        })
        .collect();
    assert!(
        names.len() > 100,
        "{} holds {} sounds",
        dir.display(),
        names.len()
    );
    names
}

/// The files of every default prompt.
fn default_files() -> BTreeSet<String> {
    PROMPTS
        .iter()
        .flat_map(|p| apps::files(p.default))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_xml_documents_the_statuses_and_prompts_of_the_code() {
    let xml = xml();
    let login = block(&xml, "<variable name=\"USERLOGINSTATUS\">", "</variable>");
    let want: Vec<&str> = LoginStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(attrs(login, "value", "name"), want);
    let logout = block(&xml, "<variable name=\"USERLOGOUTSTATUS\">", "</variable>");
    let want: Vec<&str> = LogoutStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(attrs(logout, "value", "name"), want);

    // Each prompt is a documented option of [general] with the code's default.
    for p in PROMPTS {
        let decl = format!("<configOption name=\"{}\"", p.option);
        let opt = block(&xml, &decl, "</configOption>");
        assert_eq!(
            attrs(opt, "configOption", "default"),
            [p.default],
            "{}",
            p.option
        );
    }

    // UserLogin lists the prompts it plays, with their defaults; UserLogout its own.
    let user_login = block(&xml, "<application name=\"UserLogin\"", "</application>");
    let enums = block(user_login, "<enumlist>", "</enumlist>");
    let listed = attrs(enums, "enum", "name");
    let played: Vec<&str> = PROMPTS
        .iter()
        .filter(|p| !apps::played_by_logout(p))
        .map(|p| p.option)
        .collect();
    assert_eq!(listed, played);
    for p in PROMPTS.iter().filter(|p| !apps::played_by_logout(p)) {
        let item = block(enums, &format!("<enum name=\"{}\">", p.option), "</enum>");
        let named: Vec<String> = literals(item)
            .into_iter()
            .filter(|l| apps::prompt_problem(l).is_none())
            .collect();
        assert_eq!(named, [p.default], "{}", p.option);
    }
    let user_logout = block(&xml, "<application name=\"UserLogout\"", "</application>");
    let said = literals(user_logout);
    for p in [apps::LOGGED_OFF, apps::FIXED_LOGOUT] {
        assert!(said.iter().any(|l| l == p.option), "{said:?}");
        assert!(said.iter().any(|l| l == p.default), "{said:?}");
    }

    // No other sound file is named in the applications' documentation.
    let en = sound_names("en_US_f_Allison");
    let defaults = default_files();
    for text in [user_login, user_logout] {
        for lit in literals(text) {
            for f in apps::files(&lit) {
                assert!(
                    !en.contains(f) || defaults.contains(f),
                    "the documentation names the sound {f}, which the applications do not play"
                );
            }
        }
    }
}

#[test]
fn every_default_prompt_exists_in_the_provisioned_sound_packs() {
    for pack in ["en_US_f_Allison", "ru_RU_f_IvrvoiceRU"] {
        let names = sound_names(pack);
        for f in default_files() {
            assert!(names.contains(&f), "{f} is not in {pack}");
        }
    }
}

#[test]
fn the_readme_documents_the_statuses_and_prompts_of_the_code() {
    let readme = read("README.md");
    let login = block(&readme, "### UserLogin(", "### UserLogout(");
    let rows: Vec<&str> = login
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .filter(|c| !c.is_empty() && c.chars().all(|c| c.is_ascii_uppercase()))
        .collect();
    let want: Vec<&str> = LoginStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(rows, want, "USERLOGINSTATUS table");

    let logout = block(&readme, "### UserLogout(", "### Functions");
    let sentence = &logout[logout.find("Sets `USERLOGOUTSTATUS`").unwrap()..];
    let sentence = &sentence[..sentence.find(".\n").unwrap()];
    let listed: Vec<&str> = sentence
        .split('`')
        .skip(3)
        .step_by(2)
        .filter(|w| w.chars().all(|c| c.is_ascii_uppercase()))
        .collect();
    let want: Vec<&str> = LogoutStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(listed, want, "USERLOGOUTSTATUS values");

    // The prompts table: option, default and what the stock file says, as in the code.
    for p in PROMPTS {
        let row = format!(
            "| `{}` | `{}` | {} | \"{}\" |",
            p.option, p.default, "", p.says
        );
        let (head, tail) = row.split_once(" |  | ").unwrap();
        let line = login
            .lines()
            .find(|l| l.starts_with(&format!("{head} |")))
            .unwrap_or_else(|| panic!("no README row for {}", p.option));
        assert!(line.ends_with(tail), "{line}\nshould end with {tail}");
    }
    for p in [apps::LOGGED_OFF, apps::FIXED_LOGOUT] {
        assert!(
            logout.contains(&format!("`{}`", p.option)),
            "UserLogout names its prompt {}",
            p.option
        );
    }
}

/// The string literals of a Rust source, without comments.
fn string_literals(src: &str) -> Vec<String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'\'' => {
                // A char literal ('x', '\n', '"') or a lifetime ('a).
                if b.get(i + 1) == Some(&b'\\') {
                    i += 2;
                    while i < b.len() && b[i] != b'\'' {
                        i += 1;
                    }
                    i += 1;
                } else if b.get(i + 2) == Some(&b'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let start = j + 1;
                let end = src[start..].find(&close).map_or(b.len(), |k| start + k);
                out.push(src[start..end].to_string());
                i = end + close.len();
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                out.push(src[start..j.min(b.len())].to_string());
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module's own sources, where it speaks: `src/` (log lines, CLI and AMI text) and
/// `core/src/` (CLI tables, config messages), except the prompt list itself.
fn module_sources() -> Vec<PathBuf> {
    let root = common::repo();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("core/src"), &mut files);
    files.retain(|p| !p.ends_with("core/src/apps.rs") && !p.starts_with(root.join("src/sys")));
    assert!(files.len() > 20, "{files:?}");
    files
}

#[test]
fn string_literals_are_found() {
    let src = r##"let a = "x\"y"; // "comment"
        let c = '"'; let d = r#"raw "q""#; /* "block" */ let e = c"cstr"; fn f<'a>() {}"##;
    assert_eq!(string_literals(src), ["x\\\"y", "raw \"q\"", "cstr"]);
}

#[test]
fn no_sound_file_is_named_in_the_module_source() {
    let en = sound_names("en_US_f_Allison");
    for file in module_sources() {
        for lit in string_literals(&fs::read_to_string(&file).unwrap()) {
            let named: Vec<&str> = apps::files(&lit)
                .filter(|f| f.contains('-') && en.contains(*f))
                .collect();
            assert!(
                named.is_empty(),
                "{} names the sound {named:?}: prompts come from core/src/apps.rs",
                file.display()
            );
        }
    }
}

#[test]
fn the_module_speaks_of_users_not_agents() {
    let prompt_files = default_files();
    let mut seen = 0;
    for file in module_sources() {
        let text = fs::read_to_string(&file).unwrap();
        for lit in string_literals(&text) {
            seen += 1;
            let lower = lit.to_ascii_lowercase();
            if !lower.contains("agent") || prompt_files.contains(lit.as_str()) {
                continue;
            }
            panic!(
                "{} says \"agent\": {lit:?} (the module's word is user)",
                file.display()
            );
        }
    }
    assert!(seen > 200, "only {seen} literals read");
    // In the documentation, "agent" is only a prompt file, Asterisk's permission class,
    // app_agent_pool, or a quote of what a stock recording says.
    for (name, text) in [("README.md", read("README.md")), ("XML", xml())] {
        let lower = text.to_ascii_lowercase();
        for (i, _) in lower.match_indices("agent") {
            let line_start = text[..i].rfind('\n').map_or(0, |j| j + 1);
            let line_end = text[i..].find('\n').map_or(text.len(), |j| i + j);
            let line = &text[line_start..line_end];
            let quoted = text[line_start..i].matches('"').count() % 2 == 1;
            let around = |before: &str, after: &str| {
                text[..i].ends_with(before) && text[i + 5..].starts_with(after)
            };
            let ok = quoted
                || text[i..].starts_with("agent-")
                || around("app_", "_pool")
                || around("EVENT_FLAG_", "")
                || around("`", "`")
                || around("<literal>", "</literal>");
            assert!(ok, "{name} speaks of agents: {line}");
        }
    }
}

#[test]
fn no_logger_configuration_of_the_project_logs_dtmf() {
    let root = common::repo();
    let mut files = Vec::new();
    rust_files(&root.join("tests"), &mut files);
    rust_files(&root.join("bench/src"), &mut files);
    for dir in ["scripts", "samples"] {
        for e in fs::read_dir(root.join(dir)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    // This file names DTMF in its checks, and run_folder.rs writes such a logger.conf on
    // purpose (to see mkrun call it out).
    files.retain(|p| !p.ends_with("tests/manual.rs") && !p.ends_with("tests/run_folder.rs"));
    let mut channels = 0;
    for f in &files {
        let text = fs::read_to_string(f).unwrap_or_default();
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with(';') || code.starts_with("//") || code.starts_with('#') {
                continue;
            }
            // A logger channel: `full.log => notice,warning,...`.
            let Some((_, levels)) = code.split_once("=>") else {
                continue;
            };
            let levels = levels.to_ascii_lowercase();
            if !(levels.contains("notice") || levels.contains("verbose")) {
                continue;
            }
            channels += 1;
            assert!(
                !levels.contains("dtmf"),
                "{} logs DTMF (PIN digits): {line}",
                f.display()
            );
        }
    }
    // scripts/asterisk.sh (3), tests/hotdesk_common and tests/reliability_unload.
    assert!(channels >= 5, "only {channels} logger channels found");
}

#[test]
fn every_cli_command_and_ami_action_is_documented() {
    let entry = read("src/entry.rs");
    let readme = read("README.md");
    let xml = xml();
    let commands: Vec<&str> = entry
        .split("c\"deviceuser ")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert!(commands.len() >= 10, "{commands:?}");
    for c in &commands {
        assert!(
            readme.contains(&format!("`deviceuser {c}")),
            "README does not document `deviceuser {c}`"
        );
    }
    for c in ["show user", "unlock user"] {
        assert!(commands.contains(&c), "no CLI command deviceuser {c}");
    }
    let actions: Vec<&str> = entry
        .split("manager_action!(instance, c\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert!(actions.contains(&"DeviceUserUnlock"), "{actions:?}");
    for a in &actions {
        assert!(
            readme.contains(&format!("| `{a}` |")),
            "README does not document {a}"
        );
        assert!(
            xml.contains(&format!("<manager name=\"{a}\"")),
            "the XML does not document {a}"
        );
    }
}

#[test]
fn the_readme_tells_a_new_user_what_the_run_folder_does() {
    let readme = read("README.md");
    let section = |title: &str| -> String {
        let start = readme
            .find(&format!("\n## {title}\n"))
            .unwrap_or_else(|| panic!("README has no section \"{title}\""));
        let rest = &readme[start + 4..];
        rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
    };
    let run = section("The run folder");
    for needle in [
        "These files are yours",
        "only when it is missing",
        "asterisk.conf",
        "pjsip_transport.conf",
        "manager_general.conf",
        "scripts/cli.sh",
        "core restart now",
        "scripts/asterisk.sh stop run/default",
        "no ERROR",
        "noload",
        "rundir/",
    ] {
        assert!(run.contains(needle), "The run folder: no {needle:?}");
    }
    assert!(readme.contains("The first run takes several minutes"));
    let phones = section("Connecting real phones");
    for needle in [
        "RUN_BIND=0.0.0.0",
        "Passwords first",
        "Firewall",
        "pjsip show contacts",
        "NAT",
    ] {
        assert!(
            phones.contains(needle),
            "Connecting real phones: no {needle:?}"
        );
    }
    let pins = section("PINs and the logs");
    for needle in [
        "`dtmf`",
        "logger.conf",
        "events = ALL",
        "`DTMF` event",
        "core set debug",
        "DTMFEnd",
    ] {
        assert!(pins.contains(needle), "PINs and the logs: no {needle:?}");
    }
    // The run.sh header says the same about the folder and RUN_BIND.
    let run_sh = read("scripts/run.sh");
    assert!(run_sh.contains("RUN_BIND") && run_sh.contains("never overwritten"));
}

#[test]
fn the_readme_tells_how_to_turn_the_console_on_and_put_it_behind_tls() {
    let readme = read("README.md");
    let start = readme
        .find("\n## Administration console (web)\n")
        .expect("README has no section on the administration console");
    let rest = &readme[start + 4..];
    let console = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    for needle in [
        "type = console_user",
        "role = admin",
        "role = supervisor",
        "mkpasswd -m sha-512",
        "http.conf",
        "tlsenable = yes",
        "tlscertfile",
        "tlsprivatekey",
        "`Secure`",
        "If-Match",
        "`401`",
        "`429`",
        "X-CSRF-Token",
        "docs/console-openapi.json",
    ] {
        assert!(
            console.contains(needle),
            "the console section: no {needle:?}"
        );
    }
    // The screenshot it shows is in the repository.
    let shot = "docs/console-board.png";
    assert!(
        console.contains(&format!("]({shot})")),
        "no screenshot linked"
    );
    assert!(
        std::fs::metadata(common::repo().join(shot)).is_ok_and(|m| m.len() > 10_000),
        "{shot} is missing"
    );
}

#[test]
fn measured_figures_live_in_docs() {
    let readme = read("README.md");
    for figure in ["pairs/s", "µs", "p99", "×", "MB once", " ms "] {
        assert!(
            !readme.contains(figure),
            "README holds a measured figure ({figure:?}): it belongs in docs/"
        );
    }
    for page in ["docs/benchmarks.md", "docs/reliability.md", "docs/tests.md"] {
        assert!(
            readme.contains(&format!("]({page})")),
            "README does not link {page}"
        );
        assert!(common::repo().join(page).exists(), "{page} is missing");
    }
    for (page, result) in [
        ("docs/benchmarks.md", "bench/results.md"),
        ("docs/reliability.md", "reliability/results.md"),
    ] {
        let text = read(page);
        let marker =
            format!("<!-- Below: a copy of {result}, written by scripts/docs.sh. Edit above this line. -->\n\n");
        let copy = &text[text
            .find(&marker)
            .unwrap_or_else(|| panic!("{page} has no copy of {result}"))
            + marker.len()..];
        assert!(
            copy == read(result),
            "{page} holds a stale copy of {result}: run scripts/docs.sh"
        );
    }
}
