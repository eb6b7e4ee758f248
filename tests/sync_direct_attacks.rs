//! Attacks on a local remote's direct copy (`sync::direct::DirectWriter` under
//! `LocalStage` and `copy_hashed`): a disk that fills up in the middle of a direct write or
//! of the buffered tail, resumes from partial copies of every odd length (and damaged
//! ones), a partial copy changed or replaced between the hash pass and the upload, sizes
//! around the 4 KiB block and 4 MiB piece boundaries, and the buffered filesystems
//! (tmpfs, overlay). The rules checked every time: a copy the remote reports with the
//! version's size and SHA-256 (what the engine confirms) holds exactly the version's
//! bytes; a failed copy is never the stored object; failures are errors, not panics.
//!
//! The remotes live on loop-mounted ext4 images (the direct path) and on tmpfs/overlay
//! mounts: every test here mounts, so needs root (`#[ignore = "needs root"]`, run with
//! `--include-ignored`), and fails without it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use opsconsole::sync::direct::DirectWriter;
use opsconsole::sync::hash::{self, StageSink};
use opsconsole::sync::local::{LocalOptions, LocalRemote, PARTIAL_DIR};
use opsconsole::sync::remote::{ErrorKind, RateLimiter, Remote, RemoteError, TransferCtx, UploadRequest};
use opsconsole::sync::sums::{FileKey, SumCache};
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------
// Mounts

fn need_root() {
    assert!(rustix::process::geteuid().is_root(), "these tests mount filesystems: run them as root");
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A mounted filesystem at `dir`, unmounted (lazily) on drop; `dir` lives in `_tmp`.
struct Mount {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
    under: Vec<Mount>,
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).output();
        if self.dir.join(".").exists() && is_mountpoint(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).output();
        }
        self.under.clear();
    }
}

fn is_mountpoint(p: &Path) -> bool {
    let (Ok(a), Ok(b)) = (fs::metadata(p), fs::metadata(p.join(".."))) else { return false };
    use std::os::unix::fs::MetadataExt;
    a.dev() != b.dev()
}

/// A fresh ext4 of `mib` MiB on a loop device; the image lives on a tmpfs when `fast`
/// (an fsync then costs microseconds), else in the temporary directory.
fn ext4(mib: u64, mkfs_extra: &[&str], fast: bool) -> Mount {
    ext4_mounted_with(mib, mkfs_extra, "loop", fast)
}

/// [`ext4`] mounted with these options (`loop` and more).
fn ext4_mounted_with(mib: u64, mkfs_extra: &[&str], options: &str, fast: bool) -> Mount {
    need_root();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut under = Vec::new();
    let img_dir = if fast {
        let t = tmpfs(&format!("{}m", mib + 8));
        let d = t.dir.clone();
        under.push(t);
        d
    } else {
        tmp.path().to_path_buf()
    };
    let img = img_dir.join("fs.img");
    File::create(&img).expect("image").set_len(mib << 20).expect("size");
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).args(mkfs_extra).arg(&img));
    let dir = tmp.path().join("mnt");
    fs::create_dir(&dir).expect("mkdir");
    run(Command::new("mount").args(["-o", options]).arg(&img).arg(&dir));
    Mount { dir, _tmp: tmp, under }
}

fn tmpfs(size: &str) -> Mount {
    need_root();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("mnt");
    fs::create_dir(&dir).expect("mkdir");
    run(Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"]).arg(&dir));
    Mount { dir, _tmp: tmp, under: Vec::new() }
}

/// An overlay whose upper layer is on `upper_fs` (ext4: files there take direct writes).
fn overlay(upper_fs: &Path) -> Mount {
    need_root();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (lower, upper, work) = (upper_fs.join("lower"), upper_fs.join("upper"), upper_fs.join("work"));
    for d in [&lower, &upper, &work] {
        fs::create_dir_all(d).expect("mkdir");
    }
    let dir = tmp.path().join("mnt");
    fs::create_dir(&dir).expect("mkdir");
    let opts = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
    run(Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(&dir));
    Mount { dir, _tmp: tmp, under: Vec::new() }
}

/// Does a file in `dir` get direct writes?
fn direct_here(dir: &Path) -> bool {
    let p = dir.join(".direct-probe");
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).expect("probe");
    let w = DirectWriter::new(&f, 0);
    let direct = w.is_direct();
    w.finish(&f).expect("finish");
    drop(f);
    fs::remove_file(&p).expect("rm probe");
    direct
}

fn syncfs(dir: &Path) {
    let d = File::open(dir).expect("open dir");
    rustix::fs::syncfs(&d).expect("syncfs");
}

// ---------------------------------------------------------------------------------------
// The remote, driven as the engine drives it

fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; n];
    fastrand::Rng::with_seed(seed).fill(&mut v);
    v
}

fn sha(b: &[u8]) -> String {
    hash::hex(&Sha256::digest(b))
}

