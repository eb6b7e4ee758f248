//! The Drive remote through its real client code (yup-oauth2 for the token, reqwest for the
//! API) against the Drive + OAuth stand-in in `tests/support/drive.rs`: layout and lookups,
//! revisions, racing folder creation, resumable uploads cut and resumed, expired sessions,
//! downloads with Range, errors in words for the engine, credentials checked in words, and
//! `remote check`.

#[path = "support/drive.rs"]
mod standin;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opsconsole::sync::drive::auth::KeyLookup;
use opsconsole::sync::drive::{DriveRemote, DriveSettings};
use opsconsole::sync::hash;
use opsconsole::sync::remote::{ErrorKind, Remote, TransferCtx, UploadRequest};
use standin::{Action, DriveStandIn, Fault, Op, Options, Role, SA_EMAIL};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// A stand-in with a Shared Drive "Team" (the service account a writer) holding folder
/// "rsm_project"; a key file for it in a temp folder outside any git work tree.
struct Rig {
    d: DriveStandIn,
    dir: tempfile::TempDir,
    folder: String,
    key: PathBuf,
}

impl Rig {
    fn new(opts: Options) -> Self {
        let d = DriveStandIn::start(opts);
        let team = d.add_shared_drive("Team", &[(SA_EMAIL, Role::Writer)]);
        let folder = d.add_folder(&team, "rsm_project");
        let dir = tempfile::tempdir().expect("tmp");
        let key = dir.path().join("secrets/sa.json");
        d.write_key(&key);
        Self { d, dir, folder, key }
    }

    fn settings(&self, folder: &str, chunk: u64) -> DriveSettings {
        DriveSettings {
            folder_id: folder.to_string(),
            key: KeyLookup {
                key_file: Some(self.key.clone()),
                env: None,
                home: Some(self.dir.path().to_path_buf()),
                workspace: self.dir.path().join("ws"),
            },
            scope: "drive.file".into(),
            chunk,
            endpoint: self.d.endpoint(),
            subject: None,
        }
    }

    fn remote(&self, chunk: u64) -> DriveRemote {
        DriveRemote::new("drive", self.settings(&self.folder, chunk))
    }

    fn file(&self, name: &str, bytes: &[u8]) -> (PathBuf, String) {
        let p = self.dir.path().join("src").join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write");
        let sha = hash::sha256_file(&p).expect("sha");
        (p, sha)
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fastrand::Rng::with_seed(seed).fill(&mut v);
    v
}

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    hash::hex(&md5::Md5::digest(b))
}

/// resume_point then upload, as the engine does.
async fn store(
    r: &DriveRemote,
    key: &str,
    src: &Path,
    sha: &str,
    ctx: &TransferCtx,
) -> Result<String, opsconsole::sync::remote::RemoteError> {
    let size = std::fs::metadata(src).expect("meta").len();
    let rp = r.resume_point(key, sha, None).await?;
    let req = UploadRequest { key, source: src, size, sha256: sha, md5: None, resume: rp };
    Ok(r.upload(req, ctx).await?.remote_id)
}

#[test]
fn files_land_in_folders_by_path_and_read_back() {
    let rig = Rig::new(Options { page_size: 2, ..Options::default() });
    let r = rig.remote(256 * KIB);
    let ctx = TransferCtx::default();
    let names = [
        "journal.md",
        "experiments/v68/logs/train.log",
        "experiments/v68/logs/eval.log",
        "experiments/v68/metrics.json",
        "experiments/it's a \\ test/ünïcödé ✓.json",
        "experiments/v69/logs/train.log",
    ];
    rt().block_on(async {
        for (i, n) in names.iter().enumerate() {
            let bytes = pattern(300 * KIB as usize + i * 1000, i as u64);
            let (src, sha) = rig.file(&format!("f{i}"), &bytes);
            store(&r, n, &src, &sha, &ctx).await.expect("stored");
            let obj = r.stat(n).await.expect("stat").expect("present");
            assert_eq!(obj.size, bytes.len() as u64, "{n}");
            assert_eq!(obj.sha256.as_deref(), Some(sha.as_str()), "{n}: SHA-256 from appProperties");
            assert_eq!(obj.md5.as_deref(), Some(md5_hex(&bytes).as_str()), "{n}: Drive's md5Checksum");
        }
        assert!(r.stat("experiments/v68/logs/missing.log").await.expect("stat").is_none());
        assert!(r.stat("nowhere/x.log").await.expect("stat").is_none());

        // The layout on Drive is the workspace layout; each folder exists once.
        let on_drive = rig.d.files_under(&rig.folder);
        let keys: Vec<&String> = on_drive.keys().collect();
        let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(keys, want.iter().collect::<Vec<_>>());
        assert_eq!(rig.d.folders_named(&rig.folder, "experiments"), 1);

        // list: by prefix, over paged listings (two items a page).
        let all: Vec<String> = r.list("").await.expect("list").into_iter().map(|o| o.key).collect();
        assert_eq!(all, want);
        let v68: Vec<String> = r.list("experiments/v68/").await.expect("list").into_iter().map(|o| o.key).collect();
        assert_eq!(
            v68,
            ["experiments/v68/logs/eval.log", "experiments/v68/logs/train.log", "experiments/v68/metrics.json"]
        );
        let partial: Vec<String> = r.list("experiments/v6").await.expect("list").into_iter().map(|o| o.key).collect();
        assert_eq!(partial.len(), 4, "{partial:?}");

        // download, then delete (to the trash).
        let dest = rig.dir.path().join("back/ünïcödé.json");
        let n = r.download(names[4], &dest, &ctx).await.expect("download");
        assert_eq!(std::fs::read(&dest).expect("read"), pattern(300 * KIB as usize + 4000, 4));
        assert_eq!(n, 300 * KIB + 4000);
        r.delete(names[4]).await.expect("delete");
        r.delete(names[4]).await.expect("deleting what is gone is fine");
        assert!(r.stat(names[4]).await.expect("stat").is_none());
        assert!(rig.d.trashed().iter().any(|n| n == "ünïcödé ✓.json"));
    });

    // Every call said supportsAllDrives=true, every list also includeItemsFromAllDrives=true.
    let seen = rig.d.counters().seen;
    for (m, line) in &seen {
        if line.starts_with("/token") || line.contains("upload_id=") {
            continue;
        }
        assert!(line.contains("supportsAllDrives=true") || line.starts_with("/drive/v3/drives/"), "{m} {line}");
        if m == "GET" && line.starts_with("/drive/v3/files?") {
            assert!(line.contains("includeItemsFromAllDrives=true"), "{line}");
        }
    }
    assert!(seen.iter().any(|(_, l)| l.contains("pageToken=")), "paged listings were followed");
}

