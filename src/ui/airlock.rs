//! The airlock screens: bundle (`b`: progress, the refusal list, or the bundle built),
//! import (`i`: progress and the journal entry) and resume (`r`: each level's candidates,
//! the winner and why, and starting the training command).

use super::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use crate::airlock::bundle::{Outcome, ProblemKind, Upload};
use crate::airlock::launch::Refused;
use crate::airlock::resume::Status;
use crate::app::airlock::JobView;
use crate::app::{Action, AppState};
use crate::util;

fn key(state: &AppState, a: Action, fallback: &str) -> String {
    state.keymap.first_key(a).unwrap_or_else(|| fallback.into())
}

fn red() -> Style {
    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
}

fn green() -> Style {
    Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)
}

fn yellow() -> Style {
    Style::new().fg(Color::Yellow)
}

fn cyan() -> Style {
    Style::new().fg(Color::Cyan)
}

fn text(s: &str, width: usize, style: Style) -> Line<'static> {
    Line::styled(util::ellipsize(s, width), style)
}

/// `s` cut into lines of at most `width` at spaces (a word longer than a line is cut),
/// the lines after the first indented by `indent`.
fn wrapped(s: &str, width: usize, indent: usize, style: Style) -> Vec<Line<'static>> {
    let width = width.max(indent + 8);
    super::wrap_words(s.split(' '), width, width - indent)
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let l = if i == 0 {
                util::ellipsize(&l, width)
            } else {
                format!("{}{}", " ".repeat(indent), util::ellipsize(&l, width - indent))
            };
            Line::styled(l, style)
        })
        .collect()
}

/// A path cut from its start (`…/models/lane_attention.py`): the file name matters most.
fn tail(path: &str, max: usize) -> String {
    let n = path.chars().count();
    if n <= max || max < 2 {
        return path.to_string();
    }
    let keep: String = path.chars().skip(n - (max - 1)).collect();
    format!("…{keep}")
}

/// The frame of a screen: a cleared, bordered area; returns (list area, footer area).
fn frame_of(frame: &mut Frame, area: Rect, title: &str, foot_rows: u16) -> (Rect, Rect) {
    let block = Block::bordered().title(format!(" {title} ")).border_style(cyan());
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let [list, foot] = Layout::vertical([Constraint::Min(1), Constraint::Length(foot_rows)]).areas(inner);
    (list, foot)
}

/// "⟳ step" and a bar of the bytes, while a job runs.
fn running_lines<T>(v: &JobView<T>, width: usize) -> Vec<Line<'static>> {
    let mut out = vec![text(&format!("⟳ {}", crate::util::printable(&v.step)), width, yellow())];
    if v.total > 0 {
        let pct = v.done as f64 * 100.0 / v.total as f64;
        let bar_w = (width / 3).clamp(10, 40);
        out.push(text(
            &format!("  {} {pct:.0}% {} of {}", util::bar(pct, bar_w), util::bytes(v.done), util::bytes(v.total)),
            width,
            Style::new(),
        ));
    }
    out
}

