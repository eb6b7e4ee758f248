//! Knowing when a file is complete. [`Settler`] is the pure decision (time passed in);
//! [`spawn_watcher`] feeds it from notify (inotify) and [`scan`] is the slow poll that
//! catches what a filesystem without events never reports.
//!
//! A weights file is complete once its writer closed it (or it was renamed into its final
//! name) and its size then stayed still for the settle period. Logs and other small files
//! are often held open for the whole run, so they are taken when quiet for the settle
//! period, or at least every `snapshot` while they keep growing, whatever their write rate
//! (a snapshot of exactly the prefix that is then hashed; the next change queues them once
//! more), and not more often than that: a log written every few seconds is not uploaded
//! every few seconds. [`Settler::snapshot_now`] takes every growing file at once (`s`,
//! `sync --once`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};

use super::ledger::mtime_ns;
use super::routing::{Router, is_weights, relative_key};

/// Something seen about a workspace-relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Data written (the writer may still hold the file open).
    Written(String),
    /// Closed after writing, or renamed into this name: the writer is done with it.
    Closed(String),
    /// Deleted or renamed away.
    Removed(String),
    /// Found by a scan with this size and mtime, different from what the ledger holds.
    Polled(String, u64, i64),
}

/// A file that is complete, with the size and mtime it settled at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
}

/// What [`Settler::tick`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Settled {
    pub ready: Vec<Ready>,
    /// Paths that vanished while being watched or that were reported removed.
    pub gone: Vec<String>,
}

#[derive(Debug, Clone)]
struct Track {
    size: u64,
    mtime_ns: i64,
    closed: bool,
    changed_ms: i64,
    first_ms: i64,
}

/// Decides, from observations and the clock, when each file is complete.
#[derive(Debug)]
pub struct Settler {
    settle_ms: i64,
    /// A weights file seen open, then untouched this long: its close event was lost.
    lost_close_ms: i64,
    /// A growing file (not weights) is taken at least, and at most, this often.
    snapshot_ms: i64,
    tracked: HashMap<String, Track>,
    /// When each file that is not weights was last taken.
    taken: HashMap<String, i64>,
    /// Take every file that is not weights at the next tick ([`Settler::snapshot_now`]).
    snapshot_all: bool,
    gone: Vec<String>,
}

impl Settler {
    pub fn new(settle_ms: i64, lost_close_ms: i64, snapshot_ms: i64) -> Self {
        Self {
            settle_ms: settle_ms.max(1),
            lost_close_ms: lost_close_ms.max(settle_ms),
            snapshot_ms: snapshot_ms.max(1),
            tracked: HashMap::new(),
            taken: HashMap::new(),
            snapshot_all: false,
            gone: Vec::new(),
        }
    }

    /// Take a snapshot of every growing file (not weights) at the next tick, whatever its
    /// period says.
    pub fn snapshot_now(&mut self) {
        self.snapshot_all = true;
    }

    /// Files still settling.
    pub fn watching(&self) -> usize {
        self.tracked.len()
    }

    /// Files settling whose writer is done with them (closed, renamed, or found by a
    /// scan): they complete within the settle period unless written again.
    pub fn closed_watching(&self) -> usize {
        self.tracked.values().filter(|t| t.closed).count()
    }

    /// Is this path still settling?
    pub fn is_watching(&self, rel: &str) -> bool {
        self.tracked.contains_key(rel)
    }

    /// Fold one observation in. `stat` gives (size, mtime_ns) of a path, `None` if absent.
    pub fn observe(&mut self, obs: Observation, now_ms: i64, stat: impl Fn(&str) -> Option<(u64, i64)>) {
        let closed = matches!(obs, Observation::Closed(_));
        match obs {
            Observation::Removed(p) => {
                self.tracked.remove(&p);
                self.gone.push(p);
            }
            Observation::Written(p) | Observation::Closed(p) | Observation::Polled(p, _, _) if stat(&p).is_none() => {}
            Observation::Written(p) | Observation::Closed(p) => {
                let (size, mtime) = stat(&p).unwrap_or_default();
                let t = self.tracked.entry(p).or_insert(Track {
                    size,
                    mtime_ns: mtime,
                    closed,
                    changed_ms: now_ms,
                    first_ms: now_ms,
                });
                t.closed = closed;
                t.size = size;
                t.mtime_ns = mtime;
                t.changed_ms = now_ms;
            }
            Observation::Polled(p, size, mtime) => {
                // Known to notify already: only note a change. New: nobody saw it being
                // written, so its stillness over the settle period decides.
                let t = self.tracked.entry(p).or_insert(Track {
                    size,
                    mtime_ns: mtime,
                    closed: true,
                    changed_ms: now_ms,
                    first_ms: now_ms,
                });
                if (t.size, t.mtime_ns) != (size, mtime) {
                    t.size = size;
                    t.mtime_ns = mtime;
                    t.changed_ms = now_ms;
                } else if !t.closed && now_ms - t.changed_ms >= self.lost_close_ms {
                    // Seen open, then untouched for a long time: the close event was lost
                    // (or the filesystem sends none). Its stillness decides from here.
                    t.closed = true;
                }
            }
        }
    }

