//! `status` keeps the state of its log read in `.opsconsole/logscan/` and reads only what
//! was appended. Every answer must be the one a read from the start gives: compared here
//! after appends cut at random places (inside lines, `\r` bar states, tracebacks, lines
//! over the cap), truncation, rotation, replacement by another file of the same size, and
//! state files that are corrupt, cut short, empty or another log's. Each step also checks
//! where the read started, so a cache that is never used (or always used) fails.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use opsconsole::logtail::backfill::{BackfillResult, backfill};
use opsconsole::logtail::scancache::{self, Fresh, ScanFrom};
use opsconsole::logtail::{LogConfig, MetricParser, collect_status_in};

const POINTS: usize = 64;
const CAP: usize = 512;

/// Every fixture log, one after the other: HF Trainer bars and dicts, Lightning, JSON
/// lines, key/value lines, tracebacks, CUDA OOM, NaN loss, `Killed`.
fn corpus() -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs");
    let mut out = Vec::new();
    for name in ["hf_trainer.log", "lightning.log", "jsonl.log", "keyvalue.log", "oom.log", "nan_killed.log"] {
        out.extend(std::fs::read(dir.join(name)).expect("fixture"));
    }
    // A line far over the cap, with a loss in its head, and bar states on one line.
    out.extend(format!("step 77 | loss 0.5 | {}\n", "x".repeat(3 * CAP)).as_bytes());
    out.extend(b" 10%|#  | 10/100 [00:01<00:09, 10.00it/s]\r 20%|## | 20/100 [00:02<00:08, 10.00it/s]\r");
    out.extend(b"{'loss': 1.25, 'epoch': 0.2}\nTraceback (most recent call last):\n  File \"t.py\", line 1\n");
    out.extend(b"ValueError: boom\nstep 78 | loss nan\n");
    out
}

/// A full read, as `status` did before it kept any state.
fn full(path: &Path) -> BackfillResult {
    let end = std::fs::metadata(path).expect("meta").len();
    backfill(path, end, &MetricParser::default(), POINTS, CAP, &AtomicBool::new(false), |_| {}).expect("backfill")
}

/// A read through the kept state in `cache`.
fn cached(cache: &Path, path: &Path) -> (BackfillResult, ScanFrom) {
    let end = std::fs::metadata(path).expect("meta").len();
    scancache::scan(Some(cache), path, end, &MetricParser::default(), &[], POINTS, CAP).expect("scan")
}

/// Same answer as a full read (compared as Debug text: NaN equals NaN there), starting
/// where `want` says.
#[track_caller]
fn check(cache: &Path, path: &Path, want: ScanFrom) -> BackfillResult {
    let (got, from) = cached(cache, path);
    let whole = full(path);
    assert_eq!(format!("{got:?}"), format!("{whole:?}"), "cached read differs from a full read ({from:?})");
    assert_eq!(from, want);
    got
}

fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new().append(true).create(true).open(path).expect("open").write_all(bytes).expect("append");
}

fn state_file(cache: &Path) -> PathBuf {
    let states: Vec<PathBuf> = std::fs::read_dir(cache)
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "state"))
        .collect();
    assert_eq!(states.len(), 1, "{states:?}");
    states[0].clone()
}

#[test]
fn appends_cut_anywhere_read_only_the_new_bytes_and_answer_as_a_full_read() {
    let corpus = corpus();
    for seed in [1u64, 7, 42, 1234] {
        let dir = tempfile::tempdir().expect("tmp");
        let (cache, log) = (dir.path().join("cache"), dir.path().join("train.log"));
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut at = 0usize;
        let mut first = true;
        while at < corpus.len() {
            let n = rng.usize(1..=700).min(corpus.len() - at);
            append(&log, &corpus[at..at + n]);
            let before = at as u64;
            at += n;
            let want = if first { ScanFrom::Start(Fresh::NoState) } else { ScanFrom::Resumed(before) };
            check(&cache, &log, want);
            first = false;
            if rng.u8(..) < 40 {
                check(&cache, &log, ScanFrom::Unchanged);
            }
        }
        let r = check(&cache, &log, ScanFrom::Unchanged);
        assert!(r.health.error_count() >= 4, "the corpus has errors: {:?}", r.health.counts);
        assert!(r.metrics.latest.loss.is_some_and(f64::is_nan), "the last loss is NaN");
        assert!(
            r.metrics.eval_loss.count() > 0 && r.metrics.loss.count() >= 18,
            "{:?}",
            (r.metrics.eval_loss.count(), r.metrics.loss.count())
        );
    }
}

