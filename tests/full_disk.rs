//! Pruning at 100% disk, on a real tmpfs filled to the last byte (as root): the ledger's
//! confirmations are still read (SQLite's WAL needs to write `-shm` even to read, and a
//! full disk refuses that), the plan deletes confirmed checkpoints, `prune --yes` frees
//! space, and the screens say "disk full" in words. Both ledger states are tried: cleanly
//! closed, and with committed confirmations only in the `-wal` file and no `-shm` (which
//! SQLite's `immutable=1` would miss). And a sync daemon whose ledger writes fail backs off
//! instead of spinning, says why, and carries on once space is back.

#[path = "support/tmux.rs"]
mod tmux;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tmux::Tmux;

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A tmpfs of `size` at a fresh folder (mode 0755: a world-writable root would make its
/// config untrusted). Mounting needs root: the tests that call this are
/// `#[ignore = "needs root"]` and fail, rather than pass, when run without it.
fn tmpfs(size: &str) -> (tempfile::TempDir, Unmount) {
    assert!(rustix::process::geteuid().is_root(), "the full-disk tests need root to mount a tmpfs");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
        .arg(dir.path())
        .output()
        .expect("mount runs");
    assert!(out.status.success(), "mount: {}", String::from_utf8_lossy(&out.stderr));
    let guard = Unmount(dir.path().to_path_buf());
    (dir, guard)
}

fn available(p: &Path) -> u64 {
    opsconsole::disk::statvfs(p).expect("statvfs").2
}

/// Fill the filesystem holding `dir` to the last byte; returns the filler's path.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler.bin");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0xa5u8; 1 << 20];
    loop {
        if let Err(e) = f.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(rustix::io::Errno::NOSPC.raw_os_error()), "{e}");
            break;
        }
    }
    // The last partial megabyte, page by page.
    let page = vec![0xa5u8; 4096];
    while f.write_all(&page).is_ok() {}
    drop(f);
    assert_eq!(available(dir), 0, "the disk is full");
    assert!(std::fs::write(dir.join("probe"), b"x").is_err(), "a one-byte write fails");
    let _ = std::fs::remove_file(dir.join("probe"));
    filler
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opsconsole"));
    c.env("XDG_STATE_HOME", std::env::temp_dir()).env("XDG_CONFIG_HOME", "/nonexistent-xdg");
    c
}

fn json(ws: &Path, args: &[&str]) -> serde_json::Value {
    let out = bin().arg("-w").arg(ws).args(args).output().expect("run");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A workspace on the tmpfs with four 2 MiB checkpoints an hour old, stored on L3 (a
/// remote on another disk) by `sync --once`.
fn workspace(mnt: &Path, remote: &Path) -> PathBuf {
    let ws = mnt.join("ws");
    let ck = ws.join("checkpoints");
    std::fs::create_dir_all(&ck).expect("mkdir");
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!(
            "[checkpoints]\nkeep_last = 1\n\n[sync]\nsettle_seconds = 1\n\n[sync.l3]\nremote = \"r3\"\n\n\
             [remotes.r3]\nkind = \"local\"\npath = \"{}\"\n",
            remote.display()
        ),
    )
    .expect("config");
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for (i, step) in [100, 200, 300, 400].into_iter().enumerate() {
        let p = ck.join(format!("v1_step_{step}.pt"));
        let data: Vec<u8> = (0..(2u32 << 20)).map(|b| (b as u64 * 7 + step) as u8).collect();
        std::fs::write(&p, data).expect("checkpoint");
        let f = std::fs::File::options().write(true).open(&p).expect("open");
        f.set_modified(hour_ago + Duration::from_secs(i as u64 * 60)).expect("mtime");
    }
    let out = bin().arg("-w").arg(&ws).args(["remote", "check", "--init"]).output().expect("remote check");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let out = bin().arg("-w").arg(&ws).args(["sync", "--once"]).output().expect("sync");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    ws
}

/// Rewrites the ledger so that its main file says the uploads are pending and only the
/// `-wal` file says they are confirmed, with no `-shm` (SQLite recovers such a WAL on the
/// next open; `immutable=1` would not see it).
fn confirmations_only_in_the_wal(ws: &Path) {
    use rusqlite::Connection;
    use rusqlite::config::DbConfig;
    let path = opsconsole::sync::ledger::ledger_path(ws);
    let c = Connection::open(&path).expect("open");
    c.execute_batch(
        "CREATE TEMP TABLE keep AS SELECT path, level, state, confirmed_ms FROM uploads;
         UPDATE uploads SET state = 'pending', confirmed_ms = NULL;",
    )
    .expect("pending");
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoint");
    c.pragma_update(None, "wal_autocheckpoint", 0).expect("no autocheckpoint");
    c.execute_batch(
        "UPDATE uploads SET state = (SELECT k.state FROM keep k WHERE k.path = uploads.path AND k.level = uploads.level),
             confirmed_ms = (SELECT k.confirmed_ms FROM keep k WHERE k.path = uploads.path AND k.level = uploads.level);",
    )
    .expect("confirmed again, in the WAL");
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).expect("no checkpoint on close");
    drop(c);
    let wal = path.with_file_name("ledger.sqlite-wal");
    assert!(std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0), "the confirmations are in the WAL");
    let _ = std::fs::remove_file(path.with_file_name("ledger.sqlite-shm"));
    // What a reader that ignores the WAL would see: nothing confirmed.
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
    let imm = Connection::open_with_flags(format!("file:{}?immutable=1", path.display()), flags).expect("immutable");
    let confirmed: i64 =
        imm.query_row("SELECT COUNT(*) FROM uploads WHERE state = 'confirmed'", [], |r| r.get(0)).expect("count");
    assert_eq!(confirmed, 0, "immutable=1 misses the WAL: this is the case to get right");
}