    /// When the next file whose writer is done with it has been still for the settle
    /// period (its last change plus the period), if that is after `now_ms`: the engine
    /// looks again then, not at its next tick (a checkpoint is taken up to a tick sooner).
    /// A time already past is left to the ticks.
    pub fn next_quiet_at(&self, now_ms: i64) -> Option<i64> {
        self.tracked
            .values()
            .filter(|t| t.closed)
            .map(|t| t.changed_ms + self.settle_ms)
            .filter(|&at| at > now_ms)
            .min()
    }

    /// Check every settling file against the disk; return those complete and those gone.
    pub fn tick(&mut self, now_ms: i64, stat: impl Fn(&str) -> Option<(u64, i64)>) -> Settled {
        let mut out = Settled { gone: std::mem::take(&mut self.gone), ..Settled::default() };
        let mut done = Vec::new();
        let force = std::mem::take(&mut self.snapshot_all);
        for (path, t) in self.tracked.iter_mut() {
            let Some((size, mtime)) = stat(path) else {
                done.push(path.clone());
                out.gone.push(path.clone());
                continue;
            };
            let moved = (size, mtime) != (t.size, t.mtime_ns);
            if moved {
                t.size = size;
                t.mtime_ns = mtime;
                t.changed_ms = now_ms;
            }
            let quiet = now_ms - t.changed_ms >= self.settle_ms;
            let complete = if is_weights(path) {
                t.closed && quiet && !moved
            } else {
                // Not sooner than one period after this file's last snapshot, unless asked.
                let rested = self.taken.get(path).is_none_or(|at| now_ms - at >= self.snapshot_ms);
                let snapshot_due = now_ms - t.first_ms >= self.snapshot_ms;
                force || (rested && ((quiet && !moved) || snapshot_due))
            };
            if complete {
                done.push(path.clone());
                out.ready.push(Ready { path: path.clone(), size, mtime_ns: mtime });
            }
        }
        for p in done {
            self.tracked.remove(&p);
        }
        for r in &out.ready {
            if !is_weights(&r.path) {
                self.taken.insert(r.path.clone(), now_ms);
            }
        }
        let period = self.snapshot_ms;
        self.taken.retain(|_, at| now_ms - *at < period);
        out.ready.sort_by(|a, b| b.mtime_ns.cmp(&a.mtime_ns).then(a.path.cmp(&b.path)));
        out.gone.sort();
        out.gone.dedup();
        out
    }
}

/// (size, mtime_ns) of a regular file that is not a symlink.
pub fn stat_file(path: &Path) -> Option<(u64, i64)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.is_file().then(|| (meta.len(), mtime_ns(&meta)))
}

/// Is a folder (workspace-relative) skipped entirely by the router?
fn dir_ignored(router: &Router, rel: &str) -> bool {
    router.ignored(&format!("{rel}/_"))
}

/// Every file under `root` that routes somewhere, or would but is withheld as a secret:
/// (relative path, size, mtime_ns). Does not follow symlinks or enter ignored folders.
pub fn scan(root: &Path, router: &Router) -> Vec<(String, u64, i64)> {
    let mut out = Vec::new();
    // Unreadable folders are skipped; folders whose path is not a key, or that are
    // ignored, are not entered.
    let entries = walkdir::WalkDir::new(root).min_depth(1).into_iter().filter_entry(|e| {
        !e.file_type().is_dir() || relative_key(root, e.path()).is_some_and(|rel| !dir_ignored(router, &rel))
    });
    for entry in entries.filter_map(Result::ok) {
        if entry.file_type().is_file()
            && let Some(rel) = relative_key(root, entry.path())
            && !router.ignored(&rel)
            && let Ok(meta) = entry.metadata()
            && router.considered(&rel, meta.len())
        {
            out.push((rel, meta.len(), mtime_ns(&meta)));
        }
    }
    out.sort();
    out
}

