//! The tailer on real files in temp folders: every line written is delivered once, in
//! order, through appends, rotation, truncation, deletion, late creation, huge lines,
//! invalid UTF-8 and progress bars. Plus the threaded follower and collector.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use opsconsole::logtail::collector::{CollectorOptions, LogSample, spawn_collector};
use opsconsole::logtail::tail::{FollowOptions, spawn_follow};
use opsconsole::logtail::{LogConfig, StartAt, TailNote, Tailer, collect_status};

fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).expect("open for append");
    f.write_all(bytes).expect("append");
}

fn lines(range: std::ops::Range<usize>) -> (String, Vec<String>) {
    let v: Vec<String> = range.map(|i| format!("line {i} {}", "x".repeat(i % 37))).collect();
    let mut text = v.join("\n");
    text.push('\n');
    (text, v)
}

/// Polls and collects delivered line texts and notes.
struct Reader {
    tailer: Tailer,
    got: Vec<String>,
    notes: Vec<TailNote>,
    partial: Option<String>,
}

impl Reader {
    fn new(path: &Path, start: StartAt, cap: usize) -> Self {
        Self { tailer: Tailer::new(path, start, cap), got: Vec::new(), notes: Vec::new(), partial: None }
    }

    fn poll(&mut self) {
        loop {
            let b = self.tailer.poll().expect("poll");
            self.got.extend(b.lines.into_iter().map(|l| l.text));
            self.notes.extend(b.notes);
            self.partial = b.partial;
            if !b.more {
                break;
            }
        }
    }
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("train.log");
    (dir, path)
}

#[test]
fn append_in_pieces_delivers_every_line_once() {
    let (_d, path) = setup();
    let (text, want) = lines(0..5000);
    let mut r = Reader::new(&path, StartAt::Beginning, 4096);
    // Cut the text at awkward places, polling between writes.
    let bytes = text.as_bytes();
    let mut at = 0;
    let mut step = 1;
    while at < bytes.len() {
        let end = (at + step).min(bytes.len());
        append(&path, &bytes[at..end]);
        at = end;
        step = step * 7 % 1013 + 1;
        r.poll();
    }
    r.poll();
    assert_eq!(r.got, want);
    assert_eq!(r.notes, [TailNote::Opened]);
}

#[test]
fn rotate_by_rename_reads_old_tail_then_new_file() {
    let (dir, path) = setup();
    let (a, want_a) = lines(0..100);
    let (b, want_b) = lines(100..200);
    let (c, want_c) = lines(200..300);
    let mut r = Reader::new(&path, StartAt::Beginning, 4096);
    append(&path, a.as_bytes());
    r.poll();
    // Written but not yet read when the log is rotated, plus an unfinished last line.
    append(&path, b.as_bytes());
    append(&path, b"unterminated last line of the old file");
    std::fs::rename(&path, dir.path().join("train.log.1")).expect("rotate");
    r.poll(); // the name is gone for a moment: nothing is lost meanwhile
    append(&path, c.as_bytes());
    r.poll();
    let mut want = want_a;
    want.extend(want_b);
    want.push("unterminated last line of the old file".into());
    want.extend(want_c);
    assert_eq!(r.got, want);
    assert_eq!(r.notes, [TailNote::Opened, TailNote::Rotated, TailNote::Opened]);
}

#[test]
fn copytruncate_restarts_at_zero() {
    let (_d, path) = setup();
    let (a, want_a) = lines(0..500);
    let (b, want_b) = lines(500..510);
    let mut r = Reader::new(&path, StartAt::Beginning, 4096);
    append(&path, a.as_bytes());
    r.poll();
    // logrotate copytruncate: copy elsewhere, then truncate in place.
    std::fs::copy(&path, path.with_extension("log.1")).expect("copy");
    OpenOptions::new().write(true).open(&path).expect("open").set_len(0).expect("truncate");
    append(&path, b.as_bytes());
    r.poll();
    let mut want = want_a;
    want.extend(want_b);
    assert_eq!(r.got, want);
    assert!(r.notes.contains(&TailNote::Truncated));
}

