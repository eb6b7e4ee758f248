//! Follow a log by name with `tail -F` semantics: rotation by rename + new file,
//! copytruncate, a file that does not exist yet, deletion and re-creation.
//!
//! [`Tailer`] is the synchronous core (one `poll` reads what is new); [`spawn_follow`]
//! runs it on a thread woken by notify events on the log's folder, with a slow poll as
//! a fallback for mounts that send no events.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::lines::{LineSplitter, LogLine};

/// Where to start reading a file the first time it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
    /// An offset; past the end means 0.
    Offset(u64),
    /// An offset in one particular file (device, inode), as read by
    /// [`super::backread::read_last_lines`]; if the name now holds another file (it was
    /// rotated in between), that file is new and is read from 0.
    OffsetIn {
        offset: u64,
        file_id: (u64, u64),
    },
}

/// Something that happened to the followed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailNote {
    /// The file was opened (first time, or after it appeared).
    Opened,
    /// The file shrank below what was read: truncated (copytruncate); reading restarts at 0.
    Truncated,
    /// The name now points at a new file (rotation or re-creation); the old file was
    /// read to its end first.
    Rotated,
    /// The file was deleted; waiting for it to appear again.
    Deleted,
    /// The file does not exist (yet).
    Missing,
}

/// What one poll found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TailBatch {
    pub lines: Vec<LogLine>,
    pub notes: Vec<TailNote>,
    /// The unfinished last line as it looks now (a progress bar), if any.
    pub partial: Option<String>,
    /// Size of the followed file, if open.
    pub size_bytes: Option<u64>,
    /// More bytes are waiting (the per-poll read budget was used up).
    pub more: bool,
}

impl TailBatch {
    pub fn is_quiet(&self) -> bool {
        self.lines.is_empty() && self.notes.is_empty()
    }
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    dev: u64,
    ino: u64,
    offset: u64,
}

/// The synchronous follower.
#[derive(Debug)]
pub struct Tailer {
    path: PathBuf,
    open: Option<OpenFile>,
    splitter: LineSplitter,
    start: Option<StartAt>,
    buf: Vec<u8>,
    budget: u64,
    missing_reported: bool,
    /// What the path named at the last poll: a file's (device, inode), or `Some(None)`
    /// for nothing; `None` when the poll could not tell (it failed before the `stat`).
    path_file: Option<Option<(u64, u64)>>,
}

const READ_BUF: usize = 256 * 1024;
/// How often to try again to watch a folder that could not be watched.
const WATCH_RETRY: Duration = Duration::from_secs(10);

