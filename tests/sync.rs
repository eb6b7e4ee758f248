//! Sync engine behaviour on real files: retries and permanent errors with a remote that
//! fails on command, the watcher (chunked writes, temp-then-rename, deletion before
//! upload), and a destination disk that really fills up (tmpfs, as root).

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opsconsole::sync::engine::{self, Command, EngineHandle, Mode, SyncEvent};
use opsconsole::sync::ledger::{Ledger, UploadState};
use opsconsole::sync::local::{LocalOptions, LocalRemote, PARTIAL_DIR};
use opsconsole::sync::remote::{
    BoxFut, ErrorKind, Remote, RemoteError, RemoteObject, ResumePoint, TransferCtx, UploadReceipt, UploadRequest,
};
use opsconsole::sync::sums::SumCache;
use opsconsole::sync::{SyncConfig, hash};

/// A LocalRemote that fails uploads on command, counts them, and can hold them at a gate.
struct TestRemote {
    inner: LocalRemote,
    failures: Mutex<VecDeque<RemoteError>>,
    uploads: Mutex<Vec<String>>,
    gate: Option<Arc<tokio::sync::Semaphore>>,
    started: AtomicUsize,
}

impl TestRemote {
    /// A folder remote, set up (root created inside its existing parent, marker written).
    fn new(name: &str, root: &Path) -> Self {
        let inner = LocalRemote::new(name, root);
        let steps = inner.init_blocking();
        assert!(steps.iter().all(|s| s.ok), "{steps:?}");
        Self {
            inner,
            failures: Mutex::new(VecDeque::new()),
            uploads: Mutex::new(Vec::new()),
            gate: None,
            started: AtomicUsize::new(0),
        }
    }
    fn fail_next(&self, e: RemoteError) {
        self.failures.lock().expect("lock").push_back(e);
    }
    fn uploads_of(&self, key: &str) -> usize {
        self.uploads.lock().expect("lock").iter().filter(|k| *k == key).count()
    }
}

impl Remote for TestRemote {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn resume_point<'a>(
        &'a self,
        key: &'a str,
        sha256: &'a str,
        session: Option<&'a str>,
    ) -> BoxFut<'a, Result<ResumePoint, RemoteError>> {
        self.inner.resume_point(key, sha256, session)
    }
    fn upload<'a>(
        &'a self,
        req: UploadRequest<'a>,
        ctx: &'a TransferCtx,
    ) -> BoxFut<'a, Result<UploadReceipt, RemoteError>> {
        Box::pin(async move {
            self.started.fetch_add(1, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                let _permit = gate.acquire().await.map_err(|_| RemoteError::transient("gate"))?;
            }
            self.uploads.lock().expect("lock").push(req.key.to_string());
            let scripted = self.failures.lock().expect("lock").pop_front();
            if let Some(e) = scripted {
                return Err(e);
            }
            self.inner.upload(req, ctx).await
        })
    }
    fn stat<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Option<RemoteObject>, RemoteError>> {
        self.inner.stat(key)
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Result<Vec<RemoteObject>, RemoteError>> {
        self.inner.list(prefix)
    }
    fn download<'a>(
        &'a self,
        key: &'a str,
        dest: &'a Path,
        ctx: &'a TransferCtx,
    ) -> BoxFut<'a, Result<u64, RemoteError>> {
        self.inner.download(key, dest, ctx)
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<(), RemoteError>> {
        self.inner.delete(key)
    }
    fn check<'a>(&'a self) -> BoxFut<'a, Vec<opsconsole::sync::remote::CheckStep>> {
        self.inner.check()
    }
}

fn config() -> SyncConfig {
    let mut c = SyncConfig {
        settle_seconds: 1,
        poll_seconds: 3,
        retry_base_seconds: 1,
        retry_max_seconds: 2,
        workers_per_remote: 1,
        ..SyncConfig::default()
    };
    c.l2.remote = "l2".into();
    c.l3.remote = "l3".into();
    c.l2.interval_minutes = 0;
    c.l3.interval_minutes = 0;
    c
}

struct Rig {
    _dir: tempfile::TempDir,
    ws: PathBuf,
    l2: Arc<TestRemote>,
    l3: Arc<TestRemote>,
}

fn rig_with(l3_root: Option<PathBuf>, gate: Option<Arc<tokio::sync::Semaphore>>) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).expect("mkdir");
    let l2 = Arc::new(TestRemote::new("l2", &dir.path().join("r2")));
    let mut l3 = TestRemote::new("l3", &l3_root.unwrap_or_else(|| dir.path().join("r3")));
    l3.gate = gate;
    Rig { ws, l2, l3: Arc::new(l3), _dir: dir }
}

