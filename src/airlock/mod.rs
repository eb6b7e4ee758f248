//! The seed's Airlock: **bundle** (export only committed code to a cluster), **import**
//! (bring the cluster's log back and write it down in the journal), **resume** (the
//! newest verified checkpoint from L1, else L2, else L3, and optionally start training
//! from it), and **freeze** (`pip freeze` into `frozen_requirements.txt`).
//!
//! No UI here: the console (`b`, `i`, `r`) and the CLI (`bundle`, `import`, `resume`,
//! `freeze`) call the same functions. Each long operation takes a [`Progress`] sink and a
//! cancel flag and does its I/O on the calling thread (remote calls on a small runtime of
//! its own), so the console runs it on a thread of its own and the CLI on its main thread.

pub mod bundle;
pub mod config;
pub mod experiment;
pub mod fetch;
pub mod freeze;
pub mod git;
pub mod import;
pub mod journal;
pub mod launch;
pub mod resume;
pub mod weights;

use std::path::{Path, PathBuf};

pub use config::{BundleConfig, FreezeConfig, ImportConfig, ResumeConfig};

/// Progress of a long operation, throttled by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A step begins ("checking git", "listing L2").
    Step(String),
    /// Bytes of the current step (hashing, writing, downloading).
    Bytes { done: u64, total: u64, what: String },
}

/// Where progress goes.
pub type ProgressFn<'a> = &'a mut dyn FnMut(Progress);

/// SHA-256 and size of a regular file, read in 1 MiB pieces; `read(n)` after each piece;
/// stops with `Interrupted` when `cancel` is set.
pub fn sha256_with_progress(
    path: &Path,
    cancel: &std::sync::atomic::AtomicBool,
    read: &mut dyn FnMut(u64),
) -> std::io::Result<(u64, String)> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = crate::util::open_regular(path)?;
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled"));
        }
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sha.update(&buf[..n]);
        size += n as u64;
        read(n as u64);
    }
    Ok((size, crate::sync::hash::hex(&sha.finalize())))
}

/// `{experiments}` and `{experiment}` in a configured path or pattern.
pub fn expand(template: &str, experiments: &str, experiment: &str) -> String {
    template.replace("{experiments}", experiments.trim_end_matches('/')).replace("{experiment}", experiment)
}

/// `path` under the workspace (absolute paths stay as they are).
pub fn in_workspace(workspace: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { workspace.join(p) }
}

/// A path as shown to the user: relative to the workspace when inside it.
pub fn shown(workspace: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(workspace).unwrap_or(path);
    crate::util::printable(&rel.to_string_lossy()).into_owned()
}

/// The current time as RFC 3339 UTC with seconds (`2026-05-01T14:02:09Z`).
pub fn rfc3339_utc(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem / 60) % 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A current-thread runtime for an airlock job's remote calls (the airlock's operations
/// are not async). Never used from inside a runtime's worker thread: the console runs
/// airlock jobs on threads of their own.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_rfc3339() {
        assert_eq!(rfc3339_utc(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_709_251_199);
        assert_eq!(rfc3339_utc(t), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn placeholders_expand() {
        assert_eq!(expand("{experiments}/{experiment}/**/*.log", "experiments/", "v68"), "experiments/v68/**/*.log");
    }
}