#[test]
fn truncation_rotation_and_replacement_read_from_the_start() {
    let corpus = corpus();
    let dir = tempfile::tempdir().expect("tmp");
    let (cache, log) = (dir.path().join("cache"), dir.path().join("train.log"));
    let half = corpus.len() / 2;
    append(&log, &corpus[..half]);
    check(&cache, &log, ScanFrom::Start(Fresh::NoState));
    append(&log, &corpus[half..]);
    check(&cache, &log, ScanFrom::Resumed(half as u64));

    // Truncated and written again (`python train.py > train.log`), shorter.
    std::fs::write(&log, &corpus[..1000]).expect("write");
    check(&cache, &log, ScanFrom::Start(Fresh::Truncated));
    // Truncated and written again, longer than before: same inode, other bytes.
    let other: Vec<u8> = corpus.iter().rev().copied().filter(|b| *b != b'\r').collect();
    std::fs::write(&log, &other[..1500]).expect("write");
    check(&cache, &log, ScanFrom::Start(Fresh::Rewritten));

    // Rotated: renamed away, a new file under the name.
    std::fs::rename(&log, dir.path().join("train.log.1")).expect("rotate");
    std::fs::write(&log, &corpus[..2000]).expect("new log");
    check(&cache, &log, ScanFrom::Start(Fresh::OtherFile));
    check(&cache, &log, ScanFrom::Unchanged);

    // Replaced by another file of the same size, renamed over it.
    let same_size: Vec<u8> = corpus[2000..4000].to_vec();
    let tmp = dir.path().join("new.log");
    std::fs::write(&tmp, &same_size).expect("write");
    std::fs::rename(&tmp, &log).expect("replace");
    check(&cache, &log, ScanFrom::Start(Fresh::OtherFile));

    // Replaced in place by bytes of the same size that differ only in the middle (the
    // first and last 64 KiB windows cannot see it on a long log): the times moved.
    let mut long = Vec::new();
    while long.len() < 300_000 {
        long.extend_from_slice(b"step 1 | loss 2.0\n");
    }
    std::fs::write(&log, &long).expect("write");
    check(&cache, &log, ScanFrom::Start(Fresh::Rewritten));
    check(&cache, &log, ScanFrom::Unchanged);
    let mtime = std::fs::metadata(&log).and_then(|m| m.modified()).expect("mtime");
    long[18 * 8333..18 * 8334].copy_from_slice(b"step 9 | loss 0.1\n");
    std::fs::write(&log, &long).expect("same size, other middle");
    // Another mtime, set explicitly (a clock tick may be coarser than the test).
    let f = OpenOptions::new().write(true).open(&log).expect("open");
    f.set_modified(mtime + Duration::from_secs(1)).expect("mtime");
    drop(f);
    let r = check(&cache, &log, ScanFrom::Start(Fresh::Rewritten));
    assert_eq!(r.metrics.loss.count(), 3, "the changed middle line was read: (1, 2.0), (9, 0.1), (1, 2.0)");

    // In place, same size, the mtime set back: the ctime still moved.
    long[18 * 8333..18 * 8334].copy_from_slice(b"step 8 | loss 0.3\n");
    std::fs::write(&log, &long).expect("write");
    let f = OpenOptions::new().write(true).open(&log).expect("open");
    f.set_modified(mtime + Duration::from_secs(1)).expect("mtime back");
    drop(f);
    check(&cache, &log, ScanFrom::Start(Fresh::Rewritten));
}