impl Tailer {
    /// Follow `path`, lines cut at `cap` bytes; `start` applies to the first file
    /// opened (a file that appears later is read from its beginning).
    pub fn new(path: impl Into<PathBuf>, start: StartAt, cap: usize) -> Self {
        Self {
            path: path.into(),
            open: None,
            splitter: LineSplitter::new(cap),
            start: Some(start),
            buf: vec![0; READ_BUF],
            budget: 64 << 20,
            missing_reported: false,
            path_file: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the path named at the last [`Tailer::poll`]: a file's (device, inode), or
    /// `Some(None)` for nothing; `None` when that poll failed first (or none ran yet). A
    /// caller that asks about the file then needs no `stat` of its own.
    pub fn path_file(&self) -> Option<Option<(u64, u64)>> {
        self.path_file
    }

    /// Bytes read from the current file so far.
    pub fn offset(&self) -> Option<u64> {
        self.open.as_ref().map(|o| o.offset)
    }

    /// Read what is new. Errors other than "not found" (permissions, I/O) are returned;
    /// the tailer stays usable and the next poll tries again.
    pub fn poll(&mut self) -> io::Result<TailBatch> {
        let mut batch = TailBatch::default();
        let mut budget = self.budget;
        self.path_file = None;
        if self.open.is_some() {
            self.drain(&mut batch, &mut budget)?;
        }
        match std::fs::metadata(&self.path) {
            Ok(meta) => {
                self.path_file = Some(Some((meta.dev(), meta.ino())));
                let same = self.open.as_ref().is_some_and(|o| o.dev == meta.dev() && o.ino == meta.ino());
                if !same {
                    if self.open.is_some() {
                        // Finish the old file before switching: no line lost.
                        let mut unlimited = u64::MAX;
                        self.drain(&mut batch, &mut unlimited)?;
                        self.flush_partial(&mut batch);
                        self.open = None;
                        batch.notes.push(TailNote::Rotated);
                    }
                    self.open_current(&mut batch)?;
                    if self.open.is_some() {
                        self.drain(&mut batch, &mut budget)?;
                    }
                }
                // The size the path's `stat` just gave, for the file read (read to there
                // unless the budget ran out, or beyond if it grew in between).
                if let Some(o) = self.open.as_ref().filter(|o| o.dev == meta.dev() && o.ino == meta.ino()) {
                    batch.size_bytes = Some(meta.len().max(o.offset));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.path_file = Some(None);
                if let Some(o) = &self.open {
                    // Renamed away (a new file will come) or deleted. A deleted file is
                    // closed at once so its disk space is freed.
                    if o.file.metadata()?.nlink() == 0 {
                        let mut unlimited = u64::MAX;
                        self.drain(&mut batch, &mut unlimited)?;
                        self.flush_partial(&mut batch);
                        self.open = None;
                        batch.notes.push(TailNote::Deleted);
                    }
                } else {
                    // A file that appears later is read from its beginning.
                    self.start = None;
                    if !self.missing_reported {
                        self.missing_reported = true;
                        batch.notes.push(TailNote::Missing);
                    }
                }
            }
            Err(e) => return Err(e),
        }
        batch.partial = self.splitter.partial();
        if batch.size_bytes.is_none()
            && let Some(o) = &self.open
        {
            batch.size_bytes = Some(o.file.metadata()?.len());
        }
        batch.more = budget == 0;
        Ok(batch)
    }

    fn open_current(&mut self, batch: &mut TailBatch) -> io::Result<()> {
        let file = match crate::util::open_regular(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let mut open = OpenFile { file, dev: meta.dev(), ino: meta.ino(), offset: 0 };
        let start = match self.start.take().unwrap_or(StartAt::Beginning) {
            StartAt::Beginning => 0,
            StartAt::End => meta.len(),
            StartAt::Offset(o) if o <= meta.len() => o,
            StartAt::Offset(_) => 0,
            StartAt::OffsetIn { offset, file_id } if file_id == (open.dev, open.ino) && offset <= meta.len() => offset,
            StartAt::OffsetIn { .. } => 0,
        };
        if start > 0 {
            open.file.seek(SeekFrom::Start(start))?;
            open.offset = start;
        }
        self.open = Some(open);
        self.splitter.reset();
        self.missing_reported = false;
        batch.notes.push(TailNote::Opened);
        Ok(())
    }

    fn flush_partial(&mut self, batch: &mut TailBatch) {
        if let Some(line) = self.splitter.finish() {
            batch.lines.push(line);
        }
    }

    /// Read the open file to its end (or until the budget is spent).
    fn drain(&mut self, batch: &mut TailBatch, budget: &mut u64) -> io::Result<()> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        let len = open.file.metadata()?.len();
        if len < open.offset {
            // copytruncate: the old content was read; start again at 0.
            if let Some(line) = self.splitter.finish() {
                batch.lines.push(line);
            }
            open.file.seek(SeekFrom::Start(0))?;
            open.offset = 0;
            batch.notes.push(TailNote::Truncated);
        }
        while *budget > 0 {
            let want = (self.buf.len() as u64).min(*budget) as usize;
            let n = match open.file.read(&mut self.buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            open.offset += n as u64;
            *budget -= n as u64;
            self.splitter.push(&self.buf[..n], &mut batch.lines);
            if n < want {
                // A regular file gives less than asked only at its end: no second read
                // to be told so (anything written since is read at the next poll).
                break;
            }
        }
        Ok(())
    }
}

/// Options of the follow thread.
#[derive(Debug, Clone, Copy)]
pub struct FollowOptions {
    /// Slow poll when no notification comes.
    pub poll_interval: Duration,
    /// At most one poll per this interval (coalesces bursts of notifications).
    pub min_interval: Duration,
    /// While the log keeps growing, poll at these points (a little before each frame's
    /// tick) instead of every `min_interval`: one read per frame, just in time for it.
    pub hot_at: Option<crate::util::Lead>,
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self { poll_interval: Duration::from_secs(2), min_interval: Duration::from_millis(50), hot_at: None }
    }
}

/// A running follow thread. Dropping it stops the thread.
#[derive(Debug)]
pub struct FollowHandle {
    stop: Arc<AtomicBool>,
    wake: SyncSender<()>,
    thread: Option<JoinHandle<()>>,
}

impl FollowHandle {
    /// A waker other threads may use to make the follower poll now.
    pub fn waker(&self) -> Waker {
        Waker(self.wake.clone())
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.try_send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FollowHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Makes a follow loop poll soon.
#[derive(Debug, Clone)]
pub struct Waker(SyncSender<()>);

impl Waker {
    pub fn wake(&self) {
        match self.0.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

/// Run `step` on a thread each time the log's folder changes (and at least every
/// `poll_interval`). `step` gets the tailer and returns `false` to stop.
pub fn spawn_follow<F>(mut tailer: Tailer, opts: FollowOptions, mut step: F) -> io::Result<FollowHandle>
where
    F: FnMut(&mut Tailer, &Waker) -> bool + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_thread = stop.clone();
    let waker = Waker(tx.clone());
    let thread = std::thread::Builder::new().name("logtail-follow".into()).spawn(move || {
        let folder = tailer.path().parent().map(Path::to_path_buf).unwrap_or_default();
        let mut watcher: Option<notify::RecommendedWatcher> = None;
        let mut watching = false;
        let mut last_poll: Option<Instant> = None;
        let mut last_watch_try: Option<Instant> = None;
        // Hot: the last poll read something. While the log keeps growing the thread polls
        // every `min_interval` (or at the `hot_at` points, once a frame) with the folder
        // unwatched, so a trainer writing twenty times a second does not wake the
        // notification thread twenty times a second.
        // The first poll that reads nothing watches the folder again, then polls once
        // more at once, so nothing written in between waits for the slow poll.
        let mut hot = false;
        loop {
            if stop_thread.load(Ordering::SeqCst) {
                break;
            }
            if !hot && watcher.is_none() && last_watch_try.is_none_or(|t| t.elapsed() > WATCH_RETRY) {
                last_watch_try = Some(Instant::now());
                watcher = watch_folder(&folder, waker.clone());
                watching = watcher.is_some();
            }
            if let Some(t) = last_poll {
                let since = t.elapsed();
                if since < opts.min_interval {
                    std::thread::sleep(opts.min_interval - since);
                }
            }
            last_poll = Some(Instant::now());
            let before = tailer.offset();
            if !step(&mut tailer, &waker) {
                break;
            }
            let moved = tailer.offset() != before;
            if moved && !hot {
                hot = true;
                if let Some(w) = watcher.as_mut().filter(|_| watching) {
                    watching = !unwatch_folder(w, &folder);
                }
            } else if !moved && hot {
                hot = false;
                if let Some(w) = watcher.as_mut().filter(|_| !watching) {
                    watching = rewatch_folder(w, &folder);
                }
                continue;
            }
            let wait = match (hot, opts.hot_at) {
                (true, Some(at)) => {
                    let now = Instant::now();
                    at.next_after(now, opts.min_interval).saturating_duration_since(now)
                }
                (true, None) => opts.min_interval,
                (false, _) => opts.poll_interval,
            };
            match rx.recv_timeout(wait) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    })?;
    Ok(FollowHandle { stop, wake: tx, thread: Some(thread) })
}

fn folder_or_dot(folder: &Path) -> &Path {
    if folder.as_os_str().is_empty() { Path::new(".") } else { folder }
}

/// Stops notifications for the folder; whether it did.
fn unwatch_folder(w: &mut notify::RecommendedWatcher, folder: &Path) -> bool {
    use notify::Watcher;
    w.unwatch(folder_or_dot(folder)).is_ok()
}

/// Notifications for the folder again; whether they are on.
fn rewatch_folder(w: &mut notify::RecommendedWatcher, folder: &Path) -> bool {
    use notify::Watcher;
    match w.watch(folder_or_dot(folder), notify::RecursiveMode::NonRecursive) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("logtail: no notifications for {}: {e}; polling", folder.display());
            false
        }
    }
}

fn watch_folder(folder: &Path, waker: Waker) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let folder = folder_or_dot(folder);
    if !folder.is_dir() {
        return None;
    }
    let mut w = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| waker.wake()).ok()?;
    match w.watch(folder, notify::RecursiveMode::NonRecursive) {
        Ok(()) => Some(w),
        Err(e) => {
            tracing::debug!("logtail: no notifications for {}: {e}; polling", folder.display());
            None
        }
    }
}