#[test]
fn a_file_already_on_drive_gets_a_new_revision_not_a_twin() {
    let rig = Rig::new(Options::default());
    let r = rig.remote(256 * KIB);
    let ctx = TransferCtx::default();
    rt().block_on(async {
        let (a, sha_a) = rig.file("a", b"first version\n");
        let id1 = store(&r, "logs/run.log", &a, &sha_a, &ctx).await.expect("first");
        let (b, sha_b) = rig.file("b", &pattern(700 * KIB as usize, 9));
        let id2 = store(&r, "logs/run.log", &b, &sha_b, &ctx).await.expect("second");
        assert_eq!(id1, id2, "same file, new revision");
        let obj = r.stat("logs/run.log").await.expect("stat").expect("present");
        assert_eq!(obj.sha256.as_deref(), Some(sha_b.as_str()));
        assert_eq!(rig.d.files_under(&rig.folder).len(), 1);
        assert_eq!(rig.d.content(&id2), pattern(700 * KIB as usize, 9));

        // Changed behind our back (a new revision from the web UI keeps appProperties): the
        // SHA-256 is no longer claimed.
        rig.d.overwrite(&id2, b"edited in the browser");
        let obj = r.stat("logs/run.log").await.expect("stat").expect("present");
        assert_eq!(obj.sha256, None, "stale appProperties are not trusted");
        assert_eq!(obj.md5.as_deref(), Some(md5_hex(b"edited in the browser").as_str()));
    });
}

#[test]
fn racing_uploads_create_each_folder_once() {
    let rig = Rig::new(Options::default());
    // Two remotes: two engines (or an engine and `remote check`) in different processes.
    let r1 = Arc::new(rig.remote(256 * KIB));
    let r2 = Arc::new(rig.remote(256 * KIB));
    let srcs: Vec<(PathBuf, String)> =
        (0..8).map(|i| rig.file(&format!("r{i}"), format!("file {i}\n").as_bytes())).collect();
    rt().block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (i, (src, sha)) in srcs.iter().cloned().enumerate() {
            let r = if i % 2 == 0 { r1.clone() } else { r2.clone() };
            set.spawn(async move {
                let ctx = TransferCtx::default();
                store(&r, &format!("new/deep/folder/f{i}.json"), &src, &sha, &ctx).await
            });
        }
        while let Some(res) = set.join_next().await {
            res.expect("join").expect("stored");
        }
    });
    assert_eq!(rig.d.folders_named(&rig.folder, "new"), 1, "one 'new' folder");
    let files = rig.d.files_under(&rig.folder);
    assert_eq!(files.len(), 8, "{:?}", files.keys().collect::<Vec<_>>());
    assert!(files.keys().all(|k| k.starts_with("new/deep/folder/")), "{:?}", files.keys());
}