struct Rig {
    _ws_dir: tempfile::TempDir,
    ws: PathBuf,
    root: PathBuf,
    remote: LocalRemote,
}

/// A workspace (in the temporary directory) and a local remote `r` at `parent/remote`,
/// with remembered checksums, set up as `remote check --init` does.
fn rig(parent: &Path) -> Rig {
    let ws_dir = tempfile::tempdir().expect("ws");
    let ws = ws_dir.path().join("ws");
    fs::create_dir_all(&ws).expect("mkdir ws");
    let root = parent.join("remote");
    let remote = LocalRemote::with_options(
        "r",
        &root,
        LocalOptions {
            sums: Some(SumCache::new(ws.join(".opsconsole/remote-sums.sqlite"))),
            ..LocalOptions::default()
        },
    );
    let steps = remote.init_blocking();
    assert!(steps.iter().all(|s| s.ok), "{steps:?}");
    Rig { _ws_dir: ws_dir, ws, root, remote }
}

impl Rig {
    fn src(&self, key: &str, data: &[u8]) -> PathBuf {
        let p = self.ws.join(key);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, data).expect("source");
        p
    }

    fn part(&self, key: &str) -> PathBuf {
        self.root.join(PARTIAL_DIR).join(format!("{}.part", sha(key.as_bytes())))
    }

    /// The engine's hash pass with this remote staging its copy: the SHA-256.
    fn hash_pass(&self, key: &str, src: &Path, size: u64) -> String {
        let mut sinks: Vec<Box<dyn StageSink>> = Vec::new();
        if let Some(s) = self.remote.stage_sink(key, size) {
            sinks.push(s);
        }
        hash::digest_prefix_into(src, size, false, &mut sinks).expect("hash pass").sha256
    }

    /// resume_point + upload, as the engine's upload job calls them; the offset resumed at.
    async fn upload(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        sha256: &str,
        session: Option<&str>,
        ctx: &TransferCtx,
    ) -> Result<u64, RemoteError> {
        let resume = self.remote.resume_point(key, sha256, session).await?;
        let offset = resume.offset;
        let req = UploadRequest { key, source: src, size, sha256, md5: None, resume };
        self.remote.upload(req, ctx).await?;
        Ok(offset)
    }

    /// What the engine checks before recording a copy confirmed: the remote reports the
    /// version's size and SHA-256.
    async fn confirms(&self, key: &str, size: u64, sha256: &str) -> bool {
        match self.remote.stat(key).await {
            Ok(Some(o)) => o.size == size && o.sha256.as_deref() == Some(sha256),
            Ok(None) => false,
            Err(e) => panic!("stat {key}: {e}"),
        }
    }

    /// The rules: whatever the remote confirms is exactly `want` on the disk; a stored
    /// file that is not `want` is never confirmed. Returns whether it is confirmed.
    async fn check_rule(&self, key: &str, want: &[u8], what: &str) -> bool {
        let confirmed = self.confirms(key, want.len() as u64, &sha(want)).await;
        let stored = fs::read(self.root.join(key)).ok();
        if confirmed {
            let got = stored.expect("confirmed but missing");
            assert!(
                got.len() == want.len() && got == want,
                "{what}: the remote confirms {key} (size {} and the version's SHA-256) but its bytes differ \
                 ({} bytes on disk, first difference at {:?})",
                want.len(),
                got.len(),
                got.iter().zip(want).position(|(a, b)| a != b)
            );
        }
        confirmed
    }

    fn stored(&self, key: &str) -> Option<Vec<u8>> {
        fs::read(self.root.join(key)).ok()
    }
}

/// Resolves an upload's `Result` to the rules for a failure: a clear error of one of the
/// given kinds, and no stored object of the version.
fn expect_err<T: std::fmt::Debug>(r: Result<T, RemoteError>, kinds: &[ErrorKind], what: &str) -> RemoteError {
    match r {
        Ok(v) => panic!("{what}: expected a failure, got {v:?}"),
        Err(e) => {
            assert!(kinds.contains(&e.kind), "{what}: error of kind {:?}, wanted one of {kinds:?}: {e}", e.kind);
            assert!(!e.reason().is_empty());
            e
        }
    }
}

// ---------------------------------------------------------------------------------------
// (1) The disk fills up mid-copy

/// Fill the filesystem of `dir` to the last block; the filler's path.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler.bin");
    let mut f = File::create(&filler).expect("filler");
    let chunk = vec![0x5au8; MIB];
    while f.write_all(&chunk).is_ok() {}
    let page = vec![0x5au8; 4096];
    while f.write_all(&page).is_ok() {}
    let _ = f.sync_all();
    // Blocks freed by a transaction not yet committed are not reusable: commit now.
    syncfs(dir);
    while f.write_all(&page).is_ok() {}
    let _ = f.sync_all();
    drop(f);
    filler
}

