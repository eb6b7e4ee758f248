//! Inventory + usage scan of a workspace with 10,000 files in 500 folders, against `du -s`
//! on the same tree in the same run (both with a warm page cache).

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use opsconsole::checkpoints::CheckpointsConfig;
use opsconsole::checkpoints::inventory::{self, ScanOptions};
use opsconsole::disk::usage::{UsageSpec, scan_usage};

/// 50 experiments x (vNN, checkpoints, logs, data, 6 data shards) = 500 folders;
/// 50 x (20 checkpoints + 20 logs + 6 x 26 data files + 4 code files) = 10,000 files.
fn build_tree(root: &Path) -> (usize, usize) {
    let blob = vec![7u8; 1024];
    let (mut dirs, mut files) = (0, 0);
    for e in 0..50 {
        let exp = root.join(format!("v{e:03}"));
        let ck = exp.join("checkpoints");
        let logs = exp.join("logs");
        fs::create_dir_all(&ck).unwrap();
        fs::create_dir_all(&logs).unwrap();
        dirs += 3;
        for i in 0..20 {
            fs::write(ck.join(format!("v{e:03}_step_{}.pt", i * 100)), &blob).unwrap();
            fs::write(logs.join(format!("train.log.{i}")), &blob).unwrap();
            files += 2;
        }
        fs::create_dir_all(exp.join("data")).unwrap();
        dirs += 1;
        for s in 0..6 {
            let d = exp.join(format!("data/shard{s}"));
            fs::create_dir_all(&d).unwrap();
            dirs += 1;
            for f in 0..26 {
                fs::write(d.join(format!("part-{f:05}.bin")), &blob).unwrap();
                files += 1;
            }
        }
        for f in ["train.py", "requirements.txt", "README.md", "config.json"] {
            fs::write(exp.join(f), &blob).unwrap();
            files += 1;
        }
    }
    (dirs, files)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    let (dirs, files) = build_tree(ws);
    assert_eq!((dirs, files), (500, 10_000));
    let cfg = CheckpointsConfig { roots: vec!["*/checkpoints".into()], ..Default::default() };
    let spec = UsageSpec {
        checkpoints: vec!["*/checkpoints".into()],
        logs: vec!["*/logs".into()],
        data: vec!["*/data".into()],
        ..UsageSpec::default()
    };
    let now = SystemTime::now() + Duration::from_secs(3600);
    // Same answer as du before timing anything.
    let u = scan_usage(ws, &spec);
    let du = std::process::Command::new("du").args(["-s", "-B1"]).arg(ws).output().unwrap();
    let du_bytes: u64 = String::from_utf8_lossy(&du.stdout).split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(u.total_bytes, du_bytes, "usage scan and du agree");
    let inv = inventory::scan(ws, &cfg, now, ScanOptions { previous: None, check_open_files: true });
    assert_eq!(inv.checkpoints.len(), 1000);

    // Interleaved rounds, so a busy machine slows both sides alike: medians of 41 each.
    let none0 = opsconsole::checkpoints::NotConfirmed;
    let (mut ours, mut seq, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..41 {
        let t = std::time::Instant::now();
        let _ = opsconsole::checkpoints::sample::collect(ws, &cfg, &spec, &none0, None, now);
        ours.push(t.elapsed());
        let t = std::time::Instant::now();
        let _ = inventory::scan(ws, &cfg, now, ScanOptions { previous: None, check_open_files: true });
        let _ = scan_usage(ws, &spec);
        seq.push(t.elapsed());
        let t = std::time::Instant::now();
        let _ = std::process::Command::new("du").arg("-s").arg(ws).output().unwrap();
        theirs.push(t.elapsed());
    }
    for v in [&mut ours, &mut seq, &mut theirs] {
        v.sort();
    }
    println!(
        "interleaved medians (41 rounds): sample::collect {:.2} ms, two walks {:.2} ms, du -s {:.2} ms",
        ours[20].as_secs_f64() * 1e3,
        seq[20].as_secs_f64() * 1e3,
        theirs[20].as_secs_f64() * 1e3
    );

    let mut g = c.benchmark_group("scan_10k_files_500_dirs");
    g.sample_size(30).measurement_time(Duration::from_secs(6)).warm_up_time(Duration::from_secs(1));
    // What the console's collector and `status` run: one walk for inventory and usage.
    let none = opsconsole::checkpoints::NotConfirmed;
    g.bench_function("inventory+usage (sample::collect)", |b| {
        b.iter(|| {
            let s = opsconsole::checkpoints::sample::collect(ws, &cfg, &spec, &none, None, now);
            (s.checkpoints.len(), s.usage.total_bytes)
        })
    });
    g.bench_function("inventory+usage as two walks", |b| {
        b.iter(|| {
            let inv = inventory::scan(ws, &cfg, now, ScanOptions { previous: None, check_open_files: true });
            let u = scan_usage(ws, &spec);
            (inv.checkpoints.len(), u.total_bytes)
        })
    });
    g.bench_function("usage_only", |b| b.iter(|| scan_usage(ws, &spec).total_bytes));
    g.bench_function("inventory_only", |b| {
        b.iter(|| {
            inventory::scan(ws, &cfg, now, ScanOptions { previous: None, check_open_files: true }).checkpoints.len()
        })
    });
    g.bench_function("inventory_without_proc_scan", |b| {
        b.iter(|| {
            inventory::scan(ws, &cfg, now, ScanOptions { previous: None, check_open_files: false }).checkpoints.len()
        })
    });
    g.bench_function("proc_open_for_write_scan", |b| {
        b.iter(|| opsconsole::checkpoints::openfiles::open_for_write(&[ws]).len())
    });
    g.bench_function("du -s", |b| {
        b.iter(|| std::process::Command::new("du").arg("-s").arg(ws).output().unwrap().stdout.len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
