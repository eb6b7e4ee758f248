//! `i` / `opsconsole import`: bring the cluster's training log back from L2 and write down
//! what happened in `journal.md` (the seed's Airlock, import side).
//!
//! The log is the newest file on L2's remote matching `[import] pattern` (by default any
//! `*.log` under `experiments/<exp>/`) that this workspace did not put there itself (the
//! ledger knows what it uploaded), or the key given with `--from`. It is downloaded
//! (resumable, verified by the remote's checksum) to
//! `experiments/<exp>/logs/train_external.log` — an earlier, different import there is kept
//! as `train_external.<UTC time>.log` — read with the Log panel's parsers, and one entry is
//! appended to the journal: date, source, size, run length, final and best metrics and the
//! steps they were seen at, and the errors seen (CUDA OOM, NaN loss, Traceback, killed).
//! The same log imported twice adds nothing the second time.

use std::path::Path;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use serde::Serialize;

use super::{Progress, ProgressFn};
use crate::config::Config;
use crate::logtail::backfill::HistoryFolder;
use crate::logtail::health::ErrorCounts;
use crate::logtail::parse::MetricParser;

/// The file an import is saved as, in the experiment's `logs/`.
pub const SAVED_NAME: &str = "train_external.log";

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub experiment: Option<String>,
    /// A key on L2's remote (its workspace-relative path) instead of the newest match.
    pub from: Option<String>,
}

/// A metric value and the step it was seen at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Seen {
    pub value: f64,
    pub step: Option<u64>,
}

/// What a log says about its run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogSummary {
    pub lines: u64,
    pub first_step: Option<u64>,
    pub last_step: Option<u64>,
    pub total_steps: Option<u64>,
    /// Seconds the run took: Hugging Face's `train_runtime`, else from the first to the
    /// last timestamp at the start of a line.
    pub run_seconds: Option<f64>,
    /// `train_runtime` or `timestamps`.
    pub run_length_from: Option<String>,
    pub final_loss: Option<Seen>,
    pub best_loss: Option<Seen>,
    pub final_eval_loss: Option<Seen>,
    pub best_eval_loss: Option<Seen>,
    pub errors: ErrorCounts,
    /// The line that said what the last error was (hidden when it looks like a secret).
    pub last_error: Option<String>,
}

/// A finished import.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Imported {
    pub experiment: String,
    pub level: String,
    pub remote: String,
    /// The key on the remote.
    pub source: String,
    pub size: u64,
    pub sha256: String,
    /// Workspace-relative path of the downloaded log.
    pub saved_as: String,
    /// An earlier import kept aside, when there was a different one.
    pub kept_previous: Option<String>,
    /// Workspace-relative path of the journal.
    pub journal: String,
    /// False when the journal already had this log's entry (nothing was appended).
    pub appended: bool,
    /// The entry (appended now, or the one there already is about this log).
    pub entry: String,
    pub summary: LogSummary,
}

static TIMESTAMP: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    regex::bytes::Regex::new(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})").expect("static regex")
});

fn stamp_secs(line: &[u8]) -> Option<i64> {
    let head = &line[..line.len().min(48)];
    let c = TIMESTAMP.captures(head)?;
    let n = |i: usize| -> Option<i64> { std::str::from_utf8(c.get(i)?.as_bytes()).ok()?.parse().ok() };
    let text = format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", n(1)?, n(2)?, n(3)?, n(4)?, n(5)?, n(6)?);
    crate::sync::drive::api::parse_rfc3339_ms(&text).map(|ms| ms / 1000)
}