/// Give back `blocks` 4 KiB blocks of the filler (truncating its end), committed.
fn give_back(dir: &Path, filler: &Path, blocks: u64) {
    let f = OpenOptions::new().write(true).open(filler).expect("filler");
    let len = f.metadata().expect("meta").len();
    f.set_len(len.saturating_sub(blocks * 4096)).expect("truncate");
    f.sync_all().expect("fsync");
    drop(f);
    syncfs(dir);
}

/// Copies cut short by a full disk at every point around the end of the direct blocks
/// and in the buffered tail (ext4: direct writes), from the hash pass (staged copy) and
/// from a plain upload, fresh and resumed at an odd offset: each fails with "no space"
/// and nothing confirmed, or stores the exact bytes; once space is back, the same upload
/// (resumed from what the failed one left) stores exactly the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_disk_that_fills_during_a_direct_copy_fails_clearly_and_later_stores_exact_bytes() {
    let m = ext4(64, &["-b", "4096"], false);
    let r = rig(&m.dir);
    assert!(direct_here(&r.root), "the ext4 loop mount takes direct writes: the direct path is the one attacked");
    let mut tail_failures = 0;
    let mut direct_failures = 0;
    // A file below 16 MiB (copied into the writer's buffer) and one above (written from
    // the pipeline's pieces); each has a tail that is not a whole block.
    for (case, size) in [(0u64, 5 * MIB + 100), (1, 16 * MIB + 4097)] {
        let key = format!("ck/full_{case}.pt");
        let data = bytes(size, 100 + case);
        let src = r.src(&key, &data);
        let want = sha(&data);
        let whole_blocks = (size / 4096) as u64;
        // Free space given back: none, half, and around what the whole blocks need.
        let frees = [
            0,
            whole_blocks / 2,
            whole_blocks - 2,
            whole_blocks - 1,
            whole_blocks,
            whole_blocks + 1,
            whole_blocks + 2,
            whole_blocks + 3,
        ];
        for (i, free) in frees.into_iter().enumerate() {
            for mode in ["staged", "fresh", "resumed"] {
                let what = format!("size {size}, {free} blocks free, {mode}");
                let _ = r.remote.delete(&key).await;
                let _ = fs::remove_file(r.part(&key));
                // A resumed copy: a killed upload left an odd number of bytes.
                let cut = 4096 * 3 + 77 + i as u64;
                if mode == "resumed" {
                    fs::create_dir_all(r.root.join(PARTIAL_DIR)).expect("mkdir");
                    fs::write(r.part(&key), &data[..cut as usize]).expect("partial");
                }
                let filler = fill(&m.dir);
                give_back(&m.dir, &filler, free);
                let session = match mode {
                    "staged" => {
                        assert_eq!(r.hash_pass(&key, &src, size as u64), want, "{what}: the hash pass's digest");
                        None
                    }
                    "fresh" => None,
                    _ => Some(want.as_str()),
                };
                let got = r.upload(&key, &src, size as u64, &want, session, &TransferCtx::default()).await;
                let confirmed = r.check_rule(&key, &data, &what).await;
                match got {
                    Ok(_) => assert!(confirmed, "{what}: stored but not confirmed"),
                    Err(e) => {
                        assert_eq!(e.kind, ErrorKind::NoSpace, "{what}: {e}");
                        assert!(e.reason().contains("no space left on remote 'r'"), "{what}: {e}");
                        assert!(!confirmed, "{what}: a failed upload is confirmed");
                        assert!(r.stored(&key).is_none(), "{what}: a failed copy became the stored file");
                        // Where it stopped: inside the direct blocks, or at the tail.
                        let left = fs::metadata(r.part(&key)).map(|m| m.len()).unwrap_or(0);
                        eprintln!("{what}: stopped with {left} bytes written");
                        if left == whole_blocks * 4096 {
                            tail_failures += 1;
                        } else if left < whole_blocks * 4096 {
                            direct_failures += 1;
                        }
                        // Space back: the same version resumes (or starts again) and is
                        // stored exactly.
                        fs::remove_file(&filler).expect("free");
                        syncfs(&m.dir);
                        let off = r
                            .upload(&key, &src, size as u64, &want, Some(&want), &TransferCtx::default())
                            .await
                            .unwrap_or_else(|e| panic!("{what}: the retry with space back: {e}"));
                        assert!(off <= left, "{what}: resumed at {off}, past the {left} bytes left");
                        assert!(r.check_rule(&key, &data, &what).await, "{what}: the retry is not confirmed");
                    }
                }
                assert!(r.stored(&key).is_none_or(|b| b == data), "{what}: a stored file that is not the version");
                let _ = fs::remove_file(&filler);
                syncfs(&m.dir);
            }
        }
    }
    eprintln!("failures inside the direct blocks: {direct_failures}, at the buffered tail: {tail_failures}");
    assert!(direct_failures > 0, "no copy failed inside its direct blocks: the attack missed");
    assert!(tail_failures > 0, "no copy failed at its buffered tail: the attack missed");
    // Nothing outside the remote's folder was written.
    let mut top: Vec<String> =
        fs::read_dir(&m.dir).expect("rd").flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
    top.sort();
    assert_eq!(top, vec!["lost+found", "remote"]);
}

