//! The keys the footer names: those of the open dialog, or, on the main screen, those that
//! act on the focused panel first and then the global ones (as lazygit does). Keys come
//! from the keymap, so a rebound key shows as bound; keys a dialog reads as text (`enter`,
//! `esc` and `backspace` while typing) are named as the dialog reads them.

use super::{Action, AppState, Overlay, Panel};

/// One key (or a pair, `j/k`) and what it does here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub keys: String,
    pub label: String,
}

/// What the footer shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hints {
    /// The keys of the open dialog (or screen) rather than the main screen's.
    pub dialog: bool,
    /// Keys for the focused panel or the dialog, most useful first.
    pub local: Vec<Hint>,
    /// Keys that work on the main screen whatever has focus, most useful first (empty
    /// while a dialog is open).
    pub global: Vec<Hint>,
}

impl Hints {
    /// Every hint, local first.
    pub fn all(&self) -> impl Iterator<Item = &Hint> {
        self.local.iter().chain(self.global.iter())
    }

    /// Every hint as `key label` joined by ` · ` (the dialogs' plain-text form).
    pub fn text(&self) -> String {
        self.all().map(|h| format!("{} {}", h.keys, h.label)).collect::<Vec<_>>().join(" · ")
    }
}

struct Builder<'a> {
    state: &'a AppState,
    out: Vec<Hint>,
}

impl Builder<'_> {
    /// The first key of each action, joined by `/`; left out when none is bound.
    fn add(&mut self, actions: &[Action], label: impl Into<String>) -> &mut Self {
        let keys: Vec<String> =
            actions.iter().filter_map(|a| self.state.keymap.first_key(*a)).map(|k| arrow(&k)).collect();
        if !keys.is_empty() {
            self.out.push(Hint { keys: keys.join("/"), label: label.into() });
        }
        self
    }

    /// A key the dialog reads as text, named as it reads it.
    fn raw(&mut self, keys: &str, label: impl Into<String>) -> &mut Self {
        self.out.push(Hint { keys: keys.into(), label: label.into() });
        self
    }

    fn done(&mut self) -> Vec<Hint> {
        std::mem::take(&mut self.out)
    }
}

/// Arrow keys drawn as arrows: `↓/↑ scroll` reads faster than `down/up scroll`.
fn arrow(key: &str) -> String {
    match key {
        "up" => "↑".into(),
        "down" => "↓".into(),
        "left" => "←".into(),
        "right" => "→".into(),
        _ => key.into(),
    }
}

/// The footer's keys for this state.
pub fn footer_hints(state: &AppState) -> Hints {
    let mut b = Builder { state, out: Vec::new() };
    let scroll = [Action::Down, Action::Up];
    let dialog = |local| Hints { dialog: true, local, global: vec![] };
    match &state.overlay {
        Overlay::None => {}
        Overlay::Help => {
            return dialog(
                b.add(&scroll, "scroll").add(&[Action::Cancel], "close").add(&[Action::Quit], "quit").done(),
            );
        }
        Overlay::ConfirmQuit => {
            return dialog(b.add(&[Action::Confirm], "quit").add(&[Action::Deny], "stay").done());
        }
        Overlay::ConfirmKill { .. } => {
            return dialog(b.add(&[Action::Confirm], "send SIGTERM").add(&[Action::Deny], "keep it").done());
        }
        Overlay::GpuDetails { .. } => {
            return dialog(
                b.add(&[Action::KillProcess], "stop (SIGTERM, asks)")
                    .add(&[Action::Details], "close")
                    .add(&[Action::Cancel], "close")
                    .done(),
            );
        }
        Overlay::UploadQueue => {
            return dialog(
                b.add(&scroll, "scroll")
                    .add(&[Action::CancelUpload], "cancel upload")
                    .add(&[Action::RetryFailed], "retry failed")
                    .add(&[Action::SyncNow], "sync now")
                    .add(&[Action::Cancel], "close")
                    .done(),
            );
        }
        Overlay::LogSearch { .. } => {
            return dialog(b.raw("enter", "find").raw("esc", "cancel").raw("backspace", "erase").done());
        }
        Overlay::LogSwitcher { .. } => {
            return dialog(
                b.add(&scroll, "choose").add(&[Action::Confirm], "follow it").add(&[Action::Cancel], "close").done(),
            );
        }
        Overlay::Detail(_) => {
            return dialog(
                b.add(&scroll, "scroll")
                    .add(&[Action::LogTop, Action::LogEnd], "top/end")
                    .add(&[Action::Cancel], "close")
                    .done(),
            );
        }
        Overlay::Prune => return dialog(prune(state, &mut b)),
        Overlay::Checklist => return dialog(checklist(state, &mut b)),
        Overlay::Bundle | Overlay::Import | Overlay::Resume => return dialog(airlock(state, &mut b)),
    }

    // The main screen: the focused panel's keys first.
    match state.focus {
        Panel::Gpu => {
            b.add(&scroll, "select")
                .add(&[Action::GpuSort], format!("sort ({})", state.gpu.sort.next().label()))
                .add(&[Action::Details], "details")
                .add(&[Action::KillProcess], "stop process");
        }
        Panel::Disk => {
            b.add(&[Action::Prune], "prune plan").add(&[Action::Checklist], "shutdown checklist");
        }
        Panel::Log => {
            let view = &state.log.view;
            b.add(&[Action::LogSearch], "search");
            if view.query().is_some() {
                b.add(&[Action::LogNextMatch, Action::LogPrevMatch], "next/prev match");
            }
            b.add(&[Action::LogErrorsOnly], if view.errors_only { "all lines" } else { "errors only" })
                .add(&[Action::LogFollow], if view.following() { "pause" } else { "follow" })
                .add(&[Action::Details], "whole line")
                .add(&[Action::LogWrap], if view.wrap { "cut lines" } else { "wrap" });
            if !view.wrap {
                b.add(&[Action::LogLeft, Action::LogRight], "sideways");
            }
            b.add(&[Action::LogTop, Action::LogEnd], "top/end").add(&[Action::LogSwitch], "other log");
        }
        Panel::Uploads => {
            b.add(&[Action::SyncNow], "sync now")
                .add(&[Action::RetryFailed], "retry failed")
                .add(&[Action::CancelUpload], "cancel upload")
                .add(&[Action::Details], "queue");
        }
    }
    let local = b.done();
    b.add(&[Action::Help], "help").add(&[Action::Quit], "quit").add(&[Action::FocusNext], "focus");
    b.add(&[Action::Zoom], if state.zoomed { "unzoom" } else { "zoom" });
    if state.focus != Panel::Uploads {
        b.add(&[Action::SyncNow], "sync");
    }
    if state.focus != Panel::Disk {
        b.add(&[Action::Prune], "prune");
    }
    b.add(&[Action::Refresh], "refresh");
    if state.focus != Panel::Disk {
        b.add(&[Action::Checklist], "checklist");
    }
    Hints { dialog: false, local, global: b.done() }
}

