//! `opsconsole sync --install-service` / `--uninstall-service`: the sync daemon as a
//! systemd user service, so it outlives the SSH session and comes back after the VM
//! restarts (with lingering, a user's services start at boot without a login).
//!
//! What it runs is said, command by command, with each one's result. `systemctl` and
//! `loginctl` are found on `PATH`, or named by `OPSCONSOLE_SYSTEMCTL` and
//! `OPSCONSOLE_LOGINCTL` (the tests put stand-ins there: they never touch a real systemd).
//! Without a systemd user manager nothing is installed and the tmux / nohup / cron lines
//! that keep the daemon running are printed instead.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// Where the tools and the unit live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEnv {
    /// `$XDG_CONFIG_HOME`, else `~/.config`: the unit goes into `systemd/user/` under it.
    pub config_home: PathBuf,
    pub systemctl: PathBuf,
    pub loginctl: PathBuf,
    /// The user whose lingering is enabled (`$USER`, else the uid's name).
    pub user: Option<String>,
}

impl ServiceEnv {
    /// From the environment.
    pub fn from_env() -> io::Result<Self> {
        let config_home = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                Some(h) => PathBuf::from(h).join(".config"),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        "neither XDG_CONFIG_HOME nor HOME is set: no place for a user unit",
                    ));
                }
            },
        };
        let tool =
            |var: &str, name: &str| std::env::var_os(var).filter(|v| !v.is_empty()).map_or(name.into(), PathBuf::from);
        let uid = rustix::process::getuid().as_raw();
        let user =
            std::env::var("USER").ok().filter(|u| !u.is_empty()).or_else(|| crate::gpu::procinfo::lookup_user(uid));
        Ok(Self {
            config_home,
            systemctl: tool("OPSCONSOLE_SYSTEMCTL", "systemctl"),
            loginctl: tool("OPSCONSOLE_LOGINCTL", "loginctl"),
            user,
        })
    }

    /// `<config home>/systemd/user`.
    pub fn unit_dir(&self) -> PathBuf {
        self.config_home.join("systemd").join("user")
    }
}

/// What the daemon is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonCommand {
    /// The opsconsole binary (absolute).
    pub exe: PathBuf,
    /// The workspace root (absolute).
    pub workspace: PathBuf,
    /// A config file named with `--config`, when one was.
    pub config: Option<PathBuf>,
}

impl DaemonCommand {
    /// The arguments after the binary.
    pub fn args(&self) -> Vec<String> {
        let mut a = match &self.config {
            Some(c) => vec!["--config".to_string(), c.display().to_string()],
            None => vec!["--workspace".to_string(), self.workspace.display().to_string()],
        };
        a.extend(["sync".to_string(), "--daemon".to_string()]);
        a
    }