fn start(rig: &Rig, c: &SyncConfig) -> EngineHandle {
    let mut remotes: BTreeMap<String, Arc<dyn Remote>> = BTreeMap::new();
    remotes.insert("l2".into(), rig.l2.clone());
    remotes.insert("l3".into(), rig.l3.clone());
    engine::start(&rig.ws, c, remotes, Mode::Daemon).expect("engine starts")
}

/// Collect events until one matches; a generous guard against a hang, not a timing check.
async fn wait_for(
    h: &mut EngineHandle,
    seen: &mut Vec<SyncEvent>,
    what: &str,
    pred: impl Fn(&SyncEvent) -> bool,
) -> SyncEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        match tokio::time::timeout_at(deadline, h.events.recv()).await {
            Ok(Some(ev)) => {
                seen.push(ev.clone());
                if pred(&ev) {
                    return ev;
                }
            }
            Ok(None) => panic!("engine stopped while waiting for {what}; saw {seen:#?}"),
            Err(_) => panic!("no {what} within 90 s; saw {seen:#?}"),
        }
    }
}

fn confirmed(path: &'static str) -> impl Fn(&SyncEvent) -> bool {
    move |e| matches!(e, SyncEvent::Confirmed { path: p, .. } if p == path)
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, data).expect("write");
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_back_off_honour_retry_after_then_succeed() {
    let rig = rig_with(None, None);
    rig.l3.fail_next(RemoteError::transient("connection reset"));
    rig.l3.fail_next(RemoteError::transient("429 Too Many Requests").with_retry_after(Duration::from_secs(3)));
    write(&rig.ws.join("ck/step_1.pt"), &pattern(300_000, 1));
    let mut h = start(&rig, &config());
    let mut seen = Vec::new();
    wait_for(&mut h, &mut seen, "confirmation", confirmed("ck/step_1.pt")).await;
    let fails: Vec<(bool, Option<Duration>)> = seen
        .iter()
        .filter_map(|e| match e {
            SyncEvent::Failed { permanent, retry_in, .. } => Some((*permanent, *retry_in)),
            _ => None,
        })
        .collect();
    assert_eq!(fails.len(), 2, "{seen:#?}");
    assert!(fails.iter().all(|(p, r)| !p && r.is_some()));
    // First retry: backoff from 1 s base with jitter (0.5..=1 s); second: Retry-After.
    let first = fails[0].1.expect("delay");
    assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1), "{first:?}");
    assert!(fails[1].1.expect("delay") >= Duration::from_secs(3));
    assert_eq!(rig.l3.uploads_of("ck/step_1.pt"), 3);
    h.shutdown().await.expect("stops");
    let l = Ledger::open(&rig.ws).expect("ledger");
    let e = l.entry("ck/step_1.pt", "L3").expect("q").expect("row");
    // Two failures are two attempts; starting (or resuming) an upload is not one.
    assert_eq!((e.state, e.attempts), (UploadState::Confirmed, 2));
    let kinds: Vec<String> = l.recent_events(10).expect("ev").into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "retrying").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_stop_with_a_reason_until_retried() {
    let rig = rig_with(None, None);
    rig.l2.fail_next(
        RemoteError::new(ErrorKind::Quota, "Drive quota exceeded for this account")
            .with_fix("use a Shared Drive folder"),
    );
    write(&rig.ws.join("logs/train.log"), b"step 1 loss 2.3\n");
    let mut h = start(&rig, &config());
    let mut seen = Vec::new();
    let ev = wait_for(&mut h, &mut seen, "failure", |e| matches!(e, SyncEvent::Failed { .. })).await;
    match ev {
        SyncEvent::Failed { permanent, retry_in, reason, level, .. } => {
            assert!(permanent);
            assert_eq!(retry_in, None);
            assert_eq!(level, "L2");
            assert_eq!(reason, "Drive quota exceeded for this account. Fix: use a Shared Drive folder");
        }
        _ => unreachable!(),
    }
    // A pass on demand does not retry it.
    h.send(Command::SyncNow(None));
    wait_for(
        &mut h,
        &mut seen,
        "pass end",
        |e| matches!(e, SyncEvent::PassDone { level, success: false, .. } if level == "L2"),
    )
    .await;
    assert_eq!(rig.l2.uploads_of("logs/train.log"), 1);
    let status = {
        let l = Ledger::open(&rig.ws).expect("ledger");
        opsconsole::sync::status::status_from_ledger(
            &l,
            &config(),
            &Default::default(),
            None,
            opsconsole::unixtime::now_ms(),
        )
        .expect("status")
    };
    assert_eq!(status.levels[0].failed, 1);
    assert!(status.levels[0].failures[0].permanent);
    assert!(status.levels[0].failures[0].reason.contains("Fix: use a Shared Drive folder"));
    // Retry failed: it goes through.
    h.send(Command::RetryFailed(None));
    wait_for(&mut h, &mut seen, "confirmation", confirmed("logs/train.log")).await;
    assert_eq!(rig.l2.uploads_of("logs/train.log"), 2);
    h.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_written_in_chunks_is_uploaded_once_after_it_is_complete() {
    let rig = rig_with(None, None);
    let mut h = start(&rig, &config());
    let data = pattern(8 * 256 * 1024, 7);
    let path = rig.ws.join("checkpoints/v68_step_100.pt");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let writer = {
        let data = data.clone();
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::create(&path).expect("create");
            // Eight chunks, 600 ms apart (longer than the 1 s settle period in total,
            // and each pause more than half of it), file held open throughout.
            for chunk in data.chunks(256 * 1024) {
                f.write_all(chunk).expect("write");
                f.flush().expect("flush");
                std::thread::sleep(Duration::from_millis(600));
            }
        })
    };
    writer.await.expect("writer");
    let mut seen = Vec::new();
    wait_for(&mut h, &mut seen, "confirmation", confirmed("checkpoints/v68_step_100.pt")).await;
    let stored = std::fs::read(rig.l3.inner.root().join("checkpoints/v68_step_100.pt")).expect("stored");
    assert_eq!(stored.len(), data.len());
    assert!(stored == data, "stored bytes differ from the finished checkpoint");
    // A pass after that finds nothing to do: it was uploaded once.
    h.send(Command::SyncNow(None));
    wait_for(&mut h, &mut seen, "pass end", |e| matches!(e, SyncEvent::PassDone { level, .. } if level == "L3")).await;
    assert_eq!(rig.l3.uploads_of("checkpoints/v68_step_100.pt"), 1);
    let queued = seen
        .iter()
        .filter(|e| matches!(e, SyncEvent::Queued { path, .. } if path == "checkpoints/v68_step_100.pt"))
        .count();
    assert_eq!(queued, 1, "{seen:#?}");
    h.shutdown().await.expect("stops");
}

