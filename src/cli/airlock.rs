//! `opsconsole bundle`, `import`, `resume` and `freeze`: the airlock's commands, printing
//! what the domain (`crate::airlock`) returns, as text or `--json`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use crate::airlock::{Progress, bundle, freeze, import, resume};
use crate::config::Config;

/// Progress printed on stderr for the CLI: each step on a line; bytes as an `indicatif`
/// bar on a terminal (its last state kept as a line), else as lines at most every half
/// second (and the last one), so a pipe or a log file is not flooded.
struct StderrProgress {
    last: Option<std::time::Instant>,
    quiet: bool,
    out: super::progress::StderrProgress,
}

/// The key of the one byte bar (steps run one at a time).
const BYTES: &str = "bytes";

impl StderrProgress {
    fn new(quiet: bool) -> Self {
        Self::with(quiet, super::progress::StderrProgress::stderr())
    }

    fn with(quiet: bool, out: super::progress::StderrProgress) -> Self {
        Self { last: None, quiet, out }
    }

    fn report(&mut self, p: Progress) {
        if self.quiet {
            return;
        }
        match p {
            Progress::Step(s) => {
                self.out.end(BYTES);
                self.out.line(&crate::util::printable(&s));
            }
            Progress::Bytes { done, total, what } => {
                let pct = done as f64 * 100.0 / total.max(1) as f64;
                let text = format!(
                    "  {pct:5.1}% {} of {} {}",
                    crate::util::bytes(done),
                    crate::util::bytes(total),
                    crate::util::printable(&what)
                );
                if self.out.drawing() && done < total {
                    self.out.bar(BYTES, done, total, Some(text.trim_start().to_string()));
                    return;
                }
                self.out.end(BYTES);
                let now = std::time::Instant::now();
                if done < total && self.last.is_some_and(|t| now.duration_since(t).as_millis() < 500) {
                    return;
                }
                self.last = Some(now);
                self.out.line(&text);
            }
        }
    }
}

/// `opsconsole bundle [EXPERIMENT] [--no-upload] [--json]`: 0 built, 1 refused or failed.
pub fn bundle(workspace: &Path, cfg: &Config, opts: &bundle::BundleOptions, json: bool) -> u8 {
    let mut out = StderrProgress::new(json);
    let result = bundle::build(workspace, cfg, opts, &mut |p| out.report(p), &AtomicBool::new(false));
    drop(out); // clears a bar left by a failure before the outcome is printed
    match result {
        Ok(outcome) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&outcome).unwrap_or_default());
            } else {
                print!("{}", bundle::to_text(&outcome));
            }
            u8::from(matches!(outcome, bundle::Outcome::Refused(_)))
        }
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({"outcome": "failed", "error": e}));
            }
            eprintln!("error: bundle failed: {e}");
            1
        }
    }
}

/// `opsconsole import [EXPERIMENT] [--from KEY] [--json]`: 0 imported (or already in the
/// journal), 1 failed.
pub fn import(workspace: &Path, cfg: &Config, opts: &import::ImportOptions, json: bool) -> u8 {
    let mut out = StderrProgress::new(json);
    let result = import::run(workspace, cfg, opts, &mut |p| out.report(p), &AtomicBool::new(false));
    drop(out); // clears a bar left by a failure before the outcome is printed
    match result {
        Ok(imp) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&imp).unwrap_or_default());
            } else {
                print!("{}", import::to_text(&imp));
            }
            0
        }
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({"error": e}));
            }
            eprintln!("error: {e}");
            1
        }
    }
}

