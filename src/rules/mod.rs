//! The protocol's rules that no other part checks, watched: data on the local SSD
//! ([`data`]), tier purpose ([`tier`]), time estimates ([`estimate`]), dependency hygiene
//! ([`deps`]). Each rule is judged from what the console already reads (`/proc`, the
//! mount table, the GPU sample, the workspace's files) in the rules collector, off the UI
//! task, with bounded reads; it is shown as a header flag, in `status --json` → `rules`,
//! and (where it belongs) in the pre-shutdown checklist. A rule never touches the
//! training run: it only reads. Each can be turned off in `[rules]`.
//!
//! No UI here: [`evaluate`] builds a whole [`RulesReport`].

pub mod data;
pub mod deps;
pub mod estimate;
pub mod journal;
pub mod mounts;
pub mod tier;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::gpu::GpuSample;
use crate::logtail::config::duration_text;

/// `[rules]`: which rules are watched, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Data on the local SSD: the training process reads no data file from a network or
    /// FUSE mount, and `paths.data` is not on one.
    pub data_local: bool,
    /// Tier purpose: a job over `tiers.tier1_max_params` parameters, or training longer
    /// than `tiers.tier1_max_run`, on tier 1; a bundle with no mini-train on tier 1.
    pub tier_purpose: bool,
    /// Time estimates: the run's elapsed time plus its ETA past 1.5x the experiment's
    /// training estimate (journal entry or `opsconsole estimate`).
    pub time_estimates: bool,
    /// Dependency hygiene: `pip install` in a training script, an import of `train.py`
    /// missing from the requirements, requirements newer than the frozen ones.
    pub dependencies: bool,
    /// How often the rules are checked.
    #[serde(with = "duration_text")]
    pub every: Duration,
    /// More filesystem types counted as network mounts (besides nfs, cifs, 9p, drvfs,
    /// fuse.* and the others listed in docs/rules.md).
    pub network_fs: Vec<String>,
    /// site-packages folders whose installed metadata maps import names to distributions
    /// (empty: the active virtualenv, `.venv`/`venv`/`env`, the user's and the system's).
    pub site_packages: Vec<String>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            data_local: true,
            tier_purpose: true,
            time_estimates: true,
            dependencies: true,
            every: Duration::from_secs(30),
            network_fs: Vec::new(),
            site_packages: Vec::new(),
        }
    }
}

impl RulesConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.every < Duration::from_secs(2) || self.every > Duration::from_secs(3600) {
            out.push(("rules.every".into(), "must be between 2s and 1h".into()));
        }
        for (i, t) in self.network_fs.iter().enumerate() {
            if t.trim().is_empty() || t.contains(char::is_whitespace) {
                out.push((
                    format!("rules.network_fs[{i}]"),
                    format!("{t:?} is not a filesystem type (e.g. \"fuse.s3fs\")"),
                ));
            }
        }
        out
    }

    /// Whether any rule is on.
    pub fn any(&self) -> bool {
        self.data_local || self.tier_purpose || self.time_estimates || self.dependencies
    }
}

/// Where a rule stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleState {
    /// Checked, nothing to say.
    #[default]
    Ok,
    /// Broken: `message` says how, and what to do.
    Flag,
    /// Turned off in `[rules]`.
    Off,
    /// Could not be judged (nothing running, a file missing): `message` says why.
    Unknown,
}

/// A rule's verdict: its state and, in words, why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub state: RuleState,
    pub message: String,
    /// The header's text of a flag (the message without its details).
    #[serde(skip)]
    pub header: String,
    /// The header's short form of a flag (`data on gcsfuse`), for narrow terminals.
    #[serde(skip)]
    pub short: String,
}

impl Verdict {
    fn plain(state: RuleState, message: String) -> Self {
        Self { state, message, header: String::new(), short: String::new() }
    }

    pub fn ok(message: impl Into<String>) -> Self {
        Self::plain(RuleState::Ok, message.into())
    }

    /// A flag: the whole message, the header's text, and its short form.
    pub fn flag(message: impl Into<String>, header: impl Into<String>, short: impl Into<String>) -> Self {
        Self { state: RuleState::Flag, message: message.into(), header: header.into(), short: short.into() }
    }