/// `remote check` on a full ext4 disk: the probe's write fails in words, no panic, and
/// the probe is not left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn remote_check_on_a_full_disk_says_no_space() {
    let m = ext4(32, &[], false);
    let r = rig(&m.dir);
    let filler = fill(&m.dir);
    let steps = r.remote.check().await;
    let failed = steps.iter().find(|s| !s.ok).unwrap_or_else(|| panic!("a check on a full disk passed: {steps:?}"));
    assert_eq!(failed.name, "writable", "{steps:?}");
    assert!(failed.detail.contains("no space left"), "{steps:?}");
    fs::remove_file(&filler).expect("free");
    syncfs(&m.dir);
    let steps = r.remote.check().await;
    assert!(steps.iter().all(|s| s.ok), "{steps:?}");
    let names: Vec<_> = fs::read_dir(&r.root).expect("rd").flatten().map(|e| e.file_name()).collect();
    assert!(names.iter().all(|n| !n.to_string_lossy().starts_with(".opsconsole-probe")), "{names:?}");
}

// ---------------------------------------------------------------------------------------
// (2) Resumes at unaligned offsets, from intact and damaged partial copies

/// A partial copy of every awkward length (around blocks and pieces), left as a killed
/// upload leaves it, is resumed (its head buffered, then direct blocks): the stored bytes
/// are the source's. The same partial copies with one byte damaged (in the head block, in
/// a block in the middle, at the last byte) are never stored: the upload fails as
/// "changed", the partial copy is gone, and the next attempt stores the exact bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn resumes_from_odd_and_damaged_partial_copies_store_exactly_the_source() {
    let m = ext4(128, &[], false);
    let r = rig(&m.dir);
    assert!(direct_here(&r.root));
    for (case, size) in [(0u64, 4097usize), (1, 4 * MIB + 1), (2, 16 * MIB + 1), (3, 21 * MIB + 12_345)] {
        let key = format!("ck/resume_{case}.pt");
        let data = bytes(size, 200 + case);
        let src = r.src(&key, &data);
        let want = sha(&data);
        let mut cuts = vec![size - 1, size];
        for c in [
            1,
            100,
            4095,
            4096,
            4097,
            8191,
            4 * MIB - 1,
            4 * MIB,
            4 * MIB + 1,
            4 * MIB + 4095,
            16 * MIB - 3,
            16 * MIB + 1,
        ] {
            if c < size {
                cuts.push(c);
            }
        }
        for cut in cuts {
            for damage in [None, Some(cut / 2), Some(cut - 1), Some(cut.saturating_sub(4097))] {
                let what = format!("size {size}, partial {cut}, damaged at {damage:?}");
                let _ = r.remote.delete(&key).await;
                fs::create_dir_all(r.root.join(PARTIAL_DIR)).expect("mkdir");
                let mut left = data[..cut].to_vec();
                if let Some(d) = damage {
                    left[d] ^= 0x40;
                }
                fs::write(r.part(&key), &left).expect("partial");
                let got = r.upload(&key, &src, size as u64, &want, Some(&want), &TransferCtx::default()).await;
                if damage.is_none() {
                    let off = got.unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(off, cut as u64, "{what}: resumed where the partial copy ends");
                    assert!(r.check_rule(&key, &data, &what).await, "{what}: not confirmed");
                    assert!(r.stored(&key).is_some_and(|b| b == data), "{what}: stored bytes differ");
                } else {
                    expect_err(got, &[ErrorKind::SourceChanged], &what);
                    assert!(!r.check_rule(&key, &data, &what).await, "{what}: confirmed");
                    assert!(r.stored(&key).is_none(), "{what}: a damaged copy became the stored file");
                    assert!(!r.part(&key).exists(), "{what}: the damaged partial copy is kept");
                    let off = r.upload(&key, &src, size as u64, &want, Some(&want), &TransferCtx::default()).await;
                    assert_eq!(off.unwrap_or_else(|e| panic!("{what}: retry: {e}")), 0, "{what}: starts over");
                    assert!(r.check_rule(&key, &data, &what).await, "{what}: the retry is not confirmed");
                }
            }
        }
    }
}

