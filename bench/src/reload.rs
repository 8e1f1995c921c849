//! `dialplan reload` with the module's users, against the same PBX without the module.
//!
//! Each variant is one instance: the same `extensions.conf` (a small dialplan of its own:
//! internal calls by pattern, a voicemail and a feature context), with or without the module
//! and its 10,000 users, and the hints each way of showing users' states puts in the dialplan.
//! `dialplan reload` is timed (the CLI returns once the new dialplan is in place; the dialplan
//! is locked meanwhile) a few times per instance; the median counts.
//!
//! Asterisk keeps hints registered by others than `pbx_config` (the module's) by copying them
//! into the new dialplan, and each hint it adds or removes scans every hint it has
//! (`ast_add_hint`, `ast_remove_hint` in `main/pbx.c`): the cost grows with the square of the
//! number of hints, whoever owns them. With `hint_context` the module registers one pattern
//! hint per length of the numeric ids and a hint of their own for the users logged in (or in
//! DND), so the variants differ by how many users are bound, and by the hints the PBX itself
//! holds.
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::start_instance;
use deviceuser_kit::ami::{act, Ami};

type Res<T> = Result<T, String>;

/// Configured users (and devices `PJSIP/d<n>`).
pub const USERS: usize = 10_000;
/// `dialplan reload`s timed per instance: many where a reload takes a millisecond or less
/// (its median is then steady against the machine's noise), few where it takes minutes.
pub const RELOADS: usize = 25;
pub const RELOADS_LONG: usize = 3;
const CONTEXT: &str = "users";

/// How the users' states reach the dialplan in a variant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Hints {
    /// The module not loaded, no hints: the PBX without the module.
    None,
    /// The module not loaded, a hint for each of `n` users on their phone
    /// (`exten => <user>,hint,PJSIP/d<n>`), as a PBX without hot-desking shows its extensions.
    StaticPhones(usize),
    /// The module loaded, no hints of its own.
    ModuleNoHints,
    /// The module loaded with `hint_context`, its users bound at load to fixed devices for the
    /// first `n` of them: the pattern hint, plus a hint of their own for the `n` bound users.
    HintContext(usize),
    /// The module loaded, no `hint_context`; the README's pattern hint, which Asterisk turns
    /// into a hint per user when a phone subscribes (here: `n` users asked with the AMI
    /// `ExtensionState` action, which makes it too).
    Pattern(usize),
}

impl Hints {
    pub fn name(self) -> String {
        match self {
            Hints::None => "without the module, no hints".into(),
            Hints::StaticPhones(1) => format!(
                "without the module, one hint on a user's phone in extensions.conf (`{},hint,PJSIP/d1`)",
                user(1)
            ),
            Hints::StaticPhones(n) => format!(
                "without the module, {n} hints on the users' phones in extensions.conf (`<user>,hint,PJSIP/d<n>`)"
            ),
            Hints::ModuleNoHints => format!("module, {USERS} users, no hints"),
            Hints::HintContext(0) => {
                format!("module, {USERS} users, `hint_context`, none logged in")
            }
            Hints::HintContext(n) => format!(
                "module, {USERS} users, `hint_context`, {n} of them logged in (fixed devices)"
            ),
            Hints::Pattern(n) => format!(
                "module, {USERS} users, the pattern hint `_1XXXXX,hint,DeviceUser:${{EXTEN}}`, {n} users asked (`ExtensionState`)"
            ),
        }
    }

    /// How many reloads of this variant are timed.
    pub fn reloads(self) -> usize {
        match self {
            Hints::StaticPhones(n) | Hints::HintContext(n) if n >= USERS => RELOADS_LONG,
            _ => RELOADS,
        }
    }

    fn module(self) -> bool {
        !matches!(self, Hints::None | Hints::StaticPhones(_))
    }
}

fn user(n: usize) -> String {
    (100_000 + n).to_string()
}

/// `USERS` users on devices `PJSIP/d<n>`; the first `bound` devices fixed to their user.
fn deviceuser_conf(hint_context: bool, bound: usize) -> String {
    let mut s = String::from("[general]\n");
    if hint_context {
        let _ = writeln!(s, "hint_context = {CONTEXT}");
    }
    for n in 1..=USERS {
        let _ = write!(s, "\n[d{n}]\ntype = device\ndial = PJSIP/d{n}\n");
        if n <= bound {
            let _ = write!(s, "mode = fixed\ndefault_user = {}\n", user(n));
        }
        let _ = write!(s, "\n[{}]\ntype = user\npassword = 1234\n", user(n));
    }
    s
}

