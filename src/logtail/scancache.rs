//! `status` without reading the whole log again. The state of a read of the log
//! ([`LogScan`]: every metric and error count folded so far, the chart series, the
//! unfinished last line) is kept in `.opsconsole/logscan/`, with what identifies the file
//! it was read from, and the next call reads only what was appended since. The answers are
//! the same as a read from the start (tests compare the two over appends, truncation,
//! rotation, replacement and broken state files).
//!
//! What is checked before a kept state is used, in order:
//! - the state file is whole: its magic, format version and SHA-256 trailer (a torn write,
//!   a flipped byte or someone else's file is read from the start);
//! - it is the state of this log, read with this parser: the log's path, and a fingerprint
//!   of the program version, the user's patterns, `chart_points` and `max_line_bytes`;
//! - it is the same file: device and inode (a rotated or replaced log has another one);
//! - nothing was cut: the log is at least as long as what was read;
//! - nothing was rewritten: a log whose size is the same as when it was read but whose
//!   mtime or ctime moved was written in place (a same-size replacement) and is read
//!   again; and the first 64 KiB and the last 64 KiB before the end of what was read hash
//!   as they did.
//!
//! A log that only grows passes all of these and only its new bytes are read. Not seen: a
//! log that grew *and* had bytes changed in place between its first and last 64 KiB of
//! what was read before (logs are appended, not edited; `touch`, `cp` over it, `>` and
//! rotation are all caught above).
//!
//! The state is a cache: it is written to a temporary file and renamed into place, and any
//! failure (a read-only workspace, a full disk) only means the next call reads from the
//! start again. At most [`KEEP`] states are kept (one per log path, newest first).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use sha2::{Digest, Sha256};

use super::backfill::{BackfillResult, LogScan};
use super::health::Health;
use super::metrics::MetricsState;
use super::parse::MetricParser;

/// The folder under `.opsconsole/` holding the states.
pub const DIR: &str = "logscan";
/// States kept (the newest by modification time); older ones are removed on write.
pub const KEEP: usize = 32;
const MAGIC: &[u8; 8] = b"OPSLSCAN";
const VERSION: u32 = 1;
/// Bytes at the start, and before the end of what was read, that must hash as they did.
const WINDOW: usize = 64 * 1024;

/// `<workspace>/.opsconsole/logscan`.
pub fn cache_dir(workspace: &Path) -> PathBuf {
    workspace.join(".opsconsole").join(DIR)
}

/// Where the read started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanFrom {
    /// From the start, because of this.
    Start(Fresh),
    /// From the end of the kept state: the log had not changed.
    Unchanged,
    /// From this offset (the end of the kept state): only appended bytes were read.
    Resumed(u64),
}

/// Why a read started from the beginning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    /// No cache folder was given.
    NoCache,
    /// No state kept for this log yet (or it could not be read).
    NoState,
    /// The state file is not one (torn, corrupt, another format or version).
    Corrupt,
    /// The state is of another log, or was read with other settings or another version.
    Foreign,
    /// The log is another file now (device or inode differ: rotated or replaced).
    OtherFile,
    /// The log is shorter than what was read (truncated).
    Truncated,
    /// The log was written in place (same size, times moved) or its start or the bytes
    /// before the old end differ.
    Rewritten,
}

/// Identity of the log file when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl FileKey {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime_ns: m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec()),
            ctime_ns: m.ctime().saturating_mul(1_000_000_000).saturating_add(m.ctime_nsec()),
        }
    }
}

/// A kept state, decoded.
struct Saved {
    key: FileKey,
    offset: u64,
    head_hash: [u8; 32],
    tail_hash: [u8; 32],
    lines: u64,
    carry: Vec<u8>,
    carry_len: u64,
    metrics: MetricsState,
    health: Health,
}

