//! The console's own log: tracing to a file under the XDG state folder, never the screen.

use std::path::{Path, PathBuf};

use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;

/// Crates whose debug lines quote credentials (yup-oauth2 prints the token endpoint's
/// answer, access token included) stay silent whatever level the user asks for.
pub fn quiet_secret_holders(filter: EnvFilter) -> EnvFilter {
    let mut f = filter;
    for d in ["yup_oauth2=off"] {
        if let Ok(d) = d.parse() {
            f = f.add_directive(d);
        }
    }
    f
}

/// `$XDG_STATE_HOME/opsconsole`, else `~/.local/state/opsconsole`.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("opsconsole");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".local/state/opsconsole")
}

/// Log files kept: one a day, the oldest deleted when an eighth would begin.
pub const KEEP_DAYS: usize = 7;

/// The name that always points at today's log file (a symlink the appender keeps current).
pub const LATEST: &str = "opsconsole.log";

/// What an `opsconsole.log` written before the log rolled is renamed to, so that it is kept
/// (and deleted with the oldest daily files) rather than replaced by the symlink.
pub const BEFORE_ROLLING: &str = "opsconsole.before-rolling.log";

/// The daily rolling file in `dir`: `opsconsole.YYYY-MM-DD.log` (UTC date), at most
/// [`KEEP_DAYS`] of them, with [`LATEST`] pointing at today's.
pub fn appender(dir: &Path) -> Option<RollingFileAppender> {
    let latest = dir.join(LATEST);
    // A plain file here is the single log of an older build: keep it under another name.
    if std::fs::symlink_metadata(&latest).is_ok_and(|m| m.file_type().is_file()) {
        std::fs::rename(&latest, dir.join(BEFORE_ROLLING)).ok()?;
    }
    let daily = || {
        RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_prefix("opsconsole")
            .filename_suffix("log")
            .max_log_files(KEEP_DAYS)
    };
    // Two processes starting at once (the console and the sync service) can race on the
    // link; losing that race still logs, to the dated file.
    daily().latest_symlink(LATEST).build(dir).or_else(|_| daily().build(dir)).ok()
}

/// Starts logging to a daily file in the state folder (`opsconsole.log` points at today's;
/// [`KEEP_DAYS`] days are kept). The level comes from `--log-level`, else `OPSCONSOLE_LOG`,
/// else `info`. Returns the path of `opsconsole.log`; a folder that cannot be created leaves
/// logging off rather than failing the console.
pub fn init(level: Option<&str>) -> Option<PathBuf> {
    let dir = state_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return None;
    }
    let file = appender(&dir)?;
    let spec =
        level.map(str::to_string).or_else(|| std::env::var("OPSCONSOLE_LOG").ok()).unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    let filter = quiet_secret_holders(filter);
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(file).with_ansi(false).try_init().ok()?;
    Some(dir.join(LATEST))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn writes_a_dated_file_behind_the_latest_link_and_keeps_an_older_single_log() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LATEST), "from an older build\n").unwrap();
        let mut a = appender(dir.path()).expect("appender");
        a.write_all(b"hello\n").unwrap();
        a.flush().unwrap();

        assert_eq!(std::fs::read_to_string(dir.path().join(BEFORE_ROLLING)).unwrap(), "from an older build\n");
        let latest = dir.path().join(LATEST);
        assert!(std::fs::symlink_metadata(&latest).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&latest).unwrap(), "hello\n");
        let target = std::fs::read_link(&latest).unwrap();
        let name = target.file_name().unwrap().to_str().unwrap().to_string();
        // opsconsole.YYYY-MM-DD.log
        assert!(name.starts_with("opsconsole.") && name.ends_with(".log") && name.len() == 25, "{name}");

        // A second start the same day appends to the same file and leaves the old log alone.
        drop(a);
        let mut b = appender(dir.path()).expect("appender again");
        b.write_all(b"again\n").unwrap();
        b.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&latest).unwrap(), "hello\nagain\n");
        assert_eq!(std::fs::read_to_string(dir.path().join(BEFORE_ROLLING)).unwrap(), "from an older build\n");
    }
}
