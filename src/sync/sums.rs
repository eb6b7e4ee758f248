//! The SHA-256 of files stored in local remotes, remembered by the stored file's identity:
//! device, inode, size, mtime and ctime. Bytes changed in place change the mtime and the
//! ctime; restoring the mtime afterwards (`touch -r`) changes the ctime again, and no
//! user-space call sets the ctime back. A file replaced by another may get the freed inode
//! number back (ext4 hands it out again at once, tests/sync_direct_attacks.rs), so only its
//! later mtime and ctime tell it apart: on Linux 6.13+ (fine-grained timestamps) always; on
//! older kernels a same-size replacement within one clock tick would not be told apart (not
//! guarded against). So a hit means the very bytes that were hashed, and verifying a copy
//! of many gigabytes on
//! every pass and before every prune costs a `stat`.
//!
//! Kept in `<workspace>/.opsconsole/remote-sums.sqlite` (a cache: losing it only costs a
//! hash; failing to write it is not an error).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

/// What identifies one version of a stored file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileKey {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec()),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000).saturating_add(meta.ctime_nsec()),
        }
    }
}

/// `<workspace>/.opsconsole/remote-sums.sqlite`.
pub fn sums_path(workspace: &Path) -> PathBuf {
    workspace.join(".opsconsole").join("remote-sums.sqlite")
}

/// The cache, opened on first use.
#[derive(Debug)]
pub struct SumCache {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
}

impl SumCache {
    pub fn new(path: PathBuf) -> Self {
        Self { path, conn: Mutex::new(None) }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let mut g = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            let open = || -> rusqlite::Result<Connection> {
                let c = Connection::open(&self.path)?;
                c.busy_timeout(Duration::from_secs(5))?;
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.execute_batch(
                    "CREATE TABLE IF NOT EXISTS sums(
                        path TEXT PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL,
                        size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
                        sha256 TEXT NOT NULL) WITHOUT ROWID;",
                )?;
                Ok(c)
            };
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match open() {
                Ok(c) => *g = Some(c),
                Err(e) => {
                    tracing::debug!("remote checksum cache {}: {e}", self.path.display());
                    return None;
                }
            }
        }
        let conn = g.as_ref()?;
        match f(conn) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!("remote checksum cache {}: {e}", self.path.display());
                *g = None;
                None
            }
        }
    }

    /// The SHA-256 remembered for `file` when it is still the same version.
    pub fn get(&self, file: &Path, key: &FileKey) -> Option<String> {
        let p = file.to_string_lossy().into_owned();
        let row: Option<(i64, i64, i64, i64, i64, String)> = self.with(|c| {
            c.prepare_cached("SELECT dev, ino, size, mtime_ns, ctime_ns, sha256 FROM sums WHERE path = ?1")?
                .query_row([&p], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
                .optional()
        })?;
        let (dev, ino, size, mtime, ctime, sha) = row?;
        let same = dev as u64 == key.dev
            && ino as u64 == key.ino
            && size as u64 == key.size
            && mtime == key.mtime_ns
            && ctime == key.ctime_ns;
        same.then_some(sha)
    }

    /// Remember the SHA-256 of this version of `file` (best effort).
    pub fn put(&self, file: &Path, key: &FileKey, sha256: &str) {
        let p = file.to_string_lossy().into_owned();
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO sums(path, dev, ino, size, mtime_ns, ctime_ns, sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(path) DO UPDATE SET dev = ?2, ino = ?3, size = ?4, mtime_ns = ?5, ctime_ns = ?6, sha256 = ?7",
            )?
            .execute(params![
                p,
                key.dev as i64,
                key.ino as i64,
                key.size as i64,
                key.mtime_ns,
                key.ctime_ns,
                sha256
            ])
        });
    }

    /// Forget `file` (deleted).
    pub fn forget(&self, file: &Path) {
        let p = file.to_string_lossy().into_owned();
        self.with(|c| c.prepare_cached("DELETE FROM sums WHERE path = ?1")?.execute([&p]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_needs_the_same_inode_size_mtime_and_ctime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = SumCache::new(dir.path().join("sums.sqlite"));
        let f = dir.path().join("a");
        std::fs::write(&f, b"abc").expect("write");
        let k = FileKey::of(&std::fs::metadata(&f).expect("meta"));
        assert_eq!(cache.get(&f, &k), None);
        cache.put(&f, &k, "sha");
        assert_eq!(cache.get(&f, &k).as_deref(), Some("sha"));
        for other in [
            FileKey { ctime_ns: k.ctime_ns + 1, ..k },
            FileKey { mtime_ns: k.mtime_ns + 1, ..k },
            FileKey { ino: k.ino + 1, ..k },
            FileKey { size: 4, ..k },
        ] {
            assert_eq!(cache.get(&f, &other), None, "{other:?}");
        }
        // A second handle (another process) sees it.
        assert_eq!(SumCache::new(dir.path().join("sums.sqlite")).get(&f, &k).as_deref(), Some("sha"));
        cache.forget(&f);
        assert_eq!(cache.get(&f, &k), None);
    }
}
