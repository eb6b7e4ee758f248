//! The SHA-256 of files stored in local remotes, remembered by the stored file's identity:
//! device, inode, the inode's generation number, size, mtime and ctime. Bytes changed in
//! place change the mtime and the ctime; restoring the mtime afterwards (`touch -r`) changes
//! the ctime again, and no user-space call sets the ctime back. A file replaced by another
//! may get the freed inode number back (ext4 hands it out again at once,
//! tests/sync_direct_attacks.rs), but not its generation number: ext4, XFS, btrfs and F2FS
//! give every inode they allocate a new one (`FS_IOC_GETVERSION`), so a replacement is told
//! apart even when its size, mtime and ctime match (a same-size replacement within one
//! clock tick, on kernels before 6.13's fine-grained timestamps). Where the filesystem has
//! no generation number (tmpfs, overlay) the timestamps are what tell it apart. So a hit
//! means the very bytes that were hashed, and verifying a copy of many gigabytes on every
//! pass and before every prune costs an `open` and a `stat`.
//!
//! Kept in `<workspace>/.opsconsole/remote-sums.sqlite` (a cache: losing it only costs a
//! hash; failing to write it is not an error).

use std::fs::File;
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
    /// The inode's generation number, where the filesystem keeps one: a new inode given a
    /// freed inode number gets a new one.
    pub generation: Option<u32>,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileKey {
    /// The identity of the open file `f`: its metadata and its inode's generation number.
    /// Keys are compared only with keys taken this way.
    pub fn of_file(f: &File) -> std::io::Result<Self> {
        let meta = f.metadata()?;
        Ok(Self { generation: generation(f), ..Self::of_meta(&meta) })
    }

    fn of_meta(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            generation: None,
            size: meta.len(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec()),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000).saturating_add(meta.ctime_nsec()),
        }
    }
}

