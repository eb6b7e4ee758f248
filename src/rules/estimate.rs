//! Rule 3, time estimates: "Before starting work, estimate … Training: 5 mins mini-train,
//! 6 hours full … Update user if estimate is off by >50%."
//!
//! The estimate of the run's experiment comes from its journal entry (the forms in
//! docs/rules.md: `Training: ~6 hours`, `Training: 5 mins mini-train, 6 hours full`,
//! `Total: ~3 hours implementation + 6 hours training + 10 mins eval`, …; the last one in
//! the entry wins) or from `opsconsole estimate EXPERIMENT 6h` (kept in
//! `.opsconsole/estimates.json`); the newer of the two counts. When the run's elapsed time
//! plus its ETA (from the end of the training log, read with the Log panel's parsers)
//! passes 1.5× the estimate, the rule flags it: "training will take ~9h50m, estimate was
//! 6h: tell the user". Recording a new estimate is the update the protocol asks for.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{RunFacts, Verdict};
use crate::config::Config;

/// Where `opsconsole estimate` keeps estimates, workspace-relative.
pub const ESTIMATES_FILE: &str = ".opsconsole/estimates.json";

/// How far over its estimate a run may go before it is flagged (the protocol's 50%).
pub const OVERRUN: f64 = 1.5;

/// The end of the log read for the ETA.
const LOG_TAIL_LINES: usize = 400;

/// One recorded estimate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub training_s: u64,
    pub set_unix: u64,
    /// As typed (`6h`).
    pub text: String,
}

/// `status --json` → `rules.time_estimate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EstimateRule {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub experiment: Option<String>,
    /// The training estimate, seconds.
    pub estimate_s: Option<u64>,
    /// Where it came from (`journal.md: "Training: ~6 hours"`, `opsconsole estimate`).
    pub estimate_source: Option<String>,
    pub elapsed_s: Option<u64>,
    pub eta_s: Option<u64>,
    /// Elapsed plus ETA (or the whole run's length once it ended).
    pub projected_s: Option<u64>,
}

impl EstimateRule {
    pub fn off() -> Self {
        Self { verdict: Verdict::off("time_estimates"), ..Default::default() }
    }
}

// Both patterns are ASCII (`-u`): their words, digits and spaces are ASCII in any journal,
// and a Unicode class (`\d`, `\s`, case folding) makes the regex compiler build a 320 KB
// table and read the Unicode tables at start, a third of a MiB of the console's peak
// memory (docs/performance.md). The en dash is the one non-ASCII literal.
static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i-u)([0-9]+(?:\.[0-9]+)?)(?:\s*(?:-|(?u:–)|to)\s*([0-9]+(?:\.[0-9]+)?))?\s*(days?|d|hours?|hrs?|h|minutes?|mins?|m)\b")
        .expect("amount regex")
});

static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i-u)^(?:estimated\s+)?training(?:\s+time)?(?:\s+estimate)?\s*(?:\(est(?:imate)?\.?\))?\s*[:=]\s*")
        .expect("label regex")
});

fn unit_secs(unit: &str) -> f64 {
    match unit.to_ascii_lowercase().chars().next() {
        Some('d') => 86_400.0,
        Some('h') => 3600.0,
        _ => 60.0,
    }
}

/// The amounts of time in a text: (seconds, the upper end of a range, and the text after it).
fn amounts(text: &str) -> Vec<(u64, String)> {
    AMOUNT
        .captures_iter(text)
        .filter_map(|c| {
            let n: f64 = c.get(2).or(c.get(1))?.as_str().parse().ok()?;
            let end = c.get(0)?.end();
            let after = text[end..].chars().take(24).collect::<String>().to_ascii_lowercase();
            Some(((n * unit_secs(c.get(3)?.as_str())).round() as u64, after))
        })
        .filter(|(s, _)| *s > 0)
        .collect()
}

/// The training estimate a journal line states, if any.
pub fn line_estimate(line: &str) -> Option<u64> {
    let clean: String = line.replace("**", "").replace('`', "");
    let clean = clean.trim().trim_start_matches(['-', '*', '+', '>', ' ']).trim();
    if let Some(label) = LABEL.find(clean) {
        let rest = &clean[label.end()..];
        let all = amounts(rest);
        // "5 mins mini-train, 6 hours full": the full run's.
        if let Some((s, _)) = all.iter().find(|(_, after)| after.trim_start().starts_with("full")) {
            return Some(*s);
        }
        let not_mini = |a: &&(u64, String)| {
            let t = a.1.trim_start();
            !(t.starts_with("mini") || t.starts_with("toy") || t.starts_with("eval") || t.starts_with("audit"))
        };
        return all.iter().filter(not_mini).map(|(s, _)| *s).max();
    }
    let lower = clean.to_ascii_lowercase();
    if lower.starts_with("total") || lower.starts_with("estimate") {
        // "Total: ~3 hours implementation + 6 hours training + 10 mins eval".
        return amounts(clean)
            .into_iter()
            .find(|(_, after)| after.trim_start().starts_with("training"))
            .map(|(s, _)| s);
    }
    None
}