fn prune(state: &AppState, b: &mut Builder) -> Vec<Hint> {
    let s = &state.prune.screen;
    if s.typing.is_some() {
        // The prompt reads these as keys, not through the keymap (`app::prune::on_key`).
        let n = s.plan.as_ref().map_or(0, |p| p.unconfirmed_deletes);
        return b
            .raw("enter", format!("delete {n} unconfirmed"))
            .raw("esc", "back to the plan")
            .raw("backspace", "erase")
            .done();
    }
    if state.prune.job.as_ref().is_some_and(|j| j.running) {
        b.add(&[Action::StopPrune], "stop");
    } else {
        b.add(&[Action::Confirm], "run");
    }
    let u = if s.allow_unconfirmed { "keep unconfirmed" } else { "include unconfirmed" };
    b.add(&[Action::IncludeUnsynced], u)
        .add(&[Action::Down, Action::Up], "scroll")
        .add(&[Action::Refresh], "re-plan")
        .add(&[Action::Cancel], "close")
        .done()
}

fn checklist(state: &AppState, b: &mut Builder) -> Vec<Hint> {
    let c = &state.checklist;
    if c.typing.is_some() {
        return b.raw("enter", "override these").raw("esc", "back").raw("backspace", "erase").done();
    }
    if c.confirming {
        return b.add(&[Action::Confirm], "shut down").add(&[Action::Deny], "don't").done();
    }
    b.add(&[Action::Shutdown], "shut down")
        .add(&[Action::OverrideItem], "override")
        .add(&[Action::SyncNow], "sync")
        .add(&[Action::Prune], "prune")
        .add(&[Action::Refresh], "check again")
        .add(&[Action::Down, Action::Up], "scroll")
        .add(&[Action::Cancel], "close")
        .done()
}

fn airlock(state: &AppState, b: &mut Builder) -> Vec<Hint> {
    let again = match state.overlay {
        Overlay::Bundle => "bundle again",
        Overlay::Import => "import again",
        _ => "check again",
    };
    if state.overlay == Overlay::Resume {
        let r = &state.airlock.resume;
        if r.confirming {
            return b.add(&[Action::Confirm], "start it").add(&[Action::Deny], "don't").done();
        }
        let command = !state.config.resume.command.trim().is_empty();
        if command && !r.job.running && !r.launching && super::airlock::offered(state).is_some() {
            b.add(&[Action::Confirm], "start training (asks)");
        }
    }
    b.add(&[Action::Refresh], again).add(&[Action::Down, Action::Up], "scroll").add(&[Action::Cancel], "close").done()
}
