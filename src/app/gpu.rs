//! The GPU panel's state: the newest sample, history rings, the live tier fit, the
//! selected process. Folded from whole samples by `update`; no I/O here.

use std::path::PathBuf;

use ratatui::crossterm::event::KeyEvent;

use super::{Action, AppState, Effect, Overlay, Panel};
use crate::gpu::tier::TierDetector;
use crate::gpu::{FitTracker, GpuConfig, GpuHistory, GpuProcess, GpuSample, TierConfig, TierFit};

/// How the GPU panel orders each GPU's processes (`O` cycles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcSort {
    /// Most VRAM first (the default: the job that fills the GPU).
    #[default]
    Vram,
    /// Oldest first (the long-running trainer before a notebook started later).
    Age,
    /// By pid.
    Pid,
}

impl ProcSort {
    pub fn next(self) -> Self {
        match self {
            ProcSort::Vram => ProcSort::Age,
            ProcSort::Age => ProcSort::Pid,
            ProcSort::Pid => ProcSort::Vram,
        }
    }

    /// As the panel title says it.
    pub fn label(self) -> &'static str {
        match self {
            ProcSort::Vram => "by VRAM",
            ProcSort::Age => "by age",
            ProcSort::Pid => "by pid",
        }
    }

    /// Orders processes of one GPU. Ties (and unknown values, last) keep pid order.
    pub fn sort(self, list: &mut [&GpuProcess]) {
        match self {
            ProcSort::Vram => list.sort_by_key(|p| (std::cmp::Reverse(p.used_bytes), p.pid)),
            ProcSort::Age => list.sort_by_key(|p| (p.start_ticks.is_none(), p.start_ticks, p.pid)),
            ProcSort::Pid => list.sort_by_key(|p| p.pid),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GpuPanel {
    /// The order of each GPU's processes.
    pub sort: ProcSort,
    pub sample: Option<GpuSample>,
    pub history: GpuHistory,
    pub fit: Option<TierFit>,
    /// The machine's tier (forced in config, else GPU 0's).
    pub machine_tier: Option<TierConfig>,
    /// The selected process, as (GPU index, pid); `None` = the first one.
    pub selected: Option<(u32, u32)>,
    /// The user running the console: only their processes may be stopped.
    pub my_uid: u32,
    /// Canonical workspace root: processes started inside it are the job.
    pub workspace: PathBuf,
    tracker: FitTracker,
    detector: TierDetector,
}

impl GpuPanel {
    pub fn new(config: &GpuConfig, workspace: PathBuf) -> Self {
        Self {
            sort: ProcSort::default(),
            sample: None,
            history: GpuHistory::from_config(config),
            fit: None,
            machine_tier: config.tier.as_deref().and_then(|t| config.tier_named(t)).cloned(),
            selected: None,
            my_uid: rustix::process::getuid().as_raw(),
            workspace,
            tracker: FitTracker::new(),
            detector: TierDetector::new(),
        }
    }

    /// Folds one sample in: history, tier fit, machine tier, selection.
    pub fn apply(&mut self, sample: GpuSample, config: &GpuConfig) {
        self.history.push(&sample);
        self.fit = self.tracker.update(config, &sample, Some(&self.workspace));
        self.machine_tier = self.detector.machine_tier(config, &sample).cloned();
        self.sample = Some(sample);
        if let Some(key) = self.selected
            && !self.processes().any(|p| (p.gpu_index, p.pid) == key)
        {
            self.selected = None;
        }
    }

    /// Every compute process, GPU by GPU, each GPU's in the panel's sort order.
    pub fn processes(&self) -> impl Iterator<Item = &GpuProcess> {
        self.sample.iter().flat_map(|s| s.gpus.iter()).flat_map(|d| self.sorted(d))
    }

    /// One GPU's processes in the panel's sort order.
    pub fn sorted<'a>(&self, d: &'a crate::gpu::GpuDevice) -> Vec<&'a GpuProcess> {
        let mut list: Vec<&GpuProcess> = d.processes.iter().collect();
        self.sort.sort(&mut list);
        list
    }

    /// Position of the selected process in [`Self::processes`].
    pub fn selected_index(&self) -> Option<usize> {
        let n = self.processes().count();
        if n == 0 {
            return None;
        }
        match self.selected {
            Some(key) => self.processes().position(|p| (p.gpu_index, p.pid) == key).or(Some(0)),
            None => Some(0),
        }
    }

    pub fn selected_process(&self) -> Option<&GpuProcess> {
        let i = self.selected_index()?;
        self.processes().nth(i)
    }

    /// The process shown in the details popup, if it still runs.
    pub fn process(&self, gpu: u32, pid: u32) -> Option<&GpuProcess> {
        self.processes().find(|p| p.gpu_index == gpu && p.pid == pid)
    }

    /// Moves the selection through the process list.
    pub fn scroll(&mut self, action: Action) {
        let n = self.processes().count();
        let Some(i) = self.selected_index() else { return };
        let max = n - 1;
        let j = match action {
            Action::Up => i.saturating_sub(1),
            Action::Down => (i + 1).min(max),
            Action::PageUp => i.saturating_sub(5),
            Action::PageDown => (i + 5).min(max),
            _ => i,
        };
        let next = self.processes().nth(j).map(|p| (p.gpu_index, p.pid));
        self.selected = next;
    }
}

