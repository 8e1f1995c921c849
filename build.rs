//! Builds the Asterisk side of res_deviceuser:
//! - finds the Asterisk headers (`ASTERISK_INCLUDE_DIR`, else the provisioned ones, else /usr/include);
//! - runs bindgen over `asterisk-headers/wrapper.h` into `OUT_DIR/bindings.rs`;
//! - compiles the C shim (module info) with `cc`, linked whole-archive
//!   so its constructor (`ast_module_register`) is kept;
//! - writes `include/res_deviceuser.h` with cbindgen: the Rust functions the shim calls.
use std::env;
use std::path::{Path, PathBuf};

const DEFINES: &[(&str, &str)] = &[
    ("_GNU_SOURCE", "1"),
    ("_REENTRANT", "1"),
    ("AST_MODULE", "\"res_deviceuser\""),
    ("AST_MODULE_SELF_SYM", "__internal_res_deviceuser_self"),
];

fn asterisk_include_dir(root: &Path) -> PathBuf {
    println!("cargo:rerun-if-env-changed=ASTERISK_INCLUDE_DIR");
    if let Some(dir) = env::var_os("ASTERISK_INCLUDE_DIR") {
        let dir = PathBuf::from(dir);
        if !dir.join("asterisk.h").exists() {
            panic!(
                "ASTERISK_INCLUDE_DIR={} has no asterisk.h (it must hold asterisk.h and asterisk/)",
                dir.display()
            );
        }
        return dir;
    }
    for dir in [
        root.join(".asterisk/include"),
        PathBuf::from("/usr/include"),
    ] {
        if dir.join("asterisk.h").exists() {
            return dir;
        }
    }
    panic!(
        "Asterisk headers not found: run scripts/provision.sh, install asterisk-dev, \
         or set ASTERISK_INCLUDE_DIR to a folder holding asterisk.h"
    );
}

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let include = asterisk_include_dir(&root);
    let include = include.canonicalize().unwrap_or(include);
    let wrapper = root.join("asterisk-headers/wrapper.h");
    let shim = root.join("src/shim/res_deviceuser_shim.c");
    let header = root.join("include/res_deviceuser.h");
    for p in [&wrapper, &shim] {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    println!("cargo:rerun-if-changed=src/entry.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    // cbindgen first: the shim includes the header it writes.
    let generated = cbindgen::Builder::new()
        .with_config(
            cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml"),
        )
        .with_src(root.join("src/entry.rs"))
        .generate()
        .expect("cbindgen failed on src/entry.rs");
    // Only rewrite when the text changed, so the committed header's mtime stays put.
    let mut text = Vec::new();
    generated.write(&mut text);
    if std::fs::read(&header).ok().as_deref() != Some(&text[..]) {
        std::fs::write(&header, &text).expect("write include/res_deviceuser.h");
    }

    let mut clang_args = vec![format!("-I{}", include.display()), "-fblocks".to_string()];
    clang_args.extend(DEFINES.iter().map(|(k, v)| format!("-D{k}={v}")));
    let bindings = bindgen::Builder::default()
        .header(wrapper.to_str().unwrap())
        .clang_args(&clang_args)
        .allowlist_function(
            "ast_.*|_ast_.*|__ast_.*|__ao2_.*|ao2_.*|stasis_.*|__stasis_.*|astman_.*|pbx_.*",
        )
        .allowlist_type("ast_.*|__ast_.*|ao2_.*|stasis_.*|AST_.*|prometheus_callback")
        .allowlist_var(
            "ast_.*|__ast_.*|AST_.*|__LOG_.*|CONFIG_FLAG_.*|RESULT_.*|CLI_.*|EVENT_FLAG_.*",
        )
        .prepend_enum_name(true)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .generate_cstr(true)
        .layout_tests(false)
        .derive_default(true)
        .generate()
        .expect("bindgen failed on asterisk-headers/wrapper.h");
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");

    let mut cc = cc::Build::new();
    cc.file(&shim)
        .include(&include)
        .include(root.join("include"))
        .flag("-fPIC")
        .flag_if_supported("-Wno-old-style-declaration")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(true);
    for (k, v) in DEFINES {
        cc.define(k, Some(*v));
    }
    cc.link_lib_modifier("+whole-archive");
    cc.compile("res_deviceuser_shim");
}
