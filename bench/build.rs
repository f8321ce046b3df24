//! Build script: records the compiler version for the benchmark reports.
//!
//! Records the version of the compiler building this crate, so that benchmark
//! reports can say which compiler built the code they measured.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return;
    };
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !version.is_empty() {
        println!("cargo:rustc-env=P1P2_RUSTC_VERSION={version}");
    }
}
