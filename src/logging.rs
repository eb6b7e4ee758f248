//! The console's own log: tracing to a file under the XDG state folder, never the screen.

use std::path::PathBuf;

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

/// Starts logging to `opsconsole.log` in the state folder. The level comes from
/// `--log-level`, else `OPSCONSOLE_LOG`, else `info`. Returns the log file's path; a folder
/// that cannot be created leaves logging off rather than failing the console.
pub fn init(level: Option<&str>) -> Option<PathBuf> {
    let dir = state_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return None;
    }
    let path = dir.join("opsconsole.log");
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).ok()?;
    let spec =
        level.map(str::to_string).or_else(|| std::env::var("OPSCONSOLE_LOG").ok()).unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    let filter = quiet_secret_holders(filter);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .try_init()
        .ok()?;
    Some(path)
}