fn prune_at_full_disk(wal_only: bool) {
    let (mnt, _guard) = tmpfs("24m");
    let remote = tempfile::tempdir().expect("remote");
    let ws = workspace(mnt.path(), remote.path());
    if wal_only {
        confirmations_only_in_the_wal(&ws);
    }
    let filler = fill(mnt.path());

    // The plan sees the confirmed checkpoints as confirmed, and deletes all but the newest.
    let plan = json(&ws, &["prune", "--dry-run", "--json"]);
    let items = plan["items"].as_array().expect("items");
    assert_eq!(items.len(), 4, "{plan:#}");
    for i in items {
        assert_eq!(i["confirmed_on"], serde_json::json!(["L3"]), "{i:#}");
    }
    assert_eq!(plan["delete_count"], 3, "{plan:#}");
    assert_eq!(plan["unconfirmed_deletes"], 0);
    // status reads the ledger too, and says why it is read-only.
    let status = json(&ws, &["status", "--json"]);
    assert_eq!(status["sync"]["levels"][1]["confirmed_files"], 4, "{:#}", status["sync"]);
    let ro = status["sync"]["ledger_read_only"].as_str().unwrap_or_default();
    assert!(ro.starts_with("disk full: the sync ledger is read-only"), "{:#}", status["sync"]);
    assert!(
        status["checkpoints"].as_array().expect("list").iter().all(|c| c["confirmed_on"] == serde_json::json!(["L3"]))
    );

    // The console: the Uploads panel says "disk full" in words, and the prune screen
    // offers the confirmed checkpoints.
    {
        Tmux::require();
        let cmd = format!(
            "env XDG_STATE_HOME={} XDG_CONFIG_HOME=/nonexistent-xdg {} -w {}",
            std::env::temp_dir().display(),
            env!("CARGO_BIN_EXE_opsconsole"),
            ws.display()
        );
        let t = Tmux::new(&format!("full-{wal_only}"), 120, 40, &cmd);
        let screen = t.wait_for("disk full on the Uploads panel", |s| s.contains("DISK FULL: ledger read-only"));
        assert!(!screen.contains("reading the sync ledger"), "{screen}");
        assert!(screen.contains("disk full: the sync"), "{screen}");
        t.send(&["p"]);
        t.wait_for("the plan with confirmed deletions", |s| s.contains("Prune plan") && s.contains("delete 3 of 4"));
        t.send(&["Escape"]);
        t.send(&["q"]);
    }

    // prune --yes frees the space.
    let done = json(&ws, &["prune", "--yes", "--json"]);
    assert_eq!(done["report"]["deleted"], 3, "{:#}", done["report"]);
    assert!(available(mnt.path()) >= 5 << 20, "space came back: {}", available(mnt.path()));
    assert!(ws.join("checkpoints/v1_step_400.pt").exists(), "the newest is kept");
    // The ledger lost nothing: opened normally now, the newest is still confirmed.
    let l = opsconsole::sync::ledger::Ledger::open(&ws).expect("ledger opens");
    assert!(l.integrity_ok().expect("check"));
    let e = l.entry("checkpoints/v1_step_400.pt", "L3").expect("row").expect("present");
    assert_eq!(e.state, opsconsole::sync::ledger::UploadState::Confirmed);
    drop(l);
    std::fs::remove_file(filler).expect("filler");
}

