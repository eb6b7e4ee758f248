//! `LocalRemote`: a level stored in a folder (a second disk, a Colab Drive mount, a
//! gcsfuse bucket). Uploads go to a partial file under `.opsconsole-partial/`, are fsynced
//! and renamed into place; an interrupted copy resumes; checksums are SHA-256 read back
//! from the stored file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::hash::{self, hex};
use super::remote::{
    BoxFut, CheckStep, ErrorKind, Remote, RemoteError, RemoteObject, ResumePoint, TransferCtx, UploadReceipt,
    UploadRequest,
};

/// Folder (inside the remote's root) holding unfinished uploads.
pub const PARTIAL_DIR: &str = ".opsconsole-partial";

const CHUNK: usize = 4 << 20;

/// A remote that is a folder.
#[derive(Debug, Clone)]
pub struct LocalRemote {
    name: String,
    root: PathBuf,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RemoteError> + Send + 'static,
) -> Result<T, RemoteError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(RemoteError::transient(format!("worker stopped: {e}"))),
    }
}

impl LocalRemote {
    pub fn new(name: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        Self { name: name.into(), root: root.into() }
    }

    /// The folder files are stored under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn key_path(&self, key: &str) -> Result<PathBuf, RemoteError> {
        let p = Path::new(key);
        let ok = !key.is_empty()
            && p.components().all(|c| matches!(c, Component::Normal(_)))
            && !key.starts_with(PARTIAL_DIR);
        if ok {
            Ok(self.root.join(p))
        } else {
            Err(RemoteError::new(ErrorKind::NotFound, format!("'{key}' is not a valid name to store")))
        }
    }

    fn partial_path(&self, key: &str) -> PathBuf {
        let name = hex(&Sha256::digest(key.as_bytes()));
        self.root.join(PARTIAL_DIR).join(format!("{name}.part"))
    }

    fn io_err(&self, e: &io::Error, place: &Path) -> RemoteError {
        RemoteError::from_io(e, &self.name, place)
    }

    /// A kernel copy failed: a full or read-only destination is the remote's problem,
    /// anything else is reported against both ends.
    fn copy_err(&self, e: &io::Error, source: &Path, part: &Path) -> RemoteError {
        match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EACCES | libc::EPERM) => self.io_err(e, part),
            _ => RemoteError::transient(format!("copying {} to remote '{}': {e}", source.display(), self.name)),
        }
    }

    /// The root must exist or be creatable inside an existing parent: a missing mount
    /// point is reported, never silently replaced by a folder on the local disk.
    fn ensure_root(&self) -> Result<(), RemoteError> {
        if self.root.is_dir() {
            return Ok(());
        }
        match fs::create_dir(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(self.io_err(&e, &self.root)),
        }
    }

    fn resume_blocking(&self, key: &str, sha256: &str, session: Option<&str>) -> Result<ResumePoint, RemoteError> {
        self.key_path(key)?;
        let part = self.partial_path(key);
        if session == Some(sha256)
            && let Ok(meta) = fs::metadata(&part)
        {
            return Ok(ResumePoint { offset: meta.len(), session: Some(sha256.to_string()) });
        }
        match fs::remove_file(&part) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io_err(&e, &part)),
        }
        Ok(ResumePoint { offset: 0, session: Some(sha256.to_string()) })
    }

    fn upload_blocking(
        &self,
        key: &str,
        source: &Path,
        size: u64,
        offset: u64,
        ctx: &TransferCtx,
    ) -> Result<UploadReceipt, RemoteError> {
        let dest = self.key_path(key)?;
        self.ensure_root()?;
        let part = self.partial_path(key);
        let part_dir = self.root.join(PARTIAL_DIR);
        fs::create_dir_all(&part_dir).map_err(|e| self.io_err(&e, &part_dir))?;

        let mut src = File::open(source).map_err(|e| source_err(&e, source))?;
        let src_len = src.metadata().map_err(|e| source_err(&e, source))?.len();
        // A file that only grew (a log being appended) is stored as the prefix that was
        // hashed: a consistent snapshot. One that shrank has changed.
        if src_len < size {
            return Err(changed(source));
        }
        let mut out = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part)
            .map_err(|e| self.io_err(&e, &part))?;
        let have = out.metadata().map_err(|e| self.io_err(&e, &part))?.len();
        let offset = if offset > size || have < offset { 0 } else { offset };
        out.set_len(offset).map_err(|e| self.io_err(&e, &part))?;
        out.seek(SeekFrom::Start(offset)).map_err(|e| self.io_err(&e, &part))?;
        src.seek(SeekFrom::Start(offset)).map_err(|e| source_err(&e, source))?;
        // Exactly `size` bytes: a log that grew since it was hashed is stored as the
        // hashed prefix. The checksum is checked by the engine's verify (stat reads the
        // stored file back), which also catches a source that changed during the copy.
        let mut done = offset;
        ctx.advance_blocking(done, 0)?;
        let mut kernel_copy = true;
        let mut buf = Vec::new();
        while done < size {
            let want = (size - done).min(CHUNK as u64) as usize;
            let n = if kernel_copy {
                match copy_range(&src, &out, want) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP)
                        ) =>
                    {
                        // Another filesystem (a FUSE mount, an older kernel): copy through
                        // user space from where the kernel copy stopped.
                        kernel_copy = false;
                        continue;
                    }
                    Err(e) => return Err(self.copy_err(&e, source, &part)),
                }
            } else {
                buf.resize(want, 0);
                let n = loop {
                    match src.read(&mut buf[..want]) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(source_err(&e, source)),
                    }
                };
                out.write_all(&buf[..n]).map_err(|e| self.io_err(&e, &part))?;
                n
            };
            if n == 0 {
                // The source shrank below the size that was hashed.
                drop(out);
                let _ = fs::remove_file(&part);
                return Err(changed(source));
            }
            done += n as u64;
            ctx.advance_blocking(done, n as u64)?;
        }
        out.sync_all().map_err(|e| self.io_err(&e, &part))?;
        drop(out);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| self.io_err(&e, parent))?;
        }
        fs::rename(&part, &dest).map_err(|e| self.io_err(&e, &dest))?;
        if let Some(parent) = dest.parent() {
            sync_dir(parent);
        }
        Ok(UploadReceipt { remote_id: key.to_string() })
    }

    fn stat_blocking(&self, key: &str) -> Result<Option<RemoteObject>, RemoteError> {
        let path = self.key_path(key)?;
        let meta = match fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_err(&e, &path)),
        };
        let sha = hash::sha256_file(&path).map_err(|e| self.io_err(&e, &path))?;
        Ok(Some(RemoteObject {
            key: key.to_string(),
            id: key.to_string(),
            size: meta.len(),
            sha256: Some(sha),
            md5: None,
        }))
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<RemoteObject>, RemoteError> {
        let mut out = Vec::new();
        if !self.root.is_dir() {
            return Err(self.io_err(&io::Error::from(io::ErrorKind::NotFound), &self.root));
        }
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let rd = fs::read_dir(&dir).map_err(|e| self.io_err(&e, &dir))?;
            for entry in rd.flatten() {
                let path = entry.path();
                let Ok(ft) = entry.file_type() else { continue };
                if ft.is_dir() {
                    if path != self.root.join(PARTIAL_DIR) {
                        stack.push(path);
                    }
                } else if ft.is_file()
                    && let Some(key) = super::routing::relative_key(&self.root, &path)
                    && key.starts_with(prefix)
                {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    out.push(RemoteObject { id: key.clone(), key, size, sha256: None, md5: None });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn download_blocking(&self, key: &str, dest: &Path, ctx: &TransferCtx) -> Result<u64, RemoteError> {
        let src_path = self.key_path(key)?;
        let Some(obj) = self.stat_blocking(key)? else {
            return Err(RemoteError::new(ErrorKind::NotFound, format!("'{key}' is not on remote '{}'", self.name)));
        };
        let mut part_name = dest.as_os_str().to_owned();
        part_name.push(".part");
        let part = PathBuf::from(part_name);
        let local =
            |e: &io::Error, p: &Path| RemoteError::new(ErrorKind::Transient, format!("writing {}: {e}", p.display()));
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| local(&e, parent))?;
        }
        let mut out = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part)
            .map_err(|e| local(&e, &part))?;
        let mut offset = out.metadata().map_err(|e| local(&e, &part))?.len();
        if offset > obj.size {
            offset = 0;
        }
        out.set_len(offset).map_err(|e| local(&e, &part))?;
        out.seek(SeekFrom::Start(offset)).map_err(|e| local(&e, &part))?;
        let mut src = File::open(&src_path).map_err(|e| self.io_err(&e, &src_path))?;
        src.seek(SeekFrom::Start(offset)).map_err(|e| self.io_err(&e, &src_path))?;
        let mut buf = vec![0u8; CHUNK];
        let mut done = offset;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err(&e, &src_path)),
            };
            out.write_all(&buf[..n]).map_err(|e| local(&e, &part))?;
            done += n as u64;
            ctx.advance_blocking(done, n as u64)?;
        }
        out.sync_all().map_err(|e| local(&e, &part))?;
        drop(out);
        let got = hash::sha256_file(&part).map_err(|e| local(&e, &part))?;
        if Some(&got) != obj.sha256.as_ref() {
            let _ = fs::remove_file(&part);
            return Err(RemoteError::transient(format!(
                "downloaded '{key}' does not match its checksum; it will be fetched again"
            )));
        }
        fs::rename(&part, dest).map_err(|e| local(&e, dest))?;
        Ok(done)
    }

    /// `remote check` for a folder: it exists, and a probe file written through the normal
    /// upload path reads back with the same checksum and is deleted again.
    fn check_blocking(&self) -> Vec<CheckStep> {
        let mut steps = Vec::new();
        let root = self.root.display().to_string();
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => steps.push(CheckStep::pass("root exists", root.clone())),
            Ok(_) => {
                steps.push(CheckStep::fail("root exists", format!("{root} is not a folder"), "point path at a folder"));
                return steps;
            }
            Err(e) => {
                steps.push(CheckStep::fail(
                    "root exists",
                    format!("{root}: {e}"),
                    "mount the disk, or create the folder, then run the check again",
                ));
                return steps;
            }
        }
        let probe_dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                steps.push(CheckStep::fail("probe file", format!("no temporary folder: {e}"), "free space in /tmp"));
                return steps;
            }
        };
        let bytes: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
        let src = probe_dir.path().join("probe");
        if let Err(e) = fs::write(&src, &bytes) {
            steps.push(CheckStep::fail("probe file", format!("writing {}: {e}", src.display()), "free space in /tmp"));
            return steps;
        }
        let sha = hex(&Sha256::digest(&bytes));
        let key = format!(".opsconsole-probe-{}-{}", std::process::id(), fastrand::u64(..));
        let ctx = TransferCtx::default();
        let stored = self
            .resume_blocking(&key, &sha, None)
            .and_then(|rp| self.upload_blocking(&key, &src, bytes.len() as u64, rp.offset, &ctx));
        if let Err(e) = stored {
            steps.push(CheckStep::fail("writable", e.message, e.fix.unwrap_or_default()));
            return steps;
        }
        steps.push(CheckStep::pass("writable", format!("stored {} bytes", bytes.len())));
        let read = self.stat_blocking(&key);
        let deleted = self.delete_blocking(&key);
        match read {
            Ok(Some(obj)) if obj.size == bytes.len() as u64 && obj.sha256.as_deref() == Some(sha.as_str()) => {
                steps.push(CheckStep::pass("probe reads back", "same size and SHA-256"))
            }
            Ok(_) => {
                steps.push(CheckStep::fail(
                    "probe reads back",
                    "the stored probe differs from what was written",
                    "check the disk or mount behind this folder",
                ));
                return steps;
            }
            Err(e) => {
                steps.push(CheckStep::fail("probe reads back", e.message, e.fix.unwrap_or_default()));
                return steps;
            }
        }
        match deleted {
            Ok(()) => steps.push(CheckStep::pass("probe deleted", "")),
            Err(e) => steps.push(CheckStep::fail("probe deleted", e.message, e.fix.unwrap_or_default())),
        }
        steps
    }

    fn delete_blocking(&self, key: &str) -> Result<(), RemoteError> {
        let path = self.key_path(key)?;
        for p in [path, self.partial_path(key)] {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io_err(&e, &p)),
            }
        }
        Ok(())
    }
}