/// Read the log at `path` up to `end` and fold it, as [`super::backfill::backfill`] does,
/// starting from the state kept in `cache` (when there is one and it still describes the
/// file) and keeping the new state there. Errors are the log's own (it cannot be opened or
/// read); the cache never makes this fail.
pub fn scan(
    cache: Option<&Path>,
    path: &Path,
    end: u64,
    parser: &MetricParser,
    patterns: &[String],
    chart_points: usize,
    cap: usize,
) -> io::Result<(BackfillResult, ScanFrom)> {
    let mut file = crate::util::open_regular(path)?;
    let key = FileKey::of(&file.metadata()?);
    let fingerprint = fingerprint(path, patterns, chart_points, cap);
    let state_file = cache.map(|dir| dir.join(state_name(path)));
    let loaded = match &state_file {
        None => Err(Fresh::NoCache),
        Some(f) => load(f, &fingerprint, chart_points),
    };
    let resumed = loaded.and_then(|saved| usable(&file, &key, end, saved));
    let never = AtomicBool::new(false);
    let (mut scan, from, mut tap, saved_at) = match resumed {
        Ok((saved, head, tail)) => {
            let mut scan = LogScan::new(parser, chart_points, cap);
            scan.folder.metrics = saved.metrics;
            scan.folder.health = saved.health;
            scan.folder.lines = saved.lines;
            scan.bytes = saved.offset;
            scan.carry = saved.carry;
            scan.carry_len = saved.carry_len;
            let from = if saved.offset == end { ScanFrom::Unchanged } else { ScanFrom::Resumed(saved.offset) };
            (scan, from, Tap { head, tail }, Some((saved.key, saved.offset)))
        }
        Err(why) => (LogScan::new(parser, chart_points, cap), ScanFrom::Start(why), Tap::default(), None),
    };
    let start = scan.bytes();
    if end > start {
        file.seek(SeekFrom::Start(start))?;
        scan.feed_from(TapReader { inner: (&file).take(end - start), tap: &mut tap }, &never, |_| {})?;
    }
    let result = scan.clone().finish(false);
    if let Some(state_file) = state_file
        && saved_at != Some((key, scan.bytes()))
    {
        let body = encode(&fingerprint, &key, &scan, &tap);
        if let Err(e) = write_atomic(&state_file, &body) {
            tracing::debug!("log state {}: not kept: {e}", state_file.display());
        }
    }
    Ok((result, from))
}

/// The kept state fits the file as it is now: returns it with the bytes of its two
/// windows (read again from the file and checked).
fn usable(file: &File, now: &FileKey, end: u64, saved: Saved) -> Result<(Saved, Vec<u8>, Vec<u8>), Fresh> {
    if (now.dev, now.ino) != (saved.key.dev, saved.key.ino) {
        return Err(Fresh::OtherFile);
    }
    if now.size < saved.offset || end < saved.offset {
        return Err(Fresh::Truncated);
    }
    if now.size == saved.key.size && now != &saved.key {
        return Err(Fresh::Rewritten);
    }
    let (head, tail) = windows(file, saved.offset).map_err(|_| Fresh::Rewritten)?;
    if sha(&head) != saved.head_hash || sha(&tail) != saved.tail_hash {
        return Err(Fresh::Rewritten);
    }
    Ok((saved, head, tail))
}

/// The first bytes of the file and the last bytes before `offset` (each at most
/// [`WINDOW`]).
fn windows(file: &File, offset: u64) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let n = (WINDOW as u64).min(offset) as usize;
    let mut head = vec![0u8; n];
    file.read_exact_at(&mut head, 0)?;
    let mut tail = vec![0u8; n];
    file.read_exact_at(&mut tail, offset - n as u64)?;
    Ok((head, tail))
}

