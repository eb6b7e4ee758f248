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
//! Both are release-only, for the `opsconsole` binary on x86_64 Linux with the toolchain's
//! own linker (rust-lld, the default since Rust 1.90); a configured linker, or
//! `OPSCONSOLE_LINK_LAYOUT=off`, leaves the link as cargo makes it.
use std::env;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=assets/link-order.txt");
    println!("cargo::rerun-if-env-changed=OPSCONSOLE_LINK_LAYOUT");
    println!("cargo::rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let var = |k: &str| env::var(k).unwrap_or_default();
    if var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        || var("OPSCONSOLE_LINK_LAYOUT") == "off"
    {
        return;
    }
    // Another linker than the toolchain's own may not know these options.
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    if flags.contains("linker")
        || flags.contains("link-self-contained")
        || !var("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_empty()
    {
        return;
    }
    if !rustc_links_with_lld() {
        return;
    }
    let order = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("assets/link-order.txt");
    if order.is_file() {
        println!("cargo::rustc-link-arg-bin=opsconsole=-Wl,--symbol-ordering-file={}", order.display());
        println!("cargo::rustc-link-arg-bin=opsconsole=-Wl,--no-warn-symbol-ordering");
    }
    if glibc_reads_relr() {
        println!("cargo::rustc-link-arg-bin=opsconsole=-Wl,-z,pack-relative-relocs");
    }
}

/// rustc 1.90 and later link x86_64 Linux programs with the bundled rust-lld.
fn rustc_links_with_lld() -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-V").output() else { return false };
    let text = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let mut parts = text.split_whitespace().nth(1).unwrap_or("").split(['.', '-']);
    let major: u32 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (major, minor) >= (1, 90)
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