fn extensions_conf(h: Hints) -> String {
    let mut s = String::from(
        "[general]\nstatic = yes\nwriteprotect = yes\n\n\
         [from-internal]\n\
         exten => _1XXXXX,1,Set(phones=${DEVICEUSER_DIAL(${EXTEN})})\n\
          same => n,GotoIf($[\"${phones}\" = \"\"]?vm)\n\
          same => n,Dial(${phones},30)\n\
          same => n(vm),VoiceMail(${EXTEN}@default,u)\n\
          same => n,Hangup()\n\
         exten => *11,1,UserLogin()\n\
         exten => *12,1,UserLogout()\n\
         exten => *97,1,VoiceMailMain(${CALLERID(num)}@default)\n\
         include => features\n\n\
         [features]\n\
         exten => *60,1,SayUnixTime()\n\
         exten => *43,1,Echo()\n",
    );
    let _ = write!(s, "\n[{CONTEXT}]\n");
    match h {
        Hints::StaticPhones(k) => {
            for n in 1..=k {
                let _ = writeln!(s, "exten => {},hint,PJSIP/d{n}", user(n));
            }
        }
        Hints::Pattern(_) => {
            s.push_str("exten => _1XXXXX,hint,DeviceUser:${EXTEN}\n");
        }
        _ => s.push_str("exten => s,1,NoOp()\n"),
    }
    s
}

pub struct Variant {
    pub hints: Hints,
    pub reloads: Vec<Duration>,
    /// Hints `core show hints` counted before the last reload and after it.
    pub hints_before: usize,
    pub hints_after: usize,
}

impl Variant {
    pub fn median(&self) -> Duration {
        let mut v = self.reloads.clone();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }
}

fn dialplan_reload(ami: &mut Ami) -> Res<Duration> {
    let t = Instant::now();
    let out = ami.try_command("dialplan reload")?;
    let d = t.elapsed();
    if !out.contains("Dialplan reloaded") {
        return Err(format!("dialplan reload: {out}"));
    }
    Ok(d)
}

fn hint_count(ami: &mut Ami) -> Res<usize> {
    let out = ami.try_command("core show hints")?;
    // The last line: "N hints registered".
    Ok(out
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_suffix("hints registered"))
        .and_then(|n| n.trim().trim_start_matches('-').trim().parse().ok())
        .unwrap_or(0))
}

pub fn variant(h: Hints) -> Res<Variant> {
    eprintln!("[bench] dialplan reload: {}", h.name());
    let (hint_context, bound) = match h {
        Hints::HintContext(n) => (true, n),
        _ => (false, 0),
    };
    std::env::set_var("DEVICEUSER_BOOT_TIMEOUT", "600");
    let mut inst = start_instance(
        "reload",
        vec![
            ("res_deviceuser.conf", deviceuser_conf(hint_context, bound)),
            ("extensions.conf", extensions_conf(h)),
        ],
        !h.module(),
    )?;
    let mut ami = crate::driver_session(inst.ami_port)?;
    // 10,000 hints take minutes per `dialplan reload` on a busy 2-core machine.
    ami.timeout = Duration::from_secs(600);
    inst.settle();
    let mut before = 0;
    let mut reloads = Vec::new();
    for _ in 0..h.reloads() {
        // Hints Asterisk made from the pattern for `ExtensionState` have no watchers: a reload
        // drops them, so they are asked for again before each (phones' subscriptions would
        // keep them).
        if let Hints::Pattern(n) = h {
            let asks: Vec<_> = (1..=n)
                .map(|k| {
                    act(&[
                        ("Action", "ExtensionState"),
                        ("Exten", &user(k)),
                        ("Context", CONTEXT),
                    ])
                })
                .collect();
            let b = ami.pipeline(&asks)?;
            if b.failed > 0 {
                return Err(format!(
                    "ExtensionState: {} failed ({:?})",
                    b.failed, b.first_failure
                ));
            }
        }
        inst.settle();
        before = hint_count(&mut ami)?;
        reloads.push(dialplan_reload(&mut ami)?);
    }
    let hints_after = hint_count(&mut ami)?;
    eprintln!(
        "[bench]   hints {before} → {hints_after}; dialplan reload {:?}",
        reloads
    );
    drop(ami);
    inst.stop();
    Ok(Variant {
        hints: h,
        reloads,
        hints_before: before,
        hints_after,
    })
}

/// The variants, in the order they run. Hints in the PBX's own `extensions.conf` for
/// comparison: Asterisk's reload cost grows with the square of the hints it holds, so the
/// variants with 10,000 take minutes on a busy 2-core machine.
pub fn variants() -> Vec<Hints> {
    vec![
        Hints::None,
        Hints::StaticPhones(1),
        Hints::ModuleNoHints,
        Hints::HintContext(0),
        Hints::HintContext(1000),
        Hints::Pattern(0),
        Hints::Pattern(1000),
        Hints::StaticPhones(1000),
        Hints::HintContext(USERS),
        Hints::StaticPhones(USERS),
    ]
}