/// The first and the last [`WINDOW`] bytes of what was read.
#[derive(Debug, Default)]
struct Tap {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Tap {
    fn saw(&mut self, bytes: &[u8]) {
        if self.head.len() < WINDOW {
            let take = (WINDOW - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
        }
        if bytes.len() >= WINDOW {
            self.tail.clear();
            self.tail.extend_from_slice(&bytes[bytes.len() - WINDOW..]);
        } else {
            let drop = (self.tail.len() + bytes.len()).saturating_sub(WINDOW);
            self.tail.drain(..drop);
            self.tail.extend_from_slice(bytes);
        }
    }
}

struct TapReader<'t, R> {
    inner: R,
    tap: &'t mut Tap,
}

impl<R: Read> Read for TapReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tap.saw(&buf[..n]);
        Ok(n)
    }
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The state's file name: a hash of the log's path.
fn state_name(path: &Path) -> String {
    let h = sha(path.as_os_str().as_bytes());
    let hex: String = h[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.state")
}

/// What decides how lines are folded: a state read with anything else is not used.
fn fingerprint(path: &Path, patterns: &[String], chart_points: usize, cap: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update([0]);
    h.update(path.as_os_str().as_bytes());
    h.update([0]);
    for p in patterns {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.update((chart_points as u64).to_le_bytes());
    h.update((cap as u64).to_le_bytes());
    h.finalize().into()
}

fn encode(fingerprint: &[u8; 32], key: &FileKey, scan: &LogScan<'_>, tap: &Tap) -> Vec<u8> {
    let mut w = Enc::default();
    w.raw(MAGIC);
    w.u32(VERSION);
    w.raw(fingerprint);
    for v in [key.dev, key.ino, key.size] {
        w.u64(v);
    }
    w.i64(key.mtime_ns);
    w.i64(key.ctime_ns);
    w.u64(scan.bytes);
    w.raw(&sha(&tap.head));
    w.raw(&sha(&tap.tail));
    w.u64(scan.folder.lines);
    w.bytes(&scan.carry);
    w.u64(scan.carry_len);
    scan.folder.metrics.save(&mut w);
    scan.folder.health.save(&mut w);
    let trailer = sha(&w.0);
    w.raw(&trailer);
    w.0
}

/// The state in `file`, if it is whole and was read the way this read would be.
fn load(file: &Path, fingerprint: &[u8; 32], chart_points: usize) -> Result<Saved, Fresh> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(_) => return Err(Fresh::NoState),
    };
    if bytes.len() < MAGIC.len() + 4 + 32 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(Fresh::Corrupt);
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 32);
    if sha(body) != trailer {
        return Err(Fresh::Corrupt);
    }
    let mut r = Dec::new(&body[MAGIC.len()..]);
    if r.u32() != Some(VERSION) {
        return Err(Fresh::Corrupt);
    }
    if r.array32().as_ref() != Some(fingerprint) {
        return Err(Fresh::Foreign);
    }
    let decoded = (|| {
        let key = FileKey { dev: r.u64()?, ino: r.u64()?, size: r.u64()?, mtime_ns: r.i64()?, ctime_ns: r.i64()? };
        let offset = r.u64()?;
        let head_hash = r.array32()?;
        let tail_hash = r.array32()?;
        let lines = r.u64()?;
        let carry = r.bytes()?.to_vec();
        let carry_len = r.u64()?;
        let metrics = MetricsState::load(&mut r, chart_points)?;
        let health = Health::load(&mut r)?;
        r.end()?;
        Some(Saved { key, offset, head_hash, tail_hash, lines, carry, carry_len, metrics, health })
    })();
    decoded.ok_or(Fresh::Corrupt)
}

/// Write `body` to a temporary file beside `path` and rename it over `path`, then keep
/// only the newest [`KEEP`] states in the folder.
fn write_atomic(path: &Path, body: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("no folder"))?;
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), fastrand::u64(..)));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(body)?;
        f.flush()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    prune(dir);
    Ok(())
}

/// Remove all but the newest [`KEEP`] state files (and temporary files left by a killed
/// writer an hour ago or more).
fn prune(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let now = std::time::SystemTime::now();
    let mut states = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(m) = e.metadata() else { continue };
        let mtime = m.modified().unwrap_or(std::time::UNIX_EPOCH);
        if name.ends_with(".state") {
            states.push((mtime, e.path()));
        } else if name.ends_with(".tmp") && now.duration_since(mtime).is_ok_and(|age| age.as_secs() >= 3600) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if states.len() > KEEP {
        states.sort_by_key(|s| std::cmp::Reverse(s.0));
        for (_, p) in states.drain(KEEP..) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A little-endian writer for the state file.
#[derive(Debug, Default)]
pub(super) struct Enc(Vec<u8>);

impl Enc {
    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    pub(super) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(super) fn u32(&mut self, v: u32) {
        self.raw(&v.to_le_bytes());
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.raw(&v.to_le_bytes());
    }
    pub(super) fn i64(&mut self, v: i64) {
        self.raw(&v.to_le_bytes());
    }
    /// Bit for bit: NaN and infinities come back as they were.
    pub(super) fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.raw(b);
    }
    pub(super) fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
            None => self.u8(0),
        }
    }
    pub(super) fn opt_f64(&mut self, v: Option<f64>) {
        self.opt_u64(v.map(f64::to_bits));
    }
}

/// The reader matching [`Enc`]: every read is bounds-checked (`None` past the end).
#[derive(Debug)]
pub(super) struct Dec<'a>(&'a [u8]);

impl<'a> Dec<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self(b)
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn array32(&mut self) -> Option<[u8; 32]> {
        self.take(32)?.try_into().ok()
    }
    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
    pub(super) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub(super) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(super) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(super) fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(super) fn f64(&mut self) -> Option<f64> {
        Some(f64::from_bits(self.u64()?))
    }
    pub(super) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n)
    }
    /// A count of items of at least `item_bytes` each: never more than the bytes left hold.
    pub(super) fn count(&mut self, item_bytes: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n.checked_mul(item_bytes.max(1))? <= self.0.len()).then_some(n)
    }
    pub(super) fn opt_u64(&mut self) -> Option<Option<u64>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.u64()?)),
            _ => None,
        }
    }
    pub(super) fn opt_f64(&mut self) -> Option<Option<f64>> {
        Some(self.opt_u64()?.map(f64::from_bits))
    }
}
