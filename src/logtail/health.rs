//! Health of a training log: errors classified and counted, and stall detection.

use std::time::{Duration, SystemTime};

use std::sync::LazyLock;

use memchr::memmem::{self, Finder};
use serde::Serialize;

/// What kind of error a log line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A Python traceback (the frames and the exception line).
    Traceback,
    /// `CUDA out of memory` / `OutOfMemoryError`.
    CudaOom,
    /// A loss that is NaN or infinite.
    NanLoss,
    /// The process was killed (`Killed`, often the kernel's OOM killer).
    Killed,
}

impl ErrorKind {
    /// Short label for the screen.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Traceback => "traceback",
            ErrorKind::CudaOom => "CUDA OOM",
            ErrorKind::NanLoss => "NaN loss",
            ErrorKind::Killed => "killed",
        }
    }

    /// A one-line hint for the user, where there is one.
    pub fn hint(self) -> Option<&'static str> {
        match self {
            ErrorKind::CudaOom => Some("the job needs more VRAM than this tier has — see tier fit"),
            ErrorKind::NanLoss => Some("loss diverged: lower the learning rate or check the data"),
            ErrorKind::Killed => Some(
                "killed by the system, most often the host's out-of-memory killer: host RAM ran out (dataloader workers, data held in memory) — see host RAM in the GPU panel",
            ),
            ErrorKind::Traceback => None,
        }
    }
}

/// The most recent error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogError {
    pub kind: ErrorKind,
    /// The line that says what happened (a traceback's exception line).
    pub message: String,
    pub hint: Option<String>,
}

/// Error counts by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    pub traceback: u64,
    pub cuda_oom: u64,
    pub nan_loss: u64,
    pub killed: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.traceback + self.cuda_oom + self.nan_loss + self.killed
    }

    fn slot(&mut self, kind: ErrorKind) -> &mut u64 {
        match kind {
            ErrorKind::Traceback => &mut self.traceback,
            ErrorKind::CudaOom => &mut self.cuda_oom,
            ErrorKind::NanLoss => &mut self.nan_loss,
            ErrorKind::Killed => &mut self.killed,
        }
    }
}

/// Errors seen so far and when the last line came.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub counts: ErrorCounts,
    pub last_error: Option<LogError>,
    /// When the last complete line was read (the collector's clock).
    pub last_line_at: Option<SystemTime>,
    in_traceback: bool,
}

const TRACEBACK: &[u8] = b"Traceback (most recent call last)";

impl Health {
    pub fn error_count(&self) -> u64 {
        self.counts.total()
    }

    /// Classify one line (bytes of its display text) and count what it starts.
    /// `nan_loss` says the metric parser found a NaN/inf loss on it.
    pub fn classify(&mut self, line: &[u8], nan_loss: bool) -> Option<ErrorKind> {
        if self.in_traceback {
            let indented = matches!(line.first(), Some(b' ' | b'\t') | None);
            if indented || line.starts_with(b"^") || line.starts_with(b"~") {
                return Some(ErrorKind::Traceback);
            }
            // The exception line ends the traceback and names it.
            self.in_traceback = false;
            let kind = if is_oom(line) {
                ErrorKind::CudaOom
            } else if is_worker_killed(line) {
                ErrorKind::Killed
            } else {
                ErrorKind::Traceback
            };
            if kind != ErrorKind::Traceback {
                self.counts.traceback = self.counts.traceback.saturating_sub(1);
                *self.counts.slot(kind) += 1;
            }
            self.last_error = Some(error(kind, line));
            return Some(kind);
        }
        if line.starts_with(TRACEBACK) {
            self.in_traceback = true;
            self.record(ErrorKind::Traceback, line);
            return Some(ErrorKind::Traceback);
        }
        if nan_loss {
            self.record(ErrorKind::NanLoss, line);
            return Some(ErrorKind::NanLoss);
        }
        if is_oom(line) {
            self.record(ErrorKind::CudaOom, line);
            return Some(ErrorKind::CudaOom);
        }
        if is_killed(line) {
            self.record(ErrorKind::Killed, line);
            return Some(ErrorKind::Killed);
        }
        None
    }

    fn record(&mut self, kind: ErrorKind, line: &[u8]) {
        *self.counts.slot(kind) += 1;
        self.last_error = Some(error(kind, line));
    }

    /// Stalled: a training process is alive and no line came for `stall_after`.
    /// Without a line yet, `since` (when following began) counts as the last line.
    /// (A log opened already quiet has its modification time as the last line.)
    pub fn stalled(&self, now: SystemTime, since: SystemTime, training_alive: bool, stall_after: Duration) -> bool {
        if !training_alive {
            return false;
        }
        let last = self.last_line_at.unwrap_or(since);
        now.duration_since(last).is_ok_and(|quiet| quiet >= stall_after)
    }