/// Each poll tells the file's size and which file the path named, from its own `stat`s
/// (the collector asks who writes that file without a `stat` of its own).
#[test]
fn each_poll_tells_the_size_and_the_file_the_path_named() {
    use std::os::unix::fs::MetadataExt;
    let (_d, path) = setup();
    let id = |p: &Path| {
        let m = std::fs::metadata(p).expect("stat");
        (m.dev(), m.ino())
    };
    let mut t = Tailer::new(&path, StartAt::Beginning, 4096);
    assert_eq!(t.path_file(), None, "not polled yet");
    let b = t.poll().expect("poll");
    assert_eq!((b.size_bytes, t.path_file()), (None, Some(None)), "nothing there yet");
    append(&path, b"one\ntwo\n");
    let b = t.poll().expect("poll");
    assert_eq!((b.size_bytes, t.path_file()), (Some(8), Some(Some(id(&path)))));
    // More than one read's worth, then a partial line.
    let big = "x".repeat(300_000) + "\n" + "tail";
    append(&path, big.as_bytes());
    let b = t.poll().expect("poll");
    assert_eq!(b.size_bytes, Some(8 + big.len() as u64));
    assert_eq!(b.partial.as_deref(), Some("tail"));
    // Rotated: the new file's size and identity.
    let old = id(&path);
    std::fs::rename(&path, path.with_extension("log.1")).expect("rename");
    append(&path, b"new\n");
    let b = t.poll().expect("poll");
    assert_eq!((b.size_bytes, t.path_file()), (Some(4), Some(Some(id(&path)))));
    assert_ne!(t.path_file(), Some(Some(old)));
    // Deleted while open: the path names nothing.
    std::fs::remove_file(&path).expect("delete");
    let b = t.poll().expect("poll");
    assert_eq!((b.size_bytes, t.path_file()), (None, Some(None)));
}

#[test]
fn delete_and_recreate() {
    let (_d, path) = setup();
    let (a, want_a) = lines(0..50);
    let (b, want_b) = lines(50..60);
    let (c, want_c) = lines(60..70);
    let mut r = Reader::new(&path, StartAt::Beginning, 4096);
    append(&path, a.as_bytes());
    r.poll();
    append(&path, b.as_bytes()); // unread when deleted: still read through the open file
    std::fs::remove_file(&path).expect("delete");
    r.poll();
    assert!(r.notes.contains(&TailNote::Deleted));
    append(&path, c.as_bytes());
    r.poll();
    let mut want = want_a;
    want.extend(want_b);
    want.extend(want_c);
    assert_eq!(r.got, want);
    assert_eq!(r.notes, [TailNote::Opened, TailNote::Deleted, TailNote::Opened]);
}

#[test]
fn file_created_late() {
    let (_d, path) = setup();
    let mut r = Reader::new(&path, StartAt::End, 4096);
    r.poll();
    r.poll();
    assert_eq!(r.notes, [TailNote::Missing], "missing is reported once");
    let (a, want) = lines(0..20);
    append(&path, a.as_bytes());
    r.poll();
    // A file that appears later is read from its start, whatever the first start was.
    assert_eq!(r.got, want);
}

#[test]
fn ten_megabyte_line_is_cut_and_bounded() {
    let (_d, path) = setup();
    let cap = 4096;
    let mut r = Reader::new(&path, StartAt::Beginning, cap);
    append(&path, b"before\n");
    let chunk = vec![b'y'; 1 << 20];
    for _ in 0..10 {
        append(&path, &chunk);
        r.poll();
        assert!(r.partial.as_ref().is_some_and(|p| p.len() <= cap));
    }
    append(&path, b"\nafter\n");
    r.poll();
    assert_eq!(r.got.len(), 3);
    assert_eq!(r.got[0], "before");
    assert_eq!(r.got[1].len(), cap);
    assert_eq!(r.got[2], "after");
}

#[test]
fn invalid_utf8_is_shown_lossily() {
    let (_d, path) = setup();
    let mut r = Reader::new(&path, StartAt::Beginning, 4096);
    append(&path, b"ok\n\xff\xfeloss=\xc3\n\xe2\x82");
    r.poll();
    append(&path, b"\xac euro\n");
    r.poll();
    assert_eq!(r.got, ["ok", "\u{fffd}\u{fffd}loss=\u{fffd}", "€ euro"]);
}

