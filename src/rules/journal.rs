//! An experiment's journal entries: the sections of `paths.journal` whose heading names the
//! experiment (its folder name, or its `vNN` tag as a whole word), each up to the next
//! heading of the same or a higher level, and the whole of `experiments/<exp>/journal.md`
//! when there is one. Reads are bounded ([`MAX_JOURNAL_BYTES`] a file).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::Config;

/// The most of a journal read (a journal of years is a few hundred kB).
pub const MAX_JOURNAL_BYTES: u64 = 4 << 20;

/// A journal file's text (bounded), or None when it cannot be read.
pub fn read_bounded(path: &Path) -> Option<String> {
    let f = crate::util::open_regular(path).ok()?;
    let mut bytes = Vec::new();
    f.take(MAX_JOURNAL_BYTES).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether a heading line names the experiment.
pub fn names(heading: &str, experiment: &str) -> bool {
    let h = heading.to_ascii_lowercase();
    if h.contains(&experiment.to_ascii_lowercase()) {
        return true;
    }
    let Some(tag) = crate::airlock::experiment::tag_of(experiment) else { return false };
    h.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| w == tag)
}

/// The sections of `text` about `experiment`, in file order, joined.
pub fn sections(text: &str, experiment: &str) -> String {
    let mut out = String::new();
    let mut inside: Option<usize> = None;
    for line in text.lines() {
        let level = line.chars().take_while(|c| *c == '#').count();
        let heading = level > 0 && line[level..].starts_with(' ');
        if heading {
            if inside.is_some_and(|l| level <= l) {
                inside = None;
            }
            if inside.is_none() && names(line, experiment) {
                inside = Some(level);
            }
        }
        if inside.is_some() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// An experiment's journal text: where it came from and when that file last changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Entries {
    pub text: String,
    /// Workspace-relative names of the files read.
    pub files: Vec<String>,
    /// The newest modification time of those files.
    pub modified: Option<SystemTime>,
}

/// The experiment's entries in the workspace journal and its own `journal.md`.
pub fn entries(ws: &Path, cfg: &Config, experiment: &str) -> Entries {
    let shown = |p: &Path| crate::workspace::Workspace::at(ws).display(p);
    let main = crate::workspace::Workspace::at(ws).resolve(&cfg.paths.journal);
    let own: PathBuf = crate::airlock::in_workspace(ws, &cfg.paths.experiments).join(experiment).join("journal.md");
    let mut e = Entries { text: String::new(), files: Vec::new(), modified: None };
    let mut add = |p: &Path, text: String| {
        if text.trim().is_empty() {
            return;
        }
        e.text.push_str(&text);
        e.files.push(shown(p));
        let m = std::fs::metadata(p).and_then(|m| m.modified()).ok();
        e.modified = e.modified.max(m);
    };
    if let Some(t) = read_bounded(&main) {
        add(&main, sections(&t, experiment));
    }
    if own != main
        && let Some(t) = read_bounded(&own)
    {
        add(&own, t);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_found_by_name_or_tag() {
        let j = "# Journal\n## v67 baseline\nTraining: 2 hours\n## v68 lane unification\nTraining: ~6 hours\n\
                 ### Notes\nmini-train ok\n## v680 other\nTraining: 9 hours\n## Import: v68_lane — 2026\nran\n";
        let s = sections(j, "v68_lane");
        assert!(s.contains("Training: ~6 hours") && s.contains("mini-train ok") && s.contains("ran"), "{s}");
        assert!(!s.contains("2 hours") && !s.contains("9 hours"), "{s}");
        assert!(names("## Import: v68_lane_unification", "v68_lane_unification"));
        assert!(!names("## v680", "v68_x"));
    }
}