/// `opsconsole resume [EXPERIMENT] [--print-path] [--json] [--run]`: 0 a checkpoint was
/// found (and, with `--run`, the command started), 1 none found or the run refused.
pub fn resume(workspace: &Path, cfg: &Config, opts: &resume::ResumeOptions, flags: resume::ResumeFlags) -> u8 {
    let mut out = StderrProgress::new(flags.json || flags.print_path);
    let planned = resume::plan(workspace, cfg, opts, &mut |p| out.report(p), &AtomicBool::new(false));
    drop(out); // clears a bar left by a failure before the outcome is printed
    let report = match planned {
        Ok(r) => r,
        Err(e) => {
            if flags.json {
                println!("{}", serde_json::json!({"error": e}));
            }
            eprintln!("error: {e}");
            return 1;
        }
    };
    let mut launch = None;
    let mut refused = None;
    if flags.run
        && let Some(w) = &report.winner
    {
        // A fresh look at the GPUs: a training process there means no second run.
        let gpu = crate::gpu::GpuCollector::new(&cfg.gpu).sample(SystemTime::now());
        let gpu = gpu.nvml.is_ok().then_some(gpu);
        match crate::airlock::launch::start(workspace, cfg, &report.experiment, Path::new(&w.path), gpu.as_ref()) {
            Ok((l, _child)) => launch = Some(l),
            Err(r) => refused = Some(r),
        }
    }
    if flags.json {
        let v = serde_json::json!({
            "report": report,
            "launch": launch,
            "refused": refused.as_ref().map(|r| serde_json::json!({"why": r.to_string(), "detail": r})),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if flags.print_path {
        match &report.winner {
            Some(w) => println!("{}", w.path),
            None => eprintln!("error: {}", report.headline()),
        }
    } else {
        print!("{}", resume::to_text(&report));
    }
    if !flags.json {
        if let Some(l) = &launch {
            eprintln!(
                "started `{}` (pid {}, its own session); output appended to {}",
                crate::util::printable(&l.command),
                l.pid,
                l.log
            );
        }
        if let Some(r) = &refused {
            eprintln!("error: {r}");
        }
    }
    u8::from(report.winner.is_none() || refused.is_some())
}

/// `opsconsole freeze [--json]`: 0 written, 1 failed.
pub fn freeze(workspace: &Path, cfg: &Config, json: bool) -> u8 {
    match freeze::run(workspace, cfg) {
        Ok(f) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&f).unwrap_or_default());
            } else {
                let what = if f.unchanged { "unchanged" } else { "wrote" };
                println!("{what} {}: {} packages from `{} -m pip freeze`", f.path, f.packages, f.python);
                if f.redacted > 0 {
                    println!(
                        "  took credentials out of {} requirement URL{}",
                        f.redacted,
                        if f.redacted == 1 { "" } else { "s" }
                    );
                }
            }
            0
        }
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({"error": e}));
            }
            eprintln!("error: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::progress::tests::{Plain, Screen};
    use indicatif::ProgressDrawTarget;

    fn feed(p: &mut StderrProgress) {
        p.report(Progress::Step("hashing".into()));
        p.report(Progress::Bytes { done: 0, total: 2000, what: "model.pt".into() });
        p.report(Progress::Bytes { done: 1000, total: 2000, what: "model.pt".into() });
        p.report(Progress::Bytes { done: 2000, total: 2000, what: "model.pt".into() });
        p.report(Progress::Step("writing the bundle".into()));
    }

    #[test]
    fn without_a_terminal_bytes_are_throttled_lines_and_nothing_is_drawn() {
        let plain = Plain::default();
        let out =
            super::super::progress::StderrProgress::with_target(ProgressDrawTarget::hidden(), Box::new(plain.clone()));
        feed(&mut StderrProgress::with(false, out));
        // 50% falls inside the half-second window; the last state always shows.
        assert_eq!(
            plain.text(),
            "hashing\n    0.0% 0 B of 2.0 kB model.pt\n  100.0% 2.0 kB of 2.0 kB model.pt\nwriting the bundle\n"
        );
    }

    #[test]
    fn on_a_terminal_bytes_are_a_bar_whose_last_state_stays_as_a_line() {
        let (screen, plain) = (Screen::default(), Plain::default());
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(screen.clone()), 20);
        let mut p = StderrProgress::with(
            false,
            super::super::progress::StderrProgress::with_target(target, Box::new(plain.clone())),
        );
        feed(&mut p);
        assert!(!p.out.has_bar(BYTES), "the finished transfer's bar is cleared");
        let shown = screen.0.lock().unwrap().clone();
        assert!(shown.contains("[--------------------] 0.0% 0 B of 2.0 kB model.pt"), "{shown}");
        assert!(shown.contains("[##########>---------] 50.0% 1.0 kB of 2.0 kB model.pt"), "{shown}");
        assert!(shown.contains("  100.0% 2.0 kB of 2.0 kB model.pt"), "{shown}");
        assert!(shown.contains("writing the bundle"), "{shown}");
        assert_eq!(plain.text(), "");
    }

    #[test]
    fn quiet_prints_nothing() {
        let plain = Plain::default();
        let out =
            super::super::progress::StderrProgress::with_target(ProgressDrawTarget::hidden(), Box::new(plain.clone()));
        feed(&mut StderrProgress::with(true, out));
        assert_eq!(plain.text(), "");
    }
}