/// One `copy_file_range` step between the current offsets of two files (the kernel copies;
/// nothing passes through user space). Returns the bytes copied, 0 at the source's end.
fn copy_range(src: &File, out: &File, len: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: both descriptors are open files we own; null offsets mean "use and
        // advance the files' own offsets".
        let n = unsafe {
            libc::copy_file_range(src.as_raw_fd(), std::ptr::null_mut(), out.as_raw_fd(), std::ptr::null_mut(), len, 0)
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn source_err(e: &io::Error, source: &Path) -> RemoteError {
    if e.kind() == io::ErrorKind::NotFound {
        RemoteError::new(ErrorKind::SourceGone, format!("{} was deleted before it was stored", source.display()))
    } else {
        RemoteError::transient(format!("reading {}: {e}", source.display()))
    }
}

fn changed(source: &Path) -> RemoteError {
    RemoteError::new(ErrorKind::SourceChanged, format!("{} changed while it was being stored", source.display()))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Remote for LocalRemote {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("local {}", self.root.display())
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn resume_point<'a>(
        &'a self,
        key: &'a str,
        sha256: &'a str,
        session: Option<&'a str>,
    ) -> BoxFut<'a, Result<ResumePoint, RemoteError>> {
        let me = self.clone();
        let (key, sha, session) = (key.to_string(), sha256.to_string(), session.map(String::from));
        Box::pin(blocking(move || me.resume_blocking(&key, &sha, session.as_deref())))
    }

    fn upload<'a>(
        &'a self,
        req: UploadRequest<'a>,
        ctx: &'a TransferCtx,
    ) -> BoxFut<'a, Result<UploadReceipt, RemoteError>> {
        let me = self.clone();
        let ctx = ctx.clone();
        let (key, source) = (req.key.to_string(), req.source.to_path_buf());
        let (size, offset) = (req.size, req.resume.offset);
        Box::pin(blocking(move || me.upload_blocking(&key, &source, size, offset, &ctx)))
    }

    fn stat<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Option<RemoteObject>, RemoteError>> {
        let me = self.clone();
        let key = key.to_string();
        Box::pin(blocking(move || me.stat_blocking(&key)))
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Result<Vec<RemoteObject>, RemoteError>> {
        let me = self.clone();
        let prefix = prefix.to_string();
        Box::pin(blocking(move || me.list_blocking(&prefix)))
    }

    fn download<'a>(
        &'a self,
        key: &'a str,
        dest: &'a Path,
        ctx: &'a TransferCtx,
    ) -> BoxFut<'a, Result<u64, RemoteError>> {
        let me = self.clone();
        let ctx = ctx.clone();
        let (key, dest) = (key.to_string(), dest.to_path_buf());
        Box::pin(blocking(move || me.download_blocking(&key, &dest, &ctx)))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<(), RemoteError>> {
        let me = self.clone();
        let key = key.to_string();
        Box::pin(blocking(move || me.delete_blocking(&key)))
    }

    fn discard_partial<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<(), RemoteError>> {
        let part = self.partial_path(key);
        let me = self.clone();
        Box::pin(blocking(move || match fs::remove_file(&part) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(me.io_err(&e, &part)),
        }))
    }

    fn check<'a>(&'a self) -> BoxFut<'a, Vec<CheckStep>> {
        let me = self.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || me.check_blocking()).await {
                Ok(steps) => steps,
                Err(e) => vec![CheckStep::fail("check", format!("the check stopped: {e}"), "run it again")],
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 253) as u8).collect()
    }

    #[tokio::test]
    async fn upload_resume_verify_list_download_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src.pt");
        let bytes = data(3 * CHUNK + 17);
        std::fs::write(&src, &bytes).expect("write");
        let sha = hex(&Sha256::digest(&bytes));
        let remote = LocalRemote::new("bk", dir.path().join("remote"));
        let key = "ck/src.pt";

        // A partial copy of the same version, as left by a killed upload.
        let rp = remote.resume_point(key, &sha, None).await.expect("rp");
        assert_eq!(rp.offset, 0);
        std::fs::create_dir_all(dir.path().join("remote").join(PARTIAL_DIR)).expect("mkdir");
        std::fs::write(remote.partial_path(key), &bytes[..CHUNK + 5]).expect("partial");
        let rp = remote.resume_point(key, &sha, rp.session.as_deref()).await.expect("rp");
        assert_eq!(rp.offset, (CHUNK + 5) as u64);

        let ctx = TransferCtx::default();
        let req = UploadRequest { key, source: &src, size: bytes.len() as u64, sha256: &sha, md5: None, resume: rp };
        let receipt = remote.upload(req, &ctx).await.expect("upload");
        assert_eq!(receipt.remote_id, key);
        assert_eq!(ctx.bytes_done.load(std::sync::atomic::Ordering::Relaxed), bytes.len() as u64);
        assert_eq!(std::fs::read(dir.path().join("remote/ck/src.pt")).expect("read"), bytes);
        assert!(!remote.partial_path(key).exists());

        let obj = remote.stat(key).await.expect("stat").expect("present");
        assert_eq!((obj.size, obj.sha256.as_deref()), (bytes.len() as u64, Some(sha.as_str())));
        let listed = remote.list("").await.expect("list");
        assert_eq!(listed.len(), 1, "partials are not listed: {listed:?}");

        let dest = dir.path().join("back/src.pt");
        std::fs::create_dir_all(dir.path().join("back")).expect("mkdir");
        std::fs::write(dir.path().join("back/src.pt.part"), &bytes[..100]).expect("part");
        let n = remote.download(key, &dest, &ctx).await.expect("download");
        assert_eq!(n, bytes.len() as u64);
        assert_eq!(std::fs::read(&dest).expect("read"), bytes);

        remote.delete(key).await.expect("delete");
        assert!(remote.stat(key).await.expect("stat").is_none());
        remote.delete(key).await.expect("deleting twice is fine");
    }

    #[tokio::test]
    async fn a_stale_partial_of_another_version_is_discarded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let remote = LocalRemote::new("bk", dir.path().join("remote"));
        std::fs::create_dir_all(dir.path().join("remote").join(PARTIAL_DIR)).expect("mkdir");
        std::fs::write(remote.partial_path("a.pt"), b"old").expect("w");
        let rp = remote.resume_point("a.pt", "new", Some("old")).await.expect("rp");
        assert_eq!(rp.offset, 0);
        assert!(!remote.partial_path("a.pt").exists());
    }

    #[tokio::test]
    async fn a_grown_source_stores_the_hashed_prefix_a_shrunk_one_is_refused_and_bad_keys_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("a.log");
        std::fs::write(&src, b"hello world").expect("write");
        let remote = LocalRemote::new("bk", dir.path().join("remote"));
        let req = |key, size| UploadRequest {
            key,
            source: &src,
            size,
            sha256: "x",
            md5: None,
            resume: ResumePoint { offset: 0, session: None },
        };
        remote.upload(req("a.log", 5), &TransferCtx::default()).await.expect("prefix stored");
        let obj = remote.stat("a.log").await.expect("stat").expect("stored");
        assert_eq!(obj.sha256.as_deref(), Some(hex(&Sha256::digest(b"hello")).as_str()));
        let err = remote.upload(req("b.log", 50), &TransferCtx::default()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::SourceChanged);
        assert!(remote.stat("b.log").await.expect("stat").is_none());
        assert!(remote.stat("../escape").await.is_err());
        let missing = LocalRemote::new("gone", dir.path().join("no/such/mount"));
        let err = missing.upload(req("a.log", 5), &TransferCtx::default()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
        assert!(err.is_permanent());
    }

    #[tokio::test]
    async fn check_reports_each_step_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("remote")).expect("mkdir");
        let remote = LocalRemote::new("bk", dir.path().join("remote"));
        let steps = remote.check().await;
        assert!(steps.iter().all(|s| s.ok), "{steps:?}");
        assert_eq!(steps.len(), 4, "{steps:?}");
        assert!(remote.list("").await.expect("list").is_empty(), "the probe is deleted");
        let missing = LocalRemote::new("gone", dir.path().join("not/mounted"));
        let steps = missing.check().await;
        assert_eq!(steps.len(), 1);
        assert!(!steps[0].ok && steps[0].fix.as_deref().is_some_and(|f| f.contains("mount")), "{steps:?}");
    }
}
