//! Cost of one full GPU sample (every GPU and its compute processes, with /proc facts)
//! through nvml-wrapper and the C stand-in library from tests/support.
//!
//! Run: cargo bench --bench gpu
//! Figures and how to read them: docs/performance/gpu.md.

#[path = "../tests/support/nvml.rs"]
mod nvml_support;

use std::hint::black_box;
use std::process::{Child, Command};
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use nvml_support::{A100_80_TOTAL, GIB, L4_TOTAL, StubNvml, gpu_line, proc_line};
use opsconsole::gpu::{FitTracker, GpuCollector, GpuConfig, GpuHistory};

/// `n` real processes, so /proc is read as in production.
fn sleepers(n: usize) -> Vec<Child> {
    (0..n).map(|_| Command::new("sleep").arg("600").spawn().expect("spawn sleep")).collect()
}

fn fixture(gpus: usize, procs: &[Child]) -> String {
    let mut f = String::from("init 0\ndriver 550.54.15\n");
    for i in 0..gpus {
        if i % 2 == 0 {
            f += &gpu_line("NVIDIA L4", L4_TOTAL, 18 * GIB, "util=97 memutil=61 temp=71 power=72000 limit=72000");
        } else {
            f += &gpu_line(
                "NVIDIA A100-SXM4-80GB",
                A100_80_TOTAL,
                60 * GIB,
                "util=88 memutil=40 temp=55 power=NS limit=NS",
            );
        }
    }
    for (k, p) in procs.iter().enumerate() {
        f += &proc_line((k % gpus) as u32, p.id(), 8 * GIB);
    }
    f
}

fn bench_sample(c: &mut Criterion) {
    let mut group = c.benchmark_group("gpu_sample");
    for (gpus, nprocs) in [(2usize, 3usize), (8, 16)] {
        let stub = StubNvml::build();
        let mut procs = sleepers(nprocs);
        // Let the sleepers finish exec before their /proc entries are read.
        std::thread::sleep(Duration::from_millis(200));
        stub.write(&fixture(gpus, &procs));
        let cfg = GpuConfig { lib_path: Some(stub.lib.clone()), ..GpuConfig::default() };
        let mut collector = GpuCollector::new(&cfg);
        let first = stub.with_env(|| collector.sample(SystemTime::now()));
        assert!(first.nvml.is_ok(), "{:?}", first.nvml);
        assert_eq!(first.gpus.len(), gpus);
        let mut history = GpuHistory::from_config(&cfg);
        let mut fit = FitTracker::new();
        group.bench_function(format!("collect_{gpus}_gpus_{nprocs}_procs"), |b| {
            b.iter(|| collector.sample(black_box(SystemTime::now())))
        });
        // What the app does per sample: collect, then fold into history and tier fit.
        group.bench_function(format!("collect_fold_{gpus}_gpus_{nprocs}_procs"), |b| {
            b.iter(|| {
                let s = collector.sample(black_box(SystemTime::now()));
                history.push(&s);
                black_box(fit.update(&cfg, &s, None));
                s
            })
        });
        if gpus == 2 {
            // Cold start: dlopen, ~400 symbol lookups, nvmlInit_v2, first sample, shutdown.
            group.bench_function("open_and_first_sample_2_gpus", |b| {
                b.iter(|| GpuCollector::new(&cfg).sample(black_box(SystemTime::now())))
            });
        }
        for p in &mut procs {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench_sample
}
criterion_main!(benches);