    pub fn off(key: &str) -> Self {
        Self::plain(RuleState::Off, format!("turned off (rules.{key} = false)"))
    }

    pub fn unknown(message: impl Into<String>) -> Self {
        Self::plain(RuleState::Unknown, message.into())
    }

    pub fn flagged(&self) -> bool {
        self.state == RuleState::Flag
    }
}

/// The training run as the rules see it: the processes writing the training log and the
/// compute processes on the GPUs (those started from the workspace, else every one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunFacts {
    pub pids: Vec<u32>,
    /// The earliest start of those processes, seconds since the Unix epoch.
    pub started_unix: Option<u64>,
    /// The experiment the run belongs to (its log's or working folder's), else the newest.
    pub experiment: Option<String>,
    /// The training log followed, workspace-relative where inside it.
    pub log: Option<String>,
}

/// Every rule at one moment: `status --json` → `rules`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RulesReport {
    pub taken_unix: u64,
    pub run: RunFacts,
    pub data_local: data::DataRule,
    pub tier_purpose: tier::TierRule,
    pub time_estimate: estimate::EstimateRule,
    pub dependencies: deps::DepsRule,
}

/// One header flag: the full text and a short form for narrow terminals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub full: String,
    pub short: String,
}

impl RulesReport {
    /// Every rule's verdict with its `[rules]` name, most urgent first: data on a network
    /// mount (it slows every step and can stall the run) first.
    pub fn verdicts(&self) -> Vec<(&'static str, &Verdict)> {
        vec![
            ("data_local", &self.data_local.verdict),
            ("time_estimates", &self.time_estimate.verdict),
            ("tier_purpose", &self.tier_purpose.verdict),
            ("dependencies", &self.dependencies.verdict),
        ]
    }

    /// The flags to show in the header, most urgent first.
    pub fn flags(&self) -> Vec<Flag> {
        self.verdicts()
            .into_iter()
            .filter(|(_, v)| v.flagged())
            .map(|(_, v)| Flag { full: v.header.clone(), short: v.short.clone() })
            .collect()
    }

    /// A few lines for `opsconsole status`.
    pub fn to_text(&self) -> String {
        let mut out = String::from("rules:\n");
        for (name, v) in self.verdicts() {
            let mark = match v.state {
                RuleState::Ok => "ok",
                RuleState::Flag => "FLAG",
                RuleState::Off => "off",
                RuleState::Unknown => "?",
            };
            out.push_str(&format!("  {name:<14} {mark:<4} {}\n", v.message));
        }
        out
    }
}

/// Where the rules read the machine: `/proc` and, for tests, a mount table file.
#[derive(Debug, Clone)]
pub struct Probe {
    pub proc_root: PathBuf,
    /// A mount table to use instead of the training process's `/proc/PID/mountinfo`.
    pub mounts_file: Option<PathBuf>,
    /// The log's writers may come from a scan of `/proc` this old shared with the
    /// console's other collectors ([`crate::procfs::recent_write_handles`]); fresh when
    /// `None` (commands run once).
    pub shared_scan: Option<std::time::Duration>,
}

impl Default for Probe {
    fn default() -> Self {
        Self { proc_root: PathBuf::from("/proc"), mounts_file: None, shared_scan: None }
    }
}

impl Probe {
    /// The mount table the process `pid` sees (or the fixture).
    pub fn mounts(&self, pid: Option<u32>) -> Vec<mounts::MountEntry> {
        match &self.mounts_file {
            Some(f) => mounts::read(f).unwrap_or_default(),
            None => mounts::for_process(&self.proc_root, pid).unwrap_or_default(),
        }
    }
}

/// What the rules are judged on, besides the workspace's files.
pub struct Inputs<'a> {
    pub gpu: Option<&'a GpuSample>,
    pub now: SystemTime,
    pub probe: &'a Probe,
}

use crate::unixtime::secs as unix;

/// The experiment folder a path lies in (`<experiments>/<name>/…`).
fn experiment_of(ws: &Path, experiments: &str, p: &Path) -> Option<String> {
    let root = crate::airlock::in_workspace(ws, experiments);
    let rest = p.strip_prefix(&root).ok()?;
    let first = rest.components().next()?.as_os_str().to_str()?.to_string();
    root.join(&first).is_dir().then_some(first)
}