#[test]
fn a_300_mb_upload_cut_at_five_random_points_completes_with_the_right_md5() {
    let rig = Rig::new(Options::default());
    let chunk = 8 * MIB;
    let r = rig.remote(chunk);
    let size = 300_000_000u64;
    // Generated, not stored in the repository: a repeated random block with a counter.
    let src = rig.dir.path().join("big.bin");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&src).expect("create");
        let mut block = pattern(MIB as usize, 42);
        let mut left = size;
        let mut i = 0u32;
        while left > 0 {
            block[..4].copy_from_slice(&i.to_le_bytes());
            let n = left.min(MIB) as usize;
            f.write_all(&block[..n]).expect("write");
            left -= n as u64;
            i += 1;
        }
    }
    let sha = hash::sha256_file(&src).expect("sha");
    let mut rng = fastrand::Rng::with_seed(0xD21E);
    let chunks = size.div_ceil(chunk) as u32;
    let mut at: Vec<u32> = Vec::new();
    while at.len() < 5 {
        let c = rng.u32(0..chunks - 1);
        if !at.contains(&c) {
            at.push(c);
        }
    }
    at.sort();
    let mut prev = 0;
    let mut cut_points = Vec::new();
    for c in &at {
        let bytes = rng.u64(1..chunk);
        // Each cut re-sends part of a chunk, so later chunk requests shift by one.
        rig.d.push_fault(Fault::new(Op::Chunk, Action::Cut(bytes)).after(c - prev));
        cut_points.push((c, bytes));
        prev = *c;
    }
    let ctx = TransferCtx::default();
    rt().block_on(async {
        store(&r, "checkpoints/big.bin", &src, &sha, &ctx).await.expect("stored despite five cuts");
    });
    let c = rig.d.counters();
    assert_eq!(c.cuts, 5, "all five cuts happened: {cut_points:?}");
    assert_eq!(rig.d.faults_left(), 0);
    let files = rig.d.files_under(&rig.folder);
    let (_, stored_size, stored_md5, props) = &files["checkpoints/big.bin"];
    assert_eq!(*stored_size, size);
    let want_md5 = {
        use md5::Digest;
        let mut h = md5::Md5::new();
        let mut f = std::fs::File::open(&src).expect("open");
        std::io::copy(&mut f, &mut h).expect("md5");
        hash::hex(&h.finalize())
    };
    assert_eq!(stored_md5, &want_md5);
    assert_eq!(props.get("opsconsole_sha256"), Some(&sha));
    assert_eq!(props.get("opsconsole_md5"), Some(&want_md5));
    assert_eq!(c.sessions_started, 1, "one session throughout");
    let resent = c.upload_bytes - size;
    assert!(resent <= 5 * chunk, "at most one chunk re-sent per cut: {resent} bytes re-sent");
    eprintln!("300 MB with five cuts: {resent} bytes sent twice ({} chunks of {chunk})", c.chunks);
}

