//! The upload engine: one coordinator task that folds watcher observations into the
//! ledger and starts uploads, and a bounded number of upload tasks per remote. Nothing
//! here blocks its caller: commands go in on a channel, [`SyncEvent`]s come out on
//! another (progress at most four times a second per upload).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::config::{RemoteConfig, RemotesConfig, SyncConfig};
use super::drive::{DriveRemote, DriveSettings};
use super::ledger::{EntryFilter, Ledger, LedgerEntry, LedgerError};
use super::local::{LocalOptions, LocalRemote};
use super::lock::{EngineLock, LockError};
use super::remote::{ErrorKind, RateLimiter, Remote, RemoteError, TransferCtx, UploadRequest};
use super::routing::{Router, is_weights};
use super::watcher::{Observation, Settler, scan, spawn_watcher, stat_file};

// [commit groups] One commit per checkpoint for remotes that commit (the Hub).
mod group;

/// Attempts per file before `run_once` gives up on a transient failure.
const ONCE_ATTEMPTS: u32 = 3;
const TICK: Duration = Duration::from_millis(250);
/// A transfer's `bytes_done` before its job has found the attempt's resume point.
const NOT_STARTED: u64 = u64::MAX;
const PROGRESS_WRITE_EVERY: Duration = Duration::from_secs(1);

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Why the engine could not start or stopped.
#[derive(Debug)]
pub enum SyncError {
    /// Another engine runs on this workspace.
    Locked(LockError),
    Ledger(LedgerError),
    /// A config value is unusable (dotted key, problem).
    Config(Vec<(String, String)>),
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Locked(e) => write!(f, "{e}"),
            SyncError::Ledger(e) => write!(f, "{e}"),
            SyncError::Config(problems) => {
                let parts: Vec<String> = problems.iter().map(|(k, p)| format!("{k}: {p}")).collect();
                write!(f, "sync config: {}", parts.join("; "))
            }
        }
    }
}

impl std::error::Error for SyncError {}

impl From<LedgerError> for SyncError {
    fn from(e: LedgerError) -> Self {
        SyncError::Ledger(e)
    }
}

/// What the engine reports. Plain values, for the console's `update` and the CLI.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncEvent {
    /// A complete file was hashed and queued on a level.
    Queued { level: String, path: String, bytes: u64 },
    /// An upload started (at `offset` when resuming; at `bytes_total` when every byte is
    /// there already, as when a local remote copied the file while it was hashed).
    Started { level: String, path: String, offset: u64, bytes_total: u64 },
    /// Throttled progress of an upload. `rate_bytes_per_s`: bytes this attempt sent over
    /// the last [`super::rate::WINDOW`] (0 until it has run [`super::rate::MIN_SPAN`]).
    Progress { level: String, path: String, bytes_done: u64, bytes_total: u64, rate_bytes_per_s: u64 },
    /// Stored and verified (`already_there`: the remote held it, nothing was sent).
    Confirmed { level: String, path: String, bytes: u64, already_there: bool },
    /// An attempt failed; `retry_in` is `None` for a permanent failure.
    Failed { level: String, path: String, reason: String, permanent: bool, retry_in: Option<Duration> },
    /// A file left the queue without being stored (deleted before upload).
    Dropped { path: String, levels: Vec<String>, note: String },
    /// A confirmed copy failed verification on its remote (missing, changed): it is
    /// queued to be stored again.
    Requeued { level: String, path: String, reason: String },
    /// A pass over a level ended; `success` when nothing is left pending or failed.
    /// `stored`: files confirmed during the pass; `confirmed`: files the level holds.
    PassDone { level: String, success: bool, stored: u64, confirmed: u64 },
    /// A file a level would take was recognised as a secret and is withheld from every
    /// level (`why` in words, never the secret).
    Withheld { path: String, why: String },
    /// The ledger could not be written (a full disk, an I/O error): uploads wait, and the
    /// engine tries again in `retry_in`. `why` is in words ("disk full: …").
    LedgerTrouble { why: String, retry_in: Duration },
    /// The ledger is written again after trouble.
    LedgerOk,
}

/// Commands to a running engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run a pass on a level (or all) now, whatever the schedule.
    SyncNow(Option<String>),
    /// Queue failed uploads of a level (or all) again.
    RetryFailed(Option<String>),
    /// Stop an upload in flight; it is marked failed ("cancelled by you").
    Cancel { path: String, level: String },
}

impl Command {
    /// Leave this command in the workspace's ledger for the engine that runs there (a
    /// daemon started by `opsconsole sync --daemon`); it is taken within a quarter second.
    pub fn request(&self, workspace: &Path) -> Result<(), LedgerError> {
        let mut l = Ledger::open(workspace)?;
        let now = now_ms();
        match self {
            Command::SyncNow(level) => l.push_request("sync_now", level.as_deref(), None, now),
            Command::RetryFailed(level) => l.push_request("retry_failed", level.as_deref(), None, now),
            Command::Cancel { path, level } => l.push_request("cancel", Some(level), Some(path), now),
        }
    }
}

/// Daemon (runs until shut down, passes on schedule) or once (one pass everywhere, then
/// stops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Daemon,
    Once,
}

/// What one run did (for `run_once` and the daemon's exit line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    pub already_there: u64,
    pub dropped: u64,
    /// Confirmed copies verified on their remotes (`sync --verify`, and every pass).
    pub verified: u64,
    /// Confirmed copies found missing or changed, queued to be stored again.
    pub requeued: u64,
    /// (level, path, reason) of uploads left failed, or (`--once`) left unfinished.
    pub failed: Vec<(String, String, String)>,
    /// (path, why) of files withheld as secrets during this run.
    pub withheld: Vec<(String, String)>,
}

/// What the remotes of a workspace are bound to: the workspace (its id, for the local
/// remotes' identity markers) and the folders a copy must not share a filesystem with.
#[derive(Debug, Clone, Default)]
pub struct RemoteEnv {
    pub workspace: PathBuf,
    /// The workspace and each checkpoint root.
    pub protected: Vec<PathBuf>,
    /// Hash every stored copy again instead of trusting remembered checksums
    /// (`sync --verify`).
    pub rehash: bool,
}

impl RemoteEnv {
    /// A workspace whose checkpoints live inside it.
    pub fn new(workspace: &Path) -> Self {
        Self { workspace: workspace.to_path_buf(), protected: vec![workspace.to_path_buf()], rehash: false }
    }

    /// A workspace and its configured checkpoint roots (those that exist).
    pub fn with_roots(workspace: &Path, checkpoint_roots: &[String]) -> Self {
        let mut env = Self::new(workspace);
        let (roots, _) = crate::checkpoints::roots::expand_roots(workspace, checkpoint_roots);
        env.protected.extend(roots.into_iter().map(|r| r.path));
        env
    }
}

/// Build the remotes named in the config for a workspace whose checkpoints live inside it.
pub fn build_remotes(remotes: &RemotesConfig, workspace: &Path) -> BTreeMap<String, Arc<dyn Remote>> {
    build_remotes_in(remotes, &RemoteEnv::new(workspace))
}

