//! Generates bindings over Debian's DPDK 22.11 (`pkg-config libdpdk`) and
//! compiles the C shim for DPDK's static inline functions.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn pkg_config(arg: &str) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args([arg, "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("running pkg-config {arg} libdpdk: {e} (install pkg-config)"));
    if !out.status.success() {
        panic!(
            "pkg-config {arg} libdpdk failed: {} (apt install libdpdk-dev)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let cflags = pkg_config("--cflags");
    let libs = pkg_config("--libs");

    // The C shim: DPDK's rx/tx burst and mbuf helpers are static inline.
    let mut build = cc::Build::new();
    build
        .file("shim/shim.c")
        .include("shim")
        .opt_level(3)
        .warnings(false);
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("tarte_dpdk_shim");

    // Dynamic linking against every DPDK library that pkg-config names. EAL
    // then loads the PMDs (net_af_xdp, net_af_packet, net_null, mempool
    // drivers, ...) by itself from Debian's plugin directory. `--no-as-needed`
    // keeps libraries we reference no symbol of (their constructors register
    // drivers and buses) on the link line of our own test binaries.
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    for lib in &libs {
        if let Some(name) = lib.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={name}");
        } else if let Some(dir) = lib.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        }
    }

    let builder = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(cflags.iter())
        .clang_arg("-Ishim")
        // Keep it small: items declared in the headers we need (and what
        // they reference), not all of DPDK that those headers include.
        .allowlist_file(r".*/shim\.h")
        .allowlist_file(r".*/rte_(eal|ethdev|mbuf|mbuf_core|mbuf_ptype|mempool|lcore|errno|ether|build_config|config)\.h")
        .derive_debug(false)
        .wrap_unsafe_ops(true)
        .derive_default(true)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .formatter(bindgen::Formatter::None)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    let bindings = builder.generate().expect("bindgen over DPDK headers");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR set by cargo"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs");
}
