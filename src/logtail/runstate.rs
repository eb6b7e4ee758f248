//! Is the training run still going? The run is the process holding the log open for
//! writing (the trainer or the `tee` beside it, from [`crate::procfs`]): running while
//! one does, stopped once none does. A process we did not start leaves no exit status
//! to read, so the status is taken from the log's last lines when the run's own tools
//! printed it (the shell's `Killed`, torchrun's `exitcode: 1`, "exit code 1"), and is
//! otherwise said to be unknown. Once the run has stopped, its rate and ETA are history,
//! not a forecast: [`RunStatus::stopped`] tells the screens and `status` to leave them out.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::MetricsSnapshot;

/// How the run's process ended, as far as the log tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitHow {
    /// Exit code (0 = success).
    Code(i32),
    /// Killed by this signal (the shell's `Killed` is SIGKILL, 9).
    Signal(i32),
}

impl ExitHow {
    pub fn text(&self) -> String {
        match self {
            ExitHow::Code(c) => format!("exit status {c}"),
            ExitHow::Signal(9) => "killed (SIGKILL)".into(),
            ExitHow::Signal(s) => format!("killed by signal {s}"),
        }
    }
}

/// Running, stopped, or unknown (no `/proc`, or not looked yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// No process holds the log open for writing.
    Exited,
    #[default]
    Unknown,
}

/// `status --json` → `log.run`, and the console's run-state line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunStatus {
    pub state: RunState,
    /// The processes writing the log (while running).
    pub pids: Vec<u32>,
    /// How the run ended, when the log says (`null`: not known).
    pub exit: Option<ExitHow>,
    /// Seconds since the log's last line (its last write).
    pub seconds_since_last_line: Option<u64>,
}

impl RunStatus {
    /// From the writers of the log (`None`: `/proc` could not tell), the log's last
    /// lines (oldest first) and when its last line came.
    pub fn new<'a>(
        writers: Option<&[u32]>,
        last_lines: impl DoubleEndedIterator<Item = &'a str>,
        last_line_at: Option<SystemTime>,
        now: SystemTime,
    ) -> Self {
        let (state, pids) = match writers {
            Some([]) => (RunState::Exited, Vec::new()),
            Some(w) => (RunState::Running, w.to_vec()),
            None => (RunState::Unknown, Vec::new()),
        };
        let exit = if state == RunState::Exited { exit_from_lines(last_lines) } else { None };
        let seconds_since_last_line = last_line_at.map(|t| now.duration_since(t).unwrap_or(Duration::ZERO).as_secs());
        Self { state, pids, exit, seconds_since_last_line }
    }

    pub fn exited(&self) -> bool {
        self.state == RunState::Exited
    }

    /// The metrics to show: without rate and ETA once the run has stopped.
    pub fn shown_metrics(&self, m: &MetricsSnapshot) -> MetricsSnapshot {
        let mut m = *m;
        if self.exited() {
            m.tokens_per_second = None;
            m.iterations_per_second = None;
            m.eta_seconds = None;
        }
        m
    }

    /// One line: `running · pid 4242 · last line 3s ago`, `exited · killed (SIGKILL) ·
    /// last line 4m10s ago`, `exited · exit status unknown · …` ("exited": no process
    /// holds the log open for writing any more).
    pub fn text(&self) -> String {
        let mut out = match self.state {
            RunState::Running => {
                let pids: Vec<String> = self.pids.iter().map(u32::to_string).collect();
                format!("running · pid {}", pids.join(","))
            }
            RunState::Exited => {
                format!("exited · {}", self.exit.map_or_else(|| "exit status unknown".to_string(), |e| e.text()))
            }
            RunState::Unknown => "run state unknown (cannot read /proc)".to_string(),
        };
        if let Some(s) = self.seconds_since_last_line {
            out.push_str(&format!(" · last line {} ago", crate::util::duration(Duration::from_secs(s))));
        }
        out
    }
}