/// A writer that closes the checkpoint after each chunk and opens it again to append, each
/// pause just under the 1 s settle period: the engine looks again the moment a settle period
/// ends, and must still find the file changed each time, storing it once, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_closed_and_reopened_just_inside_the_settle_period_is_stored_once_whole() {
    let rig = rig_with(None, None);
    let mut h = start(&rig, &config());
    let data = pattern(6 * 256 * 1024, 11);
    let path = rig.ws.join("checkpoints/v69_step_100.pt");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let writer = {
        let data = data.clone();
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            for (k, chunk) in data.chunks(256 * 1024).enumerate() {
                let mut f = if k == 0 {
                    std::fs::File::create(&path).expect("create")
                } else {
                    std::fs::OpenOptions::new().append(true).open(&path).expect("reopen")
                };
                f.write_all(chunk).expect("write");
                drop(f);
                std::thread::sleep(Duration::from_millis(850));
            }
        })
    };
    writer.await.expect("writer");
    let mut seen = Vec::new();
    wait_for(&mut h, &mut seen, "confirmation", confirmed("checkpoints/v69_step_100.pt")).await;
    let stored = std::fs::read(rig.l3.inner.root().join("checkpoints/v69_step_100.pt")).expect("stored");
    assert!(stored == data, "stored {} bytes, not the finished {}", stored.len(), data.len());
    h.send(Command::SyncNow(None));
    wait_for(&mut h, &mut seen, "pass end", |e| matches!(e, SyncEvent::PassDone { level, .. } if level == "L3")).await;
    assert_eq!(rig.l3.uploads_of("checkpoints/v69_step_100.pt"), 1, "{seen:#?}");
    h.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_then_rename_saves_are_stored_under_the_final_name_and_rewrites_requeue_once() {
    let rig = rig_with(None, None);
    let mut h = start(&rig, &config());
    let mut seen = Vec::new();
    let final_path = rig.ws.join("ck/model.safetensors");
    for (round, seed) in [(0, 3u8), (1, 4u8)] {
        let tmp = rig.ws.join("ck/model.safetensors.tmp");
        write(&tmp, &pattern(500_000 + round, seed));
        std::fs::rename(&tmp, &final_path).expect("rename");
        wait_for(&mut h, &mut seen, "confirmation", confirmed("ck/model.safetensors")).await;
        let stored = std::fs::read(rig.l3.inner.root().join("ck/model.safetensors")).expect("stored");
        assert!(stored == pattern(500_000 + round, seed), "round {round}: stored bytes differ");
    }
    assert_eq!(rig.l3.uploads_of("ck/model.safetensors"), 2);
    assert_eq!(rig.l3.uploads_of("ck/model.safetensors.tmp"), 0);
    let listed = rig.l3.inner.list("").await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    h.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_deleted_before_upload_is_dropped_with_a_note() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let rig = rig_with(None, Some(gate.clone()));
    // Older first, so the newer one is uploaded first and holds the only worker.
    let now = std::time::SystemTime::now();
    for (name, seed, age) in [("ck/old.pt", 1, 120), ("ck/new.pt", 2, 60)] {
        let p = rig.ws.join(name);
        write(&p, &pattern(100_000, seed));
        let f = std::fs::File::options().write(true).open(&p).expect("open");
        f.set_modified(now - Duration::from_secs(age)).expect("mtime");
    }
    let mut h = start(&rig, &config());
    let mut seen = Vec::new();
    let mut queued = std::collections::HashSet::new();
    while queued.len() < 2 {
        if let SyncEvent::Queued { path, .. } =
            wait_for(&mut h, &mut seen, "queued", |e| matches!(e, SyncEvent::Queued { .. })).await
        {
            queued.insert(path);
        }
    }
    while rig.l3.started.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_file(rig.ws.join("ck/old.pt")).expect("rm");
    let ev = wait_for(&mut h, &mut seen, "drop", |e| matches!(e, SyncEvent::Dropped { .. })).await;
    assert_eq!(
        ev,
        SyncEvent::Dropped {
            path: "ck/old.pt".into(),
            levels: vec!["L3".into()],
            note: "deleted before it was stored; dropped from the queue".into(),
        }
    );
    gate.add_permits(100);
    wait_for(&mut h, &mut seen, "confirmation", confirmed("ck/new.pt")).await;
    h.send(Command::SyncNow(None));
    wait_for(&mut h, &mut seen, "pass end", |e| matches!(e, SyncEvent::PassDone { level, .. } if level == "L3")).await;
    assert_eq!(rig.l3.uploads_of("ck/old.pt"), 0);
    h.shutdown().await.expect("stops");
    let l = Ledger::open(&rig.ws).expect("ledger");
    assert!(l.entry("ck/old.pt", "L3").expect("q").is_none());
    let note = l.recent_events(50).expect("ev").into_iter().find(|e| e.kind == "dropped").expect("a dropped note");
    assert_eq!(note.path.as_deref(), Some("ck/old.pt"));
}