#[test]
fn carriage_return_bars_collapse_to_latest_state() {
    let (_d, path) = setup();
    let mut r = Reader::new(&path, StartAt::Beginning, 4096);
    let mut want = Vec::new();
    for epoch in 0..3 {
        for i in 0..=100 {
            append(&path, format!("\repoch {epoch} {i:3}%|{}|", "#".repeat(i / 10)).as_bytes());
            if i % 9 == 0 {
                r.poll();
                assert_eq!(r.partial, Some(format!("epoch {epoch} {i:3}%|{}|", "#".repeat(i / 10))));
            }
        }
        append(&path, b"\n");
        want.push(format!("epoch {epoch} 100%|##########|"));
        append(&path, format!("done {epoch}\n").as_bytes());
        want.push(format!("done {epoch}"));
    }
    r.poll();
    assert_eq!(r.got, want);
}

/// A writer appending as fast as it can while rotating by rename; the threaded follower
/// (notify + poll fallback) must deliver every line exactly once, in order.
#[test]
fn threaded_follow_under_concurrent_writes_and_rotation() {
    let (dir, path) = setup();
    let got = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = got.clone();
    let tailer = Tailer::new(&path, StartAt::Beginning, 4096);
    let opts = FollowOptions {
        poll_interval: Duration::from_millis(200),
        min_interval: Duration::from_millis(5),
        hot_at: None,
    };
    let handle = spawn_follow(tailer, opts, move |t, waker| {
        let b = t.poll().expect("poll");
        if b.more {
            waker.wake();
        }
        sink.lock().expect("lock").extend(b.lines.into_iter().map(|l| l.text));
        true
    })
    .expect("spawn");
    let total = 120_000;
    let writer_path = path.clone();
    let dir_path = dir.path().to_path_buf();
    let writer = std::thread::spawn(move || {
        let mut f: Option<std::fs::File> = None;
        for i in 0..total {
            if i % 40_000 == 0 && i > 0 {
                drop(f.take());
                std::fs::rename(&writer_path, dir_path.join(format!("train.log.{i}"))).expect("rotate");
            }
            let file =
                f.get_or_insert_with(|| OpenOptions::new().create(true).append(true).open(&writer_path).expect("open"));
            writeln!(file, "seq {i}").expect("write");
        }
    });
    writer.join().expect("writer");
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.lock().expect("lock").len() < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    handle.stop();
    let got = got.lock().expect("lock");
    let want: Vec<String> = (0..total).map(|i| format!("seq {i}")).collect();
    assert_eq!(got.len(), want.len());
    assert!(*got == want, "lines lost, duplicated or out of order");
}

/// A log that keeps growing is read once a period at the `hot_at` points (a little before
/// each frame's tick), not at every write: a trainer writing every 5 ms for 1.2 s is read
/// a handful of times, with every line delivered in order. Without `hot_at` the same
/// writer is read at every `min_interval`.
#[test]
fn a_growing_log_is_read_once_a_period_at_the_lead_points() {
    fn polls_while_writing(hot_at: Option<opsconsole::util::Lead>) -> (usize, Vec<String>) {
        let (_dir, path) = setup();
        append(&path, b"start\n");
        let got = Arc::new(Mutex::new((0usize, Vec::<String>::new())));
        let sink = got.clone();
        let tailer = Tailer::new(&path, StartAt::Beginning, 4096);
        let opts =
            FollowOptions { poll_interval: Duration::from_secs(5), min_interval: Duration::from_millis(5), hot_at };
        let handle = spawn_follow(tailer, opts, move |t, _| {
            let b = t.poll().expect("poll");
            let mut g = sink.lock().expect("lock");
            g.0 += 1;
            g.1.extend(b.lines.into_iter().map(|l| l.text));
            true
        })
        .expect("spawn");
        // Wait for the first read, then write a line every 5 ms for 1.2 s.
        while got.lock().expect("lock").1.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let polls_before = got.lock().expect("lock").0;
        let n = 240;
        for i in 0..n {
            append(&path, format!("step {i}\n").as_bytes());
            std::thread::sleep(Duration::from_millis(5));
        }
        let polls = got.lock().expect("lock").0 - polls_before;
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.lock().expect("lock").1.len() < n + 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        handle.stop();
        let lines = got.lock().expect("lock").1.clone();
        (polls, lines)
    }
    let want: Vec<String> = std::iter::once("start".to_string()).chain((0..240).map(|i| format!("step {i}"))).collect();
    let lead = opsconsole::util::Lead::new(Duration::from_millis(400), Duration::from_millis(20));
    let (paced, lines) = polls_while_writing(Some(lead));
    assert_eq!(lines, want, "every line, once, in order");
    // 1.2 s of writing holds at most four lead points, plus the reads that notice the
    // writes began (a notification and the read after it) and one slow wake-up.
    assert!(paced <= 10, "read {paced} times in 1.2 s with a 400 ms period");
    let (eager, lines) = polls_while_writing(None);
    assert_eq!(lines, want);
    assert!(eager > 2 * paced, "without hot_at the follower reads at every min_interval: {eager} vs {paced}");
}