#[test]
#[ignore = "needs root and tmux"]
fn prune_at_100_percent_reads_confirmations_and_frees_space() {
    prune_at_full_disk(false);
}

#[test]
#[ignore = "needs root and tmux"]
fn prune_at_100_percent_sees_confirmations_that_are_only_in_the_wal() {
    prune_at_full_disk(true);
}

// ---------------------------------------------------------------- the engine

/// A remote whose uploads wait at a gate and then fail (transiently) while `failing`.
struct GatedRemote {
    inner: opsconsole::sync::local::LocalRemote,
    gate: tokio::sync::Semaphore,
    failing: std::sync::atomic::AtomicBool,
}

use opsconsole::sync::remote::{
    BoxFut, Remote, RemoteError, RemoteObject, ResumePoint, TransferCtx, UploadReceipt, UploadRequest,
};

impl Remote for GatedRemote {
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
            let _permit = self.gate.acquire().await.map_err(|_| RemoteError::transient("gate closed"))?;
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(RemoteError::transient("connection reset by peer"));
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

/// The engine's next event; a hang fails the test (a guard, not a timing check).
async fn next(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<opsconsole::sync::SyncEvent>,
) -> opsconsole::sync::SyncEvent {
    tokio::time::timeout(Duration::from_secs(90), rx.recv()).await.expect("an event within 90 s").expect("engine runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_ledger_that_cannot_be_written_is_backed_off_and_said_not_spun_on() {
    use opsconsole::sync::engine::{self, Mode, SyncEvent};
    let (mnt, _guard) = tmpfs("8m");
    let remote_dir = tempfile::tempdir().expect("remote");
    let ws = mnt.path().join("ws");
    std::fs::create_dir_all(ws.join("ck")).expect("mkdir");
    std::fs::write(ws.join("ck/step_1.pt"), vec![7u8; 64 * 1024]).expect("checkpoint");
    let inner = opsconsole::sync::local::LocalRemote::new("r3", remote_dir.path());
    assert!(inner.init_blocking().iter().all(|s| s.ok), "remote set up");
    let remote = Arc::new(GatedRemote {
        inner,
        gate: tokio::sync::Semaphore::new(0),
        failing: std::sync::atomic::AtomicBool::new(true),
    });
    let mut remotes: BTreeMap<String, Arc<dyn Remote>> = BTreeMap::new();
    remotes.insert("r3".into(), remote.clone());
    let mut c = opsconsole::sync::SyncConfig {
        settle_seconds: 1,
        retry_base_seconds: 1,
        retry_max_seconds: 4,
        workers_per_remote: 1,
        ..Default::default()
    };
    c.l3.remote = "r3".into();
    c.l3.interval_minutes = 0;
    let mut h = engine::start(&ws, &c, remotes, Mode::Daemon).expect("engine");

    // Queued, and the upload is in the remote's hands (waiting at the gate).
    loop {
        if let SyncEvent::Started { .. } = next(&mut h.events).await {
            break;
        }
    }
    // Now the disk fills: the WAL is emptied into the ledger file and truncated, and the
    // freed space is taken too, so the engine's next ledger write has no byte to go to.
    {
        let c = rusqlite::Connection::open(opsconsole::sync::ledger::ledger_path(&ws)).expect("open");
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoint");
    }
    let filler = fill(mnt.path());
    // The upload fails; recording the failure fails too.
    remote.gate.add_permits(1000);
    let mut troubles: Vec<(Instant, Duration, String)> = Vec::new();
    let mut failures = 0;
    while troubles.len() < 3 {
        match next(&mut h.events).await {
            SyncEvent::LedgerTrouble { why, retry_in } => troubles.push((Instant::now(), retry_in, why)),
            SyncEvent::Failed { .. } => failures += 1,
            _ => {}
        }
        assert!(failures < 20, "failures spin without waiting: {failures} failures, {} troubles", troubles.len());
    }
    for (_, _, why) in &troubles {
        assert!(why.starts_with("disk full: the sync ledger cannot record uploads"), "{why}");
    }
    // Each spell of trouble waits as long as it said, and the wait grows.
    for w in troubles.windows(2) {
        let (t0, wait, _) = &w[0];
        assert!(w[1].0.duration_since(*t0) >= wait.mul_f64(0.9), "tried again after {:?}, said {wait:?}", w[1].0 - *t0);
    }
    assert!(troubles[1].1 > troubles[0].1, "{:?}", troubles.iter().map(|t| t.1).collect::<Vec<_>>());
    // Space is back and the remote answers: the engine carries on by itself.
    std::fs::remove_file(filler).expect("filler");
    remote.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    loop {
        match next(&mut h.events).await {
            SyncEvent::Confirmed { path, .. } if path == "ck/step_1.pt" => break,
            _ => {}
        }
    }
    h.shutdown().await.expect("stops");
}

#[test]
#[ignore = "needs root"]
fn sync_on_a_disk_full_from_the_start_says_so_and_a_daemon_waits_for_space() {
    let (mnt, _guard) = tmpfs("16m");
    let remote = tempfile::tempdir().expect("remote");
    let ws = workspace(mnt.path(), remote.path());
    std::fs::write(
        ws.join("opsconsole.toml"),
        format!(
            "[sync]\nsettle_seconds = 1\nretry_base_seconds = 1\n\n[sync.l3]\nremote = \"r3\"\ninterval_minutes = 0\n\n\
             [remotes.r3]\nkind = \"local\"\npath = \"{}\"\n",
            remote.path().display()
        ),
    )
    .expect("config");
    std::fs::write(ws.join("checkpoints/v1_step_500.pt"), vec![5u8; 1 << 20]).expect("new checkpoint");
    let filler = fill(mnt.path());
    // --once: a plain error in words, exit 1.
    let out = bin().arg("-w").arg(&ws).args(["sync", "--once"]).output().expect("sync");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error: disk full: the sync ledger cannot be written"), "{err}");
    assert!(err.contains("opsconsole prune"), "{err}");
    // --daemon: says so once, waits, and starts by itself when space is back.
    let log = std::env::temp_dir().join(format!("opsconsole-daemon-{}.err", std::process::id()));
    let mut daemon = bin()
        .arg("-w")
        .arg(&ws)
        .args(["sync", "--daemon"])
        .stderr(std::fs::File::create(&log).expect("log"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("daemon");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !read().contains("the engine starts once there is space") {
        assert!(daemon.try_wait().expect("wait").is_none(), "the daemon exited: {}", read());
        assert!(Instant::now() < deadline, "no disk-full line: {}", read());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(read().contains("disk full: the sync ledger cannot record uploads"), "{}", read());
    std::fs::remove_file(filler).expect("filler");
    while !remote.path().join("checkpoints/v1_step_500.pt").exists() {
        assert!(daemon.try_wait().expect("wait").is_none(), "the daemon exited: {}", read());
        assert!(Instant::now() < deadline, "nothing stored after space came back: {}", read());
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = rustix::process::Pid::from_raw(daemon.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let status = daemon.wait().expect("wait");
    assert!(status.success(), "{status:?}: {}", read());
    let _ = std::fs::remove_file(&log);
}
