//! One judgment of every rule (what the rules collector does every `rules.every`) on a
//! workspace shaped like a real one: this process holds 500 data files open for reading
//! (the trainer), a 1 MB journal, a training log ending in a progress bar, a `train.py`
//! with 40 imports, and a site-packages folder with 300 installed distributions. The
//! `/proc/PID/fd` part is compared with `lsof -p PID` on the same process in the same run.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use opsconsole::config::Config;
use opsconsole::rules::{self, Inputs, Probe, RunFacts};

fn build(ws: &Path) -> Vec<fs::File> {
    let exp = ws.join("experiments/v68_lane");
    fs::create_dir_all(exp.join("logs")).unwrap();
    fs::create_dir_all(ws.join("data")).unwrap();
    let mut open = Vec::new();
    for i in 0..500 {
        let p = ws.join(format!("data/shard-{i:05}.arrow"));
        fs::write(&p, b"x").unwrap();
        open.push(fs::File::open(&p).unwrap());
    }
    let mut journal = String::from("# Journal\n");
    while journal.len() < 1_000_000 {
        journal.push_str(&format!("## v{} notes\nTraining: ~6 hours\nsome words about the run\n", journal.len() % 97));
    }
    journal.push_str("## v68 lane\nTraining: ~6 hours\nmini-train ok\n");
    fs::write(ws.join("journal.md"), journal).unwrap();
    let mut log = String::new();
    for s in 0..2000 {
        log.push_str(&format!(
            "{{'loss': 3.6, 'learning_rate': 0.0003, 'epoch': 0.1}}\n  5%|▌ | {s}/24000 [30:00<9:30:00, 0.67it/s]\n"
        ));
    }
    fs::write(exp.join("logs/train.log"), log).unwrap();
    let mut py = String::new();
    for i in 0..40 {
        py.push_str(&format!("import pkg{i}\n"));
    }
    fs::write(exp.join("train.py"), py).unwrap();
    fs::write(ws.join("requirements.txt"), (0..40).map(|i| format!("dist{i}==1.0\n")).collect::<String>()).unwrap();
    for i in 0..300 {
        let d = ws.join(format!("site/dist{i}-1.0.dist-info"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("METADATA"), format!("Name: dist{i}\n")).unwrap();
        fs::write(d.join("top_level.txt"), format!("pkg{i}\n")).unwrap();
    }
    open
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().canonicalize().unwrap();
    let _open = build(&ws);
    let mut cfg = Config::default();
    cfg.rules.site_packages = vec!["site".into()];
    cfg.paths.data = "data".into();
    let probe = Probe::default();
    let me = std::process::id();
    let run = RunFacts { pids: vec![me], experiment: Some("v68_lane".into()), ..Default::default() };
    c.bench_function("rules: data_local over 500 open files (/proc/PID/fd + mountinfo)", |b| {
        b.iter(|| rules::data::check(&ws, &cfg, &run, &probe))
    });
    c.bench_function("lsof -p PID (the same process, for comparison)", |b| {
        b.iter(|| std::process::Command::new("lsof").args(["-p", &me.to_string()]).output().unwrap())
    });
    c.bench_function("rules: every rule once (evaluate)", |b| {
        b.iter(|| rules::evaluate(&ws, &cfg, &Inputs { gpu: None, now: SystemTime::now(), probe: &probe }))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