/// Reads a whole log with the Log panel's parsers.
pub fn summarize(
    path: &Path,
    cfg: &crate::logtail::LogConfig,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(u64, u64),
) -> std::io::Result<LogSummary> {
    use std::io::BufRead;
    let parser = MetricParser::new(&cfg.patterns).map_err(std::io::Error::other)?;
    let file = crate::util::open_regular(path)?;
    let total = file.metadata()?.len();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut folder = HistoryFolder::new(&parser, 16, cfg.max_line_bytes);
    let mut s = LogSummary {
        lines: 0,
        first_step: None,
        last_step: None,
        total_steps: None,
        run_seconds: None,
        run_length_from: None,
        final_loss: None,
        best_loss: None,
        final_eval_loss: None,
        best_eval_loss: None,
        errors: ErrorCounts::default(),
        last_error: None,
    };
    let (mut first_stamp, mut last_stamp) = (None, None);
    let mut line = Vec::new();
    let mut read = 0u64;
    let mut next_report = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        read += n as u64;
        if read >= next_report {
            if cancel.load(Ordering::Relaxed) {
                return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled"));
            }
            progress(read, total);
            next_report = read + (4 << 20);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let (losses, evals) = (folder.metrics.loss.count(), folder.metrics.eval_loss.count());
        folder.line(&line);
        let latest = &folder.metrics.latest;
        if s.first_step.is_none() {
            s.first_step = latest.step;
        }
        let step = latest.step;
        let better = |best: &Option<Seen>, v: f64| best.is_none_or(|b| v < b.value);
        if folder.metrics.loss.count() != losses
            && let Some(v) = latest.loss.filter(|v| v.is_finite())
        {
            s.final_loss = Some(Seen { value: v, step });
            if better(&s.best_loss, v) {
                s.best_loss = Some(Seen { value: v, step });
            }
        }
        if folder.metrics.eval_loss.count() != evals
            && let Some(v) = latest.eval_loss.filter(|v| v.is_finite())
        {
            s.final_eval_loss = Some(Seen { value: v, step });
            if better(&s.best_eval_loss, v) {
                s.best_eval_loss = Some(Seen { value: v, step });
            }
        }
        if let Some(t) = stamp_secs(&line) {
            first_stamp.get_or_insert(t);
            last_stamp = Some(t);
        }
    }
    progress(total, total);
    let latest = folder.metrics.latest;
    s.lines = folder.lines;
    s.last_step = latest.step;
    s.total_steps = latest.total_steps;
    if let Some(rt) = latest.train_runtime.filter(|v| v.is_finite() && *v >= 0.0) {
        s.run_seconds = Some(rt);
        s.run_length_from = Some("train_runtime".into());
    } else if let (Some(a), Some(b)) = (first_stamp, last_stamp)
        && b > a
    {
        s.run_seconds = Some((b - a) as f64);
        s.run_length_from = Some("timestamps".into());
    }
    s.errors = folder.health.counts;
    s.last_error = folder.health.last_error.as_ref().map(|e| {
        if crate::secrets::check_content(e.message.as_bytes()).is_some() {
            "(not shown: the line looks like it holds a secret)".to_string()
        } else {
            crate::util::ellipsize(&crate::util::printable(&e.message), 160)
        }
    });
    Ok(s)
}

fn metric(name: &str, s: &Option<Seen>) -> Option<String> {
    s.map(|v| match v.step {
        Some(step) => format!("{name} {:.4} at step {step}", v.value),
        None => format!("{name} {:.4}", v.value),
    })
}

/// The journal entry of an import (Markdown, ending with a newline).
pub fn entry_text(imp: &Imported, at: SystemTime) -> String {
    let s = &imp.summary;
    let when = super::rfc3339_utc(at);
    let when = format!("{} {} UTC", &when[..10], &when[11..16]);
    let mut out = format!("## Import: {} — {when}\n{}\n", imp.experiment, super::journal::marker(&imp.sha256));
    out.push_str(&format!(
        "- **Source**: {} (remote `{}`) `{}`, {}, SHA-256 `{}`\n",
        imp.level,
        imp.remote,
        crate::util::printable(&imp.source),
        crate::util::bytes(imp.size),
        &imp.sha256[..imp.sha256.len().min(16)]
    ));
    out.push_str(&format!("- **Saved as**: `{}`\n", imp.saved_as));
    let steps = match (s.first_step, s.last_step, s.total_steps) {
        (Some(a), Some(b), Some(t)) => format!("steps {a}–{b} of {t}"),
        (Some(a), Some(b), None) => format!("steps {a}–{b}"),
        _ => "no step seen".to_string(),
    };
    let length = match (s.run_seconds, s.run_length_from.as_deref()) {
        (Some(secs), Some(from)) => {
            format!("{} ({from})", crate::util::duration(std::time::Duration::from_secs_f64(secs.max(0.0))))
        }
        _ => "length unknown (no train_runtime, no timestamps)".to_string(),
    };
    out.push_str(&format!("- **Run**: {steps} · {length} · {} lines\n", s.lines));
    let finals: Vec<String> =
        [metric("loss", &s.final_loss), metric("eval_loss", &s.final_eval_loss)].into_iter().flatten().collect();
    let bests: Vec<String> =
        [metric("loss", &s.best_loss), metric("eval_loss", &s.best_eval_loss)].into_iter().flatten().collect();
    out.push_str(&format!(
        "- **Final**: {}\n",
        if finals.is_empty() { "no loss seen".to_string() } else { finals.join(" · ") }
    ));
    out.push_str(&format!(
        "- **Best**: {}\n",
        if bests.is_empty() { "no loss seen".to_string() } else { bests.join(" · ") }
    ));
    let e = &s.errors;
    let mut kinds = Vec::new();
    for (n, label) in
        [(e.cuda_oom, "CUDA OOM"), (e.nan_loss, "NaN loss"), (e.traceback, "Traceback"), (e.killed, "killed")]
    {
        if n > 0 {
            kinds.push(format!("{n} {label}"));
        }
    }
    if kinds.is_empty() {
        out.push_str("- **Errors**: none (no CUDA OOM, NaN loss or Traceback)\n");
    } else {
        let last = s.last_error.as_ref().map(|l| format!(" — last: `{}`", l.replace('`', "'"))).unwrap_or_default();
        out.push_str(&format!("- **Errors**: {}{last}\n", kinds.join(", ")));
    }
    out
}