/// Build the remotes named in the config, bound to the workspace in `env`.
pub fn build_remotes_in(remotes: &RemotesConfig, env: &RemoteEnv) -> BTreeMap<String, Arc<dyn Remote>> {
    // Without an id (an unwritable workspace) no marker matches: nothing is stored.
    let ws_id = super::marker::workspace_id(&env.workspace).unwrap_or_default();
    remotes
        .iter()
        .map(|(name, cfg)| {
            let remote: Arc<dyn Remote> = match cfg {
                RemoteConfig::Local { path, same_disk } => {
                    let root = super::config::local_root(path, &env.workspace);
                    let opts = LocalOptions {
                        workspace_id: Some(ws_id.clone()),
                        workspace: Some(env.workspace.clone()),
                        same_disk: *same_disk,
                        protected: env.protected.clone(),
                        sums: Some(super::sums::SumCache::new(super::sums::sums_path(&env.workspace))),
                        rehash: env.rehash,
                    };
                    Arc::new(LocalRemote::with_options(name.clone(), root, opts))
                }
                RemoteConfig::Drive { folder_id, key_file, scope, chunk_mib, endpoint, subject } => {
                    let s =
                        DriveSettings::new(folder_id, key_file.as_deref(), scope, *chunk_mib, endpoint, &env.workspace)
                            .acting_as(subject.as_deref());
                    Arc::new(DriveRemote::new(name.clone(), s))
                }
                RemoteConfig::Hf { repo_id, private, allow_public, revision, path_prefix, endpoint } => {
                    let settings = super::hf::HfSettings {
                        repo_id: repo_id.clone(),
                        private: *private,
                        allow_public: *allow_public,
                        revision: revision.clone(),
                        path_prefix: path_prefix.clone(),
                        endpoint: endpoint.clone(),
                    };
                    Arc::new(super::hf::HfRemote::new(name.clone(), settings))
                }
            };
            (name.clone(), remote)
        })
        .collect()
}

/// Delay before retry number `attempt` (1-based): exponential from `base`, capped at
/// `max`, with "equal jitter" (`jitter` in 0..1 picks within the upper half), and never
/// shorter than a Retry-After hint.
pub fn backoff_delay(
    attempt: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let exp = base.checked_mul(1u32 << attempt.saturating_sub(1).min(20)).unwrap_or(max).min(max);
    let half = exp / 2;
    let d = half + half.mul_f64(jitter.clamp(0.0, 1.0));
    match retry_after {
        Some(ra) if ra > d => ra,
        _ => d,
    }
}

/// A running engine.
pub struct EngineHandle {
    commands: mpsc::UnboundedSender<Command>,
    /// Events from the engine; drain it, or drop it to ignore them.
    pub events: mpsc::UnboundedReceiver<SyncEvent>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<RunSummary, SyncError>>>,
}

impl Drop for EngineHandle {
    /// A dropped handle stops the engine: uploads in flight end within a chunk (their
    /// cancel tokens are children of this one), so a runtime shutting down does not wait
    /// on a multi-gigabyte copy.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl EngineHandle {
    pub fn send(&self, cmd: Command) {
        let _ = self.commands.send(cmd);
    }

    /// A token that stops the engine when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stop (uploads in flight are left resumable) and wait for the engine to end.
    pub async fn shutdown(self) -> Result<RunSummary, SyncError> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Wait for the engine to end by itself (once mode) or by its shutdown token.
    pub async fn wait(mut self) -> Result<RunSummary, SyncError> {
        let Some(task) = self.task.take() else {
            return Err(SyncError::Ledger(LedgerError("sync engine already awaited".into())));
        };
        match task.await {
            Ok(r) => r,
            Err(e) => Err(SyncError::Ledger(LedgerError(format!("sync engine stopped: {e}")))),
        }
    }
}

/// Start an engine on a workspace: takes the workspace lock, opens the ledger, watches the
/// workspace and uploads in the background. Must be called inside a tokio runtime.
pub fn start(
    workspace: &Path,
    sync: &SyncConfig,
    remotes: BTreeMap<String, Arc<dyn Remote>>,
    mode: Mode,
) -> Result<EngineHandle, SyncError> {
    let problems = sync.validate();
    if !problems.is_empty() {
        return Err(SyncError::Config(problems));
    }
    // A remote folder that is the workspace, holds it or is inside it is no copy at all.
    let places: Vec<(String, String)> = remotes
        .iter()
        .filter_map(|(name, r)| {
            let why = remote_root_around(r.as_ref(), workspace)?;
            Some((format!("remotes.{name}.path"), why))
        })
        .collect();
    if !places.is_empty() {
        return Err(SyncError::Config(places));
    }
    let lock = EngineLock::acquire(workspace).map_err(SyncError::Locked)?;
    let ledger = Ledger::open(workspace)?;
    let router = Router::new(sync).map_err(|e| SyncError::Config(vec![("sync".into(), e)]))?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let coordinator =
        Coordinator::new(workspace.to_path_buf(), sync.clone(), Arc::new(router), remotes, ledger, ev_tx, mode);
    let token = shutdown.clone();
    let coordinator = Coordinator { shutdown: shutdown.clone(), ..coordinator };
    let task = tokio::spawn(async move {
        let _lock = lock;
        coordinator.run(cmd_rx, token).await
    });
    Ok(EngineHandle { commands: cmd_tx, events: ev_rx, shutdown, task: Some(task) })
}

/// Why a remote's folder may not be used for this workspace (it is the workspace, inside
/// it, or holds it), if so.
fn remote_root_around(remote: &dyn Remote, workspace: &Path) -> Option<String> {
    let path = remote.local_root()?;
    let mut r = RemotesConfig::new();
    r.insert(remote.name().to_string(), RemoteConfig::Local { path: path.to_path_buf(), same_disk: false });
    super::config::validate_places(&r, workspace, &[]).into_iter().next().map(|(_, why)| why)
}

/// A scanned file: (path, size, mtime_ns, its (level, remote) routes).
type ScannedFile = (String, u64, i64, Vec<(String, String)>);

struct Level {
    name: &'static str,
    remote: Option<Arc<dyn Remote>>,
    remote_name: String,
    interval_ms: i64,
    pass_active: bool,
    last_pass_ms: Option<i64>,
    /// Files confirmed since the pass began.
    pass_stored: u64,
    /// The confirmed copies are to be verified on the remote (a pass began).
    needs_check: bool,
    /// A verification of the confirmed copies is running.
    checking: bool,
    /// The last verification could not reach the remote (why).
    check_error: Option<String>,
}

/// What verifying a level's confirmed copies found.
struct CheckDone {
    level: &'static str,
    verified: u64,
    /// Copies missing or changed: (row, why).
    failed: Vec<(LedgerEntry, String)>,
    /// The remote itself could not be read (not mounted, no access).
    error: Option<String>,
}

struct InFlight {
    ctx: TransferCtx,
    user_cancel: Arc<AtomicBool>,
    bytes_total: u64,
    sha256: String,
    remote: String,
    started: Instant,
    /// Bytes sent in this attempt over the last seconds (the rate and ETA shown).
    rate: super::rate::RateWindow,
    last_event: (u64, u64),
    last_write: Instant,
}

enum JobEnd {
    Confirmed {
        already_there: bool,
        bytes: u64,
    },
    /// [commit groups] The object is staged; the file waits for its checkpoint's commit.
    Staged {
        group: String,
    },
    Gone,
    Changed,
    Failed {
        reason: String,
        permanent: bool,
        retry_in: Option<Duration>,
    },
    Cancelled,
    Interrupted,
    /// Recognised as a secret just before the upload: nothing was sent.
    Withheld(crate::secrets::Finding, u64, i64),
}

struct JobDone {
    path: String,
    level: String,
    end: JobEnd,
    /// A ledger write the job needed failed (the attempt is not recorded).
    ledger_error: Option<LedgerError>,
}

/// The ledger cannot be written: nothing new starts before `until`; each failure in a row
/// doubles `delay` (from `sync.retry_base_seconds` up to `sync.retry_max_seconds`).
struct LedgerTrouble {
    until: Instant,
    delay: Duration,
}

/// A ledger error in words: a full disk says so.
pub fn ledger_trouble_words(ws: &Path, e: &LedgerError) -> String {
    match super::ledger::disk_full(ws) {
        true => format!(
            "disk full: the sync ledger cannot record uploads (0 B free on the workspace's disk; {e}); \
             uploads wait until space is freed"
        ),
        false => format!("the sync ledger cannot be written: {e}"),
    }
}

