//! Link layout of the release binary (issue 10: resident memory beside a run).
//!
//! Most of the console's resident memory is its own code: the kernel maps an executable's
//! pages 64 KiB at a time around each page a program touches, so the ~4 MB of functions a
//! console runs, spread over 15 MB of code, kept ~12 MB resident. Two linker options cut
//! that without changing a line of code:
//!
//! - `--symbol-ordering-file assets/link-order.txt` puts the functions a console runs (at
//!   start, beside a run and on an empty folder, recorded by `benches/link-order.sh` under
//!   callgrind) first and together. A symbol the file names that the build lacks (another
//!   toolchain mangles differently) is skipped in silence: the binary is the same program,
//!   only laid out as before.
//! - `-z pack-relative-relocs` stores the 25,000 relative relocations of the position-
//!   independent binary as a compact bitmap (DT_RELR) instead of 600 KB that the loader
//!   reads at every start. glibc reads DT_RELR from 2.36 on, so it is used only when the
//!   glibc this build runs on is that new.
//!
//! Both are release-only, for the `opsconsole` binary on x86_64 Linux, and each is first
//! tried on an empty program with the same compiler, target and flags: a linker that does
//! not know an option (GNU ld has no `--symbol-ordering-file`; rust-lld, the default since
//! Rust 1.90, and mold do) leaves the link as cargo makes it, as does
//! `OPSCONSOLE_LINK_LAYOUT=off`.
use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=assets/link-order.txt");
    println!("cargo::rerun-if-env-changed=OPSCONSOLE_LINK_LAYOUT");
    // Another linker is tried again (the options are probed with the one configured).
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    println!("cargo::rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let var = |k: &str| env::var(k).unwrap_or_default();
    // The five C math functions src/libm_shim.rs defines are kept out of the binary's
    // dynamic symbols (the linker would export them, because libm, on its command line,
    // refers to them): every build, as the shim is in every build.
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" {
        let map = Path::new(&var("CARGO_MANIFEST_DIR")).join("assets/libm-shim.map");
        println!("cargo::rerun-if-changed=assets/libm-shim.map");
        println!("cargo::rustc-link-arg-bin=opsconsole=-Wl,--version-script={}", map.display());
    }
    if var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        || var("OPSCONSOLE_LINK_LAYOUT") == "off"
    {
        return;
    }
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join("assets/link-order.txt");
    let ordering = [format!("-Wl,--symbol-ordering-file={}", order.display()), "-Wl,--no-warn-symbol-ordering".into()];
    if order.is_file() && links_with(&ordering) {
        for arg in &ordering {
            println!("cargo::rustc-link-arg-bin=opsconsole={arg}");
        }
    }
    let relr = ["-Wl,-z,pack-relative-relocs".to_string()];
    if glibc_reads_relr() && links_with(&relr) {
        println!("cargo::rustc-link-arg-bin=opsconsole={}", relr[0]);
    }
}

/// Whether an empty program links with these extra linker arguments, built by the same
/// compiler for the same target with the same flags as the crate.
fn links_with(args: &[String]) -> bool {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let src = out.join("link_probe.rs");
    if std::fs::write(&src, "fn main() {}\n").is_err() {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let mut cmd = Command::new(rustc);
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    cmd.arg("--target").arg(env::var("TARGET").unwrap_or_default());
    // A linker set in cargo's config or CARGO_TARGET_<triple>_LINKER reaches the crate's
    // rustc as `-C linker`, not through the flags.
    if let Some(linker) = env::var_os("RUSTC_LINKER") {
        cmd.arg("-C").arg({
            let mut a = std::ffi::OsString::from("linker=");
            a.push(linker);
            a
        });
    }
    cmd.arg("--crate-type=bin").arg("-o").arg(out.join("link_probe")).arg(&src);
    for a in args {
        cmd.arg("-C").arg(format!("link-arg={a}"));
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd.status().is_ok_and(|s| s.success())
}

/// glibc 2.36 and later apply DT_RELR relocations.
fn glibc_reads_relr() -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else { return false };
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace().nth(1).unwrap_or("").split('.');
    let major: u32 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (major, minor) >= (2, 36)
}