/// Uploads cancelled at random moments (a bandwidth cap slows them, a thread cancels),
/// each resumed from whatever the last one left (any length): the copy finally stored is
/// exactly the source, and every partial copy on the way is a prefix of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn uploads_cancelled_anywhere_resume_into_exact_copies() {
    let m = ext4(96, &[], false);
    let r = rig(&m.dir);
    assert!(direct_here(&r.root));
    let mut rng = fastrand::Rng::with_seed(7);
    for (case, size) in [(0u64, 9 * MIB + 333), (1, 26 * MIB + 4095)] {
        let key = format!("ck/cancel_{case}.pt");
        let data = bytes(size, 300 + case);
        let src = r.src(&key, &data);
        let want = sha(&data);
        let mut session = None;
        let mut offsets = Vec::new();
        let mut done = false;
        for attempt in 0..40 {
            // Start mid-block sometimes: a partial copy cut to an odd length.
            if attempt % 3 == 2
                && let Ok(meta) = fs::metadata(r.part(&key))
                && meta.len() > 5000
            {
                let f = OpenOptions::new().write(true).open(r.part(&key)).expect("part");
                f.set_len(meta.len() - rng.u64(1..4096)).expect("cut");
            }
            // 100 MiB/s, the burst spent up front: every piece waits its share.
            let limiter = std::sync::Arc::new(RateLimiter::new(100 << 20));
            limiter.reserve(100 << 20);
            let ctx = TransferCtx { limiter: Some(limiter), ..TransferCtx::default() };
            let cancel = ctx.cancel.clone();
            let after = Duration::from_millis(rng.u64(5..60));
            let t = std::thread::spawn(move || {
                std::thread::sleep(after);
                cancel.cancel();
            });
            let got = r.upload(&key, &src, size as u64, &want, session.as_deref(), &ctx).await;
            t.join().expect("canceller");
            session = Some(want.clone());
            match got {
                Ok(off) => {
                    offsets.push(off);
                    done = true;
                    break;
                }
                Err(e) => {
                    assert_eq!(e.kind, ErrorKind::Cancelled, "attempt {attempt}: {e}");
                    assert!(r.stored(&key).is_none(), "a cancelled copy became the stored file");
                    let left = fs::read(r.part(&key)).unwrap_or_default();
                    assert!(
                        left.len() <= size && left[..] == data[..left.len()],
                        "a partial copy that is not a prefix"
                    );
                    offsets.push(left.len() as u64);
                }
            }
        }
        if !done {
            let off = r.upload(&key, &src, size as u64, &want, Some(&want), &TransferCtx::default()).await;
            offsets.push(off.expect("last upload"));
        }
        eprintln!("size {size}: resumed at {offsets:?}");
        assert!(r.check_rule(&key, &data, "cancelled and resumed").await, "not confirmed");
        assert!(r.stored(&key).is_some_and(|b| b == data));
    }
}

// ---------------------------------------------------------------------------------------
// (3) The staged partial copy changed between the hash pass and the upload

/// After the hash pass staged its copy (direct writes, fsynced, identity remembered),
/// another process changes it: a byte rewritten in place, the copy truncated, extended,
/// or replaced by another file. The upload that follows (first try, and a retry carrying
/// the session) either stores exactly the version or fails as "changed" with nothing
/// stored; never the tampered bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_staged_copy_changed_behind_our_back_is_never_stored() {
    let m = ext4(96, &[], false);
    let r = rig(&m.dir);
    assert!(direct_here(&r.root));
    for (case, size) in [(0u64, 8 * 1024 + 5), (1, 17 * MIB + 9)] {
        let data = bytes(size, 400 + case);
        for how in ["pwrite", "pwrite-same-byte-count-mtime-restored", "truncate", "extend", "replace"] {
            for session in [false, true] {
                let key = format!("ck/tamper_{case}.pt");
                let what = format!("size {size}, {how}, session {session}");
                let _ = r.remote.delete(&key).await;
                let src = r.src(&key, &data);
                let want = r.hash_pass(&key, &src, size as u64);
                assert_eq!(want, sha(&data));
                let part = r.part(&key);
                assert_eq!(fs::read(&part).expect("staged copy"), data, "{what}: the staged copy");
                match how {
                    "pwrite" => {
                        let f = OpenOptions::new().write(true).open(&part).expect("open");
                        f.write_all_at(&[data[size / 2] ^ 1], (size / 2) as u64).expect("pwrite");
                    }
                    "pwrite-same-byte-count-mtime-restored" => {
                        let mtime = fs::metadata(&part).and_then(|m| m.modified()).expect("mtime");
                        let f = OpenOptions::new().write(true).open(&part).expect("open");
                        f.write_all_at(b"tampered", 4096).expect("pwrite");
                        f.set_modified(mtime).expect("mtime back");
                    }
                    "truncate" => OpenOptions::new()
                        .write(true)
                        .open(&part)
                        .expect("open")
                        .set_len((size / 3) as u64)
                        .expect("cut"),
                    "extend" => {
                        let mut f = OpenOptions::new().append(true).open(&part).expect("open");
                        f.write_all(b"more").expect("append");
                    }
                    _ => {
                        let other = part.with_extension("other");
                        let mut evil = data.clone();
                        evil[size - 1] ^= 0xff;
                        fs::write(&other, &evil).expect("other");
                        fs::rename(&other, &part).expect("replace");
                    }
                }
                let sess = session.then_some(want.as_str());
                let got = r.upload(&key, &src, size as u64, &want, sess, &TransferCtx::default()).await;
                let confirmed = r.check_rule(&key, &data, &what).await;
                match got {
                    Ok(_) => assert!(confirmed && r.stored(&key).is_some_and(|b| b == data), "{what}"),
                    Err(e) => {
                        assert_eq!(e.kind, ErrorKind::SourceChanged, "{what}: {e}");
                        assert!(!confirmed && r.stored(&key).is_none(), "{what}: failed, yet stored");
                        // The engine hashes again and queues it: that stores it.
                        let want2 = r.hash_pass(&key, &src, size as u64);
                        r.upload(&key, &src, size as u64, &want2, Some(&want2), &TransferCtx::default())
                            .await
                            .unwrap_or_else(|e| panic!("{what}: the next attempt: {e}"));
                        assert!(r.check_rule(&key, &data, &what).await, "{what}: the next attempt not confirmed");
                    }
                }
            }
        }
    }
}

