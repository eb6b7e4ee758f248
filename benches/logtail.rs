//! Benchmark driver for the log tailer (run by `benches/logtail.sh`, which compares
//! each figure with the standard tool on the same file in the same run).
//!
//! cargo bench --bench logtail -- <command> ...
//!   gen-plain FILE MIB          a generic training log of about MIB MiB
//!   gen-hf FILE MIB             a Hugging Face Trainer log (tqdm bar states + dict lines)
//!   last-screen FILE N          read the last N lines; prints the lines' count and ms
//!   backfill FILE               the metric history of the whole file; prints MB/s
//!   follow-writer FILE RATE S   append RATE lines/s for S seconds, each stamped
//!   follow-reader FILE N S      follow FILE with the collector until N lines or S
//!                               seconds; prints lost/duplicated lines, lag and CPU
//!   long-line FILE              tail FILE (holding a huge line) with the tailer; prints
//!                               the lines and how much the peak memory (VmHWM) grew

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opsconsole::logtail::backfill::backfill;
use opsconsole::logtail::backread::read_last_lines;
use opsconsole::logtail::collector::{CollectorOptions, spawn_collector};
use opsconsole::logtail::{LogConfig, MetricParser, StartAt, Tailer};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let arg = |i: usize| -> &str {
        match args.get(i) {
            Some(a) => a,
            None => {
                eprintln!("missing argument {i}; see the header of benches/logtail.rs");
                std::process::exit(2);
            }
        }
    };
    let num = |i: usize| -> u64 {
        arg(i).parse().unwrap_or_else(|_| {
            eprintln!("argument {i} must be a number");
            std::process::exit(2)
        })
    };
    match args.first().map(String::as_str) {
        Some("gen-plain") => gen_plain(PathBuf::from(arg(1)), num(2) << 20),
        Some("gen-hf") => gen_hf(PathBuf::from(arg(1)), num(2) << 20),
        Some("last-screen") => last_screen(PathBuf::from(arg(1)), num(2) as usize),
        Some("backfill") => run_backfill(PathBuf::from(arg(1))),
        Some("follow-writer") => follow_writer(PathBuf::from(arg(1)), num(2), num(3)),
        Some("follow-reader") => follow_reader(PathBuf::from(arg(1)), num(2), num(3)),
        Some("long-line") => long_line(PathBuf::from(arg(1))),
        // `cargo bench` with no arguments (e.g. from CI): nothing to do.
        _ => eprintln!("logtail bench: see benches/logtail.sh"),
    }
}

fn create(path: &PathBuf) -> BufWriter<File> {
    BufWriter::with_capacity(1 << 20, File::create(path).expect("create output file"))
}

fn gen_plain(path: PathBuf, bytes: u64) {
    let mut w = create(&path);
    let mut written = 0u64;
    let mut step = 0u64;
    let mut line = String::new();
    while written < bytes {
        step += 1;
        line.clear();
        use std::fmt::Write as _;
        let _ = writeln!(
            line,
            "2024-05-01 10:{:02}:{:02} | INFO | step {step} | loss {:.4} | lr 3.0e-4 | tok/s {}",
            (step / 60) % 60,
            step % 60,
            2.0 + (step % 997) as f64 / 1000.0,
            1800 + step % 200
        );
        w.write_all(line.as_bytes()).expect("write");
        written += line.len() as u64;
    }
    w.flush().expect("flush");
}

/// A Trainer log as `python train.py 2>&1 | tee train.log` writes it: a tqdm state per
/// step, and every 10 steps a metrics dict written through `tqdm.write` (clear + line).
fn gen_hf(path: PathBuf, bytes: u64) {
    let mut w = create(&path);
    let total = 10_000_000u64;
    let mut written = 0u64;
    let mut step = 0u64;
    let mut buf = String::new();
    use std::fmt::Write as _;
    while written < bytes {
        step += 1;
        buf.clear();
        let pct = step * 100 / total;
        let _ = write!(
            buf,
            "\r{pct:3}%|▏         | {step}/{total} [{:02}:{:02}<{:02}:{:02}:{:02},  4.{:02}it/s]",
            (step / 4 / 60) % 60,
            (step / 4) % 60,
            (total - step) / 4 / 3600,
            ((total - step) / 4 / 60) % 60,
            ((total - step) / 4) % 60,
            step % 100
        );
        if step.is_multiple_of(10) {
            let _ = writeln!(
                buf,
                "\r{:60}\r{{'loss': {:.4}, 'grad_norm': {:.4}, 'learning_rate': {:e}, 'epoch': {:.2}}}",
                "",
                2.0 + (step % 997) as f64 / 1000.0,
                0.5 + (step % 89) as f64 / 100.0,
                3e-4 * (1.0 - step as f64 / total as f64),
                step as f64 / 100_000.0
            );
        }
        if step.is_multiple_of(5000) {
            let _ = writeln!(
                buf,
                "{{'eval_loss': {:.4}, 'eval_runtime': 12.3, 'eval_samples_per_second': 81.2, 'eval_steps_per_second': 10.2, 'epoch': {:.2}}}",
                2.1 + (step % 991) as f64 / 1000.0,
                step as f64 / 100_000.0
            );
        }
        w.write_all(buf.as_bytes()).expect("write");
        written += buf.len() as u64;
    }
    w.write_all(b"\n").expect("write");
    w.flush().expect("flush");
}

