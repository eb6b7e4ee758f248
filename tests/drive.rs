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
use opsconsole::sync::remote::{ErrorKind, Remote, ResumePoint, TransferCtx, UploadRequest};
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
