//! The ledger: every tracked file, its hash, and its state on each level, in SQLite at
//! `<workspace>/.opsconsole/ledger.sqlite` (WAL, `synchronous=FULL`). Every change is one
//! transaction, so a `kill -9` at any moment leaves a ledger that opens, and an engine that
//! resumes from what it says.
//!
//! Paths are workspace-relative with `/` separators (see [`super::routing::relative_key`]).
//! Times are unix milliseconds, passed in by the caller.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// Schema steps; `PRAGMA user_version` says how many have been applied.
const MIGRATIONS: &[&str] = &[
    // 1: files, per-level uploads, level passes, events.
    "CREATE TABLE files(
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE uploads(
        path TEXT NOT NULL REFERENCES files(path) ON DELETE CASCADE,
        level TEXT NOT NULL,
        remote TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending','uploading','confirmed','failed')),
        sha256 TEXT NOT NULL,
        bytes_done INTEGER NOT NULL DEFAULT 0,
        bytes_total INTEGER NOT NULL,
        remote_id TEXT,
        remote_checksum TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        permanent INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL DEFAULT 0,
        session TEXT,
        queued_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        confirmed_ms INTEGER,
        PRIMARY KEY (path, level)
     ) WITHOUT ROWID;
     CREATE INDEX uploads_by_state ON uploads(level, state);
     CREATE TABLE levels(
        level TEXT PRIMARY KEY,
        last_success_ms INTEGER,
        last_pass_ms INTEGER
     ) WITHOUT ROWID;
     CREATE TABLE events(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        path TEXT,
        level TEXT,
        detail TEXT NOT NULL
     );",
    // 2: requests from a console to the daemon running on the workspace (sync now, retry,
    // cancel), taken by the engine within a tick.
    "CREATE TABLE requests(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        level TEXT,
        path TEXT,
        at_ms INTEGER NOT NULL
     );",
    // 3: the MD5 of each file's version (hashed in the same read as its SHA-256; Drive
    // confirms a copy by it), and when a file was last confirmed on each level ("last ok"
    // means a file was stored, not that a pass found nothing to do).
    "ALTER TABLE files ADD COLUMN md5 TEXT;
     ALTER TABLE levels ADD COLUMN last_confirmed_ms INTEGER;",
    // 4: files withheld from every level as secrets (by name or by content), with the
    // size and mtime they were judged at.
    "CREATE TABLE withheld(
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        kind TEXT NOT NULL,
        why TEXT NOT NULL,
        since_ms INTEGER NOT NULL
     ) WITHOUT ROWID;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Keep at most this many events; older ones are trimmed on insert.
const MAX_EVENTS: i64 = 5000;

/// The statement behind [`Ledger::entries_where`]: one text for every level and filter,
/// so one prepared statement serves them all (with the planner's stability guarantee on,
/// see [`Ledger::open_at`], new values for its parameters do not compile it again).
fn entries_where_sql() -> String {
    format!(
        "SELECT {ENTRY_COLUMNS} FROM uploads u JOIN files f ON f.path = u.path
         WHERE (?1 IS NULL OR u.level = ?1)
           AND (?2 = 0 OR u.state != 'confirmed')
           AND (?3 = 0 OR u.state IN ('uploading', 'failed'))
           AND (?5 = 0 OR u.state = 'confirmed')
         ORDER BY u.level, CASE u.state WHEN 'uploading' THEN 0 WHEN 'pending' THEN 1
             WHEN 'failed' THEN 2 ELSE 3 END, f.mtime_ns DESC, u.path
         LIMIT ?4"
    )
}

/// Which rows [`Ledger::entries_where`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFilter {
    All,
    /// Everything not yet confirmed: pending, uploading, failed.
    Unfinished,
    /// Uploads in flight and failed ones: what the Uploads panel reports per level.
    UploadingOrFailed,
    /// Confirmed copies only: what a pass verifies on the remote.
    Confirmed,
}

/// A ledger failure, in words, naming the ledger file.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite refused. `context` says where ("ledger <file>"); `err` keeps SQLite's own
    /// error kind (disk full, busy, corrupt) for callers that act on it.
    #[error("{context}: {err}")]
    Sqlite { context: String, err: rusqlite::Error },
    /// Anything else: a folder that cannot be created, a schema from a newer build, a
    /// stopped ledger task.
    #[error("{0}")]
    Other(String),
}

impl LedgerError {
    /// SQLite's error code, when SQLite is what refused (e.g. `DiskFull`, `DatabaseBusy`).
    pub fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            LedgerError::Sqlite { err, .. } => err.sqlite_error_code(),
            LedgerError::Other(_) => None,
        }
    }

    /// The same error for a second owner; SQLite's error is not `Clone`, so its kind is kept
    /// only where it is a SQLite failure code.
    pub fn duplicate(&self) -> LedgerError {
        match self {
            LedgerError::Sqlite { context, err: rusqlite::Error::SqliteFailure(e, msg) } => {
                LedgerError::Sqlite { context: context.clone(), err: rusqlite::Error::SqliteFailure(*e, msg.clone()) }
            }
            other => LedgerError::Other(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for LedgerError {
    fn from(err: rusqlite::Error) -> Self {
        LedgerError::Sqlite { context: "ledger".into(), err }
    }
}

type Result<T> = std::result::Result<T, LedgerError>;

/// Where a file stands on one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    Pending,
    Uploading,
    Confirmed,
    Failed,
}

impl fmt::Display for UploadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl UploadState {
    /// The word stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Pending => "pending",
            UploadState::Uploading => "uploading",
            UploadState::Confirmed => "confirmed",
            UploadState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "uploading" => UploadState::Uploading,
            "confirmed" => UploadState::Confirmed,
            "failed" => UploadState::Failed,
            _ => UploadState::Pending,
        }
    }
}

/// A tracked file as last hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRecord {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub sha256: String,
    /// Hex MD5 of the same bytes (absent for files hashed before schema 3).
    pub md5: Option<String>,
}

/// One file on one level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    pub path: String,
    pub level: String,
    pub remote: String,
    pub state: UploadState,
    /// The version this row is about (the file's hash when it was queued).
    pub sha256: String,
    /// Hex MD5 of that version, when known (the file's MD5 while it still has this SHA-256).
    pub md5: Option<String>,
    pub mtime_ns: i64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub remote_id: Option<String>,
    pub remote_checksum: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub permanent: bool,
    pub next_attempt_ms: i64,
    /// Remote-specific resumable-session data.
    pub session: Option<String>,
    pub queued_ms: i64,
    pub updated_ms: i64,
    pub confirmed_ms: Option<i64>,
}

/// One line of the event history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEvent {
    pub at_ms: i64,
    pub kind: String,
    pub path: Option<String>,
    pub level: Option<String>,
    pub detail: String,
}