struct Coordinator {
    ws: PathBuf,
    sync: SyncConfig,
    router: Arc<Router>,
    ledger: Arc<Mutex<Ledger>>,
    levels: Vec<Level>,
    settler: Settler,
    hash_queue: VecDeque<super::watcher::Ready>,
    hashing: JoinSet<(super::watcher::Ready, HashResult)>,
    /// The file being hashed now: no upload of it starts meanwhile (a newer version is
    /// about to be known, and a remote may be taking a copy of it).
    hashing_path: Option<String>,
    jobs: JoinSet<JobDone>,
    checks: JoinSet<CheckDone>,
    /// `--once`: failures of each upload in this run (a run gives up after a few).
    once_failures: HashMap<(String, String), u32>,
    /// `--once`: files that are not weights already taken in this run; a log that keeps
    /// growing is stored as the snapshot taken, not chased.
    once_taken: HashSet<String>,
    inflight: HashMap<(String, String), InFlight>,
    events: mpsc::UnboundedSender<SyncEvent>,
    limiter: Option<Arc<RateLimiter>>,
    mode: Mode,
    summary: RunSummary,
    /// The engine's shutdown token; each upload's cancel token is a child of it.
    shutdown: CancellationToken,
    /// [commit groups] Staged checkpoints and their commits.
    groups: group::Groups,
    /// Set while the ledger cannot be written (see [`LedgerTrouble`]).
    trouble: Option<LedgerTrouble>,
}

/// A settled file, read: its hash (and the levels whose remotes took a copy while it was
/// read), or why it is a secret (then it is not hashed at all).
enum Hashed {
    Digests(super::hash::Digests, Vec<(String, Arc<dyn Remote>)>),
    Secret(crate::secrets::Finding),
}

/// What the hash pass returns: on failure, the levels whose remotes had begun a copy.
type HashResult = Result<Hashed, (std::io::Error, Vec<(String, Arc<dyn Remote>)>)>;

async fn db<T: Send + 'static>(
    ledger: &Arc<Mutex<Ledger>>,
    f: impl FnOnce(&mut Ledger) -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, LedgerError> {
    let l = ledger.clone();
    match tokio::task::spawn_blocking(move || {
        let mut g = l.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    })
    .await
    {
        Ok(r) => r,
        Err(e) => Err(LedgerError(format!("ledger task stopped: {e}"))),
    }
}

impl Coordinator {
    fn new(
        ws: PathBuf,
        sync: SyncConfig,
        router: Arc<Router>,
        remotes: BTreeMap<String, Arc<dyn Remote>>,
        ledger: Ledger,
        events: mpsc::UnboundedSender<SyncEvent>,
        mode: Mode,
    ) -> Self {
        let levels = sync
            .levels()
            .iter()
            .map(|(name, _, cfg)| Level {
                name,
                remote: if cfg.enabled { remotes.get(&cfg.remote).cloned() } else { None },
                remote_name: cfg.remote.clone(),
                interval_ms: (cfg.interval_minutes as i64).saturating_mul(60_000),
                // A continuous level runs a "pass" whenever work arrives; it ends (and
                // records its success) each time the level goes idle.
                pass_active: mode == Mode::Once || cfg.interval_minutes == 0,
                last_pass_ms: None,
                pass_stored: 0,
                // The first pass of every run verifies what the ledger says is stored.
                needs_check: true,
                checking: false,
                check_error: None,
            })
            .collect();
        let settle_ms = (sync.settle_seconds as i64).saturating_mul(1000);
        // A weights file seen open, then untouched this long, lost its close event.
        let lost_close_ms = settle_ms.saturating_mul(60).max(60_000);
        // `--once` takes a growing log as it is once settled; a daemon at least every
        // snapshot period.
        let snapshot_ms = match mode {
            Mode::Once => settle_ms,
            Mode::Daemon => (sync.snapshot_minutes * 60_000.0).round().max(1.0) as i64,
        };
        let limiter = (sync.bandwidth_limit_kib_s > 0)
            .then(|| Arc::new(RateLimiter::new(sync.bandwidth_limit_kib_s.saturating_mul(1024))));
        Self {
            ws,
            router,
            ledger: Arc::new(Mutex::new(ledger)),
            levels,
            settler: Settler::new(settle_ms, lost_close_ms, snapshot_ms),
            hash_queue: VecDeque::new(),
            hashing: JoinSet::new(),
            hashing_path: None,
            jobs: JoinSet::new(),
            checks: JoinSet::new(),
            once_failures: HashMap::new(),
            once_taken: HashSet::new(),
            inflight: HashMap::new(),
            events,
            limiter,
            mode,
            summary: RunSummary::default(),
            shutdown: CancellationToken::new(),
            groups: group::Groups::default(),
            trouble: None,
            sync,
        }
    }

    /// A daemon outlives a ledger it cannot write (a full disk): the error is reported, new
    /// work waits with a growing delay, and the engine goes on once writes succeed again.
    /// A one-shot run stops with the error. Other errors end the engine.
    fn survive(&mut self, r: Result<(), SyncError>) -> Result<(), SyncError> {
        match r {
            Err(SyncError::Ledger(e)) if self.mode == Mode::Daemon => {
                self.ledger_failed(&e);
                Ok(())
            }
            other => other,
        }
    }

    fn ledger_failed(&mut self, e: &LedgerError) {
        let base = Duration::from_secs(self.sync.retry_base_seconds.max(1));
        let max = Duration::from_secs(self.sync.retry_max_seconds.max(1)).max(base);
        let delay = match &self.trouble {
            // Already waiting: this failure belongs to the same spell.
            Some(t) if Instant::now() < t.until => return,
            Some(t) => (t.delay * 2).min(max),
            None => base,
        };
        self.trouble = Some(LedgerTrouble { until: Instant::now() + delay, delay });
        let why = ledger_trouble_words(&self.ws, e);
        tracing::warn!("sync: {why}; next try in {delay:?}");
        self.emit(SyncEvent::LedgerTrouble { why, retry_in: delay });
    }

    /// A ledger write succeeded: trouble, if any, is over.
    fn ledger_ok(&mut self) {
        if self.trouble.take().is_some() {
            self.emit(SyncEvent::LedgerOk);
        }
    }

    /// May new work start (no ledger trouble, or its wait is over)?
    fn may_start(&self) -> bool {
        self.trouble.as_ref().is_none_or(|t| Instant::now() >= t.until)
    }

    fn emit(&self, ev: SyncEvent) {
        let _ = self.events.send(ev);
    }

    fn routes(&self, rel: &str, size: u64) -> Vec<(String, String)> {
        self.router
            .route(rel, size)
            .into_iter()
            .filter_map(|name| {
                self.levels
                    .iter()
                    .find(|l| l.name == name && l.remote.is_some())
                    .map(|l| (name.to_string(), l.remote_name.clone()))
            })
            .collect()
    }