/// Finds the training run: the log's writers and the GPU's compute processes.
pub fn find_run(ws: &Path, cfg: &Config, gpu: Option<&GpuSample>, probe: &Probe) -> RunFacts {
    let log = crate::logtail::discover::select(ws, &cfg.log).filter(|l| l.exists);
    let writers = |p: &Path| match probe.shared_scan {
        Some(max_age) => crate::procfs::recent_writers_of(p, max_age),
        None => crate::procfs::writers_of(p),
    };
    let mut pids: Vec<u32> = log.as_ref().and_then(|l| writers(&l.path).ok()).unwrap_or_default();
    let mut starts = Vec::new();
    let mut places: Vec<PathBuf> = Vec::new();
    if let Some(g) = gpu {
        let all: Vec<&crate::gpu::GpuProcess> = g.processes().collect();
        let mine: Vec<&crate::gpu::GpuProcess> =
            all.iter().copied().filter(|p| crate::gpu::tier::is_in(p, ws)).collect();
        for p in if mine.is_empty() { all } else { mine } {
            if !pids.contains(&p.pid) {
                pids.push(p.pid);
            }
            starts.extend(p.start_time_unix_s);
            places.extend(p.cwd.clone());
            places.extend(
                p.command.iter().flat_map(|c| c.split_whitespace()).filter(|w| w.starts_with('/')).map(PathBuf::from),
            );
        }
    }
    let mut reader = crate::gpu::procinfo::ProcReader::new(&probe.proc_root);
    for pid in &pids {
        let info = reader.info(*pid);
        starts.extend(info.start_time_unix_s);
        places.extend(info.cwd);
    }
    pids.sort_unstable();
    pids.dedup();
    let experiment = log
        .as_ref()
        .and_then(|l| experiment_of(ws, &cfg.paths.experiments, &l.path))
        .or_else(|| places.iter().find_map(|p| experiment_of(ws, &cfg.paths.experiments, p)))
        .or_else(|| crate::airlock::experiment::newest(ws, &cfg.paths.experiments).map(|e| e.name));
    RunFacts {
        started_unix: starts.into_iter().min(),
        experiment,
        log: log.map(|l| crate::workspace::Workspace::at(ws).display(&l.path)),
        pids,
    }
}

/// A rule's verdict as a checklist item: a flag fails (the message says what to do), `ok`
/// and `unknown` pass with their reason, `off` is off.
pub fn checklist_item(name: &str, title: &str, v: &Verdict) -> crate::checklist::Item {
    use crate::checklist::{Fix, Item};
    match v.state {
        RuleState::Flag => {
            let fix = v.message.rsplit_once(": ").map_or(v.message.as_str(), |(_, f)| f);
            let mut f = Fix::words(fix);
            if let Some(cmd) = v.message.split('`').nth(1).filter(|c| c.starts_with("opsconsole ")) {
                f = f.command(cmd);
            }
            Item::fail(name, title, v.message.clone(), f)
        }
        RuleState::Ok | RuleState::Unknown => Item::pass(name, title, v.message.clone()),
        RuleState::Off => Item::off(name, title, v.message.clone()),
    }
}

/// Judges every rule.
pub fn evaluate(ws: &Path, cfg: &Config, inputs: &Inputs<'_>) -> RulesReport {
    let r = &cfg.rules;
    let run = find_run(ws, cfg, inputs.gpu, inputs.probe);
    let data_local = if r.data_local { data::check(ws, cfg, &run, inputs.probe) } else { data::DataRule::off() };
    let tier_purpose =
        if r.tier_purpose { tier::check(ws, cfg, &run, inputs.gpu, inputs.now) } else { tier::TierRule::off() };
    let time_estimate =
        if r.time_estimates { estimate::check(ws, cfg, &run, inputs.now) } else { estimate::EstimateRule::off() };
    let dependencies =
        if r.dependencies { deps::check(ws, cfg, run.experiment.as_deref()) } else { deps::DepsRule::off() };
    RulesReport { taken_unix: unix(inputs.now), run, data_local, tier_purpose, time_estimate, dependencies }
}