#[test]
fn corrupt_short_empty_and_foreign_state_files_are_not_used() {
    let corpus = corpus();
    let dir = tempfile::tempdir().expect("tmp");
    let (cache, log) = (dir.path().join("cache"), dir.path().join("train.log"));
    append(&log, &corpus);
    check(&cache, &log, ScanFrom::Start(Fresh::NoState));
    let state = state_file(&cache);
    let good = std::fs::read(&state).expect("state");

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    std::fs::write(&state, &flipped).expect("write");
    check(&cache, &log, ScanFrom::Start(Fresh::Corrupt));
    check(&cache, &log, ScanFrom::Unchanged);

    std::fs::write(&state, &good[..good.len() / 2]).expect("cut short");
    check(&cache, &log, ScanFrom::Start(Fresh::Corrupt));
    std::fs::write(&state, b"").expect("empty");
    check(&cache, &log, ScanFrom::Start(Fresh::Corrupt));
    std::fs::write(&state, b"{\"offset\": 12, \"not\": \"ours\"}").expect("foreign format");
    check(&cache, &log, ScanFrom::Start(Fresh::Corrupt));

    // Another log's state, well formed, under this log's name.
    let other = dir.path().join("other.log");
    let other_cache = dir.path().join("other-cache");
    append(&other, &corpus[..corpus.len() / 3]);
    let _ = cached(&other_cache, &other);
    std::fs::copy(state_file(&other_cache), &state).expect("copy");
    check(&cache, &log, ScanFrom::Start(Fresh::Foreign));
    check(&cache, &log, ScanFrom::Unchanged);

    // The same log read with other settings: not used either.
    let end = std::fs::metadata(&log).expect("meta").len();
    let p = MetricParser::default();
    let (_, from) = scancache::scan(Some(&cache), &log, end, &p, &[], POINTS * 2, CAP).expect("scan");
    assert_eq!(from, ScanFrom::Start(Fresh::Foreign));
    let (_, from) = scancache::scan(Some(&cache), &log, end, &p, &[], POINTS * 2, CAP).expect("scan");
    assert_eq!(from, ScanFrom::Unchanged);
    let patterns = vec![r"acc=(?P<loss>[0-9.]+)".to_string()];
    let up = MetricParser::new(&patterns).expect("pattern");
    let (_, from) = scancache::scan(Some(&cache), &log, end, &up, &patterns, POINTS * 2, CAP).expect("scan");
    assert_eq!(from, ScanFrom::Start(Fresh::Foreign));
}

#[test]
fn a_cache_that_cannot_be_written_only_means_reading_from_the_start() {
    let corpus = corpus();
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("train.log");
    append(&log, &corpus);
    // The cache folder cannot be created: a file stands where its parent should be.
    std::fs::write(dir.path().join("blocked"), b"a file").expect("write");
    let cache = dir.path().join("blocked/logscan");
    check(&cache, &log, ScanFrom::Start(Fresh::NoState));
    check(&cache, &log, ScanFrom::Start(Fresh::NoState));
    assert_eq!(std::fs::read(dir.path().join("blocked")).expect("read"), b"a file");
}

