//! Identities: a workspace's stable random id (`.opsconsole/workspace-id`) and a local
//! remote's identity marker (`<root>/.opsconsole-remote`, written by `opsconsole remote
//! check NAME --init`).
//!
//! The marker holds the remote's name, a random id of its own, and the id of the one
//! workspace that stores into it. Without it the folder is not the remote (an empty mount
//! point where a disk is not mounted looks exactly like a new folder); with another
//! workspace's id it belongs to that workspace, whose confirmed copies this one must never
//! overwrite (two workspaces, two folders).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The marker's file name inside a local remote's root.
pub const MARKER_FILE: &str = ".opsconsole-remote";

/// `<workspace>/.opsconsole/workspace-id`.
pub fn workspace_id_path(workspace: &Path) -> PathBuf {
    workspace.join(".opsconsole").join("workspace-id")
}

/// 128 random bits as 32 hex digits (from the kernel's random source).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let from_kernel = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok();
    if !from_kernel {
        for b in &mut bytes {
            *b = fastrand::u8(..);
        }
    }
    super::hash::hex(&bytes)
}

/// The workspace's id, if one was made already.
pub fn read_workspace_id(workspace: &Path) -> Option<String> {
    let text = fs::read_to_string(workspace_id_path(workspace)).ok()?;
    let id = text.trim();
    (id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| id.to_string())
}

/// The workspace's id, made (once, safely against a second process doing the same) when
/// there is none yet. It never changes afterwards.
pub fn workspace_id(workspace: &Path) -> io::Result<String> {
    if let Some(id) = read_workspace_id(workspace) {
        return Ok(id);
    }
    let path = workspace_id_path(workspace);
    let dir = path.parent().unwrap_or(workspace);
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("workspace-id.{}.{}.tmp", std::process::id(), random_id()));
    {
        let mut f = fs::File::create(&tmp)?;
        writeln!(f, "{}", random_id())?;
        f.sync_all()?;
    }
    // A hard link never replaces: whoever links first wins, the other reads theirs.
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    read_workspace_id(workspace).ok_or_else(|| io::Error::other(format!("{} is not a workspace id", path.display())))
}

/// What `<root>/.opsconsole-remote` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Always 1 for now.
    pub format: u32,
    /// The `[remotes.NAME]` it was set up as.
    pub remote: String,
    /// This remote's own random id.
    pub id: String,
    /// The id of the workspace that stores into it.
    pub workspace_id: String,
    /// Where that workspace was when the marker was written (for messages only).
    pub workspace: String,
    /// The machine it was written on (for messages only).
    pub host: String,
    pub created_unix: i64,
}

/// Read a root's marker: `Ok(None)` when there is none, `Err` when it cannot be read or is
/// not a marker.
pub fn read_marker(root: &Path) -> io::Result<Option<Marker>> {
    let path = root.join(MARKER_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{} is not an opsconsole marker: {e}", path.display()))
    })
}

/// Write a root's marker (temporary file, fsync, rename, fsync of the folder).
pub fn write_marker(root: &Path, marker: &Marker) -> io::Result<()> {
    let path = root.join(MARKER_FILE);
    let tmp = root.join(format!("{MARKER_FILE}.{}.tmp", std::process::id()));
    let mut text = serde_json::to_string_pretty(marker).map_err(io::Error::other)?;
    text.push('\n');
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    if let Ok(d) = fs::File::open(root) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A new marker for `remote` bound to a workspace.
pub fn new_marker(remote: &str, workspace_id: &str, workspace: &Path) -> Marker {
    Marker {
        format: 1,
        remote: remote.to_string(),
        id: random_id(),
        workspace_id: workspace_id.to_string(),
        workspace: workspace.display().to_string(),
        host: crate::workspace::HostInfo::current().hostname,
        created_unix: crate::unixtime::now_ms().div_euclid(1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_workspace_id(dir.path()), None);
        let a = workspace_id(dir.path()).expect("id");
        assert_eq!(a.len(), 32);
        assert_eq!(workspace_id(dir.path()).expect("id"), a, "stable");
        let other = tempfile::tempdir().expect("tempdir");
        assert_ne!(workspace_id(other.path()).expect("id"), a, "random per workspace");
        // Made by several threads at once: one id wins and all of them read it.
        let third = tempfile::tempdir().expect("tempdir");
        let ids: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4).map(|_| s.spawn(|| workspace_id(third.path()).expect("id"))).collect();
            hs.into_iter().map(|h| h.join().expect("join")).collect()
        });
        assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    }

    #[test]
    fn markers_round_trip_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_marker(dir.path()).expect("read"), None);
        let m = new_marker("backup", "0123", Path::new("/ws"));
        write_marker(dir.path(), &m).expect("write");
        assert_eq!(read_marker(dir.path()).expect("read"), Some(m));
        fs::write(dir.path().join(MARKER_FILE), "hello").expect("write");
        assert!(read_marker(dir.path()).is_err());
    }
}