#[test]
fn a_restarted_upload_resumes_its_session_and_an_expired_one_starts_over() {
    let rig = Rig::new(Options::default());
    let chunk = 256 * KIB;
    let r = rig.remote(chunk);
    let bytes = pattern((3 * MIB + 12_345) as usize, 7);
    let (src, sha) = rig.file("resume.bin", &bytes);
    let key = "checkpoints/resume.bin";
    rt().block_on(async {
        // First run: stopped (the engine shutting down) after the fourth chunk went.
        let rp = r.resume_point(key, &sha, None).await.expect("session");
        assert_eq!(rp.offset, 0);
        let session = rp.session.clone().expect("a session to keep in the ledger");
        assert!(session.contains("upload_id="), "the session URI is what the ledger keeps");
        let ctx = TransferCtx::default();
        let stopper = ctx.clone();
        let counter = ctx.bytes_done.clone();
        let watch = tokio::spawn(async move {
            while counter.load(std::sync::atomic::Ordering::Relaxed) < 4 * chunk {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            stopper.cancel.cancel();
        });
        let req = UploadRequest { key, source: &src, size: bytes.len() as u64, sha256: &sha, md5: None, resume: rp };
        let err = r.upload(req, &ctx).await.expect_err("cancelled");
        assert_eq!(err.kind, ErrorKind::Cancelled);
        watch.await.expect("watch");

        // Second run (a new remote: a new process): the same session, from where Drive stands.
        let r2 = rig.remote(chunk);
        let rp = r2.resume_point(key, &sha, Some(&session)).await.expect("resume");
        assert_eq!(rp.session.as_deref(), Some(session.as_str()), "the same session");
        assert!(rp.offset >= 4 * chunk && rp.offset % chunk == 0, "resumes at {}", rp.offset);
        let before = rig.d.counters().upload_bytes;
        let req =
            UploadRequest { key, source: &src, size: bytes.len() as u64, sha256: &sha, md5: None, resume: rp.clone() };
        r2.upload(req, &TransferCtx::default()).await.expect("finished");
        assert_eq!(rig.d.counters().upload_bytes - before, bytes.len() as u64 - rp.offset, "nothing re-sent");
        assert_eq!(rig.d.counters().sessions_started, 1);
        let obj = r2.stat(key).await.expect("stat").expect("stored");
        assert_eq!(obj.md5.as_deref(), Some(md5_hex(&bytes).as_str()));

        // A finished session asked again (killed after the last chunk, before the ledger
        // said so) is confirmed without sending anything.
        let rp = r2.resume_point(key, &sha, Some(&session)).await.expect("done session");
        assert_eq!(rp.offset, bytes.len() as u64);
        let before = rig.d.counters().upload_bytes;
        let req = UploadRequest { key, source: &src, size: bytes.len() as u64, sha256: &sha, md5: None, resume: rp };
        r2.upload(req, &TransferCtx::default()).await.expect("confirmed");
        assert_eq!(rig.d.counters().upload_bytes, before);

        // An expired session (Drive keeps them a week) starts again from zero, in a new
        // session, after one transient failure.
        let bytes2 = pattern((2 * MIB) as usize, 8);
        let (src2, sha2) = rig.file("resume2.bin", &bytes2);
        let rp = r2.resume_point(key, &sha2, None).await.expect("session");
        let session2 = rp.session.clone().expect("session");
        rig.d.push_fault(Fault::new(Op::Chunk, Action::Cut(300 * KIB)).after(2));
        let req = UploadRequest { key, source: &src2, size: bytes2.len() as u64, sha256: &sha2, md5: None, resume: rp };
        let ctx = TransferCtx::default();
        let stopper = ctx.clone();
        let d = &rig.d;
        let counter = ctx.bytes_done.clone();
        let up = r2.upload(req, &ctx);
        tokio::pin!(up);
        // Expire while it runs: after the cut, its status query finds the session gone.
        loop {
            tokio::select! {
                res = &mut up => {
                    let e = res.expect_err("the session expired");
                    assert_eq!(e.kind, ErrorKind::Transient);
                    assert!(e.message.contains("expired"), "{}", e.message);
                    break;
                }
                _ = tokio::time::sleep(Duration::from_millis(1)) => {
                    if counter.load(std::sync::atomic::Ordering::Relaxed) >= 2 * chunk {
                        d.expire_sessions();
                    }
                }
            }
        }
        drop(stopper);
        let rp = r2.resume_point(key, &sha2, Some(&session2)).await.expect("new session");
        assert_eq!(rp.offset, 0);
        assert_ne!(rp.session.as_deref(), Some(session2.as_str()));
        let req = UploadRequest { key, source: &src2, size: bytes2.len() as u64, sha256: &sha2, md5: None, resume: rp };
        r2.upload(req, &TransferCtx::default()).await.expect("stored from zero");
        let obj = r2.stat(key).await.expect("stat").expect("stored");
        assert_eq!(obj.sha256.as_deref(), Some(sha2.as_str()));
        assert_eq!(rig.d.files_under(&rig.folder).len(), 1, "still one file");
    });
}

#[test]
fn nothing_stored_yet_is_a_308_without_range_and_the_upload_starts_at_zero() {
    let rig = Rig::new(Options::default());
    let r = rig.remote(512 * KIB);
    let bytes = pattern((MIB + 1) as usize, 3);
    let (src, sha) = rig.file("small.bin", &bytes);
    // Cut 1000 bytes into the first chunk: Drive keeps nothing (less than 256 KiB).
    rig.d.push_fault(Fault::new(Op::Chunk, Action::Cut(1000)));
    rt().block_on(async {
        store(&r, "a/small.bin", &src, &sha, &TransferCtx::default()).await.expect("stored");
    });
    let c = rig.d.counters();
    assert_eq!(c.cuts, 1);
    assert!(c.status_queries >= 1, "asked where it stood");
    assert_eq!(c.upload_bytes, bytes.len() as u64 + 1000);
    let (_, size, md5, _) = rig.d.files_under(&rig.folder)["a/small.bin"].clone();
    assert_eq!((size, md5), (bytes.len() as u64, md5_hex(&bytes)));
}

#[test]
fn an_empty_file_is_stored_and_confirmed() {
    let rig = Rig::new(Options::default());
    let r = rig.remote(256 * KIB);
    let (src, sha) = rig.file("empty", b"");
    rt().block_on(async {
        store(&r, "logs/empty.log", &src, &sha, &TransferCtx::default()).await.expect("stored");
        let o = r.stat("logs/empty.log").await.expect("stat").expect("present");
        assert_eq!((o.size, o.md5.as_deref()), (0, Some("d41d8cd98f00b204e9800998ecf8427e")));
        assert_eq!(o.sha256.as_deref(), Some(sha.as_str()));
    });
}

#[test]
fn short_waits_and_broken_connections_are_retried_inside_the_upload() {
    let rig = Rig::new(Options::default());
    let chunk = 256 * KIB;
    let r = rig.remote(chunk);
    let bytes = pattern((2 * MIB) as usize, 11);
    let (src, sha) = rig.file("retry.bin", &bytes);
    for f in [
        Fault::status(Op::Chunk, 500, "backendError", None),
        Fault::status(Op::Chunk, 503, "backendError", None).after(1),
        Fault::status(Op::Chunk, 403, "rateLimitExceeded", None).after(1),
        Fault::status(Op::Chunk, 429, "rateLimitExceeded", Some(1)),
        Fault::status(Op::Status, 502, "backendError", None),
        Fault::status(Op::List, 403, "userRateLimitExceeded", Some(0)),
    ] {
        rig.d.push_fault(f);
    }
    rt().block_on(async {
        // The lookup's 403 rate limit reaches the caller (the engine retries it) ...
        let e = store(&r, "x/retry.bin", &src, &sha, &TransferCtx::default()).await.expect_err("rate limited lookup");
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(e.message.contains("slow down"), "{}", e.message);
        // ... the chunks' failures are sat out inside the upload.
        store(&r, "x/retry.bin", &src, &sha, &TransferCtx::default()).await.expect("stored");
    });
    assert_eq!(rig.d.faults_left(), 0, "every fault was met");
    assert_eq!(rig.d.files_under(&rig.folder)["x/retry.bin"].2, md5_hex(&bytes));
}

#[test]
fn long_waits_go_back_to_the_engine_with_their_retry_after() {
    let rig = Rig::new(Options::default());
    let r = rig.remote(256 * KIB);
    let (src, sha) = rig.file("w.bin", &pattern((MIB) as usize, 1));
    rig.d.push_fault(Fault::status(Op::Chunk, 429, "rateLimitExceeded", Some(120)));
    rt().block_on(async {
        let e = store(&r, "w.bin", &src, &sha, &TransferCtx::default()).await.expect_err("429");
        assert_eq!(e.kind, ErrorKind::Transient);
        assert_eq!(e.retry_after, Some(Duration::from_secs(120)));
        assert!(e.reason().contains("Drive asks to slow down"), "{}", e.reason());
    });
    rig.d.push_fault(Fault::status(Op::Start, 403, "uploadLimitExceeded", None));
    rt().block_on(async {
        let e = store(&r, "w2.bin", &src, &sha, &TransferCtx::default()).await.expect_err("daily cap");
        assert_eq!(e.kind, ErrorKind::Transient, "retried after the day rolls over");
        assert!(e.message.contains("750 GB"), "{}", e.message);
        assert!(e.retry_after.is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(86_400)));
    });
}