/// The staged copy unlinked and replaced by another file of the same size at once: on
/// ext4 the new file gets the freed inode number (seen every time here), so only the
/// timestamps tell it from the staged copy. Without multigrain timestamps (kernels before
/// 6.13) a replacement within one clock tick would carry the very identity remembered when
/// the staged copy was fsynced; on 6.13+ the staged copy's ctime, queried by that `stat`,
/// is bumped at fine grain by the unlink and the new file is stamped after it. Each try
/// uploads and checks the rules, counting identity collisions (an ext4 whose image is on a
/// tmpfs: the fsync is quick and the window short).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_staged_copy_replaced_within_one_clock_tick_is_never_confirmed() {
    let m = ext4(32, &[], true);
    let r = rig(&m.dir);
    assert!(direct_here(&r.root));
    let size = 3 * 4096 + 5;
    let data = bytes(size, 500);
    let mut evil = data.clone();
    evil[10] ^= 0xff;
    let key = "ck/replaced.pt";
    let src = r.src(key, &data);
    let mut collisions = 0;
    let mut tries = 0;
    let started = std::time::Instant::now();
    while tries < 150 && started.elapsed() < Duration::from_secs(5) {
        tries += 1;
        let _ = r.remote.delete(key).await;
        let want = r.hash_pass(key, &src, size as u64);
        let part = r.part(key);
        let before = FileKey::of_file(&File::open(&part).expect("staged")).expect("key");
        fs::remove_file(&part).expect("unlink");
        let f = OpenOptions::new().write(true).create_new(true).open(&part).expect("create");
        f.write_all_at(&evil, 0).expect("write");
        drop(f);
        let after = FileKey::of_file(&File::open(&part).expect("replacement")).expect("key");
        collisions += usize::from(after == before);
        // Even where the timestamps would match (a kernel before 6.13), the generation
        // number tells the replacement apart.
        assert_ne!(FileKey { mtime_ns: before.mtime_ns, ctime_ns: before.ctime_ns, ..after }, before);
        let got = r.upload(key, &src, size as u64, &want, None, &TransferCtx::default()).await;
        let what = format!("staged copy {before:?} replaced by {after:?} (try {tries}), upload {got:?}");
        r.check_rule(key, &data, &what).await;
        assert!(r.stored(key).is_none_or(|b| b == data), "{what}: the replacement's bytes are stored as {key}");
    }
    eprintln!("{collisions} identity collisions in {tries} tries");
}