/// Translate one notify event into observations (relative paths; folders renamed into
/// place are expanded into their files).
pub fn observations(root: &Path, router: &Router, event: &notify::Event) -> Vec<Observation> {
    let rel = |p: &PathBuf| relative_key(root, p).filter(|r| !router.ignored(r));
    let mut out = Vec::new();
    let closed_path = |p: &PathBuf, out: &mut Vec<Observation>| {
        if p.is_dir() {
            if relative_key(root, p).is_some_and(|r| !dir_ignored(router, &r)) {
                for (r, _, _) in scan_under(root, p, router) {
                    out.push(Observation::Closed(r));
                }
            }
        } else if let Some(r) = rel(p) {
            out.push(Observation::Closed(r));
        }
    };
    match &event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            for p in &event.paths {
                if let Some(r) = rel(p) {
                    out.push(Observation::Closed(r));
                }
            }
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            if let Some(from) = event.paths.first().and_then(rel) {
                out.push(Observation::Removed(from));
            }
            if let Some(to) = event.paths.get(1) {
                closed_path(to, &mut out);
            }
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            for p in &event.paths {
                closed_path(p, &mut out);
            }
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
            for p in &event.paths {
                if let Some(r) = rel(p) {
                    out.push(Observation::Removed(r));
                }
            }
        }
        EventKind::Modify(ModifyKind::Metadata(_)) | EventKind::Access(_) => {}
        EventKind::Create(CreateKind::Folder) => {
            // A new folder may already hold files whose events came before its watch
            // existed (cp -r, a save into a fresh folder): their stillness decides.
            for p in &event.paths {
                if relative_key(root, p).is_some_and(|r| !dir_ignored(router, &r)) {
                    for (r, size, mtime) in scan_under(root, p, router) {
                        out.push(Observation::Polled(r, size, mtime));
                    }
                }
            }
        }
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Any | EventKind::Other => {
            for p in &event.paths {
                if let Some(r) = rel(p)
                    && !p.is_dir()
                {
                    out.push(Observation::Written(r));
                }
            }
        }
    }
    out
}

fn scan_under(root: &Path, dir: &Path, router: &Router) -> Vec<(String, u64, i64)> {
    let Some(prefix) = relative_key(root, dir) else {
        return Vec::new();
    };
    scan(dir, router)
        .into_iter()
        .map(|(r, s, m)| (format!("{prefix}/{r}"), s, m))
        .filter(|(r, s, _)| !router.route(r, *s).is_empty())
        .collect()
}