    async fn run(
        mut self,
        mut cmd_rx: mpsc::UnboundedReceiver<Command>,
        shutdown: CancellationToken,
    ) -> Result<RunSummary, SyncError> {
        // Uploads a killed engine left behind are resumed; permanent failures from an
        // earlier run get one more try (the user may have fixed the cause).
        let names: Vec<&'static str> = self.levels.iter().map(|l| l.name).collect();
        let passes = db(&self.ledger, move |l| {
            l.retry_failed(None, now_ms())?;
            names.iter().map(|n| Ok((*n, l.counts(n)?.last_pass_ms))).collect::<Result<Vec<_>, LedgerError>>()
        })
        .await?;
        for (name, last) in passes {
            if let Some(level) = self.levels.iter_mut().find(|l| l.name == name) {
                level.last_pass_ms = last;
            }
        }

        let (obs_tx, mut obs_rx) = mpsc::unbounded_channel();
        let _watcher = spawn_watcher(&self.ws, self.router.clone(), obs_tx).ok();
        self.poll().await?;

        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let poll_every = Duration::from_secs(self.sync.poll_seconds.max(1));
        let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + poll_every, poll_every);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cmd_open = true;
        let mut obs_open = true;
        loop {
            if self.may_start() {
                let r = self.dispatch().await;
                self.survive(r)?;
            }
            if self.mode == Mode::Once && self.once_finished().await? {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                cmd = cmd_rx.recv(), if cmd_open => match cmd {
                    Some(cmd) => {
                        let r = self.command(cmd).await;
                        self.survive(r)?;
                    }
                    None => cmd_open = false,
                },
                obs = obs_rx.recv(), if obs_open => match obs {
                    Some(list) => {
                        let now = now_ms();
                        for o in list {
                            if self.once_chasing(&o) {
                                continue;
                            }
                            self.observe(o, now);
                        }
                    }
                    None => obs_open = false,
                },
                Some(done) = self.checks.join_next(), if !self.checks.is_empty() => {
                    if let Ok(done) = done {
                        self.checked(done).await?;
                    }
                }
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    if let Ok(done) = done {
                        let r = self.job_done(done).await;
                        self.survive(r)?;
                    }
                }
                // [commit groups]
                Some(done) = self.groups.commits.join_next(), if !self.groups.commits.is_empty() => {
                    if let Ok(done) = done {
                        let r = self.commit_done(done).await;
                        self.survive(r)?;
                    }
                }
                Some(hashed) = self.hashing.join_next(), if !self.hashing.is_empty() => {
                    match hashed {
                        Ok((ready, result)) => {
                            let r = self.hashed(ready, result).await;
                            self.survive(r)?;
                        }
                        // The hash pass panicked: its file is found again by the next poll.
                        Err(_) => {
                            self.hashing_path = None;
                            self.start_hashing();
                        }
                    }
                }
                _ = tick.tick() => {
                    let r = self.settle_tick().await;
                    self.survive(r)?;
                    self.progress_tick().await;
                    let r = self.take_requests().await;
                    self.survive(r)?;
                }
                _ = poll.tick() => {
                    let r = self.poll().await;
                    self.survive(r)?;
                }
            }
        }
        // Stop uploads; they stay `uploading` in the ledger and resume next time.
        for f in self.inflight.values() {
            f.ctx.cancel.cancel();
        }
        while let Some(done) = self.jobs.join_next().await {
            if let Ok(done) = done {
                self.job_done(done).await?;
            }
        }
        // [commit groups] A commit cut short is found (or not) in the remote's tree next time.
        self.groups.stop();
        while let Some(done) = self.groups.commits.join_next().await {
            if let Ok(done) = done {
                self.commit_done(done).await?;
            }
        }
        if self.mode == Mode::Once {
            // Everything routed is confirmed, or it is listed here with why it is not.
            let levels: Vec<(&'static str, String)> =
                self.levels.iter().filter(|l| l.remote.is_some()).map(|l| (l.name, l.remote_name.clone())).collect();
            let stopped = shutdown.is_cancelled();
            let unfinished = db(&self.ledger, move |l| {
                let mut out = Vec::new();
                for (level, remote) in levels {
                    for e in l.entries_where(Some(level), EntryFilter::Unfinished, None)? {
                        if e.remote != remote {
                            continue;
                        }
                        let why = match (e.state, e.last_error) {
                            (super::ledger::UploadState::Failed, Some(err)) => err,
                            (_, Some(err)) => format!("not stored in this run; last error: {err}"),
                            (_, None) if stopped => "not stored: the run was stopped".to_string(),
                            (_, None) => "not stored in this run".to_string(),
                        };
                        out.push((e.level, e.path, why));
                    }
                }
                Ok(out)
            })
            .await?;
            self.summary.failed = unfinished;
            for l in &self.levels {
                if let Some(err) = &l.check_error {
                    self.summary.failed.push((l.name.to_string(), "(its remote)".into(), err.clone()));
                }
            }
            let (_, withheld) = db(&self.ledger, |l| l.withheld(usize::MAX)).await?;
            self.summary.withheld = withheld.into_iter().map(|w| (w.path, w.why)).collect();
        }
        Ok(self.summary)
    }

    /// `--once` takes a file that is not weights once: later writes to a log that keeps
    /// growing are not chased (its snapshot is what this run stores).
    fn once_chasing(&self, obs: &Observation) -> bool {
        if self.mode != Mode::Once {
            return false;
        }
        match obs {
            Observation::Written(p) | Observation::Closed(p) | Observation::Polled(p, _, _) => {
                self.once_taken.contains(p)
            }
            Observation::Removed(_) => false,
        }
    }

    /// Commands a console left in the ledger for this engine.
    async fn take_requests(&mut self) -> Result<(), SyncError> {
        let requests = db(&self.ledger, |l| l.take_requests()).await?;
        for (kind, level, path) in requests {
            let cmd = match (kind.as_str(), level, path) {
                ("sync_now", level, _) => Command::SyncNow(level),
                ("retry_failed", level, _) => Command::RetryFailed(level),
                ("cancel", Some(level), Some(path)) => Command::Cancel { path, level },
                _ => continue,
            };
            self.command(cmd).await?;
        }
        Ok(())
    }

    fn observe(&mut self, obs: Observation, now: i64) {
        let ws = self.ws.clone();
        let stat = |rel: &str| stat_file(&ws.join(rel));
        let routed = match &obs {
            Observation::Removed(_) => true,
            Observation::Written(p) | Observation::Closed(p) => {
                stat(p).is_some_and(|(size, _)| !self.routes(p, size).is_empty())
            }
            Observation::Polled(p, size, _) => !self.routes(p, *size).is_empty(),
        };
        if routed {
            self.settler.observe(obs, now, stat);
        }
    }

    async fn settle_tick(&mut self) -> Result<(), SyncError> {
        let ws = self.ws.clone();
        let settled = self.settler.tick(now_ms(), |rel| stat_file(&ws.join(rel)));
        for ready in settled.ready {
            if !self.hash_queue.iter().any(|r| r.path == ready.path) {
                self.hash_queue.push_back(ready);
            }
        }
        for path in settled.gone {
            self.gone(&path, "deleted before it was stored; dropped from the queue").await?;
        }
        self.start_hashing();
        Ok(())
    }

    fn start_hashing(&mut self) {
        if !self.hashing.is_empty() {
            return;
        }
        if let Some(ready) = self.hash_queue.pop_front() {
            let path = self.ws.join(&ready.path);
            if self.mode == Mode::Once && !is_weights(&ready.path) {
                self.once_taken.insert(ready.path.clone());
            }
            let weights = is_weights(&ready.path);
            // The MD5 only for a file one of whose levels stores into a remote that
            // confirms by MD5 (Drive); local and Hub copies are verified by SHA-256.
            let routes = self.routes(&ready.path, ready.size);
            let with_md5 = routes.iter().any(|(level, _)| {
                self.levels.iter().any(|l| l.name == level.as_str() && l.remote.as_ref().is_some_and(|r| r.wants_md5()))
            });
            // Remotes that take a copy while the file is read for its hash (a local remote
            // writes its partial copy), so the upload has nothing left to read: those of
            // levels that store now (continuous, or in a pass), without a bandwidth cap
            // (the hash pass is not throttled), and with no upload of this file in flight
            // there (it writes the same partial copy).
            let mut stage_to: Vec<(String, Arc<dyn Remote>)> = Vec::new();
            if self.limiter.is_none() {
                for (level, remote_name) in &routes {
                    let Some(l) = self.levels.iter().find(|l| l.name == level.as_str()) else { continue };
                    if (l.interval_ms == 0 || l.pass_active)
                        && !self.inflight.contains_key(&(ready.path.clone(), level.clone()))
                        && !stage_to.iter().any(|(_, r)| r.name() == remote_name)
                        && let Some(r) = &l.remote
                    {
                        stage_to.push((level.clone(), r.clone()));
                    }
                }
            }
            self.hashing_path = Some(ready.path.clone());
            self.hashing.spawn_blocking(move || {
                // The contents decide too: a key under an innocent name never leaves. Text
                // is read whole (a log may print a token anywhere); weights by their start.
                let finding = if weights {
                    crate::secrets::check_file_content(&path)
                } else {
                    crate::secrets::check_whole_file(&path)
                };
                // Exactly the bytes that will be stored: a log that grew since it settled is
                // hashed (and stored) up to the size it settled at.
                let r = match finding {
                    Some(finding) => Ok(Hashed::Secret(finding)),
                    None => {
                        let mut sinks = Vec::new();
                        let mut staged = Vec::new();
                        for (level, remote) in stage_to {
                            if let Some(sink) = remote.stage_sink(&ready.path, ready.size) {
                                sinks.push(sink);
                                staged.push((level, remote));
                            }
                        }
                        match super::hash::digest_prefix_into(&path, ready.size, with_md5, &mut sinks) {
                            Ok(d) => Ok(Hashed::Digests(d, staged)),
                            Err(e) => Err((e, staged)),
                        }
                    }
                };
                (ready, r)
            });
        }
    }

    async fn hashed(&mut self, ready: super::watcher::Ready, result: HashResult) -> Result<(), SyncError> {
        let now = now_ms();
        self.hashing_path = None;
        let (result, mut staged) = match result {
            Ok(Hashed::Secret(finding)) => {
                self.withhold(ready.path.clone(), ready.size, ready.mtime_ns, finding).await?;
                self.start_hashing();
                return Ok(());
            }
            Ok(Hashed::Digests(digests, staged)) => (Ok(digests), staged),
            Err((e, staged)) => (Err(e), staged),
        };
        let path = ready.path.clone();
        match result {
            Err(_) if stat_file(&self.ws.join(&ready.path)).is_none() => {
                self.gone(&ready.path, "deleted before it was stored; dropped from the queue").await?;
            }
            Err(_) => {
                // Unreadable for now (permissions, I/O): look again later.
                self.settler.observe(Observation::Closed(ready.path), now, |_| None);
            }
            Ok(digests) => {
                match stat_file(&self.ws.join(&ready.path)) {
                    Some((size, mtime))
                        if (size, mtime) == (ready.size, ready.mtime_ns)
                            || (!is_weights(&ready.path) && size >= ready.size) =>
                    {
                        let routes = self.routes(&ready.path, ready.size);
                        let rel = ready.path.clone();
                        let staged_levels: Vec<String> = staged.iter().map(|(l, _)| l.clone()).collect();
                        let (out, keep) = db(&self.ledger, move |l| {
                            let r: Vec<(&str, &str)> = routes.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                            l.release_withheld(&rel)?;
                            let out = l.track(
                                &rel,
                                ready.size,
                                ready.mtime_ns,
                                &digests.sha256,
                                digests.md5.as_deref(),
                                &r,
                                now,
                            )?;
                            // A copy made while hashing is kept for a level that will upload
                            // this version (queued now, or unfinished from before).
                            let mut keep = Vec::new();
                            for level in staged_levels {
                                let wanted = out.queued.contains(&level)
                                    || l.entry(&rel, &level)?.is_some_and(|e| {
                                        e.sha256 == digests.sha256 && e.state != super::ledger::UploadState::Confirmed
                                    });
                                if wanted {
                                    keep.push(level);
                                }
                            }
                            Ok((out, keep))
                        })
                        .await?;
                        staged.retain(|(level, _)| !keep.contains(level));
                        self.ledger_ok();
                        for level in out.queued {
                            self.touch(&level);
                            // A newer version supersedes one in flight.
                            if let Some(f) = self.inflight.get(&(ready.path.clone(), level.clone())) {
                                f.ctx.cancel.cancel();
                            }
                            self.emit(SyncEvent::Queued { level, path: ready.path.clone(), bytes: ready.size });
                        }
                    }
                    Some(_) => {
                        // Changed while hashed: settle again.
                        let ws = self.ws.clone();
                        self.settler.observe(Observation::Closed(ready.path), now, |r| stat_file(&ws.join(r)));
                    }
                    None => {
                        self.gone(&ready.path, "deleted before it was stored; dropped from the queue").await?;
                    }
                }
            }
        }
        // Copies made while hashing that no upload will use are not left on the remote.
        for (_, remote) in staged {
            if let Err(e) = remote.discard_partial(&path).await {
                tracing::warn!("sync: leaving a copy of {path} made while hashing on {}: {e}", remote.name());
            }
        }
        self.start_hashing();
        Ok(())
    }

    /// Withhold a file from every level as a secret, and say so once.
    async fn withhold(
        &mut self,
        path: String,
        size: u64,
        mtime_ns: i64,
        finding: crate::secrets::Finding,
    ) -> Result<(), SyncError> {
        for level in &self.levels {
            if let Some(f) = self.inflight.get(&(path.clone(), level.name.to_string())) {
                f.ctx.cancel.cancel();
            }
        }
        let (p, why) = (path.clone(), finding.why.clone());
        let kind =
            serde_json::to_value(finding.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let fresh = db(&self.ledger, move |l| l.withhold(&p, size, mtime_ns, &kind, &why, now_ms())).await?;
        if fresh {
            self.summary.withheld.push((path.clone(), finding.why.clone()));
            self.emit(SyncEvent::Withheld { path, why: finding.why });
        }
        Ok(())
    }

    async fn gone(&mut self, path: &str, note: &str) -> Result<(), SyncError> {
        self.hash_queue.retain(|r| r.path != path && !r.path.starts_with(&format!("{path}/")));
        let (p, n, ws) = (path.to_string(), note.to_string(), self.ws.clone());
        let dropped = db(&self.ledger, move |l| {
            let mut out = Vec::new();
            let mut paths = vec![p.clone()];
            paths.extend(l.paths_under(&p)?);
            for path in paths {
                if stat_file(&ws.join(&path)).is_none() {
                    let levels = l.drop_missing(&path, &n, now_ms())?;
                    if !levels.is_empty() {
                        out.push((path, levels));
                    }
                }
            }
            Ok(out)
        })
        .await?;
        for (path, levels) in dropped {
            for level in &levels {
                if let Some(f) = self.inflight.get(&(path.clone(), level.clone())) {
                    f.ctx.cancel.cancel();
                }
                // Its unfinished upload will never be resumed: leave nothing behind.
                let remote = self.levels.iter().find(|l| l.name == level).and_then(|l| l.remote.clone());
                if let Some(remote) = remote
                    && let Err(e) = remote.discard_partial(&path).await
                {
                    tracing::warn!("sync: leaving a partial upload of {path} on {}: {e}", remote.name());
                }
            }
            self.summary.dropped += 1;
            self.emit(SyncEvent::Dropped { path, levels, note: note.to_string() });
        }
        Ok(())
    }

    /// Compare the workspace with the ledger: changed or new files settle; files gone from
    /// disk leave the queue; unchanged files get their level rows brought in line with the
    /// routing (no hashing).
    async fn poll(&mut self) -> Result<(), SyncError> {
        // A continuous level's copies are verified at every poll (it has no schedule).
        for l in &mut self.levels {
            if l.interval_ms == 0 {
                l.needs_check = true;
            }
        }
        let ws = self.ws.clone();
        let router = self.router.clone();
        let found = match tokio::task::spawn_blocking(move || scan(&ws, &router)).await {
            Ok(f) => f,
            Err(_) => return Ok(()),
        };
        let mut secrets = Vec::new();
        let routes: Vec<ScannedFile> = found
            .into_iter()
            .filter_map(|(p, s, m)| {
                // Named like a secret: withheld, never hashed or routed.
                if let Some(finding) = self.router.withheld(&p, s) {
                    secrets.push((p, s, m, finding));
                    return None;
                }
                let r = self.routes(&p, s);
                Some((p, s, m, r))
            })
            .collect();
        let mut present: HashSet<String> = secrets.iter().map(|(p, ..)| p.clone()).collect();
        let (changed, vanished) = db(&self.ledger, move |l| {
            let mut changed = Vec::new();
            let mut seen = HashSet::new();
            for (p, s, m, r) in &routes {
                seen.insert(p.clone());
                // Withheld by its contents, and not changed since: still withheld.
                if l.withheld_at(p)? == Some((*s, *m)) {
                    present.insert(p.clone());
                    continue;
                }
                match l.file(p)? {
                    Some(f) if f.size == *s && f.mtime_ns == *m => {
                        let r: Vec<(&str, &str)> = r.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                        if !l.routes_match(p, &r)? {
                            l.track(p, *s, *m, &f.sha256, f.md5.as_deref(), &r, now_ms())?;
                        }
                    }
                    _ => changed.push((p.clone(), *s, *m)),
                }
            }
            let vanished: Vec<String> = l.files()?.into_iter().map(|f| f.path).filter(|p| !seen.contains(p)).collect();
            l.retain_withheld(&present)?;
            Ok((changed, vanished))
        })
        .await?;
        for (p, s, m, finding) in secrets {
            self.withhold(p, s, m, finding).await?;
        }
        let now = now_ms();
        for (p, s, m) in changed {
            if !self.hash_queue.iter().any(|r| r.path == p) {
                self.observe(Observation::Polled(p, s, m), now);
            }
        }
        for p in vanished {
            if stat_file(&self.ws.join(&p)).is_none() {
                self.gone(&p, "deleted before it was stored; dropped from the queue").await?;
            }
        }
        Ok(())
    }

    async fn command(&mut self, cmd: Command) -> Result<(), SyncError> {
        match cmd {
            Command::SyncNow(level) => {
                for l in &mut self.levels {
                    if level.as_deref().is_none_or(|n| n == l.name) {
                        if !l.pass_active {
                            l.pass_stored = 0;
                        }
                        l.pass_active = true;
                        l.needs_check = true;
                    }
                }
                // Growing logs are taken as they are now.
                self.settler.snapshot_now();
                self.poll().await?;
            }
            Command::RetryFailed(level) => {
                db(&self.ledger, move |l| l.retry_failed(level.as_deref(), now_ms())).await?;
            }
            Command::Cancel { path, level } => {
                if let Some(f) = self.inflight.get(&(path, level)) {
                    f.user_cancel.store(true, Ordering::Relaxed);
                    f.ctx.cancel.cancel();
                }
            }
        }
        Ok(())
    }

    /// Start passes that are due and uploads that may run; end passes that are done.
    async fn dispatch(&mut self) -> Result<(), SyncError> {
        self.start_ready_commits().await?; // [commit groups]
        let now = now_ms();
        for i in 0..self.levels.len() {
            let (name, remote) = {
                let l = &mut self.levels[i];
                let Some(remote) = l.remote.clone() else { continue };
                if !l.pass_active && l.interval_ms > 0 && l.last_pass_ms.is_none_or(|t| now - t >= l.interval_ms) {
                    l.pass_active = true;
                    l.pass_stored = 0;
                    l.needs_check = true;
                }
                (l.name, remote)
            };
            if self.levels[i].needs_check && !self.levels[i].checking {
                self.start_check(i, remote.clone());
            }
            let continuous = self.levels[i].interval_ms == 0;
            let active = self.levels[i].pass_active;
            let busy = self.inflight.values().filter(|f| f.remote == remote.name()).count();
            let free = self.sync.workers_per_remote.saturating_sub(busy);
            let mut started = 0;
            if free > 0 {
                let due = db(&self.ledger, move |l| l.due(name, now, 256)).await?;
                for entry in due {
                    if started >= free {
                        break;
                    }
                    let key = (entry.path.clone(), entry.level.clone());
                    // Weights still being written wait; a log that keeps growing does not
                    // (its snapshot is a prefix of what is on disk).
                    if self.inflight.contains_key(&key)
                        || self.hash_queue.iter().any(|r| r.path == entry.path)
                        || self.hashing_path.as_deref() == Some(entry.path.as_str())
                        || (is_weights(&entry.path) && self.settler.is_watching(&entry.path))
                        || self.groups.holds(&entry.level, &entry.path)
                    {
                        continue;
                    }
                    // Outside a pass only retries and resumes of work a pass began may run.
                    let begun = entry.attempts > 0 || entry.state == super::ledger::UploadState::Uploading;
                    if !(continuous || active || begun) {
                        continue;
                    }
                    if self.mode == Mode::Once && self.once_failures.get(&key).copied().unwrap_or(0) >= ONCE_ATTEMPTS {
                        continue;
                    }
                    self.start_job(entry, remote.clone());
                    started += 1;
                }
            }
            let level_busy = self.inflight.keys().any(|(_, l)| l == name) || self.groups.busy(name);
            // A pass waits for files about to complete (closed, or found by a scan), not
            // for files a writer still holds open (a log growing all run long), and for
            // the verification of what is already stored.
            let about_to_complete = match self.mode {
                Mode::Once => self.settler.watching(),
                Mode::Daemon => self.settler.closed_watching(),
            };
            let checking = self.levels[i].checking || self.levels[i].needs_check;
            let settling = about_to_complete > 0 || !self.hash_queue.is_empty() || !self.hashing.is_empty() || checking;
            if active && !level_busy && started == 0 && !settling {
                let counts = db(&self.ledger, move |l| l.counts(name)).await?;
                let success = counts.pending_files == 0 && counts.failed == 0 && self.levels[i].check_error.is_none();
                let due_now = db(&self.ledger, move |l| l.due(name, now, 16)).await?;
                let retry_pending = self.mode == Mode::Once
                    && due_now.iter().any(|e| {
                        self.once_failures.get(&(e.path.clone(), e.level.clone())).copied().unwrap_or(0) < ONCE_ATTEMPTS
                    });
                if !retry_pending {
                    db(&self.ledger, move |l| l.record_pass(name, success, now)).await?;
                    let l = &mut self.levels[i];
                    l.pass_active = false;
                    l.last_pass_ms = Some(now);
                    let stored = std::mem::take(&mut l.pass_stored);
                    self.emit(SyncEvent::PassDone {
                        level: name.to_string(),
                        success,
                        stored,
                        confirmed: counts.confirmed,
                    });
                }
            }
        }
        Ok(())
    }

    /// Verify every copy the ledger says a level holds, on the remote the level stores into
    /// now: listed with a checksum, or asked for one by one (a local remote answers from
    /// remembered checksums while the stored file is unchanged, see [`super::sums`]).
    fn start_check(&mut self, i: usize, remote: Arc<dyn Remote>) {
        let level = &mut self.levels[i];
        level.needs_check = false;
        level.checking = true;
        let (name, remote_name, ledger) = (level.name, level.remote_name.clone(), self.ledger.clone());
        self.checks.spawn(async move {
            let mut done = CheckDone { level: name, verified: 0, failed: Vec::new(), error: None };
            let entries = match db(&ledger, move |l| l.entries_where(Some(name), EntryFilter::Confirmed, None)).await {
                Ok(e) => e.into_iter().filter(|e| e.remote == remote_name).collect::<Vec<_>>(),
                Err(e) => {
                    done.error = Some(e.to_string());
                    return done;
                }
            };
            if entries.is_empty() {
                return done;
            }
            let listed: HashMap<String, super::remote::RemoteObject> = match remote.list("").await {
                Ok(objs) => objs.into_iter().map(|o| (o.key.clone(), o)).collect(),
                Err(e) => {
                    done.error = Some(e.reason());
                    return done;
                }
            };
            for e in entries {
                let obj = match listed.get(&e.path) {
                    None => None,
                    Some(o) if o.sha256.is_some() || o.md5.is_some() => Some(o.clone()),
                    Some(_) => match remote.stat(&e.path).await {
                        Ok(o) => o,
                        Err(err) => {
                            done.error = Some(err.reason());
                            return done;
                        }
                    },
                };
                match super::verify::check(obj.as_ref(), &e) {
                    Ok(()) => done.verified += 1,
                    Err(why) => {
                        let reason =
                            format!("the copy on remote '{}' failed verification: {why}; it is stored again", e.remote);
                        done.failed.push((e, reason));
                    }
                }
            }
            done
        });
    }

    /// Copies that failed verification go back to the queue.
    async fn checked(&mut self, done: CheckDone) -> Result<(), SyncError> {
        if let Some(l) = self.levels.iter_mut().find(|l| l.name == done.level) {
            l.checking = false;
            l.check_error = done.error.clone();
        }
        self.summary.verified += done.verified;
        if let Some(err) = &done.error {
            let (level, detail) = (done.level, format!("the stored copies could not be verified: {err}"));
            db(&self.ledger, move |l| l.record_event("check_failed", None, Some(level), &detail, now_ms())).await?;
            self.emit(SyncEvent::Failed {
                level: done.level.to_string(),
                path: "(its remote)".into(),
                reason: format!("the stored copies could not be verified: {err}"),
                permanent: true,
                retry_in: None,
            });
        }
        let now = now_ms();
        for (e, reason) in done.failed {
            let (p, lv, sha, r) = (e.path.clone(), e.level.clone(), e.sha256.clone(), reason.clone());
            if db(&self.ledger, move |l| l.requeue_unverified(&p, &lv, &sha, &r, now)).await? {
                self.summary.requeued += 1;
                self.touch(&e.level);
                self.emit(SyncEvent::Requeued { level: e.level, path: e.path, reason });
            }
        }
        Ok(())
    }

    async fn once_finished(&self) -> Result<bool, SyncError> {
        if !self.inflight.is_empty()
            || !self.groups.idle()
            || self.settler.watching() > 0
            || !self.hash_queue.is_empty()
            || !self.hashing.is_empty()
            || !self.checks.is_empty()
            || self.levels.iter().any(|l| l.remote.is_some() && (l.pass_active || l.needs_check || l.checking))
        {
            return Ok(false);
        }
        // Transient failures still within their attempts wait for their retry time.
        let names: Vec<&'static str> = self.levels.iter().filter(|l| l.remote.is_some()).map(|l| l.name).collect();
        let unfinished = db(&self.ledger, move |l| {
            let mut out = Vec::new();
            for n in names {
                out.extend(l.entries_where(Some(n), EntryFilter::Unfinished, None)?);
            }
            Ok(out)
        })
        .await?;
        let waiting = unfinished.iter().any(|e| {
            !e.permanent
                && self.once_failures.get(&(e.path.clone(), e.level.clone())).copied().unwrap_or(0) < ONCE_ATTEMPTS
        });
        Ok(!waiting)
    }

    fn start_job(&mut self, entry: LedgerEntry, remote: Arc<dyn Remote>) {
        let ctx = TransferCtx {
            cancel: self.shutdown.child_token(),
            limiter: self.limiter.clone(),
            // Unknown until the job has found where this attempt starts (its resume point):
            // a reading before that would count the bytes it resumes from as sent.
            bytes_done: Arc::new(std::sync::atomic::AtomicU64::new(NOT_STARTED)),
        };
        let user_cancel = Arc::new(AtomicBool::new(false));
        self.inflight.insert(
            (entry.path.clone(), entry.level.clone()),
            InFlight {
                ctx: ctx.clone(),
                user_cancel: user_cancel.clone(),
                bytes_total: entry.bytes_total,
                sha256: entry.sha256.clone(),
                remote: remote.name().to_string(),
                started: Instant::now(),
                rate: super::rate::RateWindow::new(),
                last_event: (NOT_STARTED, 0),
                last_write: Instant::now(),
            },
        );
        let job = Job {
            ws: self.ws.clone(),
            entry,
            remote,
            ledger: self.ledger.clone(),
            ctx,
            user_cancel,
            events: self.events.clone(),
            base: Duration::from_secs(self.sync.retry_base_seconds),
            max: Duration::from_secs(self.sync.retry_max_seconds),
            ledger_error: Mutex::new(None),
        };
        self.jobs.spawn(job.run());
    }

    /// New work or a finished upload on a continuous level opens a pass, so its end is
    /// recorded (last success) when the level goes idle again.
    fn touch(&mut self, level: &str) {
        if let Some(l) = self.levels.iter_mut().find(|l| l.name == level && l.interval_ms == 0) {
            l.pass_active = true;
        }
    }

    async fn job_done(&mut self, done: JobDone) -> Result<(), SyncError> {
        self.touch(&done.level);
        let flight = self.inflight.remove(&(done.path.clone(), done.level.clone()));
        let now = now_ms();
        let mut end = done.end;
        if let Some(e) = &done.ledger_error {
            // The failure is not recorded: the row would look due again at once. Wait as
            // the ledger trouble says, whatever the attempt's own retry delay was.
            if self.mode == Mode::Once {
                return Err(SyncError::Ledger(LedgerError(e.0.clone())));
            }
            self.ledger_failed(e);
            if let JobEnd::Failed { retry_in, .. } = &mut end {
                *retry_in = self.trouble.as_ref().map(|t| t.until.saturating_duration_since(Instant::now()));
            }
        } else if matches!(end, JobEnd::Confirmed { .. }) {
            self.ledger_ok();
        }
        match end {
            JobEnd::Confirmed { already_there, bytes } => {
                if let Some(l) = self.levels.iter_mut().find(|l| l.name == done.level) {
                    l.pass_stored += 1;
                }
                if already_there {
                    self.summary.already_there += 1;
                } else {
                    self.summary.uploaded += 1;
                    self.summary.uploaded_bytes += bytes;
                }
                self.emit(SyncEvent::Confirmed { level: done.level, path: done.path, bytes, already_there });
            }
            JobEnd::Staged { group } => {
                if let Some(f) = flight {
                    self.staged(&done.level, &done.path, &group, f.sha256, f.bytes_total);
                }
            }
            JobEnd::Gone => {
                self.observe(Observation::Removed(done.path), now);
            }
            JobEnd::Changed => {
                self.observe(Observation::Closed(done.path), now);
            }
            JobEnd::Failed { reason, permanent, retry_in } => {
                *self.once_failures.entry((done.path.clone(), done.level.clone())).or_insert(0) += 1;
                self.group_member_failed(&done.level, &done.path, &reason, permanent, retry_in);
                if permanent || (self.mode == Mode::Once && retry_in.is_none()) {
                    self.summary.failed.push((done.level.clone(), done.path.clone(), reason.clone()));
                }
                self.emit(SyncEvent::Failed { level: done.level, path: done.path, reason, permanent, retry_in });
            }
            JobEnd::Cancelled => {
                self.group_member_failed(&done.level, &done.path, "cancelled by you", true, None);
                self.emit(SyncEvent::Failed {
                    level: done.level,
                    path: done.path,
                    reason: "cancelled by you; retry failed uploads to queue it again".into(),
                    permanent: true,
                    retry_in: None,
                });
            }
            JobEnd::Interrupted => {
                let _ = flight;
            }
            JobEnd::Withheld(finding, size, mtime) => {
                self.withhold(done.path, size, mtime, finding).await?;
            }
        }
        Ok(())
    }

    async fn progress_tick(&mut self) {
        let mut writes = Vec::new();
        let mut events = Vec::new();
        for ((path, level), f) in self.inflight.iter_mut() {
            let done = f.ctx.bytes_done.load(Ordering::Relaxed);
            if done == NOT_STARTED {
                continue;
            }
            f.rate.push(f.started.elapsed().as_secs_f64(), done);
            let rate = f.rate.bytes_per_s();
            // Also when only the rate moved: a transfer that stalls shows it slowing.
            if (done, rate) != f.last_event {
                let bytes_moved = done != f.last_event.0;
                f.last_event = (done, rate);
                events.push(SyncEvent::Progress {
                    level: level.clone(),
                    path: path.clone(),
                    bytes_done: done,
                    bytes_total: f.bytes_total,
                    rate_bytes_per_s: rate,
                });
                if bytes_moved && f.last_write.elapsed() >= PROGRESS_WRITE_EVERY {
                    f.last_write = Instant::now();
                    writes.push((path.clone(), level.clone(), f.sha256.clone(), done));
                }
            }
        }
        for ev in events {
            self.emit(ev);
        }
        if !writes.is_empty() {
            let _ = db(&self.ledger, move |l| {
                for (p, lv, sha, done) in writes {
                    l.set_progress(&p, &lv, &sha, done, now_ms())?;
                }
                Ok(())
            })
            .await;
        }
    }
}

