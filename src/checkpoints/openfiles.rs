//! Which checkpoints are held open for writing: the one `/proc` scanner
//! ([`crate::procfs`]), matched by device and inode against the files of each checkpoint,
//! so a writer through a bind mount or in another mount namespace is seen too.

use std::collections::HashSet;
use std::path::Path;

pub use crate::procfs::fdinfo_is_write;

/// (device, inode) of every regular file open for writing on the given devices.
pub type OpenFiles = HashSet<(u64, u64)>;

/// Write handles on regular files of any filesystem, when any of `paths` (folders) exists.
///
/// Not only on the filesystems holding `paths`: a root may have another disk mounted
/// below it (`checkpoints/big` a mount point), and a checkpoint there lives on that disk,
/// not the root's; a device filter taken from the roots would miss its writer.
pub fn open_for_write(paths: &[&Path]) -> OpenFiles {
    if !paths.iter().any(|p| std::fs::metadata(p).is_ok()) {
        return OpenFiles::new();
    }
    crate::procfs::open_for_write(&[])
}

/// As [`open_for_write`], from a scan of `/proc` at most `max_age` old shared with the
/// console's other collectors ([`crate::procfs::recent_write_handles`]): for the
/// inventory shown, never for a deletion.
pub fn recent_open_for_write(paths: &[&Path], max_age: std::time::Duration) -> OpenFiles {
    if !paths.iter().any(|p| std::fs::metadata(p).is_ok()) {
        return OpenFiles::new();
    }
    crate::procfs::recent_write_handles(max_age).files()
}

/// Is the file or folder at `path` (with `dev`, `ino`), or any file inside the folder,
/// in `open`? Links are never followed.
pub fn holds_open(open: &OpenFiles, path: &Path, dev: u64, ino: u64) -> bool {
    if open.is_empty() {
        return false;
    }
    if open.contains(&(dev, ino)) {
        return true;
    }
    any_inside(open, path, 0)
}

fn any_inside(open: &OpenFiles, dir: &Path, depth: usize) -> bool {
    use std::os::unix::fs::MetadataExt;
    if depth > 16 {
        return false;
    }
    let Ok(rd) = std::fs::read_dir(dir) else { return false };
    rd.flatten().any(|e| {
        let Ok(m) = std::fs::symlink_metadata(e.path()) else { return false };
        if m.is_dir() {
            any_inside(open, &e.path(), depth + 1)
        } else {
            m.is_file() && open.contains(&(m.dev(), m.ino()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_file_or_a_file_inside_a_folder_held_for_writing() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("checkpoint-5");
        std::fs::create_dir_all(ck.join("sub")).unwrap();
        std::fs::write(ck.join("config.json"), b"{}").unwrap();
        let mut w = std::fs::File::create(ck.join("sub/model.safetensors")).unwrap();
        w.write_all(b"partial").unwrap();
        let open = open_for_write(&[dir.path()]);
        let m = std::fs::metadata(&ck).unwrap();
        assert!(holds_open(&open, &ck, m.dev(), m.ino()));
        let c = std::fs::metadata(ck.join("config.json")).unwrap();
        assert!(!holds_open(&open, &ck.join("config.json"), c.dev(), c.ino()));
        drop(w);
        let open = open_for_write(&[dir.path()]);
        assert!(!holds_open(&open, &ck, m.dev(), m.ino()));
    }
}
