//! The executor (`exec`) on real workspaces: what it does with effects, off the UI task.
//! - the sync engine is started on a blocking thread: with the ledger locked by another
//!   connection the executor starts at once, the collectors report, and the Uploads panel
//!   waits for the decision instead of showing a wrong one;
//! - a prune builds its context (the ledger) on its job thread, never in `run`;
//! - a prune is cancellable: cancelled before it starts it deletes nothing; cancelled by
//!   quitting, it finishes the item in hand, reports `cancelled`, and what it reports as
//!   deleted is exactly what is gone.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use opsconsole::app::{AppState, Effect, Msg};
use opsconsole::checkpoints::{ItemOutcome, PruneProgress, PruneReport};
use opsconsole::collectors::Collectors;
use opsconsole::config::Config;
use opsconsole::exec::engine::EngineConfig;
use opsconsole::exec::{Effects, Executor};
use opsconsole::sync::EngineSource;
use opsconsole::workspace::{HostInfo, Workspace};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(60);

/// A workspace with `n` old checkpoints (explicit mtimes, a minute apart, days ago) and a
/// local remote on L3 that the engine would store them on.
fn workspace(n: usize) -> (tempfile::TempDir, PathBuf, Config) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let remote = dir.path().join("remote");
    fs::create_dir_all(ws.join("checkpoints")).expect("mkdir");
    fs::create_dir_all(&remote).expect("mkdir");
    let toml = format!(
        "[gpu]\nenabled = false\n\n[checkpoints]\nkeep_last = 1\n\n[sync.l3]\nremote = \"r3\"\n\n\
         [remotes.r3]\nkind = \"local\"\npath = \"{}\"\nsame_disk = true\n",
        remote.display()
    );
    fs::write(ws.join("opsconsole.toml"), &toml).expect("config");
    let base = SystemTime::now() - Duration::from_secs(3 * 86_400);
    for i in 0..n {
        let p = ws.join(format!("checkpoints/run_step_{}.pt", (i + 1) * 100));
        fs::write(&p, vec![i as u8; 4096]).expect("checkpoint");
        fs::File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(base + Duration::from_secs(60 * i as u64)))
            .expect("mtime");
    }
    let (cfg, _) = opsconsole::config::load(Some(&ws.join("opsconsole.toml"))).expect("config loads");
    (dir, ws, cfg)
}

fn state(ws: &Path, cfg: &Config) -> AppState {
    AppState::new(cfg.clone(), HostInfo::current(), ws.to_path_buf(), SystemTime::now())
}

fn executor(ws: &Path, cfg: &Config, tx: mpsc::UnboundedSender<Msg>) -> Executor {
    let mut collectors = Collectors::new(&Workspace::at(ws), cfg);
    collectors.checkpoints = false;
    let engine = EngineConfig {
        workspace: ws.to_path_buf(),
        sync: cfg.sync.clone(),
        remotes: cfg.remotes.clone(),
        checkpoint_roots: cfg.checkpoints.roots.clone(),
        start_engine: true,
    };
    Executor::start(collectors, engine, tx)
}

/// Waits for the first message `pick` takes, skipping the others.
async fn wait_for<T>(rx: &mut mpsc::UnboundedReceiver<Msg>, what: &str, mut pick: impl FnMut(Msg) -> Option<T>) -> T {
    let found = tokio::time::timeout(DEADLINE, async {
        while let Some(m) = rx.recv().await {
            if let Some(t) = pick(m) {
                return Some(t);
            }
        }
        None
    })
    .await;
    found.ok().flatten().unwrap_or_else(|| panic!("no {what} within {DEADLINE:?}"))
}

/// Locks the ledger against writers the way another process's transaction would (the file
/// in rollback-journal mode under `BEGIN EXCLUSIVE`): opening it to write waits.
fn lock_ledger(ws: &Path) -> rusqlite::Connection {
    let path = opsconsole::sync::ledger::ledger_path(ws);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.pragma_update(None, "journal_mode", "DELETE").expect("journal mode");
    conn.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    conn
}

#[tokio::test]
async fn the_engine_starts_off_the_ui_task_and_the_panel_waits_for_it() {
    let (_dir, ws, cfg) = workspace(1);
    let lock = lock_ledger(&ws);
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Opening the ledger now waits on the lock: `start` must not.
    let exec = executor(&ws, &cfg, tx);
    let mut early_sync = Vec::new();
    wait_for(&mut rx, "disk sample", |m| match m {
        Msg::Disk(_) => Some(()),
        Msg::Sync(s) => {
            early_sync.push(s.source);
            None
        }
        _ => None,
    })
    .await;
    assert!(early_sync.is_empty(), "the Uploads panel waited for the engine decision: {early_sync:?}");
    drop(lock);
    let source = wait_for(&mut rx, "ledger sample", |m| match m {
        Msg::Sync(s) => Some(s.source),
        _ => None,
    })
    .await;
    assert_eq!(source, EngineSource::Console, "this console runs the engine once the ledger opened");
    exec.stop().await;
    assert_eq!(opsconsole::sync::lock::holder(&ws), None, "the engine lock is released when the console stops");
}