/// Unmounts in drop.
struct Tmpfs(PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_full_destination_fails_clearly_leaves_the_source_alone_and_completes_later() {
    let outer = tempfile::tempdir().expect("tempdir");
    let mnt = outer.path().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let mounted =
        std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"]).arg(&mnt).output();
    match mounted {
        Ok(o) => {
            assert!(o.status.success(), "mounting a tmpfs (needs root): {}", String::from_utf8_lossy(&o.stderr).trim())
        }
        Err(e) => panic!("cannot run mount: {e}"),
    }
    let _guard = Tmpfs(mnt.clone());
    let root = mnt.join("backup");
    std::fs::create_dir_all(&root).expect("mkdir");
    // Leave about 1 MiB free.
    let filler = mnt.join("filler");
    write(&filler, &vec![1u8; 7 * 1024 * 1024]);

    let rig = rig_with(Some(root.clone()), None);
    let data = pattern(3 * 1024 * 1024, 9);
    let src = rig.ws.join("ck/step_9.pt");
    write(&src, &data);
    let src_sha = hash::sha256_file(&src).expect("hash");
    let mut h = start(&rig, &config());
    let mut seen = Vec::new();
    let ev = wait_for(&mut h, &mut seen, "failure", |e| matches!(e, SyncEvent::Failed { .. })).await;
    let SyncEvent::Failed { reason, permanent, .. } = ev else { unreachable!() };
    assert!(permanent);
    assert!(reason.starts_with("no space left on remote 'l3'"), "{reason}");
    assert!(reason.contains("Fix: free space"), "{reason}");
    assert_eq!(hash::sha256_file(&src).expect("hash"), src_sha, "source untouched");
    assert!(!root.join("ck/step_9.pt").exists());

    std::fs::remove_file(&filler).expect("free space");
    h.send(Command::RetryFailed(None));
    wait_for(&mut h, &mut seen, "confirmation", confirmed("ck/step_9.pt")).await;
    assert_eq!(hash::sha256_file(&root.join("ck/step_9.pt")).expect("hash"), src_sha);
    assert_eq!(hash::sha256_file(&src).expect("hash"), src_sha);
    h.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_stores_everything_routed_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    for (p, n) in [
        ("journal.md", 10),
        ("logs/train.log", 2000),
        ("frozen_requirements.txt", 50),
        ("ck/a.pt", 70_000),
        ("ck/checkpoint-5/model.safetensors", 90_000),
        ("ck/checkpoint-5/trainer_state.json", 300),
        ("train.py", 100),
        (".secrets/colab-service-account.json", 100),
    ] {
        write(&ws.join(p), &pattern(n, n as u8));
    }
    let mut c = config();
    c.l2.interval_minutes = 90;
    c.l3.interval_minutes = 180;
    let mut remotes = opsconsole::sync::RemotesConfig::new();
    // Test folders share the workspace's disk: allowed, and said, by same_disk.
    remotes.insert("l2".into(), opsconsole::sync::RemoteConfig::Local { path: dir.path().join("r2"), same_disk: true });
    remotes.insert("l3".into(), opsconsole::sync::RemoteConfig::Local { path: dir.path().join("r3"), same_disk: true });
    for r in engine::build_remotes(&remotes, &ws).values() {
        assert!(r.init().await.iter().all(|s| s.ok), "remote set up");
    }
    let summary = opsconsole::sync::run_once(&ws, &c, &remotes).await.expect("run");
    assert_eq!((summary.uploaded, summary.failed.len()), (6, 0), "{summary:?}");
    let list = |r: &str| -> Vec<String> {
        let mut v = Vec::new();
        let root = dir.path().join(r);
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("rd").flatten() {
                if e.file_type().expect("ft").is_dir() {
                    stack.push(e.path());
                } else if e.file_name() != opsconsole::sync::marker::MARKER_FILE {
                    v.push(e.path().strip_prefix(&root).expect("prefix").display().to_string());
                }
            }
        }
        v.sort();
        v
    };
    assert_eq!(list("r2"), vec!["frozen_requirements.txt", "journal.md", "logs/train.log"]);
    assert_eq!(list("r3"), vec!["ck/a.pt", "ck/checkpoint-5/model.safetensors", "ck/checkpoint-5/trainer_state.json"]);
    // A second run uploads nothing.
    let again = opsconsole::sync::run_once(&ws, &c, &remotes).await.expect("run");
    assert_eq!((again.uploaded, again.already_there), (0, 0), "{again:?}");
    let status = opsconsole::sync::read_status(&ws, &c, &remotes, opsconsole::unixtime::now_ms()).expect("status");
    assert!(status.levels.iter().all(|l| l.pending_files == 0 && l.last_success_unix.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_engine_per_workspace() {
    let rig = rig_with(None, None);
    let h = start(&rig, &config());
    let mut remotes: BTreeMap<String, Arc<dyn Remote>> = BTreeMap::new();
    remotes.insert("l3".into(), rig.l3.clone());
    match engine::start(&rig.ws, &config(), remotes, Mode::Daemon) {
        Err(engine::SyncError::Locked(e)) => {
            assert!(e.to_string().contains("another sync engine"), "{e}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a second engine started on the same workspace"),
    }
    assert_eq!(opsconsole::sync::lock::holder(&rig.ws), Some(std::process::id()));
    h.shutdown().await.expect("stops");
    assert_eq!(opsconsole::sync::lock::holder(&rig.ws), None);
}

#[test]
fn status_json_through_the_binary_has_the_sync_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    write(&ws.join("ck/a.pt"), &pattern(1000, 1));
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!(
            "[sync.l3]\nremote = \"r3\"\n\n[remotes.r3]\nkind = \"local\"\npath = \"{}\"\nsame_disk = true\n",
            dir.path().join("r3").display()
        ),
    )
    .expect("config");
    let bin = env!("CARGO_BIN_EXE_opsconsole");
    let init =
        std::process::Command::new(bin).arg("-w").arg(&ws).args(["remote", "check", "--init"]).output().expect("init");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stdout));
    let once = std::process::Command::new(bin)
        .arg("-w")
        .arg(&ws)
        .args(["sync", "--once"])
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .output()
        .expect("sync --once");
    assert!(once.status.success(), "{}", String::from_utf8_lossy(&once.stderr));
    assert!(String::from_utf8_lossy(&once.stderr).contains("L3 stored ck/a.pt"));
    let out = std::process::Command::new(bin)
        .arg("-w")
        .arg(&ws)
        .args(["status", "--json"])
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .output()
        .expect("status");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let l3 = &v["sync"]["levels"][1];
    assert_eq!(l3["level"], "L3");
    assert_eq!(l3["remote"], "r3");
    for key in ["pending_files", "pending_bytes", "last_success_unix", "overdue", "failed", "in_flight"] {
        assert!(l3.get(key).is_some(), "sync.levels[1].{key} missing: {l3}");
    }
    assert_eq!(l3["pending_files"], 0);
    assert!(l3["last_success_unix"].as_i64().is_some());
    assert_eq!(l3["same_disk"], true, "a remote on the workspace's disk is marked: {l3}");
    let text = std::process::Command::new(bin).arg("-w").arg(&ws).arg("status").output().expect("status");
    assert!(String::from_utf8_lossy(&text.stdout).contains("same disk: not a backup"));
    assert_eq!(v["sync"]["levels"][0]["remote_configured"], false);
}