fn recv_until(rx: &mpsc::Receiver<LogSample>, what: &str, mut done: impl FnMut(&LogSample) -> bool) -> Vec<LogSample> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut all = Vec::new();
    while Instant::now() < deadline {
        if let Ok(s) = rx.recv_timeout(Duration::from_millis(100)) {
            let stop = done(&s);
            all.push(s);
            if stop {
                return all;
            }
        }
    }
    panic!("timed out waiting for {what}; got {} samples", all.len());
}

#[test]
fn collector_shows_last_screen_then_history_then_new_lines() {
    let (_d, path) = setup();
    let mut history = String::new();
    for step in 1..=5000 {
        history.push_str(&format!("step {step} | loss {:.4} | lr 1e-4\n", 10.0 / step as f64));
    }
    append(&path, history.as_bytes());
    let (tx, rx) = mpsc::channel();
    let mut opts = CollectorOptions::new(LogConfig::default());
    opts.screen_lines = 50;
    let collector = spawn_collector(path.clone(), opts, move |s| tx.send(s).is_ok()).expect("spawn");
    let first = rx.recv_timeout(Duration::from_secs(30)).expect("first sample");
    assert!(first.reset);
    assert_eq!(first.new_lines.len(), 50);
    assert_eq!(first.new_lines[0].text, "step 4951 | loss 0.0020 | lr 1e-4");
    // On a busy machine the history thread may finish before the first sample is sent;
    // then the first sample already carries it.
    if !first.backfill.done {
        recv_until(&rx, "history", |s| s.backfill.done);
    }
    append(&path, b"step 5001 | loss 0.0019\nTraceback (most recent call last):\n  File \"t.py\", line 1\nRuntimeError: CUDA out of memory.\n");
    let samples = recv_until(&rx, "new lines", |s| s.health.error_count() > 0);
    let new: Vec<&str> = samples.iter().flat_map(|s| s.new_lines.iter().map(|l| l.text.as_str())).collect();
    assert_eq!(new.first(), Some(&"step 5001 | loss 0.0019"));
    let last = samples.last().expect("sample");
    assert_eq!(last.metrics.latest.step, Some(5001));
    assert_eq!(last.metrics.loss.count(), 5001, "history and live, no point twice");
    let pts = last.metrics.loss.points();
    assert!(pts.len() <= 2001);
    assert_eq!(pts.first(), Some(&(1.0, 10.0)));
    assert_eq!(pts.last(), Some(&(5001.0, 0.0019)));
    assert!(pts.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(last.health.last_line_at.is_some());
    let flagged = samples.iter().flat_map(|s| &s.new_lines).filter(|l| l.error.is_some()).count();
    assert_eq!(flagged, 3);
    drop(collector);
}

#[test]
fn status_json_of_a_workspace() {
    let ws = tempfile::tempdir().expect("ws");
    let logs = ws.path().join("experiments/v68/logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs/oom.log");
    std::fs::copy(fixture, logs.join("train.log")).expect("copy");
    let cfg = LogConfig::default();
    let mtime = std::fs::metadata(logs.join("train.log")).and_then(|m| m.modified()).expect("mtime");
    let (log, metrics) = collect_status(ws.path(), &cfg, mtime + Duration::from_secs(3600), true).expect("status");
    let json = serde_json::json!({ "log": log, "metrics": metrics });
    assert_eq!(json["log"]["stalled"], true);
    assert_eq!(json["log"]["error_count"], 1);
    assert_eq!(json["log"]["last_error"]["kind"], "cuda_oom");
    assert!(json["log"]["last_line"].as_str().is_some_and(|l| l.contains("CUDA out of memory")));
    assert_eq!(json["metrics"]["step"], 1200);
    assert_eq!(json["metrics"]["loss"], 2.1);
    assert!(json["metrics"]["eval_loss"].is_null());
    let keys: Vec<&String> = json["metrics"].as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
    let (_, _) = collect_status(ws.path(), &cfg, SystemTime::now(), false).expect("status");
    let empty = tempfile::tempdir().expect("empty");
    let (log, metrics) = collect_status(empty.path(), &cfg, SystemTime::now(), true).expect("status");
    assert_eq!(log.path, None);
    assert!(!log.stalled);
    assert_eq!(metrics.step, None);
}

/// A shell holding `path` open on fd 3 (`>>` to write, `<` to read), ready when returned.
fn holder(path: &Path, redirect: &str) -> std::process::Child {
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec 3{redirect}\"$0\"; echo ready; exec sleep 30"))
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("stdout")), &mut ready)
        .expect("ready");
    child
}