/// `O`: the next process order; the selection stays on its process.
pub fn on_sort(state: &mut AppState) -> Vec<Effect> {
    if state.focus != Panel::Gpu {
        let key = state.keymap.first_key(Action::FocusGpu).unwrap_or_else(|| "tab".into());
        state.say(format!("focus the GPU panel ({key}) to sort its processes"), true);
        return vec![];
    }
    let keep = state.gpu.selected_process().map(|p| (p.gpu_index, p.pid));
    state.gpu.sort = state.gpu.sort.next();
    state.gpu.selected = keep;
    state.say(format!("GPU processes sorted {}", state.gpu.sort.label()), false);
    vec![]
}

/// `enter`: open the details of the selected process, or close them.
pub fn on_details(state: &mut AppState) -> Vec<Effect> {
    if matches!(state.overlay, Overlay::GpuDetails { .. }) {
        state.overlay = Overlay::None;
    } else if state.focus == Panel::Gpu
        && let Some(p) = state.gpu.selected_process()
    {
        state.overlay = Overlay::GpuDetails { gpu: p.gpu_index, pid: p.pid };
    }
    vec![]
}

/// `K`: ask before sending SIGTERM to the selected process (or the one in the details
/// popup) if it is the user's own; say why not otherwise.
pub fn on_kill(state: &mut AppState) -> Vec<Effect> {
    if state.focus != Panel::Gpu {
        return vec![];
    }
    let target = match &state.overlay {
        Overlay::GpuDetails { gpu, pid } => state.gpu.process(*gpu, *pid),
        _ => state.gpu.selected_process(),
    };
    match target {
        None => state.say("no GPU process selected", true),
        Some(p) if p.uid != Some(state.gpu.my_uid) => {
            let owner = p.user.clone().or(p.uid.map(|u| format!("uid {u}"))).unwrap_or("another user".into());
            let text = format!("process {} belongs to {owner}: only your own can be stopped", p.pid);
            state.say(text, true);
        }
        Some(p) => {
            state.overlay = Overlay::ConfirmKill { pid: p.pid, start_ticks: p.start_ticks, name: p.short_name() };
        }
    }
    vec![]
}

/// A key while "Send SIGTERM?" is open: confirm sends, deny or cancel closes.
pub fn on_confirm_kill_key(state: &mut AppState, key: &KeyEvent) -> Vec<Effect> {
    let Overlay::ConfirmKill { pid, start_ticks, .. } = state.overlay else { return vec![] };
    if state.keymap.is(key, Action::Confirm) {
        state.overlay = Overlay::None;
        return vec![Effect::TerminateProcess { pid, start_ticks }];
    }
    if state.keymap.is(key, Action::Deny) || state.keymap.action(key) == Some(Action::Cancel) {
        state.overlay = Overlay::None;
    }
    vec![]
}

/// The loop sent (or failed to send) SIGTERM: say so, and sample again.
pub fn on_terminated(state: &mut AppState, pid: u32, result: Result<(), String>) -> Vec<Effect> {
    match result {
        Ok(()) => state.say(format!("sent SIGTERM to process {pid}"), false),
        Err(e) => state.say(e, true),
    }
    vec![Effect::RefreshNow]
}
