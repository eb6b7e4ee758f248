//! Cost of the Prometheus exporter: one scrape of `/metrics` over loopback TCP (a new
//! connection each time, as a worst case: Prometheus keeps its connection open), the
//! handler alone, rendering a sample in both formats, and taking a sample (what the
//! sampler does every `[metrics] sample_ms`, never during a scrape).
//!
//! The sample is of a workspace with every collector live: the demo workspace with a
//! training log (steps, losses, an OOM), 30 checkpoints, the sync ledger after a pass, the
//! disks, and the demo's simulated GPU (NVML stand-in figures in the report).
//!
//! Run: cargo bench --bench metrics
//! Figures: docs/performance.md (Prometheus exporter section).

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use opsconsole::metrics::{Latest, RenderOptions, render};
use opsconsole::workspace::Workspace;

fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical").join("ws");
    std::fs::create_dir_all(&root).expect("mkdir");
    opsconsole::demo::create_workspace(&root).expect("demo workspace");
    let mut log = String::from("***** Running training *****\n  Total optimization steps = 24000\n");
    for step in (50..=6000).step_by(50) {
        log += &opsconsole::demo::tqdm_bar(step, 24000, step / 20, 20.0);
        log += &format!(
            "\n{{'loss': {:.4}, 'grad_norm': 0.8, 'learning_rate': {:e}, 'epoch': 0.1}}\n",
            opsconsole::demo::loss_at(step, 0.0),
            opsconsole::demo::lr_at(step)
        );
    }
    log += "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n";
    std::fs::write(root.join("experiments/v01/logs/train.log"), log).expect("log");
    for step in (1..=30).map(|i| i * 200) {
        std::fs::write(root.join(format!("checkpoints/v01_step_{step}.pt")), vec![1u8; 64 * 1024]).expect("ckpt");
    }
    let ws = Workspace::open(&root).expect("workspace");
    (dir, ws)
}

fn bench(c: &mut Criterion) {
    let (_dir, ws) = workspace();
    let (cfg, _) = opsconsole::config::load(ws.config_path.as_deref()).expect("config");
    let mut sampler = opsconsole::metrics::Sampler::new(ws.clone(), cfg.clone());
    let (mut report, _) = sampler.sample();
    // The demo's simulated GPU in place of NVML (not on this machine).
    let gpu = opsconsole::gpu::demo::DemoGpu::new(ws.root.clone(), SystemTime::now()).sample(SystemTime::now());
    report.gpu = opsconsole::gpu::GpuStatus::from_sample(&cfg.gpu, &gpu, &ws.root);
    let opts = RenderOptions {
        checkpoint_roots: opsconsole::metrics::sampler::options(&ws, &cfg).checkpoint_roots,
        dcgm_names: false,
        sample_duration_seconds: Some(0.01),
        experiments_dir: Some(ws.root.join("experiments")),
    };
    let e = render(&report, &opts);
    eprintln!(
        "one sample: {} families, {} bytes OpenMetrics, {} bytes 0.0.4 text",
        e.openmetrics.split(|b| *b == b'\n').filter(|l| l.starts_with(b"# TYPE")).count(),
        e.openmetrics.len(),
        e.text.len()
    );
    let latest = Latest::default();
    latest.set(e);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(opsconsole::metrics::server::serve(listener, latest.clone()));

    let mut g = c.benchmark_group("metrics");
    g.bench_function("scrape over HTTP (new connection, OpenMetrics)", |b| {
        b.iter(|| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text\r\n\r\n").expect("write");
            let mut buf = Vec::with_capacity(32 * 1024);
            s.read_to_end(&mut buf).expect("read");
            assert!(buf.ends_with(b"# EOF\n"));
            black_box(buf.len())
        })
    });
    g.bench_function("handler alone", |b| {
        b.iter(|| {
            black_box(opsconsole::metrics::server::respond(
                &hyper::Method::GET,
                "/metrics",
                Some("text/plain"),
                &latest,
            ))
        })
    });
    g.bench_function("render both formats (once per sample)", |b| b.iter(|| black_box(render(&report, &opts))));
    g.sample_size(10);
    g.bench_function("take a sample (status --json's collectors, every sample_ms)", |b| {
        b.iter(|| black_box(sampler.sample()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