struct Job {
    ws: PathBuf,
    entry: LedgerEntry,
    remote: Arc<dyn Remote>,
    ledger: Arc<Mutex<Ledger>>,
    ctx: TransferCtx,
    user_cancel: Arc<AtomicBool>,
    events: mpsc::UnboundedSender<SyncEvent>,
    base: Duration,
    max: Duration,
    /// The first ledger write of this attempt that failed.
    ledger_error: Mutex<Option<LedgerError>>,
}

impl Job {
    async fn run(self) -> JobDone {
        let end = self.attempt().await;
        let ledger_error = self.ledger_error.lock().unwrap_or_else(|p| p.into_inner()).take();
        JobDone { path: self.entry.path.clone(), level: self.entry.level.clone(), end, ledger_error }
    }

    fn note_ledger_error(&self, e: &LedgerError) {
        let mut slot = self.ledger_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(LedgerError(e.0.clone()));
        }
    }

    async fn attempt(&self) -> JobEnd {
        let e = &self.entry;
        let src = self.ws.join(&e.path);
        match stat_file(&src) {
            None => return JobEnd::Gone,
            Some((size, mtime)) => {
                let same = (size, mtime) == (e.bytes_total, e.mtime_ns);
                let grown = !is_weights(&e.path) && size >= e.bytes_total;
                if !same && !grown {
                    return JobEnd::Changed;
                }
                // The last gate before anything leaves the machine: name and contents.
                let (ws, rel) = (self.ws.clone(), e.path.clone());
                let scan = move || {
                    if is_weights(&rel) {
                        crate::secrets::scan_in(&ws, &rel)
                    } else {
                        crate::secrets::scan_whole_in(&ws, &rel)
                    }
                };
                if let Ok(Some(finding)) = tokio::task::spawn_blocking(scan).await {
                    return JobEnd::Withheld(finding, size, mtime);
                }
            }
        }
        match self.store(&src).await {
            Ok(end) => end,
            Err(err) => self.fail(err).await,
        }
    }

    async fn store(&self, src: &Path) -> Result<JobEnd, RemoteError> {
        let e = &self.entry;
        let ledger_err = |le: LedgerError| {
            self.note_ledger_error(&le);
            RemoteError::transient(le.to_string())
        };
        // Already stored (a run killed after the upload but before the ledger said so, or
        // a copy queued again that is in fact there)?
        if let Some(obj) = self.remote.stat(&e.path).await?
            && super::verify::matches(&obj, e).is_ok()
        {
            self.confirm(&obj).await.map_err(ledger_err)?;
            return Ok(JobEnd::Confirmed { already_there: true, bytes: e.bytes_total });
        }
        let resume = self.remote.resume_point(&e.path, &e.sha256, e.session.as_deref()).await?;
        let (p, lv, sha, off, sess) =
            (e.path.clone(), e.level.clone(), e.sha256.clone(), resume.offset, resume.session.clone());
        db(&self.ledger, move |l| l.set_uploading(&p, &lv, &sha, off, sess.as_deref(), now_ms()))
            .await
            .map_err(ledger_err)?;
        self.ctx.bytes_done.store(resume.offset, Ordering::Relaxed);
        let _ = self.events.send(SyncEvent::Started {
            level: e.level.clone(),
            path: e.path.clone(),
            offset: resume.offset,
            bytes_total: e.bytes_total,
        });
        let req = UploadRequest {
            key: &e.path,
            source: src,
            size: e.bytes_total,
            sha256: &e.sha256,
            md5: e.md5.as_deref(),
            resume,
        };
        let receipt = self.remote.upload(req, &self.ctx).await?;
        // [commit groups] Staged, not yet visible: confirmed after its checkpoint's commit.
        if let Some(group) = self.remote.commit_group(&e.path) {
            return Ok(JobEnd::Staged { group });
        }
        // Verify: size and every checksum as the remote reports them.
        let obj = self.remote.stat(&e.path).await?;
        if let Err(why) = super::verify::check(obj.as_ref(), e) {
            let _ = self.remote.delete(&e.path).await;
            return Err(RemoteError::transient(format!(
                "the copy on remote '{}' did not match after upload ({why}); it will be sent again",
                self.remote.name()
            )));
        }
        let mut obj = obj.unwrap_or_else(|| super::remote::RemoteObject {
            key: e.path.clone(),
            id: receipt.remote_id.clone(),
            size: e.bytes_total,
            sha256: None,
            md5: None,
            modified_ms: None,
        });
        if obj.id.is_empty() {
            obj.id = receipt.remote_id;
        }
        self.confirm(&obj).await.map_err(ledger_err)?;
        Ok(JobEnd::Confirmed { already_there: false, bytes: e.bytes_total })
    }

    /// Record the copy as confirmed, with the remote's own id and checksum of it (SHA-256
    /// where the remote reports one, else its MD5).
    async fn confirm(&self, obj: &super::remote::RemoteObject) -> Result<(), LedgerError> {
        let e = &self.entry;
        // The remote's own checksum of the stored copy: Drive's md5Checksum, else the SHA-256
        // a local remote reads back or the Hub's LFS oid.
        let checksum = obj.md5.clone().or_else(|| obj.sha256.clone()).unwrap_or_default();
        let (p, lv, sha, id) = (e.path.clone(), e.level.clone(), e.sha256.clone(), obj.id.clone());
        db(&self.ledger, move |l| l.set_confirmed(&p, &lv, &sha, &id, &checksum, now_ms()).map(|_| ())).await
    }

    async fn fail(&self, err: RemoteError) -> JobEnd {
        let e = &self.entry;
        match err.kind {
            ErrorKind::SourceGone => return JobEnd::Gone,
            ErrorKind::SourceChanged => return JobEnd::Changed,
            ErrorKind::Cancelled if !self.user_cancel.load(Ordering::Relaxed) => {
                return JobEnd::Interrupted;
            }
            _ => {}
        }
        let now = now_ms();
        let user_cancel = err.kind == ErrorKind::Cancelled;
        let permanent = err.is_permanent() || user_cancel;
        let reason = if user_cancel {
            "cancelled by you; retry failed uploads to queue it again".to_string()
        } else {
            err.reason()
        };
        let attempts = e.attempts + 1;
        let retry_in =
            (!permanent).then(|| backoff_delay(attempts, self.base, self.max, err.retry_after, fastrand::f64()));
        let next = now + retry_in.map(|d| d.as_millis() as i64).unwrap_or(0);
        let (p, lv, sha, r) = (e.path.clone(), e.level.clone(), e.sha256.clone(), reason.clone());
        if let Err(e) = db(&self.ledger, move |l| l.set_failed(&p, &lv, &sha, &r, permanent, next, now)).await {
            self.note_ledger_error(&e);
        }
        if user_cancel { JobEnd::Cancelled } else { JobEnd::Failed { reason, permanent, retry_in } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let b = Duration::from_secs(2);
        let m = Duration::from_secs(60);
        assert_eq!(backoff_delay(1, b, m, None, 1.0), Duration::from_secs(2));
        assert_eq!(backoff_delay(1, b, m, None, 0.0), Duration::from_secs(1));
        assert_eq!(backoff_delay(3, b, m, None, 1.0), Duration::from_secs(8));
        assert_eq!(backoff_delay(30, b, m, None, 1.0), m);
        assert_eq!(backoff_delay(30, b, m, None, 0.0), m / 2);
        assert_eq!(backoff_delay(1, b, m, Some(Duration::from_secs(120)), 0.5), Duration::from_secs(120));
        assert_eq!(backoff_delay(3, b, m, Some(Duration::from_millis(10)), 1.0), Duration::from_secs(8));
    }
}