/// The collision a kernel without fine-grained timestamps allows (before 6.13: the ctime
/// moves in clock ticks of up to 10 ms): a stored copy replaced, within one tick, by a file
/// of the same size that gets the freed inode number back, so device, inode, size, mtime
/// and ctime all match what the checksum cache remembers. Here the kernel's timestamps
/// differ, so the remembered row is given the replacement's timestamps (what such a kernel
/// would have left); only the inode's generation number is the old file's. The remote must
/// hash the replacement, not answer with the remembered SHA-256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_stored_copy_replaced_with_its_inode_number_and_timestamps_is_hashed_again() {
    need_root();
    let m = ext4(32, &[], true);
    let r = rig(&m.dir);
    let size = 64 * 1024 + 7;
    let data = bytes(size, 900);
    let mut evil = data.clone();
    evil[size / 2] ^= 0xff;
    let key = "ck/stored.pt";
    let src = r.src(key, &data);
    let want = r.hash_pass(key, &src, size as u64);
    r.upload(key, &src, size as u64, &want, None, &TransferCtx::default()).await.expect("upload");
    assert!(r.check_rule(key, &data, "first copy").await, "the first copy is confirmed");
    let stored = r.root.join(key);
    let before = FileKey::of_file(&File::open(&stored).expect("stored")).expect("key");
    assert!(before.generation.is_some(), "ext4 keeps generation numbers");
    let mut reused = 0;
    for attempt in 0..20 {
        fs::remove_file(&stored).expect("unlink");
        let f = OpenOptions::new().write(true).create_new(true).open(&stored).expect("create");
        f.write_all_at(if attempt % 2 == 0 { &evil } else { &data }, 0).expect("write");
        f.sync_all().expect("fsync");
        drop(f);
        let after = FileKey::of_file(&File::open(&stored).expect("replacement")).expect("key");
        if after.ino != before.ino {
            continue;
        }
        reused += 1;
        let (content, name) = if attempt % 2 == 0 { (&evil, "a changed copy") } else { (&data, "an equal copy") };
        // What a coarse-timestamp kernel would leave: the remembered row matches the
        // replacement in everything but the generation number.
        let c = rusqlite::Connection::open(r.ws.join(".opsconsole/remote-sums.sqlite")).expect("sums");
        let n = c
            .execute(
                "UPDATE sums SET dev = ?1, ino = ?2, size = ?3, mtime_ns = ?4, ctime_ns = ?5, generation = ?6, sha256 = ?7
                 WHERE path = ?8",
                rusqlite::params![
                    after.dev as i64,
                    after.ino as i64,
                    after.size as i64,
                    after.mtime_ns,
                    after.ctime_ns,
                    before.generation.map(i64::from),
                    want,
                    stored.display().to_string()
                ],
            )
            .expect("forge the row");
        assert_eq!(n, 1, "the cache remembers the stored copy");
        let confirmed = r.check_rule(key, &data, &format!("{name} with the inode number back")).await;
        assert_eq!(confirmed, content == &data, "{name}: confirmed {confirmed}");
    }
    assert!(reused > 0, "ext4 never handed the inode number out again: the attack was not made");
}

/// The remote's partial-copy folder bind-mounted onto the workspace's checkpoints folder
/// (it resolves where it is mounted, so no link shows it): the hash pass stages no copy
/// there, resuming and uploading fail in words, and nothing is written in the checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_partial_folder_bind_mounted_onto_the_checkpoints_is_never_written() {
    need_root();
    let tmp = tempfile::tempdir().expect("tmp");
    let ws = tmp.path().join("ws");
    let ck = ws.join("checkpoints");
    fs::create_dir_all(&ck).expect("mkdir");
    let root = tmp.path().join("backup");
    fs::create_dir_all(root.join(PARTIAL_DIR)).expect("mkdir");
    let remote = LocalRemote::with_options(
        "r",
        &root,
        LocalOptions {
            workspace_id: Some("w".into()),
            workspace: Some(ws.clone()),
            same_disk: true,
            protected: vec![ws.clone(), ck.clone()],
            ..LocalOptions::default()
        },
    );
    assert!(remote.init_blocking().iter().all(|s| s.ok));
    let data = bytes(3 * MIB + 5, 77);
    let src = ck.join("v01_step_100.pt");
    fs::write(&src, &data).expect("source");
    let want = sha(&data);
    let key = "checkpoints/v01_step_100.pt";
    run(Command::new("mount").arg("--bind").arg(&ck).arg(root.join(PARTIAL_DIR)));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).output();
        }
    }
    let _bound = Unmount(root.join(PARTIAL_DIR));
    let before: Vec<_> = fs::read_dir(&ck).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert!(remote.stage_sink(key, data.len() as u64).is_none(), "no staged copy in the checkpoints");
    let err = remote.resume_point(key, &want, None).await.expect_err("resume into the checkpoints");
    assert!(err.message.contains("a bind mount"), "{err}");
    let resume = opsconsole::sync::remote::ResumePoint { offset: 0, session: Some(want.clone()) };
    let req = UploadRequest { key, source: &src, size: data.len() as u64, sha256: &want, md5: None, resume };
    let err = remote.upload(req, &TransferCtx::default()).await.expect_err("upload into the checkpoints");
    assert!(err.message.contains("not writing partial copies"), "{err}");
    let after: Vec<_> = fs::read_dir(&ck).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(after, before, "nothing written in the checkpoints folder");
    assert_eq!(fs::read(&src).expect("source"), data);
}

// ---------------------------------------------------------------------------------------
// (4) Sizes around blocks and pieces; (5) the buffered filesystems

const SIZES: [usize; 14] = [
    0,
    1,
    4095,
    4096,
    4097,
    8192,
    4 * MIB - 1,
    4 * MIB,
    4 * MIB + 1,
    16 * MIB - 1,
    16 * MIB,
    16 * MIB + 1,
    16 * MIB + 4096,
    20 * MIB + 4095,
];