/// Appends a line to `path` every `every` until `stop` is set; returns the lines written.
fn spawn_log_writer(
    path: PathBuf,
    every: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open log");
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            writeln!(f, "{{'loss': 2.{n:04}, 'grad_norm': 0.81, 'learning_rate': 0.0003, 'step': {n}}}")
                .expect("append");
            n += 1;
            std::thread::sleep(every);
        }
        n
    })
}

/// A 200 MB log already written, as a long run leaves it.
fn big_log(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let line = b"{'loss': 2.3102, 'grad_norm': 0.81, 'learning_rate': 0.0003, 'epoch': 1.42}\n";
    for _ in 0..(200_000_000 / line.len()) {
        f.write_all(line).expect("write");
    }
    f.flush().expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_keeps_growing_is_stored_as_a_snapshot_of_exactly_the_prefix_hashed() {
    for every in [Duration::from_millis(2), Duration::from_millis(100)] {
        let rig = rig_with(None, None);
        let log = rig.ws.join("experiments/v68/logs/train.log");
        big_log(&log);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = spawn_log_writer(log.clone(), every, stop.clone());
        let mut c = config();
        // A short snapshot period for the test (3 s); no size limit for the 200 MB log.
        c.snapshot_minutes = 0.05;
        c.l2.max_file_mb = 0;
        let mut h = start(&rig, &c);
        let mut seen = Vec::new();
        // Stored while the writer keeps writing, twice (a snapshot every period).
        for _ in 0..2 {
            wait_for(&mut h, &mut seen, "a snapshot stored", confirmed("experiments/v68/logs/train.log")).await;
        }
        assert!(!writer.is_finished(), "every {every:?}: the log was stored while it was still written");
        stop.store(true, Ordering::SeqCst);
        let lines = writer.join().expect("writer");
        h.shutdown().await.expect("stops");
        assert!(lines > 10, "the writer kept writing ({lines} lines)");
        // The stored copy is exactly the prefix that was hashed, and nothing else is there.
        let l = Ledger::open(&rig.ws).expect("ledger");
        let e = l.entry("experiments/v68/logs/train.log", "L2").expect("q").expect("row");
        let stored = rig.l2.inner.root().join("experiments/v68/logs/train.log");
        let copy_len = std::fs::metadata(&stored).expect("stored").len();
        if e.state == UploadState::Confirmed {
            assert_eq!(copy_len, e.bytes_total, "every {every:?}");
            assert_eq!(hash::sha256_file(&stored).expect("hash"), e.sha256);
        }
        assert!(copy_len > 200_000_000 - 100 && copy_len < std::fs::metadata(&log).expect("log").len());
        let prefix = hash::digest_prefix(&log, copy_len, false).expect("prefix");
        assert_eq!(hash::sha256_file(&stored).expect("hash"), prefix.sha256, "the stored bytes are the log's prefix");
        let listed = rig.l2.inner.list("").await.expect("list");
        assert_eq!(listed.len(), 1, "no stray copy: {listed:?}");
        let mismatches = seen.iter().filter(|e| matches!(e, SyncEvent::Failed { .. })).count();
        assert_eq!(mismatches, 0, "no verification failure: {seen:#?}");
    }
}

#[test]
fn sync_once_stores_a_growing_log_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let log = ws.join("experiments/v68/logs/train.log");
    big_log(&log);
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!(
            "[sync]\nsettle_seconds = 1\n\n[sync.l2]\nremote = \"r2\"\nmax_file_mb = 0\n\n[remotes.r2]\nkind = \"local\"\n\
             path = \"{}\"\nsame_disk = true\n",
            dir.path().join("r2").display()
        ),
    )
    .expect("config");
    let bin = env!("CARGO_BIN_EXE_opsconsole");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .arg("-w")
            .arg(&ws)
            .args(args)
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .output()
            .expect("run")
    };
    assert!(run(&["remote", "check", "--init"]).status.success());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = spawn_log_writer(log.clone(), Duration::from_millis(2), stop.clone());
    let once = run(&["sync", "--once"]);
    let still_writing = !writer.is_finished();
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    let err = String::from_utf8_lossy(&once.stderr);
    assert!(once.status.success(), "{err}");
    assert!(still_writing, "the log kept growing during the run");
    assert!(err.contains("L2 stored experiments/v68/logs/train.log") && err.contains("0 not stored"), "{err}");
    let stored = dir.path().join("r2/experiments/v68/logs/train.log");
    let len = std::fs::metadata(&stored).expect("stored").len();
    assert_eq!(
        hash::sha256_file(&stored).expect("hash"),
        hash::digest_prefix(&log, len, false).expect("prefix").sha256
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_takes_a_snapshot_of_a_growing_log_at_once() {
    let rig = rig_with(None, None);
    let log = rig.ws.join("logs/train.log");
    write(&log, b"start\n");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = spawn_log_writer(log.clone(), Duration::from_millis(20), stop.clone());
    let mut c = config();
    // Far longer than the test: only `s` can take it while it grows.
    c.snapshot_minutes = 60.0;
    let mut h = start(&rig, &c);
    let mut seen = Vec::new();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rig.l2.uploads_of("logs/train.log"), 0, "not before its period: {seen:?}");
    h.send(Command::SyncNow(None));
    wait_for(&mut h, &mut seen, "the snapshot stored", confirmed("logs/train.log")).await;
    assert!(!writer.is_finished(), "taken while still written");
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    h.shutdown().await.expect("stops");
    let l = Ledger::open(&rig.ws).expect("ledger");
    let e = l.entry("logs/train.log", "L2").expect("q").expect("row");
    let stored = rig.l2.inner.root().join("logs/train.log");
    assert_eq!(std::fs::metadata(&stored).expect("stored").len(), e.bytes_total);
    assert_eq!(hash::sha256_file(&stored).expect("hash"), e.sha256);
    // Only local remotes here: the hash pass took no MD5 (nothing would compare it).
    assert_eq!(e.md5, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_upload_whose_source_is_gone_is_cleaned_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let r3 = dir.path().join("r3");
    let src = ws.join("ck/step_1.pt");
    write(&src, &pattern(4 << 20, 3));
    // 512 KiB/s: the upload is still going when the engine stops.
    let mut c = config();
    c.bandwidth_limit_kib_s = 512;
    // The test folder shares the workspace's disk: allowed, and said, by same_disk.
    let mut rc = opsconsole::sync::RemotesConfig::new();
    rc.insert("l3".into(), opsconsole::sync::RemoteConfig::Local { path: r3.clone(), same_disk: true });
    let remotes = engine::build_remotes(&rc, &ws);
    for r in remotes.values() {
        assert!(r.init().await.iter().all(|s| s.ok), "remote set up");
    }
    let mut h = engine::start(&ws, &c, remotes, engine::Mode::Daemon).expect("engine");
    let mut seen = Vec::new();
    wait_for(&mut h, &mut seen, "progress", |e| matches!(e, SyncEvent::Progress { bytes_done, .. } if *bytes_done > 0))
        .await;
    h.shutdown().await.expect("stops");
    let partials = |r: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(r.join(opsconsole::sync::local::PARTIAL_DIR))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    assert_eq!(partials(&r3).len(), 1, "the interrupted upload is left resumable");
    // The source is deleted while no engine runs; the next run drops it, and its partial.
    std::fs::remove_file(&src).expect("rm");
    let summary = opsconsole::sync::run_once(&ws, &c, &rc).await.expect("run");
    assert_eq!(summary.dropped, 1, "{summary:?}");
    assert!(partials(&r3).is_empty(), "a partial upload stays behind: {:?}", partials(&r3));
    assert!(!r3.join("ck/step_1.pt").exists());
}

/// A local remote as the config builds it (with remembered checksums), the engine itself
/// driving it: the copy is made while the file is hashed.
fn local_with_sums(name: &str, root: &Path, ws: &Path) -> Arc<LocalRemote> {
    let r = LocalRemote::with_options(
        name,
        root,
        LocalOptions {
            sums: Some(SumCache::new(ws.join(".opsconsole/remote-sums.sqlite"))),
            ..LocalOptions::default()
        },
    );
    assert!(r.init_blocking().iter().all(|s| s.ok));
    Arc::new(r)
}

fn partials(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join(PARTIAL_DIR)).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

fn started_at(seen: &[SyncEvent], path: &str) -> Vec<(u64, u64)> {
    seen.iter()
        .filter_map(|e| match e {
            SyncEvent::Started { path: p, offset, bytes_total, .. } if p == path => Some((*offset, *bytes_total)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_is_copied_while_it_is_hashed_and_a_copy_changed_behind_our_back_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).expect("mkdir");
    let (r2, r3) = (dir.path().join("r2"), dir.path().join("r3"));
    let mut remotes: BTreeMap<String, Arc<dyn Remote>> = BTreeMap::new();
    remotes.insert("l2".into(), local_with_sums("l2", &r2, &ws));
    remotes.insert("l3".into(), local_with_sums("l3", &r3, &ws));
    let one = pattern(20 << 20, 5);
    write(&ws.join("ck/step_1.pt"), &one);
    let mut h = engine::start(&ws, &config(), remotes, Mode::Daemon).expect("engine starts");
    let mut seen = Vec::new();
    wait_for(&mut h, &mut seen, "step 1 confirmed", confirmed("ck/step_1.pt")).await;
    // The hash pass wrote the copy: the upload started with every byte already there.
    assert_eq!(started_at(&seen, "ck/step_1.pt"), vec![(one.len() as u64, one.len() as u64)], "{seen:#?}");
    assert_eq!(std::fs::read(r3.join("ck/step_1.pt")).expect("stored"), one);
    assert!(partials(&r3).is_empty());
    let e = Ledger::open(&ws).expect("ledger").entry("ck/step_1.pt", "L3").expect("q").expect("row");
    assert_eq!((e.state, e.md5), (UploadState::Confirmed, None), "no MD5 for a local remote");

    // The same bytes saved again: hashed again (and copied while hashed), not stored again,
    // and that copy is not left on the remote. Step 2, written after, is hashed after it.
    write(&ws.join("ck/step_1.pt"), &one);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let two = pattern(3 << 20, 9);
    write(&ws.join("ck/step_2.pt"), &two);
    wait_for(&mut h, &mut seen, "step 2 confirmed", confirmed("ck/step_2.pt")).await;
    let ones = seen.iter().filter(|e| matches!(e, SyncEvent::Confirmed { path, .. } if path == "ck/step_1.pt")).count();
    assert_eq!(ones, 1, "step 1 was not stored twice: {seen:#?}");
    assert!(partials(&r3).is_empty(), "no copy left behind: {:?}", partials(&r3));

    // Step 2's copy changed behind our back, its mtime put back: the next pass finds it
    // (the remembered checksum no longer applies) and stores it again.
    let stored = r3.join("ck/step_2.pt");
    let mtime = std::fs::metadata(&stored).and_then(|m| m.modified()).expect("mtime");
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&stored).expect("open");
        f.write_all(b"tampered").expect("write");
        f.set_modified(mtime).expect("mtime back");
    }
    h.send(Command::SyncNow(None));
    wait_for(
        &mut h,
        &mut seen,
        "step 2 requeued",
        |e| matches!(e, SyncEvent::Requeued { path, .. } if path == "ck/step_2.pt"),
    )
    .await;
    wait_for(&mut h, &mut seen, "step 2 stored again", confirmed("ck/step_2.pt")).await;
    assert_eq!(std::fs::read(&stored).expect("stored"), two);
    h.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_bandwidth_cap_nothing_is_copied_while_hashing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).expect("mkdir");
    let r3 = dir.path().join("r3");
    let mut remotes: BTreeMap<String, Arc<dyn Remote>> = BTreeMap::new();
    remotes.insert("l2".into(), local_with_sums("l2", &dir.path().join("r2"), &ws));
    remotes.insert("l3".into(), local_with_sums("l3", &r3, &ws));
    let one = pattern(2 << 20, 3);
    write(&ws.join("ck/step_1.pt"), &one);
    let mut c = config();
    c.bandwidth_limit_kib_s = 8192;
    let mut h = engine::start(&ws, &c, remotes, Mode::Daemon).expect("engine starts");
    let mut seen = Vec::new();
    wait_for(&mut h, &mut seen, "confirmed", confirmed("ck/step_1.pt")).await;
    assert_eq!(started_at(&seen, "ck/step_1.pt"), vec![(0, one.len() as u64)], "the upload sent it, capped");
    assert_eq!(std::fs::read(r3.join("ck/step_1.pt")).expect("stored"), one);
    h.shutdown().await.expect("stops");
}