#[test]
fn permanent_failures_say_what_to_do() {
    let rig = Rig::new(Options::default());
    let (src, sha) = rig.file("p.bin", b"payload");
    let mine = rig.d.add_my_drive_folder("alice@example.com", "colab_workspace", Some(Role::Writer));
    let other = rig.d.add_shared_drive("Other team", &[("someone@example.com", Role::Writer)]);
    let other_folder = rig.d.add_folder(&other, "theirs");
    let team2 = rig.d.add_shared_drive("Readers", &[(SA_EMAIL, Role::Reader)]);
    let read_only = rig.d.add_folder(&team2, "ro");
    let remote = |folder: &str| DriveRemote::new("drive", rig.settings(folder, 256 * KIB));
    rt().block_on(async {
        let ctx = TransferCtx::default();
        // A My Drive folder: a service account has no storage.
        let e = store(&remote(&mine), "logs/a.log", &src, &sha, &ctx).await.expect_err("quota");
        assert_eq!(e.kind, ErrorKind::Quota);
        assert!(e.message.contains("no storage quota: a service account has none of its own"), "{}", e.message);
        let fix = e.fix.clone().expect("fix");
        assert!(fix.contains("Shared Drive") && fix.contains(SA_EMAIL), "{fix}");
        // A wrong id, and a Shared Drive the account is not a member of: both 404, in words.
        for folder in ["1NoSuchFolderId", other_folder.as_str()] {
            let e = store(&remote(folder), "a.log", &src, &sha, &ctx).await.expect_err("404");
            assert_eq!(e.kind, ErrorKind::NotFound);
            assert!(e.message.contains("a wrong id, or a Shared Drive the service account"), "{}", e.message);
            assert!(e.fix.as_deref().is_some_and(|f| f.contains("member")), "{:?}", e.fix);
        }
        // A reader may not store.
        let e = store(&remote(&read_only), "a.log", &src, &sha, &ctx).await.expect_err("403");
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.fix.as_deref().is_some_and(|f| f.contains("Content manager")), "{:?}", e.fix);
    });
}

#[test]
fn tokens_are_cached_refreshed_before_expiry_and_once_after_a_401() {
    // Tokens live 62 s; yup-oauth2 takes a new one a minute before expiry.
    let rig = Rig::new(Options { token_lifetime: 62, ..Options::default() });
    let r = rig.remote(256 * KIB);
    let (src, sha) = rig.file("t.bin", b"tokens");
    rt().block_on(async {
        let ctx = TransferCtx::default();
        store(&r, "t1.bin", &src, &sha, &ctx).await.expect("stored");
        let first = rig.d.counters().token_requests;
        assert_eq!(first, 1, "one token for many calls");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        store(&r, "t2.bin", &src, &sha, &ctx).await.expect("stored");
        assert_eq!(rig.d.counters().token_requests, 2, "a fresh token before the old one ran out");
        assert_eq!(rig.d.counters().unauthorized, 0, "no call was made with an expiring token");

        // Revoked behind our back: one 401, one new token, the call goes through.
        rig.d.revoke_tokens();
        assert!(r.stat("t1.bin").await.expect("stat after refresh").is_some());
        let c = rig.d.counters();
        assert_eq!((c.unauthorized, c.token_requests), (1, 3));

        // A key Google no longer accepts: permanent, in words.
        rig.d.revoke_tokens();
        rig.d.disable_key(true);
        let e = r.stat("t1.bin").await.expect_err("refused");
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.message.contains("Google refused the service-account key"), "{}", e.message);
        assert!(e.message.contains("Invalid JWT Signature"), "{}", e.message);
        // Fixed (a new key): the next call reads the key again and works.
        rig.d.disable_key(false);
        assert!(r.stat("t1.bin").await.expect("works again").is_some());
    });
    for t in rig.d.issued_tokens() {
        assert!(!format!("{r:?}").contains(&t));
    }
}

