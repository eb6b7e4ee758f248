//! Cost of one full GPU sample (every GPU and its compute processes, with /proc facts)
//! through nvml-wrapper and the C stand-in library from tests/support.
//!
//! Run: cargo bench --bench gpu
//! Figures and how to read them: docs/performance.md (GPU collector section).

#[path = "../tests/support/nvml.rs"]
mod nvml_support;

use std::hint::black_box;
use std::process::{Child, Command};
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use nvml_support::{A100_80_TOTAL, GIB, L4_TOTAL, StubNvml, gpu_line, proc_line};
use opsconsole::app::{AppState, Msg, update};
use opsconsole::config::Config;
use opsconsole::gpu::{FitTracker, GpuCollector, GpuConfig, GpuDevice, GpuHistory, GpuProcess, GpuSample, NvmlStatus};
use opsconsole::workspace::HostInfo;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

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

/// A state with `gpus` GPUs, two processes each, and 15 minutes of history.
fn panel_state(gpus: u32) -> AppState {
    let now = 1_795_867_200u64;
    let host = HostInfo { hostname: "l4-box".into(), boot_time_unix: now - 3600 };
    let mut state = AppState::new(
        Config::default(),
        host,
        "/home/me/rsm".into(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(now),
    );
    for t in 0..if gpus == 0 { 0 } else { 900u64 } {
        let devices = (0..gpus)
            .map(|i| {
                let used = (10 + (t + i as u64) % 8) * GIB;
                GpuDevice {
                    index: i,
                    name: "NVIDIA L4".into(),
                    uuid: None,
                    memory_used_bytes: Some(used),
                    memory_total_bytes: Some(L4_TOTAL),
                    utilization_pct: Some((t % 100) as u32),
                    memory_utilization_pct: Some(40),
                    temperature_c: Some(70),
                    power_draw_mw: Some(70_000),
                    power_limit_mw: Some(72_000),
                    processes: (0..2u32)
                        .map(|k| GpuProcess {
                            pid: 1000 + i * 10 + k,
                            gpu_index: i,
                            used_bytes: Some(used / 2),
                            command: Some("python experiments/v68/train.py --bf16 --batch 16".into()),
                            user: Some("me".into()),
                            uid: Some(1000),
                            start_time_unix_s: Some(now - 3000),
                            start_ticks: Some(42),
                            cwd: Some("/home/me/rsm".into()),
                            sm_util_pct: None,
                        })
                        .collect(),
                    processes_error: None,
                    error: None,
                }
            })
            .collect();
        let sample = GpuSample {
            taken_at_unix_ms: (now - 900 + t) * 1000,
            nvml: NvmlStatus::Ok { driver_version: "550.54.15".into() },
            gpus: devices,
        };
        update(&mut state, Msg::Gpu(sample));
    }
    state
}

fn bench_render(c: &mut Criterion) {
    let mut group = c.benchmark_group("gpu_render");
    // Baseline: the same screen before any GPU sample (the panel draws one line).
    for gpus in [0u32, 1, 8] {
        let state = panel_state(gpus);
        let mut terminal = Terminal::new(TestBackend::new(160, 48)).expect("test backend");
        group.bench_function(format!("screen_160x48_{gpus}_gpu"), |b| {
            b.iter(|| {
                terminal.draw(|f| opsconsole::ui::render(black_box(&state), &mut f.into())).expect("draw");
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench_sample, bench_render
}
criterion_main!(benches);