/// A second console beside one that runs its own engine names it a console (from what the
/// lock records), not a daemon.
#[tokio::test]
async fn a_second_console_names_the_first_a_console() {
    let (_dir, ws, cfg) = workspace(1);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let first = executor(&ws, &cfg, tx);
    let source = wait_for(&mut rx, "ledger sample", |m| match m {
        Msg::Sync(s) => Some(s.source),
        _ => None,
    })
    .await;
    assert_eq!(source, EngineSource::Console);
    let holder = opsconsole::sync::lock::holder_info(&ws).expect("held");
    assert_eq!(holder.role, Some(opsconsole::sync::lock::Role::Console));
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let second = executor(&ws, &cfg, tx2);
    let source = wait_for(&mut rx2, "ledger sample", |m| match m {
        Msg::Sync(s) => Some(s.source),
        _ => None,
    })
    .await;
    assert_eq!(source, EngineSource::OtherConsole { pid: std::process::id() });
    second.stop().await;
    first.stop().await;
}

/// The plan that deletes every checkpoint but the newest (unconfirmed: the override).
fn plan(ws: &Path, cfg: &Config) -> opsconsole::checkpoints::PrunePlan {
    let plan = opsconsole::prune::make_plan(ws, cfg, true, SystemTime::now());
    assert!(plan.delete_count >= 1, "{plan:?}");
    plan
}

async fn report(rx: &mut mpsc::UnboundedReceiver<Msg>) -> (PruneReport, usize) {
    let mut progress = 0;
    let rep = wait_for(rx, "prune report", |m| match m {
        Msg::Prune(PruneProgress::Done { report }) => Some(report),
        Msg::Prune(PruneProgress::Failed { error }) => panic!("prune failed: {error}"),
        Msg::Prune(PruneProgress::Progress { .. }) => {
            progress += 1;
            None
        }
        _ => None,
    })
    .await;
    (rep, progress)
}

fn left(ws: &Path) -> usize {
    fs::read_dir(ws.join("checkpoints")).expect("dir").count()
}

#[tokio::test]
async fn a_prune_cancelled_before_it_starts_deletes_nothing() {
    let (_dir, ws, cfg) = workspace(4);
    let plan = plan(&ws, &cfg);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = Arc::new(AtomicBool::new(true));
    let job = opsconsole::exec::prune::run(ws.clone(), cfg.clone(), Some(plan), cancel, tx);
    let (rep, _) = report(&mut rx).await;
    job.wait().await;
    assert!(rep.cancelled);
    assert_eq!((rep.deleted, rep.failed), (0, 0));
    assert_eq!(left(&ws), 4);
}

#[tokio::test]
async fn run_prune_returns_at_once_and_reads_the_ledger_on_the_job_thread() {
    let (_dir, ws, cfg) = workspace(3);
    let mut st = state(&ws, &cfg);
    st.prune.screen.plan = Some(plan(&ws, &cfg));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut exec = executor(&ws, &cfg, tx);
    // The prune's context opens the ledger: with it locked that waits, on the job thread.
    let lock = lock_ledger(&ws);
    exec.run(Effect::RunPrune, &st);
    let mut early = Vec::new();
    wait_for(&mut rx, "disk sample", |m| match m {
        Msg::Disk(_) => Some(()),
        Msg::Prune(p) => {
            early.push(p);
            None
        }
        _ => None,
    })
    .await;
    assert!(early.is_empty(), "the job waits for the ledger, the loop does not: {early:?}");
    drop(lock);
    let (rep, _) = report(&mut rx).await;
    assert_eq!(rep.deleted, 2, "{rep:?}");
    assert_eq!(left(&ws), 1, "the newest is kept");
    exec.stop().await;
}

#[tokio::test]
async fn quitting_cancels_a_running_prune_after_the_item_in_hand() {
    let (_dir, ws, cfg) = workspace(120);
    let mut st = state(&ws, &cfg);
    st.prune.screen.plan = Some(plan(&ws, &cfg));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut exec = executor(&ws, &cfg, tx);
    exec.run(Effect::RunPrune, &st);
    wait_for(&mut rx, "first deletion", |m| match m {
        Msg::Prune(PruneProgress::Progress { .. }) => Some(()),
        _ => None,
    })
    .await;
    exec.run(Effect::Quit, &st);
    exec.stop().await;
    let (rep, _) = report(&mut rx).await;
    assert!(rep.cancelled, "{rep:?}");
    assert!(
        rep.deleted >= 1 && rep.deleted < 119,
        "stopped part way: {} deleted: {:?}",
        rep.deleted,
        rep.items.iter().take(3).collect::<Vec<_>>()
    );
    // What the report says was deleted is gone, and nothing else is.
    for item in &rep.items {
        let gone = !item.path.exists();
        assert_eq!(gone, matches!(item.outcome, ItemOutcome::Deleted), "{item:?}");
    }
    assert_eq!(left(&ws), 120 - rep.deleted);
}
