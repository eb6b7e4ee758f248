//! The coordinator: one task that folds watcher observations into the ledger, hashes
//! settled files, starts uploads and verifications, and records what they did.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::upload::Job;
use super::{Command, JobDone, JobEnd, Mode, RunSummary, SyncError, SyncEvent, group, ledger_trouble_words, now_ms};
use crate::sync::config::SyncConfig;
use crate::sync::ledger::{EntryFilter, Ledger, LedgerEntry, LedgerError};
use crate::sync::remote::{RateLimiter, Remote, TransferCtx};
use crate::sync::routing::{Router, is_weights};
use crate::sync::watcher::{Observation, Settler, scan, spawn_watcher, stat_file};

/// Attempts per file before `run_once` gives up on a transient failure.
const ONCE_ATTEMPTS: u32 = 3;
const TICK: Duration = Duration::from_millis(250);
/// A transfer's `bytes_done` before its job has found the attempt's resume point.
const NOT_STARTED: u64 = u64::MAX;
const PROGRESS_WRITE_EVERY: Duration = Duration::from_secs(1);

/// A scanned file: (path, size, mtime_ns, its (level, remote) routes).
type ScannedFile = (String, u64, i64, Vec<(String, String)>);

pub(super) struct Level {
    pub(super) name: &'static str,
    pub(super) remote: Option<Arc<dyn Remote>>,
    pub(super) remote_name: String,
    pub(super) interval_ms: i64,
    pub(super) pass_active: bool,
    pub(super) last_pass_ms: Option<i64>,
    /// Files confirmed since the pass began.
    pub(super) pass_stored: u64,
    /// The confirmed copies are to be verified on the remote (a pass began).
    pub(super) needs_check: bool,
    /// A verification of the confirmed copies is running.
    pub(super) checking: bool,
    /// The last verification could not reach the remote (why).
    pub(super) check_error: Option<String>,
}

/// What verifying a level's confirmed copies found.
pub(super) struct CheckDone {
    pub(super) level: &'static str,
    pub(super) verified: u64,
    /// Copies missing or changed: (row, why).
    pub(super) failed: Vec<(LedgerEntry, String)>,
    /// The remote itself could not be read (not mounted, no access).
    pub(super) error: Option<String>,
}

pub(super) struct InFlight {
    pub(super) ctx: TransferCtx,
    pub(super) user_cancel: Arc<AtomicBool>,
    pub(super) bytes_total: u64,
    sha256: String,
    pub(super) remote: String,
    pub(super) started: Instant,
    /// Bytes sent in this attempt over the last seconds (the rate and ETA shown).
    pub(super) rate: crate::sync::rate::RateWindow,
    pub(super) last_event: (u64, u64),
    pub(super) last_write: Instant,
}

/// The ledger cannot be written: nothing new starts before `until`; each failure in a row
/// doubles `delay` (from `sync.retry_base_seconds` up to `sync.retry_max_seconds`).
pub(super) struct LedgerTrouble {
    pub(super) until: Instant,
    pub(super) delay: Duration,
}

pub(super) struct Coordinator {
    pub(super) ws: PathBuf,
    pub(super) sync: SyncConfig,
    pub(super) router: Arc<Router>,
    pub(super) ledger: Arc<Mutex<Ledger>>,
    pub(super) levels: Vec<Level>,
    pub(super) settler: Settler,
    pub(super) hash_queue: VecDeque<crate::sync::watcher::Ready>,
    pub(super) hashing: JoinSet<(crate::sync::watcher::Ready, HashResult)>,
    /// The file being hashed now: no upload of it starts meanwhile (a newer version is
    /// about to be known, and a remote may be taking a copy of it).
    pub(super) hashing_path: Option<String>,
    pub(super) jobs: JoinSet<JobDone>,
    pub(super) checks: JoinSet<CheckDone>,
    /// `--once`: failures of each upload in this run (a run gives up after a few).
    pub(super) once_failures: HashMap<(String, String), u32>,
    /// `--once`: files that are not weights already taken in this run; a log that keeps
    /// growing is stored as the snapshot taken, not chased.
    pub(super) once_taken: HashSet<String>,
    pub(super) inflight: HashMap<(String, String), InFlight>,
    pub(super) events: mpsc::UnboundedSender<SyncEvent>,
    pub(super) limiter: Option<Arc<RateLimiter>>,
    pub(super) mode: Mode,
    pub(super) summary: RunSummary,
    /// The engine's shutdown token; each upload's cancel token is a child of it.
    pub(super) shutdown: CancellationToken,
    /// [commit groups] Staged checkpoints and their commits.
    pub(super) groups: group::Groups,
    /// Set while the ledger cannot be written (see [`LedgerTrouble`]).
    pub(super) trouble: Option<LedgerTrouble>,
}

/// A settled file, read: its hash (and the levels whose remotes took a copy while it was
/// read), or why it is a secret (then it is not hashed at all).
pub(super) enum Hashed {
    Digests(crate::sync::hash::Digests, Vec<(String, Arc<dyn Remote>)>),
    Secret(crate::secrets::Finding),
}

/// What the hash pass returns: on failure, the levels whose remotes had begun a copy.
pub(super) type HashResult = Result<Hashed, (std::io::Error, Vec<(String, Arc<dyn Remote>)>)>;

pub(super) async fn db<T: Send + 'static>(
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
        Err(e) => Err(LedgerError::Other(format!("ledger task stopped: {e}"))),
    }
}

impl Coordinator {
    pub(super) fn new(
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

    pub(super) fn routes(&self, rel: &str, size: u64) -> Vec<(String, String)> {
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

    pub(super) async fn run(
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
            // A file that settles between ticks is looked at when it does.
            let now = now_ms();
            let quiet_in = self.settler.next_quiet_at(now).map(|at| Duration::from_millis((at - now) as u64 + 1));
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
                _ = tokio::time::sleep(quiet_in.unwrap_or_default()), if quiet_in.is_some() => {
                    let r = self.settle_tick().await;
                    self.survive(r)?;
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
                            (crate::sync::ledger::UploadState::Failed, Some(err)) => err,
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
                        match crate::sync::hash::digest_prefix_into(&path, ready.size, with_md5, &mut sinks) {
                            Ok(d) => Ok(Hashed::Digests(d, staged)),
                            Err(e) => Err((e, staged)),
                        }
                    }
                };
                (ready, r)
            });
        }
    }

    async fn hashed(&mut self, ready: crate::sync::watcher::Ready, result: HashResult) -> Result<(), SyncError> {
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
                                        e.sha256 == digests.sha256
                                            && e.state != crate::sync::ledger::UploadState::Confirmed
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
                    let begun = entry.attempts > 0 || entry.state == crate::sync::ledger::UploadState::Uploading;
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
            let listed: HashMap<String, crate::sync::remote::RemoteObject> = match remote.list("").await {
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
                match crate::sync::verify::check(obj.as_ref(), &e) {
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
                rate: crate::sync::rate::RateWindow::new(),
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

    pub(super) async fn job_done(&mut self, done: JobDone) -> Result<(), SyncError> {
        self.touch(&done.level);
        let flight = self.inflight.remove(&(done.path.clone(), done.level.clone()));
        let now = now_ms();
        let mut end = done.end;
        if let Some(e) = &done.ledger_error {
            // The failure is not recorded: the row would look due again at once. Wait as
            // the ledger trouble says, whatever the attempt's own retry delay was.
            if self.mode == Mode::Once {
                return Err(SyncError::Ledger(e.duplicate()));
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