/// Counts for one level, read from the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LevelCounts {
    pub pending_files: u64,
    pub pending_bytes: u64,
    pub failed: u64,
    pub confirmed: u64,
    /// The last pass that left nothing pending or failed (what "overdue" is measured from).
    pub last_success_ms: Option<i64>,
    pub last_pass_ms: Option<i64>,
    /// When a file was last confirmed (stored and verified) on this level: "last ok".
    pub last_confirmed_ms: Option<i64>,
    /// When the oldest still-pending row was queued.
    pub oldest_pending_ms: Option<i64>,
}

/// What [`Ledger::track`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackOutcome {
    /// Levels the file was (re)queued for.
    pub queued: Vec<String>,
    /// The file was known with other contents.
    pub changed: bool,
}

/// A file withheld from every level as a secret. `why` is words, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithheldRecord {
    pub path: String,
    pub kind: String,
    pub why: String,
    pub since_ms: i64,
}

/// A request left for the engine: (kind, level, path).
pub type Request = (String, Option<String>, Option<String>);

/// The workspace ledger.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

/// `<workspace>/.opsconsole/ledger.sqlite`.
pub fn ledger_path(workspace: &Path) -> PathBuf {
    workspace.join(".opsconsole").join("ledger.sqlite")
}

const ENTRY_COLUMNS: &str = "u.path, u.level, u.remote, u.state, u.sha256, f.mtime_ns, u.bytes_done,
    u.bytes_total, u.remote_id, u.remote_checksum, u.attempts, u.last_error, u.permanent,
    u.next_attempt_ms, u.session, u.queued_ms, u.updated_ms, u.confirmed_ms,
    CASE WHEN f.sha256 = u.sha256 THEN f.md5 END";

fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerEntry> {
    Ok(LedgerEntry {
        path: r.get(0)?,
        level: r.get(1)?,
        remote: r.get(2)?,
        state: UploadState::parse(&r.get::<_, String>(3)?),
        sha256: r.get(4)?,
        mtime_ns: r.get(5)?,
        bytes_done: r.get::<_, i64>(6)?.max(0) as u64,
        bytes_total: r.get::<_, i64>(7)?.max(0) as u64,
        remote_id: r.get(8)?,
        remote_checksum: r.get(9)?,
        attempts: r.get::<_, i64>(10)?.clamp(0, u32::MAX as i64) as u32,
        last_error: r.get(11)?,
        permanent: r.get::<_, i64>(12)? != 0,
        next_attempt_ms: r.get(13)?,
        session: r.get(14)?,
        queued_ms: r.get(15)?,
        updated_ms: r.get(16)?,
        confirmed_ms: r.get(17)?,
        md5: r.get(18)?,
    })
}

/// How long [`Ledger::snapshot_at`] waits for another program to let go of the ledger
/// file before it gives up for this time.
pub const SNAPSHOT_PATIENCE: Duration = Duration::from_secs(2);

/// Read-only copies of a ledger are taken one at a time in this process (see
/// [`Ledger::snapshot_at`]).
static SNAPSHOTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One try at copying the ledger file into memory without writing anything: the copy, or
/// `None` when another connection holds the file. The connection that tried is closed
/// before this returns, so a try that failed keeps no lock, and it never waits while it
/// holds one (no busy handler).
fn copy_once(path: &Path) -> rusqlite::Result<Option<Connection>> {
    use rusqlite::OpenFlags;
    use rusqlite::backup::{Backup, StepResult};
    use rusqlite::config::DbConfig;
    let src = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    src.busy_timeout(Duration::ZERO)?;
    src.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    src.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    src.pragma_update(None, "query_only", true)?;
    src.pragma_update(None, "temp_store", "MEMORY")?;
    let mut mem = Connection::open_in_memory()?;
    // Every page in one step: the file is read under one lock, start to end.
    let copied = {
        let backup = Backup::new(&src, &mut mem)?;
        loop {
            match backup.step(-1) {
                Ok(StepResult::Done) => break true,
                Ok(StepResult::More) => {}
                // Busy or Locked: the file is held.
                Ok(_) => break false,
                Err(e)
                    if e.sqlite_error_code().is_some_and(|c| {
                        matches!(c, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                    }) =>
                {
                    break false;
                }
                Err(e) => return Err(e),
            }
        }
    };
    drop(src);
    Ok(copied.then_some(mem))
}

/// SQLite's query planner stability guarantee: a prepared statement keeps its plan
/// whatever values its parameters get. Without it, SQLite (built with STAT4, as the
/// bundled one is) may compile a cached statement again each time a parameter that could
/// steer the plan changes value: the console's ledger read asks the same statements for
/// L2, then L3, then all levels every second, and spent more instructions compiling them
/// again than running them (docs/performance.md). The ledger's tables are small and
/// indexed by path; a fixed plan costs nothing measurable.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map(drop)
}