    /// For the kept state of a log read (`scancache`): every field.
    pub(super) fn save(&self, w: &mut super::scancache::Enc) {
        let c = &self.counts;
        for v in [c.traceback, c.cuda_oom, c.nan_loss, c.killed] {
            w.u64(v);
        }
        match &self.last_error {
            None => w.u8(0),
            Some(e) => {
                w.u8(1);
                w.u8(match e.kind {
                    ErrorKind::Traceback => 0,
                    ErrorKind::CudaOom => 1,
                    ErrorKind::NanLoss => 2,
                    ErrorKind::Killed => 3,
                });
                w.bytes(e.message.as_bytes());
                match &e.hint {
                    None => w.u8(0),
                    Some(h) => {
                        w.u8(1);
                        w.bytes(h.as_bytes());
                    }
                }
            }
        }
        let at = self.last_line_at.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        w.opt_u64(at.map(|d| d.as_secs()));
        w.u32(at.map_or(0, |d| d.subsec_nanos()));
        w.u8(u8::from(self.in_traceback));
    }

    /// What [`Health::save`] wrote (`None` when it does not hold one).
    pub(super) fn load(r: &mut super::scancache::Dec<'_>) -> Option<Self> {
        let counts = ErrorCounts { traceback: r.u64()?, cuda_oom: r.u64()?, nan_loss: r.u64()?, killed: r.u64()? };
        let text = |r: &mut super::scancache::Dec<'_>| String::from_utf8(r.bytes()?.to_vec()).ok();
        let last_error = match r.u8()? {
            0 => None,
            1 => {
                let kind = match r.u8()? {
                    0 => ErrorKind::Traceback,
                    1 => ErrorKind::CudaOom,
                    2 => ErrorKind::NanLoss,
                    3 => ErrorKind::Killed,
                    _ => return None,
                };
                let message = text(r)?;
                let hint = match r.u8()? {
                    0 => None,
                    1 => Some(text(r)?),
                    _ => return None,
                };
                Some(LogError { kind, message, hint })
            }
            _ => return None,
        };
        let secs = r.opt_u64()?;
        let nanos = r.u32()?;
        let last_line_at = match secs {
            Some(s) => Some(std::time::UNIX_EPOCH.checked_add(Duration::new(s, nanos.min(999_999_999)))?),
            None => None,
        };
        let in_traceback = match r.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        Some(Health { counts, last_error, last_line_at, in_traceback })
    }

    /// Combine the history read in the background (`before`) with what was followed
    /// live since (`self`).
    pub fn merged_after(&self, before: &Health) -> Health {
        let c = |f: fn(&ErrorCounts) -> u64| f(&self.counts) + f(&before.counts);
        Health {
            counts: ErrorCounts {
                traceback: c(|x| x.traceback),
                cuda_oom: c(|x| x.cuda_oom),
                nan_loss: c(|x| x.nan_loss),
                killed: c(|x| x.killed),
            },
            last_error: self.last_error.clone().or_else(|| before.last_error.clone()),
            last_line_at: self.last_line_at.or(before.last_line_at),
            in_traceback: self.in_traceback,
        }
    }
}

fn error(kind: ErrorKind, line: &[u8]) -> LogError {
    let text = String::from_utf8_lossy(line);
    let trimmed = text.trim();
    let mut message: String = trimmed.chars().take(300).collect();
    if message.len() < trimmed.len() {
        // Cut: say so (the whole line is in the log, and in the console's detail view).
        message.push('…');
    }
    if message.is_empty() {
        message = kind.label().to_string();
    }
    LogError { kind, message, hint: kind.hint().map(str::to_string) }
}

static OUT_OF_MEMORY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"out of memory"));
static OOM_ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"OutOfMemoryError"));
static KILLED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"Killed"));

fn is_oom(line: &[u8]) -> bool {
    // Cheap first: every form has an upper-case `C` (CUDA) or `O` (OutOfMemoryError).
    if memchr::memchr2(b'C', b'O', line).is_none() {
        return false;
    }
    OUT_OF_MEMORY.find(line).is_some_and(|_| memmem::find(line, b"CUDA").is_some()) || OOM_ERROR.find(line).is_some()
}

/// PyTorch's `RuntimeError: DataLoader worker (pid 4242) is killed by signal: Killed.`:
/// a worker the kernel's OOM killer took (host RAM, not VRAM).
fn is_worker_killed(line: &[u8]) -> bool {
    memmem::find(line, b"killed by signal: Killed").is_some()
}

