//! Deterministic application states for `update` tests and screen snapshots.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opsconsole::app::{AppState, Msg};
use opsconsole::config::Config;
use opsconsole::disk::{DiskInfo, DiskSample, Thresholds};
use opsconsole::workspace::HostInfo;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// 2026-11-28 12:00:00 UTC.
pub const NOW: u64 = 1_795_867_200;

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A state on host `l4-box`, booted 3h12m before [`NOW`], with the default config.
pub fn state() -> AppState {
    state_with(Config::default())
}

pub fn state_with(config: Config) -> AppState {
    let host = HostInfo { hostname: "l4-box".into(), boot_time_unix: NOW - (3 * 3600 + 12 * 60) };
    AppState::new(config, host, PathBuf::from("/home/me/rsm"), at(NOW))
}

const GB: u64 = 1_000_000_000;

/// A disk filled to `pct` percent of 100 GB, its level from the default thresholds.
pub fn disk(mount: &str, pct: f64, roles: &[&str]) -> DiskInfo {
    let t = Thresholds { warn_pct: 80.0, critical_pct: 90.0, full_pct: 100.0 };
    let total = 100 * GB;
    let used = (total as f64 * pct / 100.0) as u64;
    DiskInfo {
        mount: mount.into(),
        device: "/dev/sda1".into(),
        fs_type: "ext4".into(),
        total_bytes: total,
        used_bytes: used,
        available_bytes: total - used,
        fill_pct: pct,
        level: t.level(pct),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

pub fn disks(list: Vec<DiskInfo>) -> Msg {
    Msg::Disk(DiskSample { disks: list, errors: vec![] })
}

/// The usual VM: `/` with the workspace, a separate data disk.
pub fn typical_disks() -> Msg {
    disks(vec![disk("/", 71.0, &["workspace", "checkpoints", "root"]), disk("/data", 40.0, &["data"])])
}

pub fn key(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

pub fn code(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

/// Folds a message as the console's loop does: `update`, then the sizes of the frame it
/// would draw (`ui::viewport`) for the keys that move by a page.
pub fn fold(state: &mut AppState, msg: Msg) -> Vec<opsconsole::app::Effect> {
    let effects = opsconsole::app::update(state, msg);
    state.viewport = opsconsole::ui::viewport(state);
    effects
}

/// Renders the whole screen at `w` x `h` through the test backend.
pub fn render(state: &AppState, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    terminal.draw(|f| opsconsole::ui::render(state, &mut f.into())).expect("draw");
    terminal
}

/// The screen as plain text lines.
pub fn screen_text(state: &AppState, w: u16, h: u16) -> String {
    let t = render(state, w, h);
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        for x in 0..w {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}