    /// As a shell would need it (each word quoted where needed).
    pub fn shell_line(&self) -> String {
        std::iter::once(self.exe.display().to_string())
            .chain(self.args())
            .map(|w| crate::gpu::procinfo::quote_word(&w).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One unit per workspace: `opsconsole-sync-<folder name>-<8 hex of its path>.service`.
pub fn unit_name(workspace: &Path) -> String {
    let hash = Sha256::digest(workspace.as_os_str().as_encoded_bytes());
    let hex: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let base: String = workspace
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(40)
        .collect();
    if base.is_empty() {
        format!("opsconsole-sync-{hex}.service")
    } else {
        format!("opsconsole-sync-{base}-{hex}.service")
    }
}

/// A word for a unit file: `%` doubled (systemd's specifiers); in a command line also
/// double-quoted, with `\` and `"` escaped.
fn unit_word(s: &str, quote: bool) -> String {
    let s = s.replace('%', "%%");
    if quote { format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")) } else { s }
}

/// The unit: the daemon in the workspace, restarted when it fails (not when it is
/// stopped), its output in the journal, started with the user's manager (at boot, with
/// lingering).
pub fn unit_text(cmd: &DaemonCommand) -> String {
    let exec: Vec<String> =
        std::iter::once(cmd.exe.display().to_string()).chain(cmd.args()).map(|w| unit_word(&w, true)).collect();
    let ws = unit_word(&cmd.workspace.display().to_string(), false);
    let mut t = String::new();
    let _ = writeln!(t, "# Written by `opsconsole sync --install-service`; removed by `--uninstall-service`.");
    let _ = writeln!(t, "# See `opsconsole sync --help` and docs/sync.md.");
    let _ = writeln!(t, "[Unit]");
    let _ = writeln!(t, "Description=opsconsole sync daemon for {ws}");
    let _ = writeln!(t);
    let _ = writeln!(t, "[Service]");
    let _ = writeln!(t, "Type=simple");
    let _ = writeln!(t, "WorkingDirectory={ws}");
    let _ = writeln!(t, "ExecStart={}", exec.join(" "));
    let _ = writeln!(t, "Restart=on-failure");
    let _ = writeln!(t, "RestartSec=30");
    let _ = writeln!(t, "StandardOutput=journal");
    let _ = writeln!(t, "StandardError=journal");
    let _ = writeln!(t);
    let _ = writeln!(t, "[Install]");
    let _ = writeln!(t, "WantedBy=default.target");
    t
}

/// A command run, and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub command: String,
    pub ok: bool,
    /// What it printed (stderr, else stdout), trimmed; or why it could not run.
    pub output: String,
}

fn run(tool: &Path, args: &[&str]) -> Ran {
    let command = std::iter::once(tool.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|w| crate::gpu::procinfo::quote_word(&w).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    match Command::new(tool).args(args).stdin(std::process::Stdio::null()).output() {
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
            let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
            Ran { command, ok: o.status.success(), output: if err.is_empty() { out } else { err } }
        }
        Err(e) => Ran { command, ok: false, output: format!("could not run it: {e}") },
    }
}

/// What an install or uninstall did, for the user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Lines to print, in order.
    pub lines: Vec<String>,
    /// Everything asked for was done.
    pub ok: bool,
}

impl Report {
    fn ran(&mut self, r: &Ran) {
        let mark = if r.ok { "✓" } else { "✗" };
        if r.output.is_empty() {
            self.lines.push(format!("{mark} ran: {}", r.command));
        } else {
            self.lines.push(format!("{mark} ran: {}: {}", r.command, r.output));
        }
    }
}

/// Is there a systemd user manager to talk to? `Err(why)` when not.
fn user_manager(env: &ServiceEnv) -> Result<(), String> {
    let r = run(&env.systemctl, &["--user", "show-environment"]);
    if r.ok { Ok(()) } else { Err(format!("`{}` failed: {}", r.command, r.output)) }
}

/// The lines that keep the daemon running without systemd.
pub fn fallback_lines(cmd: &DaemonCommand) -> Vec<String> {
    let line = cmd.shell_line();
    let log = cmd.workspace.join(".opsconsole").join("sync-daemon.out");
    let log = crate::gpu::procinfo::quote_word(&log.display().to_string()).into_owned();
    vec![
        "Keep it running after you log out with one of:".to_string(),
        format!("  tmux new-session -d -s opsconsole-sync {}", crate::gpu::procinfo::quote_word(&line)),
        format!("  nohup {line} >> {log} 2>&1 &"),
        "Neither comes back after the VM restarts; for that, add this line to `crontab -e`:".to_string(),
        format!("  @reboot {line} >> {log} 2>&1"),
    ]
}

/// Write the unit, reload, enable and start it, and enable lingering. Without a systemd
/// user manager: nothing written, and the fallback lines instead (`ok` false).
pub fn install(env: &ServiceEnv, cmd: &DaemonCommand) -> Report {
    let mut rep = Report::default();
    if let Err(why) = user_manager(env) {
        rep.lines.push(format!("No systemd user manager here ({why}): nothing installed."));
        rep.lines.extend(fallback_lines(cmd));
        return rep;
    }
    let name = unit_name(&cmd.workspace);
    let dir = env.unit_dir();
    let path = dir.join(&name);
    if let Err(e) = write_unit(&dir, &path, &unit_text(cmd)) {
        rep.lines.push(format!("✗ could not write {}: {e}", path.display()));
        return rep;
    }
    rep.lines.push(format!("✓ wrote {}", path.display()));
    let reload = run(&env.systemctl, &["--user", "daemon-reload"]);
    rep.ran(&reload);
    let enable = run(&env.systemctl, &["--user", "enable", "--now", &name]);
    rep.ran(&enable);
    let linger = enable_linger(env, &mut rep);
    rep.ok = reload.ok && enable.ok && linger;
    rep.lines.push(format!("status: systemctl --user status {name}"));
    rep.lines.push(format!("logs:   journalctl --user -u {name} -f"));
    if !enable.ok {
        rep.lines.push(format!(
            "The unit is written but not running; fix what systemctl said, then: systemctl --user enable --now {name}"
        ));
    }
    rep
}

/// Lingering: the user's manager (and this service) starts at boot, without a login.
fn enable_linger(env: &ServiceEnv, rep: &mut Report) -> bool {
    let Some(user) = env.user.as_deref() else {
        rep.lines.push("✗ lingering not enabled: who you are is unknown (set USER)".into());
        return false;
    };
    let state = run(&env.loginctl, &["show-user", user, "--property=Linger", "--value"]);
    if state.ok && state.output == "yes" {
        rep.lines.push(format!("✓ lingering already on for {user} (`{}`)", state.command));
        return true;
    }
    let r = run(&env.loginctl, &["enable-linger", user]);
    rep.ran(&r);
    if !r.ok {
        rep.lines.push(format!(
            "Without lingering the service starts only when you log in; as root run: loginctl enable-linger {user}"
        ));
    }
    r.ok
}

/// Disable and stop the unit, remove it, reload. Lingering is left as it is (other
/// services may rely on it).
pub fn uninstall(env: &ServiceEnv, workspace: &Path) -> Report {
    let mut rep = Report::default();
    let name = unit_name(workspace);
    let path = env.unit_dir().join(&name);
    if !path.exists() {
        rep.lines.push(format!("nothing to remove: {} does not exist", path.display()));
        rep.ok = true;
        return rep;
    }
    let manager = user_manager(env);
    let disabled = match &manager {
        Ok(()) => {
            let r = run(&env.systemctl, &["--user", "disable", "--now", &name]);
            rep.ran(&r);
            r.ok
        }
        Err(why) => {
            rep.lines.push(format!("no systemd user manager here ({why}): nothing to stop"));
            true
        }
    };
    match std::fs::remove_file(&path) {
        Ok(()) => rep.lines.push(format!("✓ removed {}", path.display())),
        Err(e) => {
            rep.lines.push(format!("✗ could not remove {}: {e}", path.display()));
            return rep;
        }
    }
    let reloaded = match manager {
        Ok(()) => {
            let r = run(&env.systemctl, &["--user", "daemon-reload"]);
            rep.ran(&r);
            r.ok
        }
        Err(_) => true,
    };
    rep.lines.push("Lingering is left as it was (`loginctl disable-linger` turns it off).".into());
    rep.ok = disabled && reloaded;
    rep
}

/// Through a temporary file and a rename, so a unit is never half written.
fn write_unit(dir: &Path, path: &Path, text: &str) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.as_file().sync_all()?;
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_are_per_workspace_and_safe() {
        let a = unit_name(Path::new("/home/me/rsm project"));
        assert!(a.starts_with("opsconsole-sync-rsm_project-") && a.ends_with(".service"), "{a}");
        assert_ne!(a, unit_name(Path::new("/home/other/rsm project")));
        assert_eq!(a, unit_name(Path::new("/home/me/rsm project")));
        assert!(unit_name(Path::new("/")).starts_with("opsconsole-sync-"));
    }

    #[test]
    fn unit_words_escape_specifiers_and_quotes() {
        let cmd = DaemonCommand {
            exe: "/opt/ops console/opsconsole".into(),
            workspace: "/home/me/100% \"x\"".into(),
            config: None,
        };
        let t = unit_text(&cmd);
        assert!(
            t.contains(
                r#"ExecStart="/opt/ops console/opsconsole" "--workspace" "/home/me/100%% \"x\"" "sync" "--daemon""#
            ),
            "{t}"
        );
        assert!(t.contains("WorkingDirectory=/home/me/100%% \"x\"\n"), "{t}");
        assert!(t.contains("Restart=on-failure\n") && t.contains("WantedBy=default.target\n"), "{t}");
        let with_config = DaemonCommand { config: Some("/etc/ops.toml".into()), ..cmd };
        assert_eq!(with_config.args(), ["--config", "/etc/ops.toml", "sync", "--daemon"]);
    }
}