#[test]
fn downloads_resume_a_part_file_follow_redirects_without_the_token_and_verify() {
    let rig = Rig::new(Options { redirect_downloads: true, ..Options::default() });
    let r = rig.remote(MIB);
    let bytes = pattern((3 * MIB + 77) as usize, 5);
    let (src, sha) = rig.file("d.bin", &bytes);
    let dest = rig.dir.path().join("restore/d.bin");
    let part = rig.dir.path().join("restore/d.bin.part");
    rt().block_on(async {
        let ctx = TransferCtx::default();
        store(&r, "checkpoints/d.bin", &src, &sha, &ctx).await.expect("stored");
        // Cut after 1 MiB + 5: the part file keeps what came.
        rig.d.push_fault(Fault::new(Op::Download, Action::Cut(MIB + 5)));
        let e = r.download("checkpoints/d.bin", &dest, &ctx).await.expect_err("cut");
        assert_eq!(e.kind, ErrorKind::Transient);
        let have = std::fs::metadata(&part).expect("part kept").len();
        assert!(have > 0 && have <= MIB + 5, "{have}");
        let before = rig.d.counters().download_bytes;
        let n = r.download("checkpoints/d.bin", &dest, &ctx).await.expect("resumed");
        assert_eq!(n, bytes.len() as u64);
        assert_eq!(std::fs::read(&dest).expect("read"), bytes);
        assert!(!part.exists());
        assert_eq!(rig.d.counters().download_bytes - before, bytes.len() as u64 - have, "only the rest was fetched");
        // A damaged part file is caught by the checksum and thrown away.
        std::fs::remove_file(&dest).expect("rm");
        std::fs::write(&part, vec![0u8; 1000]).expect("bad part");
        let e = r.download("checkpoints/d.bin", &dest, &ctx).await.expect_err("mismatch");
        assert!(e.message.contains("does not match its checksum"), "{}", e.message);
        assert!(!part.exists() && !dest.exists());
        r.download("checkpoints/d.bin", &dest, &ctx).await.expect("fetched again");
        assert_eq!(std::fs::read(&dest).expect("read"), bytes);
        let e = r.download("checkpoints/none.bin", &dest, &ctx).await.expect_err("absent");
        assert_eq!(e.kind, ErrorKind::NotFound);
    });
    let c = rig.d.counters();
    assert!(c.seen.iter().any(|(_, l)| l.starts_with("/download/")), "downloads came from the other origin");
    assert_eq!(c.auth_leaks, 0, "the token never went to the other origin");
}