/// How the run ended, from the last lines of its log (newest looked at first; the
/// last 20 lines at most): the shell's `Killed` line, torchrun's `exitcode: N` (a
/// negative one is a signal), "exit code N", "exit status N", "exited with code N".
pub fn exit_from_lines<'a>(lines: impl DoubleEndedIterator<Item = &'a str>) -> Option<ExitHow> {
    for line in lines.rev().take(20) {
        let t = line.trim();
        if t == "Killed" || shell_killed(t) {
            return Some(ExitHow::Signal(9));
        }
        let lower = t.to_ascii_lowercase();
        for key in ["exitcode", "exit code", "exit status", "exited with code", "exited with status"] {
            if let Some(i) = lower.find(key) {
                let rest = lower[i + key.len()..].trim_start_matches([' ', ':', '=', '\t']);
                let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '-')).unwrap_or(rest.len());
                if let Ok(n) = rest[..end].parse::<i32>() {
                    return Some(if n < 0 { ExitHow::Signal(-n) } else { ExitHow::Code(n) });
                }
            }
        }
    }
    None
}

/// The shell's job message for a SIGKILLed child: `./run.sh: line 3: 4121 Killed   python
/// train.py` (a process id, then `Killed`). A dataloader worker's "killed by signal:
/// Killed" is not the run ending.
fn shell_killed(t: &str) -> bool {
    let words: Vec<&str> = t.split_whitespace().collect();
    words.windows(2).any(|w| w[1] == "Killed" && !w[0].is_empty() && w[0].bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn exit_is_read_from_the_tools_that_print_it() {
        assert_eq!(exit_from_lines(["step 3", "Killed"].into_iter()), Some(ExitHow::Signal(9)));
        assert_eq!(
            exit_from_lines(["./train.sh: line 4:  4242 Killed     python train.py"].into_iter()),
            Some(ExitHow::Signal(9))
        );
        assert_eq!(exit_from_lines(["DataLoader worker (pid 77) is killed by signal: Killed."].into_iter()), None);
        assert_eq!(
            exit_from_lines(["  exitcode  : 1 (pid: 4242)", "  error_file: <N/A>"].into_iter()),
            Some(ExitHow::Code(1))
        );
        assert_eq!(exit_from_lines(["exitcode: -9 (pid: 1)"].into_iter()), Some(ExitHow::Signal(9)));
        assert_eq!(exit_from_lines(["training done, exit code 0"].into_iter()), Some(ExitHow::Code(0)));
        // The newest line decides.
        assert_eq!(exit_from_lines(["exit status 3", "Killed"].into_iter()), Some(ExitHow::Signal(9)));
        // Words about exits without a number, and a step line, tell nothing.
        assert_eq!(exit_from_lines(["exit code unknown", "{'loss': 1.0}"].into_iter()), None);
        // Only the last 20 lines count.
        let mut lines = vec!["Killed"];
        lines.extend(std::iter::repeat_n("step", 20));
        assert_eq!(exit_from_lines(lines.into_iter()), None);
    }

    #[test]
    fn state_text_and_metrics_follow_the_writers() {
        let m = MetricsSnapshot {
            step: Some(1180),
            eta_seconds: Some(3780.0),
            iterations_per_second: Some(1.02),
            tokens_per_second: Some(2345.0),
            ..Default::default()
        };
        let running = RunStatus::new(Some(&[4242]), ["Killed"].into_iter(), Some(at(100)), at(103));
        assert_eq!(running.state, RunState::Running);
        assert_eq!(running.exit, None, "a running run has no exit, whatever the log says");
        assert_eq!(running.text(), "running · pid 4242 · last line 3s ago");
        assert_eq!(running.shown_metrics(&m), m);

        let stopped = RunStatus::new(Some(&[]), ["step 1180", "Killed"].into_iter(), Some(at(100)), at(350));
        assert!(stopped.exited());
        assert_eq!(stopped.text(), "exited · killed (SIGKILL) · last line 4m10s ago");
        let shown = stopped.shown_metrics(&m);
        assert_eq!((shown.eta_seconds, shown.iterations_per_second, shown.tokens_per_second), (None, None, None));
        assert_eq!(shown.step, Some(1180), "the last step stays");

        let quiet = RunStatus::new(Some(&[]), ["step 5"].into_iter(), None, at(1));
        assert_eq!(quiet.text(), "exited · exit status unknown");
        let unknown = RunStatus::new(None, std::iter::empty(), Some(at(1)), at(1));
        assert_eq!(unknown.state, RunState::Unknown);
        assert_eq!(unknown.shown_metrics(&m), m, "unknown keeps the values");
    }
}