/// Lines `scroll..` of `lines` that fit `rows`, with a "more" mark when cut.
fn window(mut lines: Vec<Line<'static>>, scroll: usize, rows: usize, more: &str) -> Vec<Line<'static>> {
    let scroll = scroll.min(lines.len().saturating_sub(rows.max(1)));
    lines.drain(..scroll.min(lines.len()));
    if lines.len() > rows && rows > 0 {
        lines.truncate(rows);
        if let Some(last) = lines.last_mut() {
            *last = Line::styled(more.to_string(), super::dim());
        }
    }
    lines
}

/// The bundle screen.
pub fn render_bundle(state: &AppState, frame: &mut Frame, area: Rect) {
    let v = &state.airlock.bundle;
    let (list, foot) = frame_of(frame, area, "Bundle", 1);
    let width = list.width as usize;
    let mut head: Vec<Line> = Vec::new();
    let mut body: Vec<Line> = Vec::new();
    let mut fix: Option<Line> = None;
    match (&v.result, v.running) {
        (_, true) | (None, false) => head.extend(running_lines(v, width)),
        (Some(Err(e)), false) => head.push(text(&format!("✗ bundle failed: {e}"), width, red())),
        (Some(Ok(o)), false) => match o.as_ref() {
            Outcome::Refused(r) => {
                head.push(text(&format!("✗ {}", r.headline()), width, red()));
                let mut what = Vec::new();
                if let Some(e) = &r.experiment {
                    what.push(format!("experiment {e}"));
                }
                if let Some(c) = &r.commit {
                    what.push(format!("commit {}", &c[..c.len().min(12)]));
                }
                if !what.is_empty() {
                    head.push(text(&what.join(" · "), width, super::dim()));
                }
                let narrow = width < 100;
                let why_of = |p: &crate::airlock::bundle::Problem| match (p.kind, narrow) {
                    (ProblemKind::Uncommitted(c), true) => c.short().to_string(),
                    _ => p.why.clone(),
                };
                let why_w = r.problems.iter().map(|p| why_of(p).chars().count()).max().unwrap_or(0).min(width / 2);
                let longest =
                    r.problems.iter().filter_map(|p| p.path.as_ref()).map(|p| p.chars().count()).max().unwrap_or(0);
                let path_w = longest.min(width.saturating_sub(why_w + 3)).max(12);
                for p in &r.problems {
                    match &p.path {
                        Some(path) => body.push(Line::from(vec![
                            Span::styled("✗ ", red()),
                            Span::raw(format!("{:<path_w$} ", tail(&util::printable(path), path_w))),
                            Span::styled(util::ellipsize(&why_of(p), width.saturating_sub(path_w + 3)), yellow()),
                        ])),
                        None if r.problems.len() > 1 => body.push(text(&format!("✗ {}", p.why), width, yellow())),
                        None => {}
                    }
                }
                let again = key(state, Action::Refresh, "^r");
                let words = match r.problems.first().map(|p| p.kind) {
                    Some(ProblemKind::Uncommitted(_)) => {
                        format!("fix: commit (git add … && git commit) or stash them, then {again} to bundle again")
                    }
                    Some(ProblemKind::Secret(_)) => format!(
                        "fix: take each out of the commit (git rm --cached FILE; add it to .gitignore), commit, then {again}"
                    ),
                    Some(ProblemKind::Missing) => format!("fix: commit the missing files, then {again}"),
                    Some(ProblemKind::NotAFile) => format!("fix: commit the files themselves, then {again}"),
                    _ => format!("then {again} "),
                };
                fix = Some(text(&words, width, cyan()));
            }
            Outcome::Built(b) => {
                let name = b.path.rsplit('/').next().unwrap_or(&b.path);
                head.push(text(
                    &format!("✓ {name} · {} files · {}", b.manifest.files.len(), util::bytes(b.size)),
                    width,
                    green(),
                ));
                let branch =
                    b.manifest.branch.as_deref().map(|br| format!(" ({br})")).unwrap_or_else(|| " (detached)".into());
                head.push(text(
                    &format!(
                        "commit {}{branch} · built {}",
                        &b.manifest.commit[..b.manifest.commit.len().min(12)],
                        b.created
                    ),
                    width,
                    super::dim(),
                ));
                head.push(text(&format!("sha256 {}", b.sha256), width, super::dim()));
                for w in &b.warnings {
                    head.extend(wrapped(&format!("! {w}"), width, 2, yellow()));
                }
                match &b.upload {
                    Upload::Queued { remote, own: true, .. } => head.extend(wrapped(
                        &format!("queued on L2 ({remote}): this console's sync engine sends it now, see Uploads"),
                        width,
                        2,
                        Style::new(),
                    )),
                    Upload::Queued { remote, engine: Some(pid), .. } => head.extend(wrapped(
                        &format!("queued on L2 ({remote}): the sync daemon (pid {pid}) sends it now, see Uploads"),
                        width,
                        2,
                        Style::new(),
                    )),
                    Upload::Queued { remote, engine: None, .. } => head.extend(wrapped(
                        &format!("queued on L2 ({remote}); no sync engine runs: `opsconsole sync --once` sends it"),
                        width,
                        2,
                        yellow(),
                    )),
                    Upload::NotQueued { why } => {
                        head.extend(wrapped(&format!("NOT queued for upload: {why}"), width, 2, red()))
                    }
                    Upload::NotRequested => head.push(text("not queued for upload (--no-upload)", width, super::dim())),
                }
                body.push(text(&format!("{} holds MANIFEST.json and:", b.path), width, super::dim()));
                for f in &b.manifest.files {
                    body.push(text(
                        &format!("  {:>9}  {}", util::bytes(f.size), util::printable(&f.path)),
                        width,
                        Style::new(),
                    ));
                }
            }
        },
    }
    let rows = list.height as usize;
    let body_rows = rows.saturating_sub(head.len() + 1);
    let mut lines = head;
    lines.push(Line::raw(""));
    lines.extend(window(body, v.scroll, body_rows, "↓ more"));
    frame.render_widget(Paragraph::new(lines), list);
    let foot_lines = vec![fix.unwrap_or_else(|| Line::raw(""))];
    frame.render_widget(Paragraph::new(foot_lines), foot);
}

/// The import screen.
pub fn render_import(state: &AppState, frame: &mut Frame, area: Rect) {
    let v = &state.airlock.import;
    let (list, foot) = frame_of(frame, area, "Import", 1);
    let width = list.width as usize;
    let mut head: Vec<Line> = Vec::new();
    let mut body: Vec<Line> = Vec::new();
    let mut fix: Option<Line> = None;
    match (&v.result, v.running) {
        (_, true) | (None, false) => head.extend(running_lines(v, width)),
        (Some(Err(e)), false) => {
            head.push(text(&format!("✗ import failed: {e}"), width, red()));
            fix = Some(text(
                "the cluster writes its log to L2 ([import] pattern); `opsconsole import --from KEY` names one",
                width,
                cyan(),
            ));
        }
        (Some(Ok(i)), false) => {
            if i.appended {
                head.push(text(&format!("✓ imported: one entry appended to {}", i.journal), width, green()));
            } else {
                head.push(text(&format!("= already in {}: nothing appended", i.journal), width, yellow()));
            }
            head.push(text(
                &format!("from {} ({}) {} · {}", i.level, i.remote, util::printable(&i.source), util::bytes(i.size)),
                width,
                super::dim(),
            ));
            head.push(text(&format!("saved as {}", i.saved_as), width, super::dim()));
            if let Some(k) = &i.kept_previous {
                head.push(text(&format!("the earlier import was kept as {k}"), width, super::dim()));
            }
            for l in i.entry.lines().filter(|l| !l.starts_with("<!-- opsconsole-import")) {
                let style = if l.starts_with("## ") {
                    Style::new().add_modifier(Modifier::BOLD)
                } else if l.starts_with("- **Errors**") && !l.contains("none") {
                    red()
                } else {
                    Style::new()
                };
                body.extend(wrapped(&l.replace("**", ""), width, 2, style));
            }
        }
    }
    let rows = list.height as usize;
    let body_rows = rows.saturating_sub(head.len() + 1);
    let mut lines = head;
    lines.push(Line::raw(""));
    lines.extend(window(body, v.scroll, body_rows, "↓ more"));
    frame.render_widget(Paragraph::new(lines), list);
    frame.render_widget(Paragraph::new(vec![fix.unwrap_or_else(|| Line::raw(""))]), foot);
}

/// The resume screen.
pub fn render_resume(state: &AppState, frame: &mut Frame, area: Rect) {
    let r = &state.airlock.resume;
    let v = &r.job;
    let title = match &v.result {
        Some(Ok(rep)) => format!("Resume {}", rep.experiment),
        _ => "Resume".into(),
    };
    let (list, foot) = frame_of(frame, area, &title, 3);
    let width = list.width as usize;
    let mut head: Vec<Line> = Vec::new();
    let mut body: Vec<Line> = Vec::new();
    match (&v.result, v.running) {
        (_, true) | (None, false) => head.extend(running_lines(v, width)),
        (Some(Err(e)), false) => head.push(text(&format!("✗ resume failed: {e}"), width, red())),
        (Some(Ok(rep)), false) => {
            match &rep.winner {
                Some(w) => {
                    let step = w.step.map(|s| format!("step {s}")).unwrap_or_else(|| "latest".into());
                    head.push(text(&format!("✓ {} · {} · {step}", w.shown, w.level), width, green()));
                    head.extend(wrapped(&format!("why: {}", w.why), width, 5, Style::new()));
                    for k in &w.kept_aside {
                        head.push(text(&format!("kept the damaged copy aside as {k}"), width, yellow()));
                    }
                }
                None => head.push(text(&format!("✗ {}", rep.headline()), width, red())),
            }
            for n in &rep.notes {
                head.extend(wrapped(&format!("note: {n}"), width, 6, super::dim()));
            }
            let wide = width >= 120;
            for l in &rep.levels {
                body.push(Line::from(vec![
                    Span::styled(format!("{} ", l.level), Style::new().add_modifier(Modifier::BOLD)),
                    Span::styled(util::ellipsize(&l.place, width.saturating_sub(4)), super::dim()),
                ]));
                if let Some(e) = &l.error {
                    body.push(text(&format!("   {e}"), width, super::dim()));
                } else if l.candidates.is_empty() {
                    body.push(text("   no checkpoint of this experiment", width, super::dim()));
                }
                for c in &l.candidates {
                    let (mark, mstyle, state_text) = match &c.status {
                        Status::Verified { how } => ("✓", green(), how.clone()),
                        Status::Failed { why } => ("✗", red(), why.clone()),
                        Status::Skipped { why } => ("-", super::dim(), why.clone()),
                        Status::NotChecked if wide => (" ", super::dim(), "not checked: a newer one won".into()),
                        Status::NotChecked => (" ", super::dim(), "not checked".into()),
                        Status::Listed => (" ", super::dim(), "listed".into()),
                    };
                    let key_w = if wide { 56 } else { c.key.chars().count().min(width.saturating_sub(24)) };
                    let left = format!(
                        "{:<10} {:>8}  {:<key_w$} ",
                        c.step_text(),
                        util::bytes(c.bytes),
                        tail(&util::printable(&c.key), key_w)
                    );
                    let used = left.chars().count() + 3;
                    let state_style = if mark == "✗" { yellow() } else { super::dim() };
                    if used + state_text.chars().count() <= width {
                        body.push(Line::from(vec![
                            Span::styled(format!(" {mark} "), mstyle),
                            Span::raw(left),
                            Span::styled(state_text, state_style),
                        ]));
                    } else {
                        body.push(Line::from(vec![Span::styled(format!(" {mark} "), mstyle), Span::raw(left)]));
                        body.push(text(&format!("     {state_text}"), width, state_style));
                    }
                }
            }
        }
    }
    let rows = list.height as usize;
    let body_rows = rows.saturating_sub(head.len() + 1);
    let mut lines = head;
    lines.push(Line::raw(""));
    lines.extend(window(body, v.scroll, body_rows, "↓ more"));
    frame.render_widget(Paragraph::new(lines), list);

    // The command, what stands in its way, the prompt or answer, the keys.
    let mut foot_lines = Vec::new();
    let command = state.config.resume.command.trim();
    let winner = crate::app::airlock::offered(state);
    let (_, log) = winner
        .as_ref()
        .map(|(e, _)| crate::airlock::launch::log_path(&state.workspace_root, &state.config, e))
        .unwrap_or_default();
    if command.is_empty() && winner.is_some() {
        foot_lines.push(text(
            "no [resume] command set: use the path above, or set one (docs/airlock.md) to start training here",
            width,
            yellow(),
        ));
    } else if command.is_empty() {
        foot_lines.push(Line::raw(""));
    } else {
        foot_lines.push(text(&format!("command: {command}"), width, super::dim()));
    }
    if log.is_empty() {
        foot_lines.push(Line::raw(""));
    } else {
        foot_lines.push(text(
            &format!("output → {log} (appended) · own session, survives logout"),
            width,
            super::dim(),
        ));
    }
    let gpu_busy: Vec<String> = state
        .gpu
        .sample
        .as_ref()
        .map(|s| s.processes().map(|p| format!("pid {} {} on GPU {}", p.pid, p.short_name(), p.gpu_index)).collect())
        .unwrap_or_default();
    let answer = if r.confirming {
        let cp = winner.as_ref().map(|(_, p)| p.to_string_lossy().into_owned()).unwrap_or_default();
        Line::styled(
            util::ellipsize(
                &format!(
                    "Start it now from {cp}, detached (it outlives this console)? {} yes · {} no",
                    key(state, Action::Confirm, "y"),
                    key(state, Action::Deny, "n")
                ),
                width,
            ),
            Style::new().fg(Color::White).bg(Color::Blue).add_modifier(Modifier::BOLD),
        )
    } else if r.launching {
        text("starting…", width, yellow())
    } else if let Some(res) = &r.launch {
        match res {
            Ok(l) => text(
                &format!("✓ started pid {} in its own session · output → {} (the Log panel follows it)", l.pid, l.log),
                width,
                green(),
            ),
            Err(Refused::NoCommand) => text(&Refused::NoCommand.to_string(), width, yellow()),
            Err(e) => text(&format!("✗ {e}"), width, red()),
        }
    } else if !command.is_empty() && !gpu_busy.is_empty() {
        text(
            &format!(
                "a training process runs ({}): starting is refused; {} on the GPU panel stops it",
                gpu_busy.join(", "),
                key(state, Action::KillProcess, "K")
            ),
            width,
            red(),
        )
    } else if !command.is_empty() && winner.is_some() {
        text(
            &format!("{} start training from this checkpoint (asks first)", key(state, Action::Confirm, "enter")),
            width,
            cyan(),
        )
    } else {
        Line::raw("")
    };
    foot_lines.push(answer);
    frame.render_widget(Paragraph::new(foot_lines), foot);
}