fn git(dir: &Path, args: &[&str]) {
    let out =
        std::process::Command::new("git").arg("-C").arg(dir).args(args).output().expect("git is needed for this test");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn key_file_problems_each_get_their_message() {
    let rig = Rig::new(Options::default());
    let (src, sha) = rig.file("k.bin", b"k");
    let with_key = |key: &Path| {
        let mut s = rig.settings(&rig.folder, 256 * KIB);
        s.key.key_file = Some(key.to_path_buf());
        DriveRemote::new("drive", s)
    };
    let first_failure = |r: &DriveRemote| {
        let steps = rt().block_on(r.check());
        let bad = steps.into_iter().find(|s| !s.ok).expect("a failing step");
        (bad.name, bad.detail, bad.fix.unwrap_or_default())
    };
    // Missing: every place looked is named.
    let r = DriveRemote::new(
        "drive",
        DriveSettings {
            key: KeyLookup {
                key_file: None,
                env: None,
                home: Some(rig.dir.path().join("home")),
                workspace: rig.dir.path().into(),
            },
            ..rig.settings(&rig.folder, 256 * KIB)
        },
    );
    let (step, detail, fix) = first_failure(&r);
    assert_eq!(step, "key file");
    assert!(
        detail.contains(
            "key_file (not set); $GOOGLE_APPLICATION_CREDENTIALS (not set); ~/.secrets/colab-service-account.json ("
        ),
        "{detail}"
    );
    assert!(fix.contains("gcloud iam service-accounts keys create"), "{fix}");

    // Not a service-account key; not JSON.
    let user = rig.dir.path().join("user.json");
    std::fs::write(&user, r#"{"type": "authorized_user", "client_id": "x", "refresh_token": "1//secret"}"#).expect("w");
    let (_, detail, _) = first_failure(&with_key(&user));
    assert!(
        detail
            .contains("user.json is a user's OAuth credentials (type \"authorized_user\"), not a service-account key"),
        "{detail}"
    );
    assert!(!detail.contains("1//secret"));
    let junk = rig.dir.path().join("junk.json");
    std::fs::write(&junk, "-----BEGIN PRIVATE KEY-----\nMIIE").expect("w");
    let (_, detail, _) = first_failure(&with_key(&junk));
    assert!(detail.contains("is not a service-account key: not valid JSON (line 1, column "), "{detail}");
    assert!(!detail.contains("MIIE"));

    // Readable by others: a warning, and the key still works.
    let loose = rig.dir.path().join("loose.json");
    rig.d.write_key(&loose);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let steps = rt().block_on(with_key(&loose).check());
    assert!(steps.iter().all(|s| s.ok), "{steps:?}");
    assert!(
        steps[0].detail.contains("warning: the key file") && steps[0].detail.contains("(mode 0644); run: chmod 600"),
        "{}",
        steps[0].detail
    );

    // Inside a git work tree that does not ignore it: refused until it is ignored.
    let repo = rig.dir.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    let inside = repo.join(".secrets/colab-service-account.json");
    rig.d.write_key(&inside);
    let r = with_key(&inside);
    let e = rt().block_on(store(&r, "g.bin", &src, &sha, &TransferCtx::default())).expect_err("refused");
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("is inside the git work tree") && e.message.contains("git does not ignore it"),
        "{}",
        e.message
    );
    assert!(e.fix.as_deref().is_some_and(|f| f.contains(".gitignore") && f.contains("'.secrets/'")), "{:?}", e.fix);
    std::fs::write(repo.join(".gitignore"), ".secrets/\n").expect("ignore");
    rt().block_on(store(&r, "g.bin", &src, &sha, &TransferCtx::default())).expect("ignored now: used");
    // Tracked (committed by force): in the history, so it must be replaced.
    git(&repo, &["add", "-f", ".secrets/colab-service-account.json"]);
    let (_, detail, fix) = first_failure(&with_key(&inside));
    assert!(detail.contains("is tracked by git"), "{detail}");
    assert!(fix.contains("create a new one") && fix.contains("git -C"), "{fix}");
}

#[test]
fn remote_check_walks_key_token_folder_and_a_probe() {
    let rig = Rig::new(Options::default());
    let steps = rt().block_on(rig.remote(256 * KIB).check());
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["key file", "token", "folder", "probe stored", "probe reads back", "probe deleted"]);
    assert!(steps.iter().all(|s| s.ok && s.fix.is_none()), "{steps:?}");
    assert!(steps[0].detail.contains(SA_EMAIL), "{}", steps[0].detail);
    assert_eq!(steps[2].detail, "'rsm_project' in Shared Drive 'Team'");
    assert!(rig.d.files_under(&rig.folder).is_empty(), "the probe is gone");
    assert_eq!(rig.d.trashed().len(), 1);
    let text = format!("{steps:?}");
    for t in rig.d.issued_tokens() {
        assert!(!text.contains(&t), "no token in the check's output");
    }

    // A My Drive folder: the folder says where it is, the probe fails with the fix.
    let mine = rig.d.add_my_drive_folder("alice@example.com", "colab_workspace", Some(Role::Writer));
    let steps = rt().block_on(DriveRemote::new("drive", rig.settings(&mine, 256 * KIB)).check());
    assert!(
        steps[2].ok && steps[2].detail.contains("in the My Drive of alice@example.com, not a Shared Drive"),
        "{steps:?}"
    );
    let last = steps.last().expect("steps");
    assert_eq!((last.name.as_str(), last.ok), ("probe stored", false));
    assert!(last.fix.as_deref().is_some_and(|f| f.contains("Shared Drive")), "{last:?}");

    // A wrong id; a folder the account may only read.
    let steps = rt().block_on(DriveRemote::new("drive", rig.settings("1WrongId", 256 * KIB)).check());
    let last = steps.last().expect("steps");
    assert_eq!((last.name.as_str(), last.ok), ("folder", false));
    assert!(last.fix.as_deref().is_some_and(|f| f.contains("check folder_id")), "{last:?}");
    let ro = rig.d.add_shared_drive("Readers", &[(SA_EMAIL, Role::Reader)]);
    let steps = rt().block_on(DriveRemote::new("drive", rig.settings(&ro, 256 * KIB)).check());
    let last = steps.last().expect("steps");
    assert!(!last.ok && last.detail.contains("may only read it"), "{last:?}");
}