/// The last training estimate in a journal entry, with its line.
pub fn journal_estimate(text: &str) -> Option<(u64, String)> {
    text.lines().rev().find_map(|l| line_estimate(l).map(|s| (s, l.trim().to_string())))
}

/// `6h`, `1h30m`, `45m`, `2d`: an estimate in words.
pub fn fmt(secs: u64) -> String {
    if secs >= 3600 && secs.is_multiple_of(3600) && secs < 86_400 * 2 {
        format!("{}h", secs / 3600)
    } else if secs < 3600 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        crate::util::duration(Duration::from_secs(secs))
    }
}

fn store_path(ws: &Path) -> PathBuf {
    ws.join(ESTIMATES_FILE)
}

/// Every recorded estimate (none when the file is missing or unreadable).
pub fn recorded(ws: &Path) -> BTreeMap<String, Recorded> {
    let Ok(f) = crate::util::open_regular(&store_path(ws)) else { return BTreeMap::new() };
    let mut bytes = Vec::new();
    if f.take(1 << 20).read_to_end(&mut bytes).is_err() {
        return BTreeMap::new();
    }
    serde_json::from_slice(&bytes).unwrap_or_default()
}

/// Records the training estimate of `experiment` (written beside, then renamed).
pub fn record(ws: &Path, experiment: &str, training: Duration, text: &str, now: SystemTime) -> std::io::Result<()> {
    let mut all = recorded(ws);
    all.insert(
        experiment.to_string(),
        Recorded { training_s: training.as_secs(), set_unix: super::unix(now), text: text.to_string() },
    );
    let path = store_path(ws);
    std::fs::create_dir_all(path.parent().unwrap_or(ws))?;
    let bytes = serde_json::to_vec_pretty(&all).map_err(std::io::Error::other)?;
    crate::airlock::bundle::write_atomic(&path, &bytes)
}

/// The experiment's estimate: the newer of the recorded one and the journal's.
pub fn estimate_of(ws: &Path, cfg: &Config, experiment: &str) -> Option<(u64, String)> {
    let rec = recorded(ws).remove(experiment);
    let j = super::journal::entries(ws, cfg, experiment);
    let from_journal = journal_estimate(&j.text).map(|(s, line)| {
        let file = j.files.first().cloned().unwrap_or_else(|| cfg.paths.journal.clone());
        (s, format!("{file}: \"{}\"", crate::util::ellipsize(&line, 80)))
    });
    let journal_unix = j.modified.map(super::unix).unwrap_or(0);
    match (rec, from_journal) {
        (Some(r), Some(jj)) if journal_unix > r.set_unix => Some(jj),
        (Some(r), _) => Some((r.training_s, format!("opsconsole estimate {experiment} {}", r.text))),
        (None, jj) => jj,
    }
}

/// (ETA seconds, the whole run's length when the log says it ended) from the log's end.
fn log_progress(ws: &Path, cfg: &Config, log: &str) -> (Option<u64>, Option<u64>) {
    let path = crate::workspace::Workspace::at(ws).resolve(log);
    let Ok(parser) = crate::logtail::parse::MetricParser::new(&cfg.log.patterns) else { return (None, None) };
    let Ok(last) = crate::logtail::backread::read_last_lines(&path, LOG_TAIL_LINES, cfg.log.max_line_bytes) else {
        return (None, None);
    };
    let mut m = crate::logtail::metrics::MetricsState::new(8);
    for l in &last.lines {
        if let Some(u) = parser.parse(l.text.as_bytes()) {
            m.apply(&u);
        }
    }
    let ended = m.latest.train_runtime.filter(|_| m.latest.final_train_loss.is_some()).map(|r| r.round() as u64);
    (m.latest.eta_seconds.filter(|e| e.is_finite() && *e >= 0.0).map(|e| e.round() as u64), ended)
}

