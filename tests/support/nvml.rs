//! Test support: the NVML stand-in (`nvml_stub.c`) compiled into a temp dir as
//! `libnvidia-ml.so.1`, and fixture files for it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// Serializes setting NVML_STUB_FIXTURE and opening NVML: the variable is process-wide,
/// and the stub reads it in nvmlInit_v2.
static ENV_LOCK: Mutex<()> = Mutex::new(());

pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;
pub const L4_TOTAL: u64 = 23034 * MIB;
pub const A100_80_TOTAL: u64 = 81920 * MIB;

/// A compiled stand-in library and its fixture, in one temp dir (each test its own copy,
/// so each has its own state inside the process).
pub struct StubNvml {
    pub dir: tempfile::TempDir,
    pub lib: PathBuf,
    pub fixture: PathBuf,
}

impl StubNvml {
    /// Compile the stub with the system C compiler (`$CC`, else `cc`).
    pub fn build() -> Self {
        Self::build_with(&[])
    }

    /// Compile with extra compiler flags (`-DSTUB_NO_PROCESSES_V3`).
    pub fn build_with(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = dir.path().join("libnvidia-ml.so.1");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/nvml_stub.c");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let out = Command::new(&cc)
            .args(["-shared", "-fPIC", "-O2"])
            .args(flags)
            .arg("-o")
            .arg(&lib)
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
        assert!(out.status.success(), "compiling the NVML stub failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let fixture = dir.path().join("fixture.txt");
        Self { dir, lib, fixture }
    }

    /// Replace the fixture. The stub notices the change (size or mtime) on the next sample.
    pub fn write(&self, text: &str) {
        // File times move in clock ticks of a few ms, so two writes may share an mtime:
        // make the size differ from the previous fixture's.
        let mut text = text.to_string();
        let previous = std::fs::metadata(&self.fixture).map(|m| m.len()).ok();
        if previous == Some(text.len() as u64) {
            text.push_str("#\n");
        }
        // Write beside and rename, so the stub never reads half a file.
        let tmp = self.dir.path().join("fixture.tmp");
        std::fs::write(&tmp, &text).expect("write fixture");
        std::fs::rename(&tmp, &self.fixture).expect("rename fixture");
    }

    /// Run `f` (which should open NVML, e.g. take the first sample) with NVML_STUB_FIXTURE
    /// pointing at this fixture.
    pub fn with_env<T>(&self, f: impl FnOnce() -> T) -> T {
        let _guard: MutexGuard<'_, ()> = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: every test that sets or reads this variable holds ENV_LOCK, and Rust's
        // own environment readers take std's environment lock.
        unsafe { std::env::set_var("NVML_STUB_FIXTURE", &self.fixture) };
        f()
    }
}

/// One `gpu` fixture line.
pub fn gpu_line(name: &str, total: u64, used: u64, rest: &str) -> String {
    format!("gpu total={total} used={used} {rest} name={name}\n")
}

/// One `proc` fixture line.
pub fn proc_line(gpu: u32, pid: u32, used: u64) -> String {
    format!("proc gpu={gpu} pid={pid} used={used}\n")
}