/// The stand-in checked against Google's own client (see `tests/support/drive_fidelity.py`
/// and the versions recorded in `tests/support/drive.rs`). Run it with
/// `cargo test --test drive -- --ignored fidelity` after
/// `pip install google-api-python-client google-auth`.
#[test]
#[ignore = "fidelity check: needs python3 with google-api-python-client (pip)"]
fn fidelity_google_api_python_client_agrees_with_the_stand_in() {
    // httplib2 retries a request whose connection broke by itself, with the file body already
    // read: it then sends less than its Content-Length says, and waits. Drive's front end
    // gives up on such a request; so does the stand-in, after 2 s here.
    let rig = Rig::new(Options { page_size: 2, body_idle: Duration::from_secs(2), ..Options::default() });
    let mine = rig.d.add_my_drive_folder("alice@example.com", "colab_workspace", Some(Role::Writer));
    // Faults on: the first chunk cut before 256 KiB (nothing kept: the status query answers
    // 308 without Range), a later chunk cut mid-way, a 503 opening a session, a 429 on a
    // lookup.
    rig.d.push_fault(Fault::new(Op::Chunk, Action::Cut(100 * KIB)));
    rig.d.push_fault(Fault::new(Op::Chunk, Action::Cut(700 * KIB)).after(1));
    rig.d.push_fault(Fault::status(Op::Start, 503, "backendError", None).after(1));
    rig.d.push_fault(Fault::status(Op::List, 429, "rateLimitExceeded", Some(1)));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/drive_fidelity.py");
    let out_dir = rig.dir.path().join("py");
    std::fs::create_dir_all(&out_dir).expect("mkdir");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(rig.d.endpoint())
        .arg(&rig.key)
        .arg(&rig.folder)
        .arg(&mine)
        .arg(&out_dir)
        .output()
        .expect("python3 runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "Google's client disagreed with the stand-in:\n{text}");
    assert!(text.contains("all checks passed"));
    let c = rig.d.counters();
    assert_eq!(c.cuts, 2, "both cuts were met by the client");
    assert_eq!(rig.d.faults_left(), 0, "every fault was met");
    assert!(c.status_queries >= 2, "the client asked where the session stood");
    assert!(c.token_requests >= 1 && c.tokens_refused == 0, "google-auth's JWT passed the stand-in's checks");
}

#[test]
fn a_second_401_after_a_fresh_token_is_permanent() {
    let rig = Rig::new(Options::default());
    let r = rig.remote(256 * KIB);
    rig.d.push_fault(Fault::status(Op::List, 401, "authError", None));
    rig.d.push_fault(Fault::status(Op::List, 401, "authError", None));
    rt().block_on(async {
        let e = r.stat("a/b.log").await.expect_err("refused twice");
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.message.contains("Drive refused access"), "{}", e.message);
        assert!(r.stat("a/b.log").await.expect("the next call reads the key again and works").is_none());
    });
    assert_eq!(rig.d.counters().token_requests, 3, "first token, one refresh, then a fresh start");
}

#[test]
fn acting_as_a_user_stores_into_their_my_drive() {
    let rig = Rig::new(Options { delegation: true, ..Options::default() });
    let mine = rig.d.add_my_drive_folder("alice@example.com", "colab_workspace", None);
    let mut s = rig.settings(&mine, 256 * KIB);
    s.subject = Some("alice@example.com".into());
    let r = DriveRemote::new("drive", s);
    let (src, sha) = rig.file("u.bin", b"as alice");
    rt().block_on(async {
        store(&r, "logs/u.log", &src, &sha, &TransferCtx::default()).await.expect("stored as alice");
        let steps = r.check().await;
        assert!(steps.iter().all(|s| s.ok), "{steps:?}");
        assert!(steps[1].detail.contains("acting as alice@example.com"), "{}", steps[1].detail);
        assert_eq!(steps[2].detail, "'colab_workspace' in the My Drive of alice@example.com");
    });
    assert_eq!(rig.d.files_under(&mine).len(), 1);
    // Without delegation allowed for the account, Google refuses the token.
    let rig2 = Rig::new(Options::default());
    let mut s = rig2.settings(&rig2.folder, 256 * KIB);
    s.subject = Some("alice@example.com".into());
    let e = rt().block_on(DriveRemote::new("drive", s).stat("x")).expect_err("no delegation");
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(e.fix.as_deref().is_some_and(|f| f.contains("domain-wide delegation")), "{:?}", e.fix);
}

#[test]
fn a_session_answering_410_gone_starts_over_too() {
    let rig = Rig::new(Options { expired_status: 410, ..Options::default() });
    let r = rig.remote(256 * KIB);
    let bytes = pattern((MIB + 5) as usize, 4);
    let (src, sha) = rig.file("g.bin", &bytes);
    rt().block_on(async {
        let rp = r.resume_point("g.bin", &sha, None).await.expect("session");
        let old = rp.session.clone();
        rig.d.expire_sessions();
        let rp = r.resume_point("g.bin", &sha, old.as_deref()).await.expect("a new session");
        assert_eq!(rp.offset, 0);
        assert_ne!(rp.session, old);
        let req =
            UploadRequest { key: "g.bin", source: &src, size: bytes.len() as u64, sha256: &sha, md5: None, resume: rp };
        r.upload(req, &TransferCtx::default()).await.expect("stored");
    });
    assert!(rig.d.counters().seen.iter().any(|(m, _)| m == "PUT"), "the old session was asked");
    assert_eq!(rig.d.files_under(&rig.folder)["g.bin"].2, md5_hex(&bytes));
}
