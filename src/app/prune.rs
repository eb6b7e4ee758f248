//! Prune and disk-guard state: the newest checkpoint sample, per-disk growth history and
//! forecasts, the prune plan screen, the running prune job, and automatic pruning.

use std::collections::BTreeMap;
use std::time::SystemTime;

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::jobs::JobEvent;
use super::{Action, AppState, Effect, Overlay};
use crate::checkpoints::auto::{AutoPruneDecision, auto_prune_decision};
use crate::checkpoints::{CheckpointsSample, ItemOutcome, PrunePlan, PruneProgress};
use crate::disk::growth::{DiskForecast, UsageHistory, UsageSample, forecast_disk};
use crate::disk::{DiskSample, Level};
use crate::util;

/// Samples kept per disk (an hour at the default 5 s sampling).
pub const HISTORY: usize = 1024;
/// The banner shows when a disk would be full sooner than this.
pub const BANNER_SECS: u64 = 3600;
/// The word typed to delete unconfirmed checkpoints.
pub const OVERRIDE_WORD: &str = "delete";
/// Job ids of prune jobs start here (other jobs use small numbers).
const JOB_ID_BASE: u64 = 0x5052_0000;

/// One item's copy on one level, for the plan's confirmations column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMark {
    /// Stored and verified there (`✓`).
    Confirmed,
    /// The level takes such files and has no confirmed copy (`✗`).
    Missing,
    /// The level is configured but does not take this item (L2 holds no weights): `·`.
    NotTaken,
    /// The level is off or its remote is not configured (`—`).
    NotConfigured,
}