/// Issue 15 item 6: under a cap the engine's progress reads the cap, never the start's
/// burst (a full token bucket and a chunk announced before the wait used to read as
/// 78 MB/s under a 10 MiB/s cap), and no rate is given before the readings span
/// `rate::MIN_SPAN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_under_a_cap_reads_the_cap_not_the_burst() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).expect("mkdir");
    let mut remotes: BTreeMap<String, Arc<dyn Remote>> = BTreeMap::new();
    remotes.insert("l2".into(), local_with_sums("l2", &dir.path().join("r2"), &ws));
    remotes.insert("l3".into(), local_with_sums("l3", &dir.path().join("r3"), &ws));
    let data = pattern(40 << 20, 5);
    write(&ws.join("ck/step_1.pt"), &data);
    let mut c = config();
    c.bandwidth_limit_kib_s = 8192;
    let cap = 8192.0 * 1024.0;
    let mut h = engine::start(&ws, &c, remotes, Mode::Daemon).expect("engine starts");
    let mut seen = Vec::new();
    wait_for(&mut h, &mut seen, "confirmed", confirmed("ck/step_1.pt")).await;
    let rates: Vec<(u64, u64)> = seen
        .iter()
        .filter_map(|e| match e {
            SyncEvent::Progress { path, bytes_done, rate_bytes_per_s, .. } if path == "ck/step_1.pt" => {
                Some((*bytes_done, *rate_bytes_per_s))
            }
            _ => None,
        })
        .collect();
    // 40 MiB at 8 MiB/s after a one-second burst: at least four seconds of readings.
    assert!(rates.iter().any(|(_, r)| *r > 0), "a rate once the readings span MIN_SPAN: {rates:?}");
    for (done, r) in &rates {
        assert!((*r as f64) < 1.35 * cap, "{} MiB/s at {done} under an 8 MiB/s cap: {rates:?}", *r as f64 / 1048576.0);
    }
    // The first readings (the burst) give no rate.
    assert_eq!(rates.first().map(|r| r.1), Some(0), "{rates:?}");
    h.shutdown().await.expect("stops");
}