fn is_killed(line: &[u8]) -> bool {
    // "Killed" alone, the kernel's "Killed process 123 (python)", or the shell's
    // "./run.sh: line 3: 4121 Killed   python train.py".
    if line.trim_ascii() == b"Killed" {
        return true;
    }
    if memchr::memchr(b'K', line).is_none() {
        return false;
    }
    let Some(at) = KILLED.find(line) else {
        return false;
    };
    let after = &line[at + 6..];
    if after.starts_with(b" process") {
        return true;
    }
    let before = line[..at].trim_ascii_end();
    at > 0
        && line[at - 1].is_ascii_whitespace()
        && before.last().is_some_and(u8::is_ascii_digit)
        && after.first().is_none_or(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> (Health, Vec<Option<ErrorKind>>) {
        let mut h = Health::default();
        let kinds = lines.iter().map(|l| h.classify(l.as_bytes(), false)).collect();
        (h, kinds)
    }

    #[test]
    fn traceback_counted_once_with_exception_line() {
        let (h, kinds) = run(&[
            "step 5",
            "Traceback (most recent call last):",
            "  File \"train.py\", line 3, in <module>",
            "    main()",
            "ValueError: bad shape",
            "after",
        ]);
        assert_eq!(h.error_count(), 1);
        assert_eq!(h.counts.traceback, 1);
        assert_eq!(h.last_error.as_ref().map(|e| e.message.as_str()), Some("ValueError: bad shape"));
        assert_eq!(kinds[0], None);
        assert!(kinds[1..5].iter().all(|k| k.is_some()));
        assert_eq!(kinds[5], None);
    }

    #[test]
    fn cuda_oom_in_traceback_is_oom_with_hint() {
        let (h, kinds) = run(&[
            "Traceback (most recent call last):",
            "  File \"train.py\", line 9, in step",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        ]);
        assert_eq!(h.counts, ErrorCounts { cuda_oom: 1, ..Default::default() });
        assert_eq!(kinds[2], Some(ErrorKind::CudaOom));
        let e = h.last_error.expect("error");
        assert!(e.hint.expect("hint").contains("tier fit"));
    }

    #[test]
    fn a_dataloader_worker_killed_is_flagged_like_an_oom() {
        let (h, kinds) = run(&[
            "Traceback (most recent call last):",
            "  File \"train.py\", line 40, in <module>",
            "RuntimeError: DataLoader worker (pid 4242) is killed by signal: Killed. ",
        ]);
        assert_eq!(kinds[2], Some(ErrorKind::Killed));
        assert_eq!((h.counts.killed, h.counts.traceback, h.error_count()), (1, 0, 1));
        let e = h.last_error.expect("error");
        assert_eq!(e.kind, ErrorKind::Killed);
        assert!(e.hint.as_deref().is_some_and(|h| h.contains("host RAM ran out")), "{e:?}");
        // Another signal (shared memory too small: a bus error) stays a traceback.
        let (h, _) = run(&[
            "Traceback (most recent call last):",
            "RuntimeError: DataLoader worker (pid 1) is killed by signal: Bus error.",
        ]);
        assert_eq!((h.counts.killed, h.counts.traceback), (0, 1));
    }

    #[test]
    fn killed_forms() {
        for (line, want) in [
            ("Killed", true),
            ("./run.sh: line 3: 4121 Killed                  python train.py", true),
            ("[12345.6] Out of memory: Killed process 4121 (python)", true),
            ("Killed process 4121 (python) total-vm:1kB", true),
            ("Killedx", false),
            ("nothing was Killed here by anyone", false),
        ] {
            let (h, _) = run(&[line]);
            assert_eq!(h.counts.killed == 1, want, "{line}");
        }
    }

    #[test]
    fn stall_needs_a_live_process_and_quiet_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut h = Health::default();
        let after = Duration::from_secs(900);
        assert!(!h.stalled(t0 + Duration::from_secs(899), t0, true, after));
        assert!(h.stalled(t0 + Duration::from_secs(900), t0, true, after));
        assert!(!h.stalled(t0 + Duration::from_secs(5000), t0, false, after));
        h.last_line_at = Some(t0 + Duration::from_secs(800));
        assert!(!h.stalled(t0 + Duration::from_secs(1600), t0, true, after));
        assert!(h.stalled(t0 + Duration::from_secs(1700), t0, true, after));
    }

    #[test]
    fn merge_adds_counts_and_prefers_newer_error() {
        let (before, _) = run(&["Killed"]);
        let (after, _) = run(&["RuntimeError: CUDA out of memory."]);
        let m = after.merged_after(&before);
        assert_eq!(m.error_count(), 2);
        assert_eq!(m.last_error.map(|e| e.kind), Some(ErrorKind::CudaOom));
    }
}