/// Paths on L2 this workspace put there itself (its own logs, an earlier import).
fn own_uploads(workspace: &Path) -> std::collections::HashSet<String> {
    match crate::sync::ledger::Ledger::open_for_reading(workspace) {
        Ok((l, _)) => l.entries(Some("L2")).map(|v| v.into_iter().map(|e| e.path).collect()).unwrap_or_default(),
        Err(_) => Default::default(),
    }
}

/// The literal folder a glob starts with (`experiments/v68/` of `experiments/v68/**/*.log`).
fn literal_prefix(glob: &str) -> String {
    let end = glob.find(['*', '?', '[', '{']).unwrap_or(glob.len());
    match glob[..end].rfind('/') {
        Some(i) => glob[..=i].to_string(),
        None => String::new(),
    }
}

/// Runs an import. `Err` is a failure in words (nothing found, a download that failed).
pub fn run(
    workspace: &Path,
    cfg: &Config,
    opts: &ImportOptions,
    progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<Imported, String> {
    let _marker = crate::joblock::hold(workspace, "import").map_err(|e| format!("marking the import job: {e}"))?;
    let exp = super::experiment::resolve(workspace, &cfg.paths.experiments, opts.experiment.as_deref())?;
    let l2 = super::fetch::level_remote(workspace, cfg, "L2").map_err(|why| format!("cannot import: {why}"))?;
    let rt = super::runtime()?;
    let pattern_text = super::expand(&cfg.import.pattern, &cfg.paths.experiments, &exp.name);
    let saved_rel = format!("{}/logs/{SAVED_NAME}", exp.rel);
    let object = match &opts.from {
        Some(key) => {
            let key = key.trim_start_matches('/').to_string();
            progress(Progress::Step(format!(
                "import {}: looking for {key} on L2 ({})",
                exp.name,
                l2.remote.describe()
            )));
            rt.block_on(l2.remote.stat(&key))
                .map_err(|e| format!("L2 ({}) could not be read: {}", l2.name, e.reason()))?
                .ok_or_else(|| format!("{key} is not on L2 (remote '{}', {})", l2.name, l2.remote.describe()))?
        }
        None => {
            progress(Progress::Step(format!("import {}: listing L2 ({})", exp.name, l2.remote.describe())));
            let glob =
                crate::sync::routing::compile_glob(&pattern_text).map_err(|e| format!("[import] pattern: {e}"))?;
            let listed = rt
                .block_on(l2.remote.list(&literal_prefix(&pattern_text)))
                .map_err(|e| format!("L2 ({}) could not be listed: {}", l2.name, e.reason()))?;
            let own = own_uploads(workspace);
            let matching: Vec<_> = listed.into_iter().filter(|o| glob.is_match(&o.key)).collect();
            let n_matching = matching.len();
            let theirs: Vec<_> = matching
                .into_iter()
                .filter(|o| !own.contains(&o.key) && !o.key.ends_with(&format!("/{SAVED_NAME}")) && o.key != saved_rel)
                .collect();
            theirs
                .into_iter()
                .max_by(|a, b| a.modified_ms.cmp(&b.modified_ms).then_with(|| a.key.cmp(&b.key)))
                .ok_or_else(|| {
                    if n_matching == 0 {
                        format!(
                            "no log on L2 (remote '{}', {}) matches {pattern_text} ([import] pattern); \
                             is the cluster writing its log there? Name one with --from KEY",
                            l2.name,
                            l2.remote.describe()
                        )
                    } else {
                        format!(
                            "the {n_matching} logs on L2 matching {pattern_text} were all uploaded by this workspace; \
                             the cluster's log is not there yet (name one with --from KEY)"
                        )
                    }
                })?
        }
    };
    // Download beside (resumable: an interrupted import continues the `.part`).
    let saved = workspace.join(&saved_rel);
    let logs_dir = saved.parent().map(Path::to_path_buf).unwrap_or_else(|| workspace.to_path_buf());
    std::fs::create_dir_all(&logs_dir).map_err(|e| format!("creating {}: {e}", logs_dir.display()))?;
    let staged = logs_dir.join(format!(".{SAVED_NAME}.download"));
    progress(Progress::Step(format!(
        "import {}: downloading {} ({})",
        exp.name,
        object.key,
        crate::util::bytes(object.size)
    )));
    super::fetch::download(&rt, l2.remote.as_ref(), &object.key, &staged, object.size, cancel, &mut |done, total| {
        progress(Progress::Bytes { done, total, what: format!("downloading {}", object.key) })
    })
    .map_err(|e| format!("downloading {} from L2: {}", object.key, e.reason()))?;
    let digests = crate::sync::hash::digest_prefix(
        &staged,
        std::fs::metadata(&staged).map_err(|e| format!("reading the download: {e}"))?.len(),
        false,
    )
    .map_err(|e| format!("hashing the download: {e}"))?;
    // Into place; a different earlier import is kept, never overwritten.
    let mut kept_previous = None;
    match std::fs::metadata(&saved) {
        Ok(m) if m.is_file() => {
            let old = crate::sync::hash::sha256_file(&saved).map_err(|e| format!("reading {saved_rel}: {e}"))?;
            if old != digests.sha256 {
                let when = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                let stamp = super::rfc3339_utc(when).replace([':', '-'], "");
                let aside = super::fetch::unique(&logs_dir.join(format!("train_external.{stamp}.log")));
                std::fs::rename(&saved, &aside).map_err(|e| format!("keeping the earlier import: {e}"))?;
                kept_previous = Some(super::shown(workspace, &aside));
            }
        }
        _ => {}
    }
    std::fs::rename(&staged, &saved).map_err(|e| format!("moving the download into place: {e}"))?;

    progress(Progress::Step(format!("import {}: reading the log", exp.name)));
    let summary = summarize(&saved, &cfg.log, cancel, &mut |done, total| {
        progress(Progress::Bytes { done, total, what: "reading the log".into() })
    })
    .map_err(|e| format!("reading {saved_rel}: {e}"))?;
    let journal_path = super::in_workspace(workspace, &cfg.paths.journal);
    let mut imp = Imported {
        experiment: exp.name.clone(),
        level: l2.level.to_string(),
        remote: l2.name.clone(),
        source: object.key.clone(),
        size: object.size,
        sha256: digests.sha256.clone(),
        saved_as: saved_rel,
        kept_previous,
        journal: super::shown(workspace, &journal_path),
        appended: false,
        entry: String::new(),
        summary,
    };
    if super::journal::has_import(&journal_path, &digests.sha256).map_err(|e| format!("reading the journal: {e}"))? {
        imp.entry = existing_entry(&journal_path, &digests.sha256).unwrap_or_default();
        return Ok(imp);
    }
    imp.entry = entry_text(&imp, SystemTime::now());
    super::journal::append(&journal_path, &imp.entry).map_err(|e| format!("appending to {}: {e}", imp.journal))?;
    imp.appended = true;
    Ok(imp)
}

/// The entry already in the journal about this log (from its heading to the next one).
fn existing_entry(journal: &Path, sha256: &str) -> Option<String> {
    let text = std::fs::read_to_string(journal).ok()?;
    let at = text.find(&super::journal::marker(sha256))?;
    let start = text[..at].rfind("\n## ").map(|i| i + 1).unwrap_or(0);
    let end = text[at..].find("\n## ").map(|i| at + i + 1).unwrap_or(text.len());
    Some(text[start..end].trim_end().to_string() + "\n")
}

/// The text `opsconsole import` prints.
pub fn to_text(imp: &Imported) -> String {
    let mut out = if imp.appended {
        format!(
            "imported {} from {} ({}) into {}; appended to {}:\n\n",
            imp.source, imp.level, imp.remote, imp.saved_as, imp.journal
        )
    } else {
        format!(
            "{} (SHA-256 {}…) is already in {}: nothing appended. Its entry:\n\n",
            imp.source,
            &imp.sha256[..12],
            imp.journal
        )
    };
    if let Some(k) = &imp.kept_previous {
        out.insert_str(0, &format!("kept the earlier import as {k}\n"));
    }
    out.push_str(&imp.entry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_prefixes() {
        assert_eq!(stamp_secs(b"2024-01-01 00:00:10,123 INFO step 1"), Some(1_704_067_210));
        assert_eq!(stamp_secs(b"no time here"), None);
        assert_eq!(literal_prefix("experiments/v68/**/*.log"), "experiments/v68/");
        assert_eq!(literal_prefix("*.log"), "");
    }
}