/// Every size through the three ways a copy is written: staged by the hash pass (then
/// only put in place), uploaded from the start, and resumed from an odd offset. Each is
/// stored and confirmed with exactly the source's bytes; no partial copy is left.
async fn every_size_every_way(r: &Rig, tag: &str) {
    for (i, &size) in SIZES.iter().enumerate() {
        let data = bytes(size, 600 + i as u64);
        let want = sha(&data);
        for way in ["staged", "fresh", "resumed"] {
            let key = format!("ck/{tag}_{way}_{size}.pt");
            let what = format!("{tag}: {size} bytes, {way}");
            let src = r.src(&key, &data);
            let session = match way {
                "staged" => {
                    assert_eq!(r.hash_pass(&key, &src, size as u64), want, "{what}");
                    None
                }
                "fresh" => None,
                _ => {
                    let cut = (size / 2).saturating_sub(1) | 1;
                    let cut = cut.min(size);
                    fs::create_dir_all(r.root.join(PARTIAL_DIR)).expect("mkdir");
                    fs::write(r.part(&key), &data[..cut]).expect("partial");
                    Some(want.as_str())
                }
            };
            let off = r
                .upload(&key, &src, size as u64, &want, session, &TransferCtx::default())
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            if way == "staged" {
                assert_eq!(off, size as u64, "{what}: the staged copy is used");
            }
            assert!(r.check_rule(&key, &data, &what).await, "{what}: not confirmed");
            assert!(r.stored(&key).is_some_and(|b| b == data), "{what}: stored bytes differ");
            // And read back through the remote.
            let dest = r.ws.join(format!("restore/{tag}_{way}_{size}"));
            let n = r.remote.download(&key, &dest, &TransferCtx::default()).await.expect("download");
            assert_eq!(n, size as u64, "{what}");
            assert!(fs::read(&dest).expect("restored") == data, "{what}: download differs");
            fs::remove_file(&dest).expect("rm");
            r.remote.delete(&key).await.expect("delete");
        }
    }
    let left: Vec<_> =
        fs::read_dir(r.root.join(PARTIAL_DIR)).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "{tag}: partial copies left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn sizes_around_blocks_and_pieces_on_ext4_direct() {
    let m = ext4(96, &[], false);
    let r = rig(&m.dir);
    assert!(direct_here(&r.root), "ext4: direct");
    every_size_every_way(&r, "ext4").await;
}

/// ext4 with 1 KiB blocks: direct writes of 4 KiB blocks still land whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn sizes_around_blocks_and_pieces_on_ext4_with_1k_blocks() {
    let m = ext4(96, &["-b", "1024"], false);
    let r = rig(&m.dir);
    assert!(direct_here(&r.root), "ext4: direct");
    every_size_every_way(&r, "ext4-1k").await;
}

/// ext4 journalling data (`data=journal`): the descriptor takes `O_DIRECT`, the kernel
/// writes through the journal instead; the bytes are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn sizes_around_blocks_and_pieces_on_ext4_journalling_data() {
    let m = ext4_mounted_with(128, &[], "loop,data=journal", false);
    let r = rig(&m.dir);
    assert!(direct_here(&r.root), "ext4 data=journal: O_DIRECT accepted");
    every_size_every_way(&r, "ext4-journal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn sizes_around_blocks_and_pieces_on_tmpfs_and_overlay() {
    let t = tmpfs("96m");
    let r = rig(&t.dir);
    assert!(!direct_here(&r.root), "tmpfs: buffered");
    every_size_every_way(&r, "tmpfs").await;
    drop(r);
    let e = ext4(128, &[], false);
    let o = overlay(&e.dir);
    let r = rig(&o.dir);
    assert!(!direct_here(&r.root), "overlay: buffered");
    every_size_every_way(&r, "overlay").await;
}

// ---------------------------------------------------------------------------------------
// (6) The writer itself on a real ext4

/// The writer leaves no `O_DIRECT` on a descriptor it was given when it finishes, and a
/// direct write that the disk cuts short (full disk) surfaces as an error, never as a
/// shorter file reported written.
#[test]
#[ignore = "needs root"]
fn a_direct_write_cut_short_by_a_full_disk_is_an_error() {
    let m = ext4(32, &[], false);
    let filler = fill(&m.dir);
    give_back(&m.dir, &filler, 300);
    let p = m.dir.join("f");
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).expect("open");
    let mut w = DirectWriter::new(&f, 0);
    assert!(w.is_direct());
    // 8 MiB from an aligned address (as the pipeline's pieces): direct from there.
    let mut room = vec![0u8; 8 * MIB + 4096];
    let at = room.as_ptr().align_offset(4096);
    let data = bytes(8 * MIB, 700);
    room[at..at + data.len()].copy_from_slice(&data);
    let r = w.write(&f, &room[at..at + data.len()]).and_then(|()| w.finish(&f)).and_then(|()| f.sync_all());
    let e = r.expect_err("8 MiB into 1.2 MiB of space");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    let got = fs::read(&p).expect("read");
    assert!(got[..] == data[..got.len()], "what was written is a prefix of the data");
}
