//! Appending to `journal.md` without ever rewriting what is there: the whole file is
//! copied to a temporary file beside it, the entry appended, the copy flushed to disk and
//! renamed over the journal (so a crash leaves the old journal or the new one, never half
//! of one). The bytes above the new entry are the old file's, byte for byte; the file's
//! permissions are kept. If the journal changed while the copy was made (an editor saved
//! it), the copy is made again.
//!
//! Each import entry carries a marker, `<!-- opsconsole-import sha256=<hex> -->` (an HTML
//! comment: invisible when the Markdown is rendered), so importing the same log twice adds
//! nothing the second time.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The marker line of an import of the log with this SHA-256.
pub fn marker(sha256: &str) -> String {
    format!("<!-- opsconsole-import sha256={sha256} -->")
}

/// Whether the journal already holds the entry of this log.
pub fn has_import(journal: &Path, sha256: &str) -> std::io::Result<bool> {
    match std::fs::read(journal) {
        Ok(b) => Ok(memchr::memmem::find(&b, marker(sha256).as_bytes()).is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Appends `entry` (Markdown) to the journal at `path`, creating it when missing. A blank
/// line separates it from what is above. Returns the byte offset the entry starts at.
pub fn append(path: &Path, entry: &str) -> std::io::Result<u64> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    for _ in 0..5 {
        let (old, meta) = match std::fs::read(path) {
            Ok(b) => (b, std::fs::metadata(path).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), None),
            Err(e) => return Err(e),
        };
        if meta.as_ref().is_some_and(|m| !m.is_file()) {
            return Err(std::io::Error::other(format!("{} is not a regular file", path.display())));
        }
        let mut tmp = tempfile::Builder::new().prefix(".journal-").suffix(".tmp").tempfile_in(dir)?;
        tmp.write_all(&old)?;
        let mut sep = String::new();
        if !old.is_empty() {
            if !old.ends_with(b"\n") {
                sep.push('\n');
            }
            if !old.ends_with(b"\n\n") {
                sep.push('\n');
            }
        }
        tmp.write_all(sep.as_bytes())?;
        let start = (old.len() + sep.len()) as u64;
        tmp.write_all(entry.as_bytes())?;
        if !entry.ends_with('\n') {
            tmp.write_all(b"\n")?;
        }
        if let Some(m) = &meta {
            tmp.as_file().set_permissions(std::fs::Permissions::from_mode(m.permissions().mode() & 0o7777))?;
        }
        tmp.as_file().sync_all()?;
        // Written by someone else meanwhile: start again from what is there now.
        let now = std::fs::metadata(path).ok();
        let same = match (&meta, &now) {
            (None, None) => true,
            (Some(a), Some(b)) => a.len() == b.len() && a.modified().ok() == b.modified().ok(),
            _ => false,
        };
        if !same {
            continue;
        }
        tmp.persist(path).map_err(|e| e.error)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        return Ok(start);
    }
    Err(std::io::Error::other(format!("{} kept changing while the entry was appended; try again", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_keep_every_byte_above_and_the_mode() {
        let dir = tempfile::tempdir().expect("tmp");
        let j = dir.path().join("journal.md");
        let before = b"# Journal\n\n## Data\n- **Dataset**: PG-19 v1.0\n- no newline at the end";
        std::fs::write(&j, before).expect("write");
        std::fs::set_permissions(&j, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let at = append(&j, "## Import\n- one\n").expect("append");
        let after = std::fs::read(&j).expect("read");
        assert!(after.starts_with(before));
        assert_eq!(&after[at as usize..], b"## Import\n- one\n");
        assert_eq!(&after[before.len()..at as usize], b"\n\n");
        assert_eq!(std::fs::metadata(&j).expect("meta").permissions().mode() & 0o777, 0o640);
        let fresh = dir.path().join("sub/new.md");
        assert_eq!(append(&fresh, "x").expect("append"), 0);
        assert_eq!(std::fs::read_to_string(&fresh).expect("read"), "x\n");
        assert!(!has_import(&j, "ab").expect("read"));
        append(&j, &format!("{}\n", marker("ab"))).expect("append");
        assert!(has_import(&j, "ab").expect("read"));
    }
}
