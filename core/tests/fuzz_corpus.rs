//! The fuzz targets' bodies (fuzz/src/lib.rs) under plain `cargo test`: every committed
//! corpus file (fuzz/corpus/<target>/), mutations of them, and a few thousand pseudo-random
//! inputs from a fixed seed, so a property the fuzzer checks is also checked on every test run.

#[path = "../../fuzz/src/lib.rs"]
mod bodies;

use std::fs;
use std::path::PathBuf;

use proptest::prelude::*;

type Body = fn(&[u8]);

const TARGETS: [(&str, Body); 5] = [
    ("config", bodies::config),
    ("astdb_codec", bodies::astdb_codec),
    ("args", bodies::args),
    ("dtmf", bodies::dtmf),
    ("table_ops", bodies::table_ops),
];

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// xorshift64*: deterministic, no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn run(target: &str, body: Body, name: &str, data: &[u8]) {
    if std::panic::catch_unwind(|| body(data)).is_err() {
        panic!("fuzz target {target} fails on {name}: {data:?}");
    }
}

#[test]
fn committed_corpus_passes() {
    for (target, body) in TARGETS {
        let files = corpus(target);
        assert!(
            files.len() >= 5,
            "corpus of {target} has {} files",
            files.len()
        );
        for (name, data) in &files {
            run(target, body, name, data);
        }
    }
}

#[test]
fn mutated_corpus_passes() {
    let mut rng = Rng(0x5EED_0001);
    for (target, body) in TARGETS {
        for (name, data) in corpus(target) {
            for _ in 0..20 {
                let mut d = data.clone();
                for _ in 0..1 + rng.below(4) {
                    match rng.below(4) {
                        0 if !d.is_empty() => {
                            let i = rng.below(d.len());
                            d[i] = rng.next() as u8;
                        }
                        1 if !d.is_empty() => {
                            let i = rng.below(d.len());
                            d.remove(i);
                        }
                        2 => {
                            let i = rng.below(d.len() + 1);
                            let b = *b";[]=\n\\-#(!)+,/&\0\xff"
                                .get(rng.below(17))
                                .unwrap_or(&b'x');
                            d.insert(i, b);
                        }
                        _ => {
                            let i = rng.below(d.len() + 1);
                            let j = rng.below(d.len() + 1);
                            let (a, b) = (i.min(j), i.max(j));
                            let chunk = d[a..b].to_vec();
                            d.splice(b..b, chunk);
                        }
                    }
                }
                run(target, body, &format!("mutation of {name}"), &d);
            }
        }
    }
}

#[test]
fn random_bytes_pass() {
    let mut rng = Rng(0x5EED_0002);
    for (target, body) in TARGETS {
        for i in 0..2000 {
            let data = rng.bytes(if target == "table_ops" { 129 } else { 200 });
            run(target, body, &format!("random input {i}"), &data);
        }
    }
}

/// Random config files built from the grammar's pieces, so most of them get past the
/// parser and exercise the validator and the binding table.
#[test]
fn random_config_texts_pass() {
    let mut rng = Rng(0x5EED_0003);
    let names = [
        "general", "1000", "1001", "2010", "4101", "4102", "u", "d", "a b", "x/y", "", "tpl",
    ];
    let keys = [
        "type",
        "mode",
        "dial",
        "default_user",
        "password",
        "fullname",
        "language",
        "cid_number",
        "description",
        "multiple_logins",
        "allowed_numbers",
        "max_attempts",
        "max_login_time",
        "shift_end",
        "logout_on_unregister",
        "max_login_failures",
        "lockout_window",
        "lockout_time",
        "hint_context",
        "colour",
    ];
    let values = [
        "device",
        "user",
        "adhoc",
        "fixed",
        "PJSIP/1000",
        "pjsip/1000",
        "SIP/x",
        "nodial",
        "4101",
        "2010",
        "ghost",
        "1234",
        "yes",
        "no",
        "replace",
        "0",
        "11",
        "28800",
        "18:30",
        "24:00",
        "none",
        "112,911",
        "$6$x$y",
        "",
        "\u{1b}[31m",
        "\\;x",
    ];
    let seps = [" = ", "=", " => ", " += ", " "];
    let mut accepted = 0;
    for i in 0..3000 {
        let mut text = String::new();
        for _ in 0..rng.below(8) {
            text += &format!("[{}]", rng.pick(&names));
            match rng.below(6) {
                0 => text += "(!)",
                1 => text += &format!("({})", rng.pick(&names)),
                2 => text += "(+)",
                _ => {}
            }
            text += "\n";
            for _ in 0..rng.below(6) {
                let line = format!(
                    "{}{}{}",
                    rng.pick(&keys),
                    rng.pick(&seps),
                    rng.pick(&values)
                );
                text += &line;
                text += match rng.below(8) {
                    0 => " ; comment\n",
                    1 => "\r\n",
                    2 => " ;-- block --;\n",
                    _ => "\n",
                };
            }
        }
        let data = text.into_bytes();
        run(
            "config",
            bodies::config,
            &format!("random config {i}"),
            &data,
        );
        if deviceuser_core::text::parse("r.conf", &String::from_utf8_lossy(&data))
            .ok()
            .and_then(|r| deviceuser_core::Config::from_raw(&r).ok())
            .is_some()
        {
            accepted += 1;
        }
    }
    // The generator must reach the validator's success path, or it tests little.
    assert!(accepted > 100, "only {accepted} random configs were valid");
}

#[test]
fn table_configs_are_valid_and_differ() {
    let cfgs = bodies::table_configs();
    assert_eq!(cfgs.len(), 3);
    assert!(cfgs[0] != cfgs[1] && cfgs[1] != cfgs[2]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Operation sequences (login, logout, replace policy, DND, reconfigure, restore): the
    /// table's invariants, the AstDB write-through of every change, the encoding of the whole
    /// table and a restart from it (see `bodies::table_ops`).
    #[test]
    fn table_operations_keep_astdb_in_line(
        start in 0u8..3,
        ops in proptest::collection::vec((0u8..9, any::<u8>()), 1..60),
    ) {
        let mut data = vec![start];
        for (a, b) in ops {
            data.extend([a, b]);
        }
        bodies::table_ops(&data);
    }

    /// The AstDB encoding of any binding decodes back to it.
    #[test]
    fn any_binding_round_trips(
        user in "[^\u{0}]{1,20}",
        device in "[^/\u{0}]{1,20}",
        since in any::<u64>(),
    ) {
        let b = deviceuser_core::Binding::new(user, device, since);
        let key = deviceuser_core::astdb::binding_key(&b.device);
        let value = deviceuser_core::astdb::binding_value(&b);
        prop_assert_eq!(deviceuser_core::astdb::decode_binding(&key, &value), Ok(b));
    }
}