#[test]
fn concurrent_callers_leave_a_whole_state_and_right_answers() {
    let corpus = corpus();
    let dir = tempfile::tempdir().expect("tmp");
    let (cache, log) = (dir.path().join("cache"), dir.path().join("train.log"));
    append(&log, &corpus[..100]);
    let writer_log = log.clone();
    let writer_corpus = corpus.clone();
    let writer = std::thread::spawn(move || {
        for chunk in writer_corpus[100..].chunks(997) {
            append(&writer_log, chunk);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (cache, log) = (cache.clone(), log.clone());
            std::thread::spawn(move || {
                for _ in 0..30 {
                    // Each call reads up to the size it saw; a full read of that prefix agrees.
                    let end = std::fs::metadata(&log).expect("meta").len();
                    let p = MetricParser::default();
                    let (got, _) = scancache::scan(Some(&cache), &log, end, &p, &[], POINTS, CAP).expect("scan");
                    let whole = backfill(&log, end, &p, POINTS, CAP, &AtomicBool::new(false), |_| {}).expect("full");
                    assert_eq!(format!("{got:?}"), format!("{whole:?}"));
                }
            })
        })
        .collect();
    writer.join().expect("writer");
    for r in readers {
        r.join().expect("reader");
    }
    // Whatever state won is whole and describes the file.
    let (_, from) = cached(&cache, &log);
    assert!(matches!(from, ScanFrom::Resumed(_) | ScanFrom::Unchanged), "{from:?}");
    check(&cache, &log, ScanFrom::Unchanged);
    let leftovers: Vec<_> = std::fs::read_dir(&cache)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn at_most_keep_states_are_kept() {
    let dir = tempfile::tempdir().expect("tmp");
    let cache = dir.path().join("cache");
    for i in 0..scancache::KEEP + 8 {
        let log = dir.path().join(format!("run{i}.log"));
        append(&log, format!("step {i} | loss 1.0\n").as_bytes());
        let (_, from) = cached(&cache, &log);
        assert_eq!(from, ScanFrom::Start(Fresh::NoState));
    }
    let n = std::fs::read_dir(&cache).expect("dir").count();
    assert_eq!(n, scancache::KEEP);
}

#[test]
fn status_answers_the_same_with_and_without_the_kept_state() {
    let corpus = corpus();
    let ws = tempfile::tempdir().expect("ws");
    let logs = ws.path().join("experiments/v1/logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let log = logs.join("train.log");
    let cfg = LogConfig::default();
    let cache = scancache::cache_dir(ws.path());
    let now = SystemTime::now();
    for (i, chunk) in corpus.chunks(corpus.len() / 5 + 1).enumerate() {
        append(&log, chunk);
        let (a, am, from) = collect_status_in(ws.path(), &cfg, now, true, Some(&cache)).expect("cached");
        let (b, bm, _) = collect_status_in(ws.path(), &cfg, now, true, None).expect("full");
        let ja = serde_json::json!({ "log": a, "metrics": am });
        let jb = serde_json::json!({ "log": b, "metrics": bm });
        assert_eq!(ja, jb);
        assert_eq!(matches!(from, ScanFrom::Resumed(_)), i > 0, "{from:?}");
    }
    assert!(cache.join(state_file(&cache)).exists());
}

/// The binary: a second `status --json` on the same log gives the same `log` and
/// `metrics`, from the kept state.
#[test]
fn status_json_twice_through_the_binary() {
    let ws = tempfile::tempdir().expect("ws");
    let logs = ws.path().join("experiments/v1/logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    std::fs::write(logs.join("train.log"), corpus()).expect("log");
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsconsole"))
            .arg("-w")
            .arg(ws.path())
            .args(["status", "--json"])
            .env("XDG_STATE_HOME", ws.path().join(".xdg"))
            .env("XDG_CONFIG_HOME", "/nonexistent-xdg")
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        (v["log"].clone(), v["metrics"].clone())
    };
    let first = run();
    let state = state_file(&scancache::cache_dir(ws.path()));
    let written = std::fs::metadata(&state).and_then(|m| m.modified()).expect("state");
    let second = run();
    assert_eq!(first, second);
    assert_eq!(first.0["error_count"], 6, "{:?}", first.0);
    assert_eq!(std::fs::metadata(&state).and_then(|m| m.modified()).expect("state"), written, "not rewritten");
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A full disk under the cache (a 1 MiB tmpfs filled to the last byte, as root): the
/// answers stay right, nothing is left behind, and once there is room the state is kept.
#[test]
#[ignore = "needs root"]
fn a_full_disk_under_the_cache_only_means_reading_from_the_start() {
    assert!(rustix::process::geteuid().is_root(), "this test needs root to mount a tmpfs");
    let dir = tempfile::tempdir().expect("tmp");
    let mnt = dir.path().join("state");
    std::fs::create_dir(&mnt).expect("mkdir");
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs"])
        .arg(&mnt)
        .output()
        .expect("mount runs");
    assert!(out.status.success(), "mount: {}", String::from_utf8_lossy(&out.stderr));
    let _guard = Unmount(mnt.clone());
    let cache = mnt.join("logscan");
    std::fs::create_dir(&cache).expect("mkdir");
    let filler = mnt.join("filler");
    {
        let mut f = std::fs::File::create(&filler).expect("filler");
        let page = vec![0u8; 4096];
        while f.write_all(&page).is_ok() {}
    }
    assert!(std::fs::write(mnt.join("probe"), b"x").is_err(), "the disk is full");
    let _ = std::fs::remove_file(mnt.join("probe"));

    let log = dir.path().join("train.log");
    append(&log, &corpus());
    check(&cache, &log, ScanFrom::Start(Fresh::NoState));
    check(&cache, &log, ScanFrom::Start(Fresh::NoState));
    let left: Vec<_> = std::fs::read_dir(&cache).expect("dir").flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "nothing may be left on the full disk: {left:?}");

    std::fs::remove_file(&filler).expect("free space");
    check(&cache, &log, ScanFrom::Start(Fresh::NoState));
    check(&cache, &log, ScanFrom::Unchanged);
}