fn last_screen(path: PathBuf, n: usize) {
    let t = Instant::now();
    let last = read_last_lines(&path, n, 4096).expect("read last lines");
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    println!("lines {} last_screen_ms {ms:.3}", last.lines.len());
}

fn run_backfill(path: PathBuf) {
    let len = std::fs::metadata(&path).expect("file").len();
    let parser = MetricParser::default();
    let t = Instant::now();
    let r = backfill(&path, len, &parser, 2000, 4096, &AtomicBool::new(false), |_| {}).expect("backfill");
    let s = t.elapsed().as_secs_f64();
    println!(
        "bytes {} lines {} loss_points {} eval_points {} seconds {s:.3} mb_per_s {:.0}",
        r.bytes,
        r.lines,
        r.metrics.loss.count(),
        r.metrics.eval_loss.count(),
        r.bytes as f64 / 1e6 / s
    );
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn follow_writer(path: PathBuf, rate: u64, secs: u64) {
    let mut f = OpenOptions::new().create(true).append(true).open(&path).expect("open");
    let start = Instant::now();
    let total = rate * secs;
    let mut seq = 0u64;
    let mut buf = Vec::with_capacity(1 << 20);
    while seq < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        if due > seq {
            buf.clear();
            let ts = now_ns();
            while seq < due {
                let _ = writeln!(buf, "seq {seq} ts {ts} step {seq} | loss 2.3456 | lr 3e-4 | tok/s 1900");
                seq += 1;
            }
            f.write_all(&buf).expect("write");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    println!("written {seq} lines in {:.2}s", start.elapsed().as_secs_f64());
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass; a zeroed rusage is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn follow_reader(path: PathBuf, expected: u64, secs: u64) {
    let (tx, rx) = mpsc::channel();
    let cfg = LogConfig::default();
    let collector = spawn_collector(path, CollectorOptions::new(cfg), move |s| tx.send(s).is_ok()).expect("collector");
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let mut next = 0u64;
    let (mut lost, mut dup, mut got) = (0u64, 0u64, 0u64);
    let mut lags_ms: Vec<f64> = Vec::new();
    let mut samples = 0u64;
    while got < expected && start.elapsed() < Duration::from_secs(secs) {
        let Ok(s) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        samples += 1;
        let now = now_ns();
        for (i, l) in s.new_lines.iter().enumerate() {
            let mut parts = l.text.split(' ');
            let (Some("seq"), Some(seq), Some("ts"), Some(ts)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Ok(seq), Ok(ts)) = (seq.parse::<u64>(), ts.parse::<u128>()) else {
                continue;
            };
            if i == 0 {
                lags_ms.push(now.saturating_sub(ts) as f64 / 1e6);
            }
            if seq < next {
                dup += 1;
            } else {
                lost += seq - next;
                next = seq + 1;
            }
            got += 1;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    drop(collector);
    lost += expected.saturating_sub(next);
    lags_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| lags_ms.get(((lags_ms.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(f64::NAN);
    println!(
        "received {got} lost {lost} duplicated {dup} samples {samples} lag_ms_p50 {:.1} lag_ms_p99 {:.1} lag_ms_max {:.1} cpu_percent {:.1}",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        cpu / wall * 100.0
    );
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn long_line(path: PathBuf) {
    let cap = 4096;
    let before = peak_rss_kib();
    let mut tailer = Tailer::new(&path, StartAt::Beginning, cap);
    let mut lines = Vec::new();
    loop {
        let b = tailer.poll().expect("poll");
        lines.extend(b.lines);
        if !b.more {
            break;
        }
    }
    let after = peak_rss_kib();
    let longest = lines.iter().map(|l| l.text.len()).max().unwrap_or(0);
    let truncated = lines.iter().filter(|l| l.truncated).count();
    println!(
        "lines {} truncated {truncated} longest_kept_bytes {longest} cap {cap} peak_rss_growth_kib {}",
        lines.len(),
        after.saturating_sub(before)
    );
}