/// The collector follows the log's writers: a trainer holding the log at the start is
/// named in the samples, and when it exits a sample says so, without waiting for log
/// discovery (set to an hour here) or a full `/proc` scan period (30 s): the known
/// writer is re-checked at each wake-up (`poll_interval`, 200 ms here).
#[test]
fn the_collector_notices_its_writer_exit_at_the_next_check() {
    let (_d, path) = setup();
    append(&path, b"start\n");
    let mut writer = holder(&path, ">>");
    let pid = writer.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !opsconsole::logtail::proc::writers_of(&path).expect("scan").contains(&pid) {
        assert!(Instant::now() < deadline, "the writer never showed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (tx, rx) = mpsc::channel();
    let cfg = LogConfig { poll_interval: Duration::from_millis(200), ..LogConfig::default() };
    let mut opts = CollectorOptions::new(cfg);
    opts.discover_every = Duration::from_secs(3600);
    let _c = spawn_collector(path.clone(), opts, move |s| tx.send(s).is_ok()).expect("spawn");
    recv_until(&rx, "the writer named", |s| s.writers.as_deref() == Some(&[pid][..]));
    let _ = writer.kill();
    let _ = writer.wait();
    let samples = recv_until(&rx, "the writer gone", |s| s.writer_alive == Some(false));
    assert_eq!(samples.last().and_then(|s| s.writers.clone()), Some(Vec::new()));
}

#[test]
fn a_process_writing_the_log_is_seen_as_its_writer() {
    use opsconsole::logtail::proc::writers_of;
    let (_d, path) = setup();
    append(&path, b"start\n");
    assert_eq!(writers_of(&path).expect("scan"), Vec::<u32>::new());
    let mut reader = holder(&path, "<");
    let mut writer = holder(&path, ">>");
    // `exec sleep` keeps the pid; wait until it is sleeping with the fd inherited.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut writers = Vec::new();
    while Instant::now() < deadline {
        writers = writers_of(&path).expect("scan");
        if !writers.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for c in [&mut reader, &mut writer] {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert_eq!(writers, vec![writer.id()], "the writer, not the reader");
}

#[test]
fn a_file_rotated_between_last_screen_and_follow_is_read_from_its_start() {
    let (dir, path) = setup();
    let (a, _) = lines(0..1000);
    append(&path, a.as_bytes());
    let last = opsconsole::logtail::backread::read_last_lines(&path, 10, 4096).expect("last lines");
    std::fs::rename(&path, dir.path().join("train.log.1")).expect("rotate");
    // Longer than the old end offset: a bare offset would skip its beginning.
    let (b, want) = lines(1000..4000);
    assert!(b.len() as u64 > last.end_offset);
    append(&path, b.as_bytes());
    let mut r = Reader::new(&path, StartAt::OffsetIn { offset: last.end_offset, file_id: last.file_id }, 4096);
    r.poll();
    assert_eq!(r.got, want);
    // The same file: following continues at the offset.
    let last = opsconsole::logtail::backread::read_last_lines(&path, 10, 4096).expect("last lines");
    let (c, want_c) = lines(1500..1510);
    append(&path, c.as_bytes());
    let mut r = Reader::new(&path, StartAt::OffsetIn { offset: last.end_offset, file_id: last.file_id }, 4096);
    r.poll();
    assert_eq!(r.got, want_c);
}

#[test]
fn collector_offers_a_newer_log() {
    let ws = tempfile::tempdir().expect("ws");
    let old = ws.path().join("experiments/v1/logs/train.log");
    std::fs::create_dir_all(old.parent().expect("parent")).expect("mkdir");
    append(&old, b"step 1 | loss 2.0\n");
    let f = OpenOptions::new().write(true).open(&old).expect("open");
    f.set_modified(SystemTime::now() - Duration::from_secs(600)).expect("mtime");
    let (tx, rx) = mpsc::channel();
    let mut opts = CollectorOptions::new(LogConfig::default());
    opts.workspace = Some(ws.path().to_path_buf());
    opts.discover_every = Duration::from_millis(50);
    let _c = spawn_collector(old.clone(), opts, move |s| tx.send(s).is_ok()).expect("spawn");
    let first = rx.recv_timeout(Duration::from_secs(30)).expect("first sample");
    assert_eq!(first.newer_log, None);
    let new = ws.path().join("experiments/v2/logs/train.log");
    std::fs::create_dir_all(new.parent().expect("parent")).expect("mkdir");
    append(&new, b"step 1 | loss 3.0\n");
    let samples = recv_until(&rx, "the newer log", |s| s.newer_log.is_some());
    assert_eq!(samples.last().and_then(|s| s.newer_log.clone()), Some(new));
    assert!(samples.iter().all(|s| s.path == old), "the followed log does not change by itself");
}

#[test]
fn console_task_follows_the_newest_log_lists_candidates_and_switches() {
    use opsconsole::app::Msg;
    let ws = tempfile::tempdir().expect("ws");
    let v1 = ws.path().join("experiments/v1/logs/train.log");
    let v2 = ws.path().join("experiments/v2/logs/train.log");
    for (p, age) in [(&v1, 10), (&v2, 600)] {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        append(p, format!("hello from {}\n", p.display()).as_bytes());
        let f = OpenOptions::new().write(true).open(p).expect("open");
        f.set_modified(SystemTime::now() - Duration::from_secs(age)).expect("mtime");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (switch_tx, switch_rx) = tokio::sync::mpsc::unbounded_channel();
        let refresh = std::sync::Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(opsconsole::collectors::log::supervise(
            ws.path().to_path_buf(),
            CollectorOptions { min_interval: Duration::from_millis(50), ..CollectorOptions::new(LogConfig::default()) },
            tx,
            refresh,
            switch_rx,
            opsconsole::collectors::lane::Lane::new(),
        ));
        async fn next(
            rx: &mut tokio::sync::mpsc::UnboundedReceiver<Msg>,
            want: &Path,
        ) -> (Box<LogSample>, Option<Vec<opsconsole::logtail::discover::LogCandidate>>) {
            let mut candidates = None;
            loop {
                let msg = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
                match msg {
                    Ok(Some(Msg::Log(s))) if s.path == want => return (s, candidates),
                    Ok(Some(Msg::LogCandidates(c))) => candidates = Some(c),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => panic!("no sample of {}", want.display()),
                }
            }
        }
        // The newest log (v1: modified 10 s ago) is followed; both are candidates.
        let (s, candidates) = next(&mut rx, &v1).await;
        assert_eq!(s.new_lines[0].text, format!("hello from {}", v1.display()));
        let c = match candidates {
            Some(c) => c,
            None => loop {
                match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                    Ok(Some(Msg::LogCandidates(c))) => break c,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => panic!("no candidate list"),
                }
            },
        };
        assert_eq!(c.iter().map(|c| c.path.clone()).collect::<Vec<_>>(), vec![v1.clone(), v2.clone()]);
        switch_tx.send(v2.clone()).expect("switch");
        let (s, _) = next(&mut rx, &v2).await;
        assert!(s.reset);
        assert_eq!(s.new_lines[0].text, format!("hello from {}", v2.display()));
        task.abort();
    });
}

#[test]
fn status_json_has_log_metrics_the_same_object_log_json_prints() {
    let ws = tempfile::tempdir().expect("ws");
    let logs = ws.path().join("experiments/v68/logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs/oom.log");
    std::fs::copy(fixture, logs.join("train.log")).expect("copy");
    let json = |args: &[&str]| -> serde_json::Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsconsole"))
            .arg("-w")
            .arg(ws.path())
            .args(args)
            .env("XDG_STATE_HOME", ws.path().join("state"))
            .output()
            .expect("run");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let status = json(&["status", "--json"]);
    let log = json(&["log", "--json"]);
    let metrics = &status["log"]["metrics"];
    assert_eq!(metrics["step"], 1200, "{:#}", status["log"]);
    assert_eq!(metrics["loss"], 2.1);
    for key in ["step", "loss", "eval_loss", "learning_rate", "grad_norm", "epoch", "tokens_per_second", "eta_seconds"]
    {
        assert!(metrics.get(key).is_some(), "log.metrics.{key} missing: {metrics}");
    }
    assert_eq!(metrics, &log["metrics"], "status --json log.metrics equals log --json metrics");
    assert_eq!(metrics, &log["log"]["metrics"]);
    assert_eq!(metrics, &status["metrics"], "the top-level copy stays for existing scripts");
}

/// Issue 15 item 8: after a rotation the eval loss (reported once, before it) is still
/// known: `status --json`, `status`, and a console started after the rotation, even
/// while the new log is empty.
#[test]
fn metrics_from_before_a_rotation_survive_in_status_and_the_console() {
    let ws = tempfile::tempdir().expect("ws");
    let logs = ws.path().join("experiments/v68/logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    std::fs::write(
        logs.join("train.log.1"),
        "step 1000 | loss 3.8 | lr 2.7e-4\n{'eval_loss': 3.909, 'epoch': 1.0}\nstep 1010 | loss 3.79\n",
    )
    .expect("write");
    let log = logs.join("train.log");
    std::fs::write(&log, "").expect("the new, empty log");
    let run = |args: &[&str]| -> Vec<u8> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsconsole"))
            .arg("-w")
            .arg(ws.path())
            .args(args)
            .env("XDG_STATE_HOME", ws.path().join("state"))
            .output()
            .expect("run");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let check = |want_step: u64, want_loss: f64| {
        let status: serde_json::Value = serde_json::from_slice(&run(&["status", "--json"])).expect("json");
        let m = &status["metrics"];
        assert_eq!((m["step"].as_u64(), m["loss"].as_f64()), (Some(want_step), Some(want_loss)), "{m}");
        assert_eq!(m["eval_loss"], 3.909, "{m}");
        assert_eq!(m["learning_rate"], 2.7e-4, "{m}");
        assert_eq!(status["log"]["path"], log.display().to_string(), "the log itself is followed");
        let text = String::from_utf8(run(&["status"])).expect("utf8");
        assert!(text.contains("eval_loss 3.9090"), "{text}");
    };
    check(1010, 3.79);
    // A console started right after the rotation, the new log still empty.
    let (tx, rx) = mpsc::channel();
    let collector =
        spawn_collector(log.clone(), CollectorOptions::new(LogConfig::default()), move |s| tx.send(s).is_ok())
            .expect("spawn");
    let samples = recv_until(&rx, "history", |s| s.backfill.done && s.metrics.latest.step.is_some());
    let m = samples.last().expect("sample").metrics.latest;
    assert_eq!((m.step, m.eval_loss), (Some(1010), Some(3.909)));
    drop(collector);
    std::fs::write(&log, "step 1020 | loss 3.7\n").expect("write");
    check(1020, 3.7);

    // The console started after the rotation: the history includes the rotated file.
    let (tx, rx) = mpsc::channel();
    let opts = CollectorOptions::new(LogConfig::default());
    let collector = spawn_collector(log.clone(), opts, move |s| tx.send(s).is_ok()).expect("spawn");
    let samples = recv_until(&rx, "history", |s| s.backfill.done);
    let m = &samples.last().expect("sample").metrics;
    assert_eq!((m.latest.step, m.latest.loss, m.latest.eval_loss), (Some(1020), Some(3.7), Some(3.909)));
    assert_eq!(m.loss.points().first(), Some(&(1000.0, 3.8)), "the chart keeps the points before the rotation");
    drop(collector);

    // A rotated file idle for hours before its rename is an ended run's: not this one's.
    let f = std::fs::File::options().write(true).open(logs.join("train.log.1")).expect("open");
    f.set_modified(SystemTime::now() - Duration::from_secs(5 * 3600)).expect("mtime");
    let status: serde_json::Value = serde_json::from_slice(&run(&["status", "--json"])).expect("json");
    assert!(status["metrics"]["eval_loss"].is_null(), "{}", status["metrics"]);
    assert_eq!(status["metrics"]["step"], 1020);
}
