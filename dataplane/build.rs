//! Compiles the XDP program of the afxdp backend with clang (feature `afxdp`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_AFXDP").is_none() {
        return;
    }
    let src = "src/backend/afxdp/redirect.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("redirect.bpf.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-c", src, "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!("running {clang} for the XDP program failed ({e}): install clang or build without feature afxdp")
        });
    assert!(status.success(), "{clang} failed to compile {src}");
}