/// Watch `root` recursively; observations arrive on `tx`. The returned watcher must be
/// kept alive. Fails where inotify is unavailable (the poll then does the work).
pub fn spawn_watcher(
    root: &Path,
    router: std::sync::Arc<Router>,
    tx: tokio::sync::mpsc::UnboundedSender<Vec<Observation>>,
) -> notify::Result<notify::RecommendedWatcher> {
    let root_owned = root.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res {
            let obs = observations(&root_owned, &router, &event);
            if !obs.is_empty() {
                let _ = tx.send(obs);
            }
        }
    })?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    struct Disk(RefCell<HashMap<String, (u64, i64)>>);
    impl Disk {
        fn set(&self, p: &str, size: u64, mtime: i64) {
            self.0.borrow_mut().insert(p.into(), (size, mtime));
        }
        fn stat(&self) -> impl Fn(&str) -> Option<(u64, i64)> + '_ {
            |p| self.0.borrow().get(p).copied()
        }
    }

    #[test]
    fn weights_wait_for_close_and_stillness() {
        let disk = Disk(RefCell::new(HashMap::new()));
        let mut s = Settler::new(1000, 60_000, 60_000);
        let p = "ck/step_10.pt";
        for (t, size) in [(0, 10), (900, 20), (1800, 30), (5000, 40)] {
            disk.set(p, size, t);
            s.observe(Observation::Written(p.into()), t, disk.stat());
            assert!(s.tick(t + 999, disk.stat()).ready.is_empty(), "open at {t}");
        }
        // Quiet for a long time but still open: not complete.
        assert!(s.tick(100_000, disk.stat()).ready.is_empty());
        s.observe(Observation::Closed(p.into()), 100_000, disk.stat());
        assert!(s.tick(100_500, disk.stat()).ready.is_empty());
        let ready = s.tick(101_000, disk.stat()).ready;
        assert_eq!(ready, vec![Ready { path: p.into(), size: 40, mtime_ns: 5000 }]);
        assert_eq!(s.watching(), 0);
    }

    /// The time to look again is when the first closed file has been still for the settle
    /// period: a tick then takes it; an open file gives none; a time past gives none.
    #[test]
    fn the_next_quiet_time_is_when_a_closed_file_settles() {
        let disk = Disk(RefCell::new(HashMap::new()));
        let mut s = Settler::new(1000, 60_000, 60_000);
        disk.set("open.pt", 1, 1);
        s.observe(Observation::Written("open.pt".into()), 0, disk.stat());
        assert_eq!(s.next_quiet_at(0), None, "an open file settles at no known time");
        disk.set("a.pt", 1, 1);
        disk.set("b.pt", 1, 1);
        s.observe(Observation::Closed("a.pt".into()), 300, disk.stat());
        s.observe(Observation::Closed("b.pt".into()), 200, disk.stat());
        assert_eq!(s.next_quiet_at(250), Some(1200));
        assert!(s.tick(1199, disk.stat()).ready.is_empty(), "not before");
        let at = s.next_quiet_at(1199).expect("b settles at 1200");
        assert_eq!(s.tick(at, disk.stat()).ready.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["b.pt"]);
        assert_eq!(s.next_quiet_at(at), Some(1300));
        assert_eq!(s.next_quiet_at(1300), None, "a time past is left to the ticks");
    }

    #[test]
    fn a_size_change_after_close_restarts_the_settle_period() {
        let disk = Disk(RefCell::new(HashMap::new()));
        let mut s = Settler::new(1000, 60_000, 60_000);
        disk.set("a.pt", 1, 1);
        s.observe(Observation::Closed("a.pt".into()), 0, disk.stat());
        disk.set("a.pt", 2, 2);
        assert!(s.tick(900, disk.stat()).ready.is_empty());
        assert!(s.tick(1500, disk.stat()).ready.is_empty());
        assert_eq!(s.tick(1900, disk.stat()).ready.len(), 1);
    }

    #[test]
    fn logs_are_taken_when_quiet_or_as_snapshots_while_growing() {
        let disk = Disk(RefCell::new(HashMap::new()));
        let mut s = Settler::new(1000, 10_000, 10_000);
        disk.set("train.log", 1, 0);
        s.observe(Observation::Written("train.log".into()), 0, disk.stat());
        let mut t = 0;
        let mut taken = 0;
        while t < 10_000 {
            t += 500;
            disk.set("train.log", t as u64, t);
            taken += s.tick(t, disk.stat()).ready.len();
        }
        assert_eq!(taken, 1, "one snapshot after 10 s of growth");
        // Quiet: taken after the settle period.
        disk.set("j.json", 3, 3);
        s.observe(Observation::Written("j.json".into()), 20_000, disk.stat());
        assert_eq!(s.tick(21_000, disk.stat()).ready.len(), 1);
    }

    #[test]
    fn a_growing_log_is_taken_once_per_snapshot_period_whatever_its_write_rate() {
        for every_ms in [2, 100] {
            let disk = Disk(RefCell::new(HashMap::new()));
            // Settle 1 s, snapshots every 3 s; ticks every 250 ms as the engine does.
            let mut s = Settler::new(1000, 60_000, 3000);
            let mut size = 200 << 20;
            disk.set("train.log", size, 0);
            s.observe(Observation::Polled("train.log".into(), size, 0), 0, disk.stat());
            let mut taken = Vec::new();
            for t in 1..=10_000i64 {
                if t % every_ms == 0 {
                    size += 80;
                    disk.set("train.log", size, t);
                    s.observe(Observation::Written("train.log".into()), t, disk.stat());
                }
                if t % 250 == 0 {
                    for r in s.tick(t, disk.stat()).ready {
                        taken.push((t, r.size));
                    }
                }
            }
            let times: Vec<i64> = taken.iter().map(|(t, _)| *t).collect();
            assert!(!times.is_empty() && times[0] <= 3000, "every {every_ms} ms: first snapshot at {times:?}");
            for w in times.windows(2) {
                assert!(w[1] - w[0] >= 3000 && w[1] - w[0] <= 3250, "every {every_ms} ms: {times:?}");
            }
            assert!(times.len() >= 3, "every {every_ms} ms: {times:?}");
            // The size taken is what the file had at that tick: the prefix to hash.
            assert!(taken.iter().all(|(_, size)| *size > 200 << 20));
        }
    }

    #[test]
    fn a_log_written_now_and_then_is_not_taken_more_often_than_the_period_unless_asked() {
        let disk = Disk(RefCell::new(HashMap::new()));
        let mut s = Settler::new(1000, 60_000, 10_000);
        let mut taken = 0;
        // A line every 2 s (quiet in between, longer than the settle period), for 20 s.
        for i in 0..10 {
            let t = i * 2000;
            disk.set("a.log", i as u64 + 1, t);
            s.observe(Observation::Written("a.log".into()), t, disk.stat());
            taken += s.tick(t + 1500, disk.stat()).ready.len();
        }
        assert_eq!(taken, 2, "quiet moments are taken at most once per period");
        // `s`: taken at once.
        disk.set("a.log", 99, 20_500);
        s.observe(Observation::Written("a.log".into()), 20_500, disk.stat());
        assert!(s.tick(20_600, disk.stat()).ready.is_empty());
        s.snapshot_now();
        assert_eq!(s.tick(20_700, disk.stat()).ready.len(), 1);
    }

    #[test]
    fn removed_and_vanished_files_are_reported_gone() {
        let disk = Disk(RefCell::new(HashMap::new()));
        let mut s = Settler::new(1000, 10_000, 10_000);
        disk.set("a.pt", 1, 1);
        disk.set("b.pt", 1, 1);
        s.observe(Observation::Written("a.pt".into()), 0, disk.stat());
        s.observe(Observation::Written("b.pt".into()), 0, disk.stat());
        s.observe(Observation::Removed("a.pt".into()), 1, disk.stat());
        disk.0.borrow_mut().remove("b.pt");
        let out = s.tick(2, disk.stat());
        assert_eq!(out.gone, vec!["a.pt".to_string(), "b.pt".to_string()]);
        assert_eq!(s.watching(), 0);
    }

    #[test]
    fn an_open_weights_file_untouched_for_long_settles_when_polled() {
        let disk = Disk(RefCell::new(HashMap::new()));
        let mut s = Settler::new(1000, 60_000, 60_000);
        disk.set("a.pt", 5, 5);
        s.observe(Observation::Written("a.pt".into()), 0, disk.stat());
        s.observe(Observation::Polled("a.pt".into(), 5, 5), 30_000, disk.stat());
        assert!(s.tick(31_000, disk.stat()).ready.is_empty(), "open and recent: wait");
        s.observe(Observation::Polled("a.pt".into(), 5, 5), 60_000, disk.stat());
        assert_eq!(s.tick(60_001, disk.stat()).ready.len(), 1);
    }

    #[test]
    fn polled_files_settle_without_events() {
        let disk = Disk(RefCell::new(HashMap::new()));
        let mut s = Settler::new(1000, 10_000, 10_000);
        disk.set("x.pt", 5, 5);
        s.observe(Observation::Polled("x.pt".into(), 5, 5), 0, disk.stat());
        assert!(s.tick(500, disk.stat()).ready.is_empty());
        assert_eq!(s.tick(1000, disk.stat()).ready.len(), 1);
    }

    #[test]
    fn scan_skips_ignored_folders_and_unrouted_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for p in ["logs/train.log", ".git/x.log", "ck/a.pt", "src/train.py", ".opsconsole/l.log"] {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
            std::fs::write(&f, "x").expect("write");
        }
        let router = Router::new(&super::super::config::SyncConfig::default()).expect("router");
        let found: Vec<String> = scan(root, &router).into_iter().map(|(p, _, _)| p).collect();
        assert_eq!(found, vec!["ck/a.pt", "logs/train.log"]);
    }
}