/// Judges rule 3.
pub fn check(ws: &Path, cfg: &Config, run: &RunFacts, now: SystemTime) -> EstimateRule {
    let mut rule = EstimateRule { experiment: run.experiment.clone(), ..Default::default() };
    let Some(exp) = run.experiment.clone() else {
        rule.verdict = Verdict::unknown("no experiment found");
        return rule;
    };
    let Some((est, source)) = estimate_of(ws, cfg, &exp) else {
        rule.verdict = Verdict::unknown(format!(
            "no training estimate for {exp}: write \"Training: ~6 hours\" in its journal entry, or run `opsconsole \
             estimate {exp} 6h`"
        ));
        return rule;
    };
    rule.estimate_s = Some(est);
    rule.estimate_source = Some(source.clone());
    let (eta, ended) = run.log.as_deref().map(|l| log_progress(ws, cfg, l)).unwrap_or((None, None));
    let running = !run.pids.is_empty();
    let elapsed = run.started_unix.filter(|_| running).map(|s| super::unix(now).saturating_sub(s));
    rule.elapsed_s = elapsed;
    rule.eta_s = eta.filter(|_| running);
    let projected = match (elapsed, ended) {
        (Some(e), _) => Some(e + rule.eta_s.unwrap_or(0)),
        (None, Some(total)) => Some(total),
        (None, None) => None,
    };
    rule.projected_s = projected;
    let words = |s: u64| crate::util::duration(Duration::from_secs(s));
    let est_w = fmt(est);
    rule.verdict = match projected {
        None => Verdict::ok(format!("no run of {exp} going; its estimate is {est_w} ({source})")),
        Some(p) if (p as f64) > est as f64 * OVERRUN => {
            let (will, head) = if running && rule.eta_s.is_some() {
                (format!("training will take ~{}", words(p)), format!("training will take ~{}", words(p)))
            } else if running {
                (format!("training has run {} (no ETA in the log)", words(p)), format!("training has run {}", words(p)))
            } else {
                (format!("training took {}", words(p)), format!("training took {}", words(p)))
            };
            let new = fmt(((p as f64 / 3600.0).ceil() as u64).max(1) * 3600);
            Verdict::flag(
                format!(
                    "{will}, estimate was {est_w} ({source}): tell the user, then record the new estimate \
                     (`opsconsole estimate {exp} {new}` or a new \"Training:\" line in the journal)"
                ),
                format!("{head}, estimate was {est_w}: tell the user"),
                format!("~{} vs est. {est_w}", words(p)),
            )
        }
        Some(p) => Verdict::ok(format!(
            "{} {} of the {est_w} estimate ({source})",
            if running { "on course:" } else { "took" },
            if running { format!("~{} projected", words(p)) } else { words(p) }
        )),
    };
    rule
}

/// `6h`, `90m`, `1h30m`, `6 hours`, `2d`, `1.5h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    if let Ok(d) = humantime::parse_duration(t) {
        return (d.as_secs() > 0).then_some(d);
    }
    match amounts(t).as_slice() {
        [(s, _)] => Some(Duration::from_secs(*s)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_forms() {
        let h = 3600;
        for (line, want) in [
            ("Training: ~6 hours", Some(6 * h)),
            ("- **Training**: 6h", Some(6 * h)),
            ("Training: 5 mins mini-train, 6 hours full", Some(6 * h)),
            ("Training estimate: 90 minutes", Some(90 * 60)),
            ("Estimated training time: 1.5h", Some(5400)),
            ("Training: 6-8 hours", Some(8 * h)),
            ("Training: 2 days", Some(2 * 86_400)),
            ("Training: 6–8 hours", Some(8 * h)),
            ("Training: 6 to 7 Hours", Some(7 * h)),
            ("TRAINING TIME (est.): 45 MINS", Some(45 * 60)),
            ("Training:\t3h · on the A100", Some(3 * h)),
            ("Training: 3hz", None),
            ("Total: ~3 hours implementation + 6 hours training + 10 mins eval", Some(6 * h)),
            ("Training: 5 mins mini-train", None),
            ("We trained for 6 hours", None),
            ("Implementation: 2-3 hours to write code", None),
        ] {
            assert_eq!(line_estimate(line), want, "{line}");
        }
        let j = "## v68\nTraining: ~6 hours\nnotes\nTraining: 10 hours (updated)\n";
        assert_eq!(journal_estimate(j).map(|(s, _)| s), Some(10 * h));
    }

    #[test]
    fn durations_typed_and_shown() {
        assert_eq!(parse_duration("6h"), Some(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("6 hours"), Some(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("0h"), None);
        assert_eq!((fmt(6 * 3600), fmt(45 * 60), fmt(5400)), ("6h".into(), "45m".into(), "1h30m".into()));
    }
}