/// Each plan item's copies on L2 and L3, from the plan's per-item confirmations and the
/// levels' routing (no I/O).
pub fn copy_marks(plan: &PrunePlan, config: &crate::config::Config) -> Vec<[(&'static str, CopyMark); 2]> {
    let router = crate::sync::routing::Router::new(&config.sync).ok();
    plan.items
        .iter()
        .map(|item| {
            // A folder's files are routed as the weights inside it.
            let rel = match item.unit_kind {
                crate::checkpoints::roots::UnitKind::Folder => format!("{}/model.safetensors", item.rel_path),
                crate::checkpoints::roots::UnitKind::File => item.rel_path.clone(),
            };
            let routed = router.as_ref().map(|r| r.route(&rel, item.bytes)).unwrap_or_default();
            config.sync.levels().map(|(name, _, level)| {
                let mark = if item.confirmed_on.iter().any(|l| l == name) {
                    CopyMark::Confirmed
                } else if !level.enabled || !config.remotes.contains_key(&level.remote) {
                    CopyMark::NotConfigured
                } else if routed.contains(&name) {
                    CopyMark::Missing
                } else {
                    CopyMark::NotTaken
                };
                (name, mark)
            })
        })
        .collect()
}

/// The prune plan screen.
#[derive(Debug, Clone, Default)]
pub struct PlanScreen {
    pub plan: Option<PrunePlan>,
    /// Each item's copies on L2 and L3 ([`copy_marks`]), in the plan's order.
    pub copies: Vec<[(&'static str, CopyMark); 2]>,
    /// A plan was asked for and has not arrived yet.
    pub planning: bool,
    /// The plan includes unconfirmed checkpoints (`u`).
    pub allow_unconfirmed: bool,
    pub scroll: usize,
    /// Some while the user types the override word.
    pub typing: Option<String>,
    pub message: Option<String>,
}

/// The prune job running or last run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PruneJob {
    pub id: u64,
    pub auto: bool,
    pub running: bool,
    pub done: usize,
    pub total: usize,
    pub freed_bytes: u64,
    pub last_item: Option<String>,
    pub summary: Option<String>,
}

/// Everything prune and the disk guard show.
#[derive(Debug, Clone, Default)]
pub struct PruneState {
    pub sample: Option<CheckpointsSample>,
    pub history: BTreeMap<String, UsageHistory>,
    pub forecasts: BTreeMap<String, DiskForecast>,
    pub screen: PlanScreen,
    pub job: Option<PruneJob>,
    pub last_auto: Option<SystemTime>,
    jobs_started: u64,
}

/// What the banner says.
#[derive(Debug, Clone, PartialEq)]
pub struct Banner {
    pub text: String,
    pub level: Level,
}

impl PruneState {
    /// Fold a disk sample: growth history, forecasts, and whether to prune by itself.
    pub fn on_disk(&mut self, sample: &DiskSample, state_now: SystemTime, cfg: &crate::config::Config) -> Vec<Effect> {
        for d in &sample.disks {
            let h = self.history.entry(d.mount.clone()).or_insert_with(|| UsageHistory::new(HISTORY));
            h.push(UsageSample { at: state_now, used_bytes: d.used_bytes });
            self.forecasts.insert(d.mount.clone(), forecast_disk(&h.samples(), d, (&cfg.disk).into(), state_now));
        }
        let watched = |roles: &[String]| roles.iter().any(|r| r == "checkpoints" || r == "workspace");
        let worst = sample.disks.iter().filter(|d| watched(&d.roles)).map(|d| d.fill_pct).fold(0.0, f64::max);
        if self.job.as_ref().is_some_and(|j| j.running) {
            return vec![];
        }
        match auto_prune_decision(&cfg.prune, worst / 100.0, cfg.disk.critical_pct / 100.0, self.last_auto, state_now) {
            AutoPruneDecision::Run => {
                self.last_auto = Some(state_now);
                self.start_job(true);
                vec![Effect::AutoPrune]
            }
            AutoPruneDecision::Skip(_) => vec![],
        }
    }

    fn start_job(&mut self, auto: bool) -> u64 {
        self.jobs_started += 1;
        let id = JOB_ID_BASE + self.jobs_started;
        self.job = Some(PruneJob { id, auto, running: true, ..Default::default() });
        id
    }

    /// Start the growth history from samples kept on disk (the last hour).
    pub fn seed_history(&mut self, samples: BTreeMap<String, Vec<UsageSample>>) {
        for (mount, list) in samples {
            let h = self.history.entry(mount).or_insert_with(|| UsageHistory::new(HISTORY));
            for s in list {
                h.push(s);
            }
        }
    }

    /// The forecast of a disk, if there is one.
    pub fn forecast(&self, mount: &str) -> Option<&DiskForecast> {
        self.forecasts.get(mount)
    }
}

/// The banner: a disk holding the workspace or checkpoints is critical or full, or will be
/// full within an hour at its growth rate.
pub fn banner(state: &AppState) -> Option<Banner> {
    let sample = state.disk.sample.as_ref()?;
    let prune_key = state.keymap.first_key(Action::Prune).unwrap_or_else(|| "p".into());
    let mut best: Option<Banner> = None;
    for d in &sample.disks {
        let soon = state.prune.forecast(&d.mount).and_then(|f| f.seconds_to_full).filter(|s| *s < BANNER_SECS);
        let text = if d.level >= Level::Critical {
            let mut t = format!("{} is {} ({}%)", d.mount, d.level.as_str(), d.use_pct());
            if let Some(s) = soon.filter(|s| *s > 0) {
                t.push_str(&format!(", full in {}", util::duration(std::time::Duration::from_secs(s))));
            }
            t
        } else if let Some(s) = soon {
            format!("{} will be full in {}", d.mount, util::duration(std::time::Duration::from_secs(s)))
        } else {
            continue;
        };
        let level = if d.level >= Level::Critical { d.level } else { Level::Critical };
        if best.as_ref().is_none_or(|b| level > b.level) {
            best = Some(Banner { text: format!("⚠ {text} — {prune_key} prune"), level });
        }
    }
    best
}

/// `p`: open the plan screen and ask for a plan.
pub fn open(state: &mut AppState) -> Vec<Effect> {
    state.overlay = Overlay::Prune;
    let s = &mut state.prune.screen;
    s.planning = true;
    s.allow_unconfirmed = false;
    s.typing = None;
    s.scroll = 0;
    s.message = None;
    vec![Effect::PlanPrune { allow_unconfirmed: false }]
}

/// A plan arrived.
pub fn on_plan(state: &mut AppState, plan: PrunePlan) {
    let copies = copy_marks(&plan, &state.config);
    let s = &mut state.prune.screen;
    s.planning = false;
    s.scroll = s.scroll.min(plan.items.len().saturating_sub(1));
    s.copies = copies;
    s.plan = Some(plan);
}

/// A new checkpoint sample arrived.
pub fn on_checkpoints(state: &mut AppState, sample: CheckpointsSample) {
    state.prune.sample = Some(sample);
}

/// Progress of a prune job: fold into the prune state and the job list.
pub fn on_progress(state: &mut AppState, p: PruneProgress) -> Vec<Effect> {
    let now = state.now;
    let job = state.prune.job.get_or_insert_with(PruneJob::default);
    let id = job.id;
    let name = if job.auto { "auto-prune" } else { "prune" };
    match p {
        PruneProgress::Started { items, bytes_to_free } => {
            job.running = true;
            job.total = items;
            let text = format!("{name} {items} items ({})", util::bytes(bytes_to_free));
            state.jobs.apply(JobEvent::Started { id, name: text }, now);
            if job.auto {
                state.say(format!("auto-prune started: {items} items, {}", util::bytes(bytes_to_free)), false);
            }
            vec![]
        }
        PruneProgress::Progress { done, total, freed_bytes, item } => {
            job.done = done;
            job.total = total;
            job.freed_bytes = freed_bytes;
            let file = item.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let what = match &item.outcome {
                ItemOutcome::Deleted => format!("deleted {file}"),
                ItemOutcome::Skipped(w) => format!("kept {file}: {w}"),
                ItemOutcome::Failed(e) => format!("failed {file}: {e}"),
            };
            job.last_item = Some(what.clone());
            state.jobs.apply(JobEvent::Progress { id, done: done as u64, total: total as u64, text: what }, now);
            // Space returns as the job goes: sample the disks again.
            vec![Effect::RefreshNow]
        }
        PruneProgress::Done { report } => {
            job.running = false;
            job.freed_bytes = report.freed_bytes;
            // Counts, and why anything was kept after all (a copy that failed
            // verification): the reason matters more than the counts.
            let one_line = report.summary();
            job.summary = Some(one_line.clone());
            state.jobs.apply(JobEvent::Done { id, summary: one_line.clone() }, now);
            let error = report.failed > 0 || report.skipped > 0;
            let label = if job.auto { "auto-prune" } else { "prune" };
            // The status line answers wherever the user is now (the plan screen also keeps
            // it until the next plan).
            state.say(format!("{label}: {one_line}"), error);
            let mut fx = vec![Effect::RefreshNow];
            // The `u` override is for the run it was given to: the next plan is the safe one.
            state.prune.screen.allow_unconfirmed = false;
            if state.overlay == Overlay::Prune {
                state.prune.screen.message = Some(one_line);
                state.prune.screen.planning = true;
                fx.push(Effect::PlanPrune { allow_unconfirmed: false });
            }
            fx
        }
        PruneProgress::Failed { error } => {
            job.running = false;
            job.summary = Some(format!("failed: {error}"));
            state.jobs.apply(JobEvent::Failed { id, error: error.clone() }, now);
            state.prune.screen.message = Some(format!("prune failed: {error}"));
            state.say(format!("prune failed: {error}"), true);
            vec![]
        }
    }
}

/// `C`: stop the running prune before its next item.
pub fn stop(state: &mut AppState) -> Vec<Effect> {
    let text = if state.prune.job.as_ref().is_some_and(|j| j.running) {
        "stopping the prune after the item in hand…"
    } else {
        "no prune is running"
    };
    if state.overlay == Overlay::Prune {
        state.prune.screen.message = Some(text.into());
    } else {
        state.say(text, !text.starts_with("stopping"));
    }
    if text.starts_with("stopping") { vec![Effect::CancelPrune] } else { vec![] }
}

fn run(state: &mut AppState) -> Vec<Effect> {
    state.prune.screen.typing = None;
    state.prune.start_job(false);
    state.prune.screen.message = Some("prune running…".into());
    vec![Effect::RunPrune]
}

/// Keys on the plan screen. While typing the override word, characters go to the text.
pub fn on_key(state: &mut AppState, key: &KeyEvent) -> Vec<Effect> {
    if let Some(typed) = state.prune.screen.typing.as_mut() {
        match key.code {
            KeyCode::Esc => state.prune.screen.typing = None,
            KeyCode::Backspace => {
                typed.pop();
            }
            KeyCode::Enter => {
                if typed == OVERRIDE_WORD {
                    return run(state);
                }
                state.prune.screen.message =
                    Some(format!("type the word `{OVERRIDE_WORD}` to delete unconfirmed copies"));
                typed.clear();
            }
            KeyCode::Char(c) if typed.chars().count() < 16 => typed.push(c),
            _ => {}
        }
        return vec![];
    }
    // Dialog answers (`y`, `enter`, `n`) are not in the main keymap; ask for them first.
    let action = if state.keymap.is(key, Action::Confirm) {
        Some(Action::Confirm)
    } else if state.keymap.is(key, Action::Deny) {
        Some(Action::Deny)
    } else {
        state.keymap.action(key)
    };
    let Some(action) = action else {
        return vec![];
    };
    let s = &mut state.prune.screen;
    let n = s.plan.as_ref().map_or(0, |p| p.items.len());
    match action {
        Action::Cancel | Action::Deny | Action::Prune => {
            state.overlay = Overlay::None;
            vec![]
        }
        Action::Quit => super::on_action(state, Action::Quit),
        Action::StopPrune => stop(state),
        Action::Up => {
            s.scroll = s.scroll.saturating_sub(1);
            vec![]
        }
        Action::Down => {
            s.scroll = (s.scroll + 1).min(n.saturating_sub(1));
            vec![]
        }
        Action::PageUp => {
            s.scroll = s.scroll.saturating_sub(10);
            vec![]
        }
        Action::PageDown => {
            s.scroll = (s.scroll + 10).min(n.saturating_sub(1));
            vec![]
        }
        Action::IncludeUnsynced => {
            s.allow_unconfirmed = !s.allow_unconfirmed;
            s.planning = true;
            vec![Effect::PlanPrune { allow_unconfirmed: s.allow_unconfirmed }]
        }
        Action::Refresh => {
            s.planning = true;
            vec![Effect::PlanPrune { allow_unconfirmed: s.allow_unconfirmed }]
        }
        Action::Confirm => {
            if state.prune.job.as_ref().is_some_and(|j| j.running) {
                s.message = Some("a prune job is already running".into());
                return vec![];
            }
            let Some(plan) = s.plan.as_ref().filter(|_| !s.planning) else {
                return vec![];
            };
            if plan.delete_count == 0 {
                s.message = Some("nothing to delete".into());
                return vec![];
            }
            if plan.unconfirmed_deletes > 0 {
                s.typing = Some(String::new());
                s.message = None;
                return vec![];
            }
            run(state)
        }
        _ => vec![],
    }
}