impl Ledger {
    /// Open (creating if needed) the ledger of a workspace.
    pub fn open(workspace: &Path) -> Result<Self> {
        let path = ledger_path(workspace);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| LedgerError::Other(format!("cannot create {}: {e}", dir.display())))?;
        }
        Self::open_at(&path)
    }

    /// Open (creating if needed) a ledger file, migrating it to the current schema.
    pub fn open_at(path: &Path) -> Result<Self> {
        let ctx = |err: rusqlite::Error| LedgerError::Sqlite { context: format!("ledger {}", path.display()), err };
        let mut conn = Connection::open(path).map_err(ctx)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(ctx)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(ctx)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(ctx)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(ctx)?;
        stable_plans(&conn).map_err(ctx)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(ctx)?;
        if version > SCHEMA_VERSION {
            return Err(LedgerError::Other(format!(
                "ledger {} has schema {version}, newer than this opsconsole understands \
                 ({SCHEMA_VERSION}); upgrade opsconsole",
                path.display()
            )));
        }
        if version < SCHEMA_VERSION {
            // One writer at a time from the start (IMMEDIATE waits on the busy timeout; a
            // deferred read upgraded to a write fails at once when another connection
            // migrated meanwhile), and the version read again inside: two processes opening
            // a new ledger together migrate it once.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(ctx)?;
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(ctx)?;
            for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.execute_batch(step).map_err(ctx)?;
                tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(ctx)?;
            }
            tx.commit().map_err(ctx)?;
        }
        Ok(Self { conn, path: path.to_path_buf() })
    }

    /// Open the ledger to read it, even when it cannot be written. A normal open needs to
    /// write (SQLite's WAL index, `-shm`, is created and sized on first use, and a full
    /// disk refuses that); when it fails, the committed contents — the `-wal` file
    /// included — are copied into memory through a connection that never touches `-shm`
    /// (see [`Ledger::snapshot_at`]). The second value says why the ledger is read-only,
    /// in words ("disk full: …"), when it is.
    pub fn open_for_reading(workspace: &Path) -> Result<(Self, Option<String>)> {
        let path = ledger_path(workspace);
        match Self::open(workspace) {
            Ok(l) => Ok((l, None)),
            Err(e) if path.is_file() => match Self::snapshot_at(&path) {
                Ok(l) => Ok((l, Some(read_only_words(workspace, &e)))),
                Err(e2) => Err(LedgerError::Other(format!("{e}; reading it without writing failed too: {e2}"))),
            },
            Err(e) => Err(e),
        }
    }

    /// A read-only copy in memory of what the ledger file holds, committed transactions in
    /// its `-wal` file included (unlike SQLite's `immutable=1`, which ignores the WAL). The
    /// file is read through a connection in exclusive locking mode, which keeps SQLite's
    /// WAL index in heap memory instead of the `-shm` file, with checkpoint-on-close off:
    /// nothing is written. Needs no other connection to hold the ledger (one that does
    /// keeps `-shm` in place, and a normal open works).
    ///
    /// Such a connection needs the file's exclusive lock for a moment, and when it cannot
    /// get it, it keeps the shared lock it took on the way: two of them at once would each
    /// wait for the other's shared lock forever. So copies in this process are taken one
    /// at a time, a try that finds the file held is closed (letting its lock go) before it
    /// waits, and after [`SNAPSHOT_PATIENCE`] the copy fails in words for this time (the
    /// caller reads again later).
    pub fn snapshot_at(path: &Path) -> Result<Self> {
        let ctx = |err: rusqlite::Error| LedgerError::Sqlite { context: format!("ledger {}", path.display()), err };
        let _one_at_a_time = SNAPSHOTS.lock().unwrap_or_else(|e| e.into_inner());
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(5);
        let mem = loop {
            if let Some(mem) = copy_once(path).map_err(ctx)? {
                break mem;
            }
            if started.elapsed() >= SNAPSHOT_PATIENCE {
                return Err(LedgerError::Other(format!(
                    "ledger {}: in use by another reader, so no copy could be read this time (tried for {} s); \
                     it is read again shortly",
                    path.display(),
                    SNAPSHOT_PATIENCE.as_secs_f64()
                )));
            }
            // A random share of the pause on top, so that two programs that both back off
            // do not meet again in step.
            let jitter = {
                use std::hash::{BuildHasher, Hasher};
                let r = std::collections::hash_map::RandomState::new().build_hasher().finish();
                pause.mul_f64((r % 1024) as f64 / 1024.0)
            };
            std::thread::sleep(pause + jitter);
            pause = (pause * 2).min(Duration::from_millis(100));
        };
        mem.pragma_update(None, "query_only", true).map_err(ctx)?;
        stable_plans(&mem).map_err(ctx)?;
        let version: i64 = mem.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(ctx)?;
        if version > SCHEMA_VERSION {
            return Err(LedgerError::Other(format!(
                "ledger {} has schema {version}, newer than this opsconsole understands ({SCHEMA_VERSION})",
                path.display()
            )));
        }
        Ok(Self { conn: mem, path: path.to_path_buf() })
    }

    /// The ledger's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `PRAGMA data_version`: moves whenever another connection commits to the ledger.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// `PRAGMA user_version`.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// `PRAGMA integrity_check` answers "ok".
    pub fn integrity_ok(&self) -> Result<bool> {
        let s: String = self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        Ok(s == "ok")
    }

    /// The file as last hashed.
    pub fn file(&self, rel: &str) -> Result<Option<FileRecord>> {
        Ok(self
            .conn
            .query_row("SELECT path, size, mtime_ns, sha256, md5 FROM files WHERE path = ?1", [rel], |r| {
                Ok(FileRecord {
                    path: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    mtime_ns: r.get(2)?,
                    sha256: r.get(3)?,
                    md5: r.get(4)?,
                })
            })
            .optional()?)
    }

    /// Every tracked file.
    pub fn files(&self) -> Result<Vec<FileRecord>> {
        let mut st = self.conn.prepare("SELECT path, size, mtime_ns, sha256, md5 FROM files ORDER BY path")?;
        let rows = st.query_map([], |r| {
            Ok(FileRecord {
                path: r.get(0)?,
                size: r.get::<_, i64>(1)? as u64,
                mtime_ns: r.get(2)?,
                sha256: r.get(3)?,
                md5: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Record a complete file (its SHA-256 and, when known, MD5) and queue it on each
    /// `(level, remote)` it routes to.
    /// A level already holding this exact version (same hash, same remote) is left alone;
    /// new or changed contents are queued (once) from byte 0. Rows for levels the file no
    /// longer routes to are removed unless confirmed.
    #[allow(clippy::too_many_arguments)]
    pub fn track(
        &mut self,
        rel: &str,
        size: u64,
        mtime_ns: i64,
        sha256: &str,
        md5: Option<&str>,
        routes: &[(&str, &str)],
        now_ms: i64,
    ) -> Result<TrackOutcome> {
        let tx = self.conn.transaction()?;
        let old: Option<String> =
            tx.query_row("SELECT sha256 FROM files WHERE path = ?1", [rel], |r| r.get(0)).optional()?;
        let changed = old.as_deref().is_some_and(|s| s != sha256);
        tx.execute(
            "INSERT INTO files(path, size, mtime_ns, sha256, first_seen_ms, updated_ms, md5)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
             ON CONFLICT(path) DO UPDATE SET size = ?2, mtime_ns = ?3, sha256 = ?4, updated_ms = ?5,
                md5 = CASE WHEN ?6 IS NOT NULL THEN ?6 WHEN sha256 = ?4 THEN md5 END",
            params![rel, size as i64, mtime_ns, sha256, now_ms, md5],
        )?;
        let mut queued = Vec::new();
        for (level, remote) in routes {
            let row: Option<(String, String, String)> = tx
                .query_row(
                    "SELECT state, sha256, remote FROM uploads WHERE path = ?1 AND level = ?2",
                    [rel, level],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let same_version = row.as_ref().is_some_and(|(_, s, r)| s == sha256 && r == remote);
            if same_version {
                continue;
            }
            tx.execute(
                "INSERT INTO uploads(path, level, remote, state, sha256, bytes_done, bytes_total,
                    queued_ms, updated_ms)
                 VALUES (?1, ?2, ?3, 'pending', ?4, 0, ?5, ?6, ?6)
                 ON CONFLICT(path, level) DO UPDATE SET remote = ?3, state = 'pending',
                    sha256 = ?4, bytes_done = 0, bytes_total = ?5, remote_id = NULL,
                    remote_checksum = NULL, attempts = 0, last_error = NULL, permanent = 0,
                    next_attempt_ms = 0, session = NULL, queued_ms = ?6, updated_ms = ?6,
                    confirmed_ms = NULL",
                params![rel, level, remote, sha256, size as i64, now_ms],
            )?;
            queued.push((*level).to_string());
        }
        // Levels no longer routed: drop what is not already stored there.
        let mut st = tx.prepare("SELECT level FROM uploads WHERE path = ?1 AND state != 'confirmed'")?;
        let stale: Vec<String> = st
            .query_map([rel], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .filter(|l| !routes.iter().any(|(r, _)| r == l))
            .collect();
        drop(st);
        for level in stale {
            tx.execute("DELETE FROM uploads WHERE path = ?1 AND level = ?2", [rel, &level])?;
        }
        for level in &queued {
            let detail = if changed { "queued again: contents changed" } else { "queued" };
            insert_event(&tx, now_ms, "queued", Some(rel), Some(level), detail)?;
        }
        tx.commit()?;
        Ok(TrackOutcome { queued, changed })
    }

    /// Do the file's level rows already match these routes (no unfinished row for a level
    /// it no longer routes to, a row on the right remote for each route)?
    pub fn routes_match(&self, rel: &str, routes: &[(&str, &str)]) -> Result<bool> {
        let mut st = self.conn.prepare_cached("SELECT level, remote, state FROM uploads WHERE path = ?1")?;
        let rows: Vec<(String, String, String)> =
            st.query_map([rel], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
        let all_routed = routes.iter().all(|(l, r)| rows.iter().any(|(rl, rr, _)| rl == l && rr == r));
        let no_stale = rows.iter().all(|(l, _, s)| s == "confirmed" || routes.iter().any(|(rl, _)| rl == l));
        Ok(all_routed && no_stale)
    }

    /// Forget a file that vanished before it was stored everywhere; its unfinished rows
    /// are dropped with a note in the history. Returns the levels dropped.
    pub fn drop_missing(&mut self, rel: &str, note: &str, now_ms: i64) -> Result<Vec<String>> {
        let tx = self.conn.transaction()?;
        let mut st = tx.prepare("SELECT level FROM uploads WHERE path = ?1 AND state != 'confirmed' ORDER BY level")?;
        let levels: Vec<String> = st.query_map([rel], |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        drop(st);
        for level in &levels {
            tx.execute("DELETE FROM uploads WHERE path = ?1 AND level = ?2", [rel, level])?;
            insert_event(&tx, now_ms, "dropped", Some(rel), Some(level), note)?;
        }
        let remaining: i64 = tx.query_row("SELECT COUNT(*) FROM uploads WHERE path = ?1", [rel], |r| r.get(0))?;
        if remaining == 0 {
            tx.execute("DELETE FROM files WHERE path = ?1", [rel])?;
        }
        tx.commit()?;
        Ok(levels)
    }

    /// Tracked files under a folder (`prefix/...`).
    pub fn paths_under(&self, prefix: &str) -> Result<Vec<String>> {
        let mut st = self.conn.prepare("SELECT path FROM files WHERE substr(path, 1, length(?1) + 1) = ?1 || '/'")?;
        let rows = st.query_map([prefix], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The row of one file on one level.
    pub fn entry(&self, rel: &str, level: &str) -> Result<Option<LedgerEntry>> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM uploads u JOIN files f ON f.path = u.path
             WHERE u.path = ?1 AND u.level = ?2"
        );
        Ok(self.conn.query_row(&sql, [rel, level], entry_from_row).optional()?)
    }

    /// Rows of a level (all levels when `None`), in queue order: unfinished first, newest
    /// file first.
    pub fn entries(&self, level: Option<&str>) -> Result<Vec<LedgerEntry>> {
        self.entries_where(level, EntryFilter::All, None)
    }

    /// Like [`Ledger::entries`], keeping only the rows `filter` lets through, at most
    /// `limit` of them. The filter and the limit run in SQLite, so a ledger of many
    /// confirmed files costs nothing when only the unfinished ones are asked for.
    pub fn entries_where(
        &self,
        level: Option<&str>,
        filter: EntryFilter,
        limit: Option<usize>,
    ) -> Result<Vec<LedgerEntry>> {
        let sql = entries_where_sql();
        let (unfinished, attention, confirmed) = match filter {
            EntryFilter::All => (false, false, false),
            EntryFilter::Unfinished => (true, false, false),
            EntryFilter::UploadingOrFailed => (true, true, false),
            EntryFilter::Confirmed => (false, false, true),
        };
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(params![level, unfinished, attention, limit, confirmed], entry_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Rows a worker may start now on a level: pending or interrupted uploads, and
    /// transient failures whose retry time has come; newest file first.
    pub fn due(&self, level: &str, now_ms: i64, limit: usize) -> Result<Vec<LedgerEntry>> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM uploads u JOIN files f ON f.path = u.path
             WHERE u.level = ?1 AND (u.state IN ('pending', 'uploading')
                OR (u.state = 'failed' AND u.permanent = 0))
               AND u.next_attempt_ms <= ?2
             ORDER BY f.mtime_ns DESC, u.path LIMIT ?3"
        );
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(params![level, now_ms, limit as i64], entry_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Earliest retry time among transient failures of a level.
    pub fn next_retry_ms(&self, level: &str) -> Result<Option<i64>> {
        Ok(self.conn.query_row(
            "SELECT MIN(next_attempt_ms) FROM uploads
             WHERE level = ?1 AND state IN ('failed', 'pending', 'uploading') AND permanent = 0",
            [level],
            |r| r.get(0),
        )?)
    }

    /// An upload started (or resumed) at `bytes_done`. Not an attempt: only failures count
    /// (a resume after a stopped engine is the same attempt going on).
    pub fn set_uploading(
        &mut self,
        rel: &str,
        level: &str,
        sha256: &str,
        bytes_done: u64,
        session: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE uploads SET state = 'uploading', bytes_done = ?4, session = ?5, updated_ms = ?6
             WHERE path = ?1 AND level = ?2 AND sha256 = ?3",
            params![rel, level, sha256, bytes_done as i64, session, now_ms],
        )?;
        Ok(())
    }

    /// Bytes stored so far (the engine calls this a few times a second at most).
    pub fn set_progress(&mut self, rel: &str, level: &str, sha256: &str, bytes_done: u64, now_ms: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE uploads SET bytes_done = ?4, updated_ms = ?5
             WHERE path = ?1 AND level = ?2 AND sha256 = ?3 AND state = 'uploading'",
            params![rel, level, sha256, bytes_done as i64, now_ms],
        )?;
        Ok(())
    }

    /// The remote holds this version and reported a matching checksum.
    pub fn set_confirmed(
        &mut self,
        rel: &str,
        level: &str,
        sha256: &str,
        remote_id: &str,
        remote_checksum: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE uploads SET state = 'confirmed', bytes_done = bytes_total, remote_id = ?4,
                remote_checksum = ?5, last_error = NULL, permanent = 0, session = NULL,
                updated_ms = ?6, confirmed_ms = ?6
             WHERE path = ?1 AND level = ?2 AND sha256 = ?3",
            params![rel, level, sha256, remote_id, remote_checksum, now_ms],
        )?;
        if n > 0 {
            insert_event(&tx, now_ms, "confirmed", Some(rel), Some(level), remote_id)?;
            tx.execute(
                "INSERT INTO levels(level, last_confirmed_ms) VALUES (?1, ?2)
                 ON CONFLICT(level) DO UPDATE SET last_confirmed_ms = ?2",
                params![level, now_ms],
            )?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    /// An attempt failed (this is what counts as an attempt). A transient failure is
    /// retried at `next_attempt_ms`; a permanent one waits for [`Ledger::retry_failed`].
    #[allow(clippy::too_many_arguments)]
    pub fn set_failed(
        &mut self,
        rel: &str,
        level: &str,
        sha256: &str,
        error: &str,
        permanent: bool,
        next_attempt_ms: i64,
        now_ms: i64,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE uploads SET state = 'failed', last_error = ?4, permanent = ?5,
                next_attempt_ms = ?6, updated_ms = ?7, attempts = attempts + 1
             WHERE path = ?1 AND level = ?2 AND sha256 = ?3",
            params![rel, level, sha256, error, permanent as i64, next_attempt_ms, now_ms],
        )?;
        if n > 0 {
            let kind = if permanent { "failed" } else { "retrying" };
            insert_event(&tx, now_ms, kind, Some(rel), Some(level), error)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A confirmed copy failed verification on its remote (missing, another size, another
    /// checksum): the row goes back to the queue from byte 0, `reason` kept as its last
    /// error and in the history. Returns false when the row was not confirmed (nothing to
    /// undo).
    pub fn requeue_unverified(
        &mut self,
        rel: &str,
        level: &str,
        sha256: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE uploads SET state = 'pending', bytes_done = 0, remote_id = NULL,
                remote_checksum = NULL, attempts = 0, last_error = ?4, permanent = 0,
                next_attempt_ms = 0, session = NULL, queued_ms = ?5, updated_ms = ?5,
                confirmed_ms = NULL
             WHERE path = ?1 AND level = ?2 AND sha256 = ?3 AND state = 'confirmed'",
            params![rel, level, sha256, reason, now_ms],
        )?;
        if n > 0 {
            insert_event(&tx, now_ms, "verify_failed", Some(rel), Some(level), reason)?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    /// The newest reason one of these files is not confirmed after all: the error of an
    /// unfinished row (a copy that failed verification and is being stored again, or an
    /// upload that failed).
    pub fn unconfirmed_note(&self, rels: &[String]) -> Result<Option<String>> {
        let mut st = self.conn.prepare_cached(
            "SELECT last_error, updated_ms FROM uploads
             WHERE path = ?1 AND state != 'confirmed' AND last_error IS NOT NULL",
        )?;
        let mut best: Option<(i64, String)> = None;
        for rel in rels {
            let rows = st.query_map([rel], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (err, at) = row?;
                if best.as_ref().is_none_or(|(t, _)| at > *t) {
                    best = Some((at, err));
                }
            }
        }
        Ok(best.map(|(_, e)| e))
    }

    /// Store remote-specific resumable-session data for an upload in progress.
    pub fn set_session(&mut self, rel: &str, level: &str, session: Option<&str>) -> Result<()> {
        self.conn
            .execute("UPDATE uploads SET session = ?3 WHERE path = ?1 AND level = ?2", params![rel, level, session])?;
        Ok(())
    }

    /// Put failed rows (of one level, or all) back in the queue now. Returns how many.
    pub fn retry_failed(&mut self, level: Option<&str>, now_ms: i64) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE uploads SET state = 'pending', permanent = 0, next_attempt_ms = 0,
                updated_ms = ?2
             WHERE state = 'failed' AND (?1 IS NULL OR level = ?1)",
            params![level, now_ms],
        )?;
        if n > 0 {
            insert_event(&tx, now_ms, "retry", None, level, &format!("{n} failed upload(s) queued again"))?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Record a finished pass over a level; `success` when nothing was left failed.
    pub fn record_pass(&mut self, level: &str, success: bool, now_ms: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO levels(level, last_success_ms, last_pass_ms)
             VALUES (?1, CASE WHEN ?2 THEN ?3 END, ?3)
             ON CONFLICT(level) DO UPDATE SET last_pass_ms = ?3,
                last_success_ms = CASE WHEN ?2 THEN ?3 ELSE last_success_ms END",
            params![level, success, now_ms],
        )?;
        Ok(())
    }

    /// Counts and pass times of a level.
    pub fn counts(&self, level: &str) -> Result<LevelCounts> {
        let (pending_files, pending_bytes, failed, confirmed, oldest): (i64, i64, i64, i64, Option<i64>) = self
            .conn
            .prepare_cached(
                "SELECT
                COALESCE(SUM(state IN ('pending','uploading')), 0),
                COALESCE(SUM(CASE WHEN state IN ('pending','uploading')
                    THEN bytes_total - bytes_done ELSE 0 END), 0),
                COALESCE(SUM(state = 'failed'), 0),
                COALESCE(SUM(state = 'confirmed'), 0),
                MIN(CASE WHEN state != 'confirmed' THEN queued_ms END)
             FROM uploads WHERE level = ?1",
            )?
            .query_row([level], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
        let (last_success_ms, last_pass_ms, last_confirmed_ms) = self
            .conn
            .prepare_cached("SELECT last_success_ms, last_pass_ms, last_confirmed_ms FROM levels WHERE level = ?1")?
            .query_row([level], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?
            .unwrap_or((None, None, None));
        Ok(LevelCounts {
            pending_files: pending_files.max(0) as u64,
            pending_bytes: pending_bytes.max(0) as u64,
            failed: failed.max(0) as u64,
            confirmed: confirmed.max(0) as u64,
            last_success_ms,
            last_pass_ms,
            last_confirmed_ms,
            oldest_pending_ms: oldest,
        })
    }

    /// Add a line to the event history.
    pub fn record_event(
        &mut self,
        kind: &str,
        path: Option<&str>,
        level: Option<&str>,
        detail: &str,
        now_ms: i64,
    ) -> Result<()> {
        insert_event(&self.conn, now_ms, kind, path, level, detail)
    }

    /// The newest `limit` events, newest first.
    pub fn recent_events(&self, limit: usize) -> Result<Vec<LedgerEvent>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT at_ms, kind, path, level, detail FROM events ORDER BY id DESC LIMIT ?1")?;
        let rows = st.query_map([limit as i64], |r| {
            Ok(LedgerEvent { at_ms: r.get(0)?, kind: r.get(1)?, path: r.get(2)?, level: r.get(3)?, detail: r.get(4)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Levels (e.g. `["L3"]`) on which this file or folder is confirmed as it is on disk
    /// now, on the remote each level is configured with now (`level_remotes`: `(level,
    /// remote name)` for every enabled level whose remote is configured; a confirmation
    /// recorded on another remote name does not count). A file counts when its confirmed
    /// version has the size and mtime the file has now; a folder counts on a level only
    /// when every file inside it does. `path` may be absolute (inside `workspace`) or
    /// workspace-relative.
    pub fn confirmed_levels(
        &self,
        workspace: &Path,
        path: &Path,
        level_remotes: &[(&str, &str)],
    ) -> Result<Vec<String>> {
        let abs = if path.is_absolute() { path.to_path_buf() } else { workspace.join(path) };
        let mut files = Vec::new();
        collect_files(&abs, &mut files);
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let mut levels: Option<Vec<String>> = None;
        for file in files {
            let Some(rel) = super::routing::relative_key(workspace, &file) else {
                return Ok(Vec::new());
            };
            let Ok(meta) = std::fs::metadata(&file) else {
                return Ok(Vec::new());
            };
            let mut st = self.conn.prepare_cached(
                "SELECT u.level, u.remote FROM uploads u JOIN files f ON f.path = u.path
                 WHERE u.path = ?1 AND u.state = 'confirmed' AND u.sha256 = f.sha256
                   AND f.size = ?2 AND f.mtime_ns = ?3 ORDER BY u.level",
            )?;
            let here: Vec<String> = st
                .query_map(params![rel, meta.len() as i64, mtime_ns(&meta)], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .filter(|(level, remote)| level_remotes.iter().any(|(l, r)| l == level && r == remote))
                .map(|(level, _)| level)
                .collect();
            levels = Some(match levels {
                None => here,
                Some(prev) => prev.into_iter().filter(|l| here.contains(l)).collect(),
            });
        }
        Ok(levels.unwrap_or_default())
    }

    /// Leave a request for the engine running on this workspace (`kind` is `sync_now`,
    /// `retry_failed` or `cancel`).
    pub fn push_request(&mut self, kind: &str, level: Option<&str>, path: Option<&str>, now_ms: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO requests(kind, level, path, at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![kind, level, path, now_ms],
        )?;
        Ok(())
    }

    /// Take (and remove) every waiting request, oldest first: (kind, level, path).
    pub fn take_requests(&mut self) -> Result<Vec<Request>> {
        let tx = self.conn.transaction()?;
        let mut st = tx.prepare("SELECT kind, level, path FROM requests ORDER BY id")?;
        let rows =
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
        drop(st);
        if !rows.is_empty() {
            tx.execute("DELETE FROM requests", [])?;
        }
        tx.commit()?;
        Ok(rows)
    }

    /// Withhold a file from every level as a secret: its unfinished uploads are dropped
    /// (a copy stored before it was recognised stays where it is, and the history says
    /// so). Returns true when the file was not already withheld for this reason.
    #[allow(clippy::too_many_arguments)]
    pub fn withhold(
        &mut self,
        rel: &str,
        size: u64,
        mtime_ns: i64,
        kind: &str,
        why: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let old: Option<String> =
            tx.query_row("SELECT why FROM withheld WHERE path = ?1", [rel], |r| r.get(0)).optional()?;
        tx.execute(
            "INSERT INTO withheld(path, size, mtime_ns, kind, why, since_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(path) DO UPDATE SET size = ?2, mtime_ns = ?3, kind = ?4, why = ?5",
            params![rel, size as i64, mtime_ns, kind, why, now_ms],
        )?;
        let fresh = old.as_deref() != Some(why);
        let mut st = tx.prepare("SELECT level, state FROM uploads WHERE path = ?1 ORDER BY level")?;
        let rows: Vec<(String, String)> =
            st.query_map([rel], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
        drop(st);
        for (level, state) in &rows {
            if state == "confirmed" {
                if fresh {
                    let note = format!(
                        "withheld as a secret ({why}); a copy stored before it was recognised is still on \
                         {level}: delete it there by hand"
                    );
                    insert_event(&tx, now_ms, "withheld", Some(rel), Some(level), &note)?;
                }
            } else {
                tx.execute("DELETE FROM uploads WHERE path = ?1 AND level = ?2", [rel, level])?;
            }
        }
        if fresh {
            insert_event(&tx, now_ms, "withheld", Some(rel), None, &format!("withheld as a secret: {why}"))?;
        }
        tx.commit()?;
        Ok(fresh)
    }

    /// The (size, mtime_ns) a withheld file was judged at.
    pub fn withheld_at(&self, rel: &str) -> Result<Option<(u64, i64)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT size, mtime_ns FROM withheld WHERE path = ?1")?
            .query_row([rel], |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?)))
            .optional()?)
    }

    /// The file is no longer withheld (now clean, or gone).
    pub fn release_withheld(&mut self, rel: &str) -> Result<()> {
        self.conn.prepare_cached("DELETE FROM withheld WHERE path = ?1")?.execute([rel])?;
        Ok(())
    }

    /// Forget withheld files not in `present` (deleted, renamed, or no longer routed).
    pub fn retain_withheld(&mut self, present: &std::collections::HashSet<String>) -> Result<()> {
        let tx = self.conn.transaction()?;
        let mut st = tx.prepare("SELECT path FROM withheld")?;
        let all: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        drop(st);
        for p in all.iter().filter(|p| !present.contains(*p)) {
            tx.execute("DELETE FROM withheld WHERE path = ?1", [p])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// How many files are withheld as secrets, and the first `limit` of them by path.
    pub fn withheld(&self, limit: usize) -> Result<(u64, Vec<WithheldRecord>)> {
        let n: i64 = self.conn.prepare_cached("SELECT COUNT(*) FROM withheld")?.query_row([], |r| r.get(0))?;
        let mut st =
            self.conn.prepare_cached("SELECT path, kind, why, since_ms FROM withheld ORDER BY path LIMIT ?1")?;
        let rows = st.query_map([limit as i64], |r| {
            Ok(WithheldRecord { path: r.get(0)?, kind: r.get(1)?, why: r.get(2)?, since_ms: r.get(3)? })
        })?;
        Ok((n.max(0) as u64, rows.collect::<rusqlite::Result<Vec<_>>>()?))
    }

    /// Record that the user deleted a checkpoint not yet confirmed everywhere, by an
    /// explicit override.
    pub fn record_override_deletion(&mut self, path: &str, unconfirmed_levels: &[String], now_ms: i64) -> Result<()> {
        let detail = if unconfirmed_levels.is_empty() {
            "unconfirmed checkpoint deleted by override".to_string()
        } else {
            format!("unconfirmed checkpoint deleted by override (not yet on {})", unconfirmed_levels.join(", "))
        };
        insert_event(&self.conn, now_ms, "override_delete", Some(path), None, &detail)
    }
}

fn insert_event(
    conn: &Connection,
    now_ms: i64,
    kind: &str,
    path: Option<&str>,
    level: Option<&str>,
    detail: &str,
) -> Result<()> {
    conn.execute(
        "INSERT INTO events(at_ms, kind, path, level, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now_ms, kind, path, level, detail],
    )?;
    conn.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?1", [MAX_EVENTS])?;
    Ok(())
}

/// Is the disk holding the workspace's ledger full (no byte left for its writes)?
pub fn disk_full(workspace: &Path) -> bool {
    let dir = ledger_path(workspace).with_file_name("");
    let dir = if dir.is_dir() { dir } else { workspace.to_path_buf() };
    crate::disk::statvfs(&dir).is_ok_and(|(_, _, avail)| avail == 0)
}

/// Why the ledger is read without writing, in words: a full disk says so.
pub fn read_only_words(workspace: &Path, e: &LedgerError) -> String {
    match disk_full(workspace) {
        true => "disk full: the sync ledger is read-only until space is freed (0 B free on the workspace's disk); \
                  shown as last recorded"
            .to_string(),
        false => format!("the sync ledger is read-only ({e}); shown as last recorded"),
    }
}

/// A file's mtime in nanoseconds since the epoch (0 when unknown).
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec())
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_file() {
        out.push(path.to_path_buf());
    } else if meta.is_dir()
        && let Ok(rd) = std::fs::read_dir(path)
    {
        for e in rd.flatten() {
            collect_files(&e.path(), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = Ledger::open(dir.path()).expect("open");
        (dir, l)
    }

    #[test]
    fn the_queue_statement_is_compiled_once_whatever_level_and_filter_it_is_asked_for() {
        let (_dir, mut l) = ledger();
        for (i, level) in ["L2", "L3"].iter().enumerate() {
            let rel = format!("ckpt-{i}.pt");
            l.track(&rel, 10, i as i64, &format!("{i:064}"), None, &[(level, "r")], 1).expect("track");
        }
        for _ in 0..3 {
            for level in ["L2", "L3"] {
                let rows = l.entries_where(Some(level), EntryFilter::UploadingOrFailed, None).expect("rows");
                assert!(rows.is_empty(), "nothing is uploading or failed yet");
            }
            let queue = l.entries_where(None, EntryFilter::Unfinished, Some(50)).expect("queue");
            assert_eq!(queue.len(), 2);
            assert_eq!(l.entries_where(Some("L3"), EntryFilter::All, None).expect("L3").len(), 1);
        }
        let st = l.conn.prepare_cached(&entries_where_sql()).expect("cached");
        assert_eq!(st.get_status(rusqlite::StatementStatus::RePrepare), 0, "compiled again for new parameter values");
        assert!(st.get_status(rusqlite::StatementStatus::Run) >= 12, "the statement ran from the cache");
    }

    #[test]
    fn opens_migrated_and_reopens() {
        let (dir, l) = ledger();
        assert_eq!(l.schema_version().expect("v"), SCHEMA_VERSION);
        let mode: String = l.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("mode");
        assert_eq!(mode, "wal");
        drop(l);
        let l = Ledger::open(dir.path()).expect("reopen");
        assert!(l.integrity_ok().expect("check"));
    }

    #[test]
    fn migrates_a_version_1_ledger_keeping_its_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = ledger_path(dir.path());
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(MIGRATIONS[0]).expect("v1");
            conn.pragma_update(None, "user_version", 1).expect("version");
            conn.execute("INSERT INTO files VALUES ('a.pt', 1, 1, 'x', 0, 0)", []).expect("row");
        }
        let mut l = Ledger::open(dir.path()).expect("migrates");
        assert_eq!(l.schema_version().expect("v"), SCHEMA_VERSION);
        assert!(l.file("a.pt").expect("f").is_some());
        l.push_request("sync_now", Some("L3"), None, 1).expect("push");
        l.push_request("cancel", Some("L3"), Some("a.pt"), 2).expect("push");
        let got = l.take_requests().expect("take");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], ("cancel".into(), Some("L3".into()), Some("a.pt".into())));
        assert!(l.take_requests().expect("take").is_empty());
    }

    #[test]
    fn refuses_a_newer_schema() {
        let (dir, l) = ledger();
        l.conn.pragma_update(None, "user_version", 99).expect("set");
        drop(l);
        let err = Ledger::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn lifecycle_and_requeue_once_on_change() {
        let (_d, mut l) = ledger();
        let r = [("L3", "hf")];
        let out = l.track("ck/a.pt", 10, 1, "aaa", None, &r, 100).expect("track");
        assert_eq!(out.queued, vec!["L3"]);
        // Same version again: nothing queued.
        assert!(l.track("ck/a.pt", 10, 1, "aaa", None, &r, 101).expect("t").queued.is_empty());
        l.set_uploading("ck/a.pt", "L3", "aaa", 0, Some("s"), 102).expect("up");
        l.set_progress("ck/a.pt", "L3", "aaa", 5, 103).expect("p");
        let e = l.entry("ck/a.pt", "L3").expect("e").expect("row");
        assert_eq!((e.state, e.bytes_done, e.attempts), (UploadState::Uploading, 5, 0), "starting is not an attempt");
        assert!(l.set_confirmed("ck/a.pt", "L3", "aaa", "id1", "aaa", 104).expect("c"));
        let c = l.counts("L3").expect("counts");
        assert_eq!((c.pending_files, c.confirmed), (0, 1));
        // Rewritten: queued again from zero.
        let out = l.track("ck/a.pt", 12, 2, "bbb", None, &r, 200).expect("track");
        assert!(out.changed);
        assert_eq!(out.queued, vec!["L3"]);
        let e = l.entry("ck/a.pt", "L3").expect("e").expect("row");
        assert_eq!((e.state, e.bytes_done, e.sha256.as_str()), (UploadState::Pending, 0, "bbb"));
        // A stale confirmation for the old version is ignored.
        assert!(!l.set_confirmed("ck/a.pt", "L3", "aaa", "id1", "aaa", 201).expect("c"));
        assert_eq!(l.counts("L3").expect("c").pending_bytes, 12);
    }

    #[test]
    fn failures_retry_and_permanent() {
        let (_d, mut l) = ledger();
        l.track("x.log", 3, 1, "s", None, &[("L2", "d")], 0).expect("t");
        l.set_uploading("x.log", "L2", "s", 0, None, 1).expect("u");
        l.set_failed("x.log", "L2", "s", "timeout", false, 5000, 2).expect("f");
        assert_eq!(l.entry("x.log", "L2").expect("e").expect("row").attempts, 1, "a failure is an attempt");
        assert!(l.due("L2", 4999, 10).expect("due").is_empty());
        assert_eq!(l.due("L2", 5000, 10).expect("due").len(), 1);
        l.set_failed("x.log", "L2", "s", "quota", true, 0, 3).expect("f");
        assert!(l.due("L2", 1_000_000, 10).expect("due").is_empty());
        assert_eq!(l.counts("L2").expect("c").failed, 1);
        assert_eq!(l.retry_failed(None, 4).expect("r"), 1);
        assert_eq!(l.due("L2", 4, 10).expect("due").len(), 1);
        let kinds: Vec<String> = l.recent_events(10).expect("ev").into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec!["retry", "failed", "retrying", "queued"]);
    }

    #[test]
    fn due_orders_newest_first_and_drop_missing_notes_it() {
        let (_d, mut l) = ledger();
        l.track("old.pt", 1, 10, "a", None, &[("L3", "hf")], 0).expect("t");
        l.track("new.pt", 1, 20, "b", None, &[("L3", "hf")], 0).expect("t");
        let due: Vec<String> = l.due("L3", 0, 10).expect("d").into_iter().map(|e| e.path).collect();
        assert_eq!(due, vec!["new.pt", "old.pt"]);
        assert_eq!(l.drop_missing("old.pt", "deleted before upload", 5).expect("d"), vec!["L3"]);
        assert!(l.file("old.pt").expect("f").is_none());
        let ev = &l.recent_events(1).expect("e")[0];
        assert_eq!((ev.kind.as_str(), ev.detail.as_str()), ("dropped", "deleted before upload"));
    }

    const LR: &[(&str, &str)] = &[("L3", "hf")];

    #[test]
    fn confirmed_levels_follow_the_file_on_disk() {
        let (dir, mut l) = ledger();
        let ck = dir.path().join("checkpoint-5");
        std::fs::create_dir_all(&ck).expect("mkdir");
        for name in ["model.safetensors", "optimizer.pt"] {
            std::fs::write(ck.join(name), name).expect("write");
            let meta = std::fs::metadata(ck.join(name)).expect("meta");
            let rel = format!("checkpoint-5/{name}");
            l.track(&rel, meta.len(), mtime_ns(&meta), name, None, &[("L3", "hf")], 0).expect("t");
        }
        assert!(l.confirmed_levels(dir.path(), Path::new("checkpoint-5"), LR).expect("c").is_empty());
        l.set_confirmed("checkpoint-5/model.safetensors", "L3", "model.safetensors", "i", "c", 1).expect("c");
        assert!(l.confirmed_levels(dir.path(), &ck, LR).expect("c").is_empty());
        assert_eq!(l.confirmed_levels(dir.path(), &ck.join("model.safetensors"), LR).expect("c"), vec!["L3"]);
        l.set_confirmed("checkpoint-5/optimizer.pt", "L3", "optimizer.pt", "i", "c", 1).expect("c");
        assert_eq!(l.confirmed_levels(dir.path(), &ck, LR).expect("c"), vec!["L3"]);
        // L3 repointed to another remote, or to one that is not configured: not confirmed.
        assert!(l.confirmed_levels(dir.path(), &ck, &[("L3", "new-empty")]).expect("c").is_empty());
        assert!(l.confirmed_levels(dir.path(), &ck, &[]).expect("c").is_empty());
        // A new file inside the folder, not yet confirmed, makes the folder unconfirmed.
        std::fs::write(ck.join("extra.bin"), "x").expect("write");
        assert!(l.confirmed_levels(dir.path(), &ck, LR).expect("c").is_empty());
        l.record_override_deletion("checkpoint-5", &["L3".into()], 9).expect("ev");
        assert_eq!(l.recent_events(1).expect("e")[0].kind, "override_delete");
    }

    /// A ledger whose rows (50 files) are committed only in its `-wal` file, with no
    /// `-shm`: what a full disk leaves to be read from a copy.
    fn wal_only_ledger() -> (tempfile::TempDir, PathBuf) {
        let (dir, mut l) = ledger();
        l.conn.pragma_update(None, "wal_autocheckpoint", 0).expect("no autocheckpoint");
        for i in 0..50 {
            l.track(&format!("ck/{i}.pt"), 10, i, "h", None, LR, 0).expect("track");
        }
        l.conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).expect("no ckpt");
        let path = l.path().to_path_buf();
        drop(l);
        std::fs::remove_file(path.with_file_name("ledger.sqlite-shm")).expect("no -shm");
        assert!(std::fs::metadata(path.with_file_name("ledger.sqlite-wal")).expect("wal").len() > 0);
        (dir, path)
    }

    /// A plain connection reading the ledger (it holds a shared lock while open).
    fn reader(path: &Path) -> Connection {
        let c = Connection::open(path).expect("open");
        c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).expect("no ckpt");
        let n: i64 = c.query_row("SELECT COUNT(*) FROM files", [], |r| r.get(0)).expect("count");
        assert_eq!(n, 50);
        c
    }

    #[test]
    fn two_read_only_copies_at_once_both_finish() {
        // The console's sync and checkpoint collectors copy the ledger at the same moment
        // on a full disk, while a third reader (a normal open that is about to fail) holds
        // the file: each copy takes a shared lock and cannot get the exclusive one it needs.
        // Once the third lets go, each used to wait for the other's shared lock, forever,
        // spinning a core each, and the Uploads panel stayed on "reading the sync ledger…".
        let (_d, path) = wal_only_ledger();
        let other = reader(&path);
        let start = std::sync::Arc::new(std::sync::Barrier::new(3));
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..2 {
            let (path, start, tx) = (path.clone(), start.clone(), tx.clone());
            std::thread::spawn(move || {
                start.wait();
                // A copy that cannot be had this time says why; the reader tries again.
                let copy = loop {
                    match Ledger::snapshot_at(&path) {
                        Ok(l) => break l,
                        Err(e) => assert!(e.to_string().contains("in use by another reader"), "{e}"),
                    }
                };
                let _ = tx.send(copy.files().expect("files").len());
            });
        }
        start.wait();
        std::thread::sleep(Duration::from_millis(200));
        drop(other);
        for _ in 0..2 {
            // A guard against the hang, not a timing check.
            let n = rx.recv_timeout(Duration::from_secs(60)).expect("both copies finish");
            assert_eq!(n, 50, "the copy holds the rows only in the WAL");
        }
    }

    #[test]
    fn a_copy_gives_up_in_words_while_another_program_keeps_the_ledger_locked_and_then_reads_it() {
        let (_d, path) = wal_only_ledger();
        // A connection in exclusive locking mode keeps the file locked while it is open
        // (another opsconsole's copy, or `sqlite3` with `PRAGMA locking_mode=EXCLUSIVE`).
        let holder = Connection::open(&path).expect("open");
        holder.pragma_update(None, "locking_mode", "EXCLUSIVE").expect("exclusive");
        holder.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).expect("no ckpt");
        let n: i64 = holder.query_row("SELECT COUNT(*) FROM files", [], |r| r.get(0)).expect("count");
        assert_eq!(n, 50, "read, so the lock is taken");
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Ledger::snapshot_at(&p).map(|_| ()));
        });
        // A guard against the hang, not a timing check.
        let err = rx.recv_timeout(Duration::from_secs(60)).expect("the copy gives up").unwrap_err().to_string();
        assert!(err.contains("in use by another reader") && err.contains("read again shortly"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        drop(holder);
        // Let go: the next try reads it, the WAL's rows included, and writes nothing.
        let copy = Ledger::snapshot_at(&path).expect("copy");
        assert_eq!(copy.files().expect("files").len(), 50);
        assert!(!path.with_file_name("ledger.sqlite-shm").exists(), "a copy never creates -shm");
    }
}