/// The inode generation number of `f` (`FS_IOC_GETVERSION`), on the filesystems that keep
/// one (ext4, XFS, btrfs, F2FS); `None` elsewhere.
fn generation(f: &File) -> Option<u32> {
    use rustix::ioctl::{Getter, ioctl, opcode};
    // `FS_IOC_GETVERSION` is `_IOR('v', 1, long)`; the filesystems that answer it write an
    // `int` (`put_user(inode->i_generation, (int __user *)arg)`), so that is the output.
    const FS_IOC_GETVERSION: rustix::ioctl::Opcode = opcode::read::<std::ffi::c_long>(b'v', 1);
    // SAFETY: the opcode is FS_IOC_GETVERSION and `c_uint` is the 4 bytes the kernel writes
    // for it; a filesystem without it fails with ENOTTY and writes nothing.
    unsafe { ioctl(f, Getter::<FS_IOC_GETVERSION, std::ffi::c_uint>::new()) }.ok()
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
                // Version 2 added the generation number. A cache from before is dropped:
                // losing it costs a hash of each stored file, once.
                let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
                if version < 2 {
                    c.execute_batch(
                        "BEGIN IMMEDIATE;
                         DROP TABLE IF EXISTS sums;
                         CREATE TABLE sums(
                            path TEXT PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL,
                            generation INTEGER, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                            ctime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL) WITHOUT ROWID;
                         PRAGMA user_version = 2;
                         COMMIT;",
                    )?;
                }
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
        type Row = (i64, i64, Option<i64>, i64, i64, i64, String);
        let row: Option<Row> = self.with(|c| {
            c.prepare_cached("SELECT dev, ino, generation, size, mtime_ns, ctime_ns, sha256 FROM sums WHERE path = ?1")?
                .query_row([&p], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
                .optional()
        })?;
        let (dev, ino, generation, size, mtime, ctime, sha) = row?;
        let same = dev as u64 == key.dev
            && ino as u64 == key.ino
            && generation == key.generation.map(i64::from)
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
                "INSERT INTO sums(path, dev, ino, generation, size, mtime_ns, ctime_ns, sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(path) DO UPDATE SET dev = ?2, ino = ?3, generation = ?4, size = ?5, mtime_ns = ?6,
                 ctime_ns = ?7, sha256 = ?8",
            )?
            .execute(params![
                p,
                key.dev as i64,
                key.ino as i64,
                key.generation.map(i64::from),
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
    fn a_hit_needs_the_same_inode_generation_size_mtime_and_ctime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = SumCache::new(dir.path().join("sums.sqlite"));
        let f = dir.path().join("a");
        std::fs::write(&f, b"abc").expect("write");
        let k = FileKey::of_file(&File::open(&f).expect("open")).expect("key");
        assert_eq!(cache.get(&f, &k), None);
        cache.put(&f, &k, "sha");
        assert_eq!(cache.get(&f, &k).as_deref(), Some("sha"));
        for other in [
            FileKey { ctime_ns: k.ctime_ns + 1, ..k },
            FileKey { mtime_ns: k.mtime_ns + 1, ..k },
            FileKey { ino: k.ino + 1, ..k },
            FileKey { generation: Some(k.generation.map_or(1, |g| g.wrapping_add(1))), ..k },
            FileKey { generation: None, ..k },
            FileKey { size: 4, ..k },
        ] {
            assert_eq!(cache.get(&f, &other), None, "{other:?}");
        }
        // A second handle (another process) sees it.
        assert_eq!(SumCache::new(dir.path().join("sums.sqlite")).get(&f, &k).as_deref(), Some("sha"));
        cache.forget(&f);
        assert_eq!(cache.get(&f, &k), None);
    }

    /// A cache written before the generation number was kept is dropped, not misread.
    #[test]
    fn a_cache_from_before_the_generation_number_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sums.sqlite");
        let f = dir.path().join("a");
        std::fs::write(&f, b"abc").expect("write");
        let k = FileKey::of_file(&File::open(&f).expect("open")).expect("key");
        {
            let c = Connection::open(&path).expect("old cache");
            c.execute_batch(
                "CREATE TABLE sums(path TEXT PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL,
                 size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
                 sha256 TEXT NOT NULL) WITHOUT ROWID;",
            )
            .expect("old table");
            c.execute(
                "INSERT INTO sums VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'old')",
                params![f.to_string_lossy(), k.dev as i64, k.ino as i64, k.size as i64, k.mtime_ns, k.ctime_ns],
            )
            .expect("old row");
        }
        let cache = SumCache::new(path);
        assert_eq!(cache.get(&f, &k), None, "an old row is not a hit");
        cache.put(&f, &k, "new");
        assert_eq!(cache.get(&f, &k).as_deref(), Some("new"));
    }

    /// A file created where another was just deleted can get its inode number, never its
    /// generation number, on the filesystems that keep one; checked on the filesystem of
    /// the temporary folder (what it saw is printed; under CI it must have seen both).
    #[test]
    fn a_reused_inode_number_comes_with_a_new_generation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a");
        let mut reused = 0;
        let mut generations = 0;
        for _ in 0..50 {
            std::fs::write(&f, b"abc").expect("write");
            let before = FileKey::of_file(&File::open(&f).expect("open")).expect("key");
            std::fs::remove_file(&f).expect("unlink");
            std::fs::write(&f, b"abd").expect("write");
            let after = FileKey::of_file(&File::open(&f).expect("open")).expect("key");
            std::fs::remove_file(&f).expect("unlink");
            if before.generation.is_some() {
                generations += 1;
            }
            if after.ino == before.ino && before.generation.is_some() {
                reused += 1;
                assert_ne!(after.generation, before.generation, "inode {} reused with its generation", after.ino);
                // Not told apart by the timestamps here, by the generation alone.
                let same_times = FileKey { mtime_ns: before.mtime_ns, ctime_ns: before.ctime_ns, ..after };
                assert_ne!(same_times, before);
            }
        }
        eprintln!("{generations} of 50 files had a generation number; {reused} inode numbers came back");
        if generations == 0 || reused == 0 {
            eprintln!("SKIPPED: the temporary folder's filesystem gave nothing to check (CI fails here instead)");
        }
        // CI's temporary folder is on ext4, which keeps generation numbers and hands a
        // freed inode number out again at once: there the check must have seen both.
        if std::env::var_os("CI").is_some() {
            assert!(generations == 50 && reused > 0, "the check saw nothing to check under CI");
        }
    }
}
