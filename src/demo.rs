//! `opsconsole demo`: a throwaway workspace in the seed's layout and a simulated trainer
//! beside the console, so every panel moves with nothing set up.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr};

use crate::config::{self, DEFAULT_CONFIG};

/// Options of `opsconsole demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub keep: bool,
    pub dir: Option<PathBuf>,
    pub speed: f64,
}

/// The experiment the demo trains.
pub const EXPERIMENT: &str = "v01";
/// Steps in the simulated run.
pub const TOTAL_STEPS: u64 = 24_000;
/// A checkpoint every this many steps.
pub const SAVE_EVERY: u64 = 100;
/// Size of each simulated checkpoint.
pub const CHECKPOINT_BYTES: usize = 3 * 1024 * 1024;
/// The trainer's log is rotated (renamed to `train.log.1`, a new `train.log` started) at
/// this step, once, as logrotate or a RotatingFileHandler would.
pub const ROTATE_AT: u64 = 600;
/// The trainer keeps at most this many checkpoints (like the HF Trainer's save_total_limit).
pub const SAVE_TOTAL_LIMIT: usize = 30;

/// Lays out a workspace in the seed's shape under `root`.
pub fn create_workspace(root: &Path) -> io::Result<()> {
    let exp = root.join("experiments").join(EXPERIMENT);
    for d in [exp.join("models"), exp.join("logs"), root.join("checkpoints"), root.join("data")] {
        fs::create_dir_all(d)?;
    }
    fs::write(
        exp.join("train.py"),
        "# Simulated by `opsconsole demo`: the real trainer would live here.\n\
         import torch\n\nfor step in range(24000):\n    ...\n    if step % 100 == 0:\n        \
         torch.save(state, f\"checkpoints/v01_step_{step}.pt\")\n",
    )?;
    fs::write(exp.join("requirements.txt"), "torch==2.5.1\ntransformers==4.46.3\n")?;
    fs::write(exp.join("models").join("model.py"), "# the model definition of experiment v01\n")?;
    fs::write(
        root.join("journal.md"),
        "# Journal\n\n## v01 — demo run\n- Simulated by `opsconsole demo`.\n\n## Data\n- **Dataset**: demo tokens\n",
    )?;
    fs::write(root.join("requirements.txt"), "torch==2.5.1\n")?;
    // The demo's two local remotes (L2 and L3): outside the workspace (a remote inside it
    // is no copy), on the same disk (allowed by same_disk = true and shown as "same disk:
    // not a backup"), set up with their identity markers as `remote check --init` would.
    let remotes = remotes_dir(root);
    fs::create_dir_all(&remotes)?;
    // Checkpoints come every few seconds here, so they settle sooner than a real run's.
    let cfg = demo_sync_config(
        &DEFAULT_CONFIG
            .replace("data = \"/data\"", "data = \"data\"")
            .replace("settle_secs = 60", "settle_secs = 5")
            .replace("scan_secs = 30", "scan_secs = 5"),
        &remotes,
    );
    fs::write(root.join(config::CONFIG_FILE), cfg)?;
    let ws_id = crate::sync::marker::workspace_id(root)?;
    for name in ["drive", "hf"] {
        let remote = crate::sync::local::LocalRemote::with_options(
            name,
            remotes.join(name),
            crate::sync::local::LocalOptions {
                workspace_id: Some(ws_id.clone()),
                workspace: Some(root.to_path_buf()),
                same_disk: true,
                ..Default::default()
            },
        );
        if let Some(step) = remote.init_blocking().into_iter().find(|s| !s.ok) {
            return Err(io::Error::other(format!("setting up the demo remote '{name}': {}", step.detail)));
        }
    }
    Ok(())
}

/// Where the demo's remotes live: beside the workspace (`<workspace>-remotes/`).
pub fn remotes_dir(root: &Path) -> PathBuf {
    let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "demo".into());
    root.with_file_name(format!("{name}-remotes"))
}

/// The demo's sync: two local remotes in `remotes` (`drive` as L2, `hf` as L3), on the
/// workspace's disk (`same_disk = true`), L3 uploading each checkpoint once complete, L2
/// every 2 minutes, and a bandwidth cap so progress is visible.
pub fn demo_sync_config(cfg: &str, remotes: &Path) -> String {
    let toml_path = |p: PathBuf| toml::Value::String(p.display().to_string()).to_string();
    cfg.replacen(
        "[remotes]\n",
        &format!(
            "[remotes]\n[remotes.drive]\nkind = \"local\"\npath = {}\nsame_disk = true\n\n\
             [remotes.hf]\nkind = \"local\"\npath = {}\nsame_disk = true\n",
            toml_path(remotes.join("drive")),
            toml_path(remotes.join("hf"))
        ),
        1,
    )
    .replacen("interval_minutes = 90\n", "interval_minutes = 2\n", 1)
    .replacen("interval_minutes = 180\n", "interval_minutes = 0\n", 1)
    .replacen("bandwidth_limit_kib_s = 0\n", "bandwidth_limit_kib_s = 2048\n", 1)
    .replacen("settle_seconds = 5\n", "settle_seconds = 1\n", 1)
}

/// Starts the simulated trainer (`opsconsole demo-trainer`) on `root`.
pub fn spawn_trainer(root: &Path, speed: f64) -> Result<Child> {
    let exe = std::env::current_exe().wrap_err("finding the opsconsole binary")?;
    Command::new(exe)
        .arg("demo-trainer")
        .arg(root)
        .arg("--speed")
        .arg(speed.to_string())
        .arg("--parent")
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .wrap_err("starting the simulated trainer")
}

/// Stops the simulated trainer and reaps it.
pub fn stop_trainer(child: &mut Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn alive(pid: u32) -> bool {
    // Signal 0 only checks that the process exists (and is ours to signal).
    rustix::process::Pid::from_raw(pid as i32).is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// The simulated loss curve: falls from ~4.0 towards 1.2, with noise.
pub fn loss_at(step: u64, noise: f64) -> f64 {
    2.8 * (-(step as f64) / 8000.0).exp() + 1.2 + noise
}

/// Linear warm-up for 500 steps to 3e-4, then cosine decay.
pub fn lr_at(step: u64) -> f64 {
    let peak = 3e-4;
    if step < 500 {
        peak * step as f64 / 500.0
    } else {
        let p = (step - 500) as f64 / (TOTAL_STEPS - 500) as f64;
        peak * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
    }
}

fn hms(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60)
    } else {
        format!("{:02}:{:02}", secs / 60, secs % 60)
    }
}

/// A tqdm bar as HF Trainer prints it (without the leading `\r`).
pub fn tqdm_bar(step: u64, total: u64, elapsed: u64, rate: f64) -> String {
    let pct = step as f64 * 100.0 / total as f64;
    let cells = 10.0 * step as f64 / total as f64;
    let full = cells.floor() as usize;
    let partial = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"][((cells - full as f64) * 8.0) as usize % 8];
    let mut bar = "█".repeat(full);
    bar.push_str(partial);
    let bar = format!("{bar:<10}");
    let remaining = if rate > 0.0 { ((total - step) as f64 / rate) as u64 } else { 0 };
    format!("{pct:3.0}%|{bar}| {step}/{total} [{}<{}, {rate:5.2}it/s]", hms(elapsed), hms(remaining))
}

/// The simulated trainer: HF Trainer style log lines, a tqdm bar, eval lines and
/// checkpoints every few seconds. Runs until the run ends, SIGTERM, or `parent` exits.
pub fn run_trainer(root: &Path, speed: f64, parent: Option<u32>) -> io::Result<()> {
    let speed = if speed.is_finite() && speed > 0.0 { speed } else { 1.0 };
    let step_time = Duration::from_secs_f64(0.05 / speed);
    let log_dir = root.join("experiments").join(EXPERIMENT).join("logs");
    fs::create_dir_all(&log_dir)?;
    let ckpt_dir = root.join("checkpoints");
    fs::create_dir_all(&ckpt_dir)?;
    let mut log = OpenOptions::new().create(true).append(true).open(log_dir.join("train.log"))?;
    writeln!(log, "[INFO] opsconsole demo trainer: simulated run {EXPERIMENT} (no real model)")?;
    writeln!(log, "***** Running training *****")?;
    writeln!(log, "  Num examples = 192,000")?;
    writeln!(log, "  Num Epochs = 3")?;
    writeln!(log, "  Instantaneous batch size per device = 8")?;
    writeln!(log, "  Total optimization steps = {TOTAL_STEPS}")?;
    let start = Instant::now();
    let mut rng = fastrand::Rng::with_seed(68);
    let mut saved: Vec<PathBuf> = Vec::new();
    for step in 1..=TOTAL_STEPS {
        if parent.is_some_and(|p| !alive(p)) {
            return Ok(());
        }
        std::thread::sleep(step_time);
        let elapsed = start.elapsed().as_secs_f64();
        let rate = step as f64 / elapsed.max(1e-3);
        write!(log, "\r{}", tqdm_bar(step, TOTAL_STEPS, elapsed as u64, rate))?;
        let epoch = 3.0 * step as f64 / TOTAL_STEPS as f64;
        if step % 50 == 0 {
            let loss = loss_at(step, (rng.f64() - 0.5) * 0.08);
            let grad = 0.6 + rng.f64() * 0.5;
            writeln!(log)?;
            writeln!(
                log,
                "{{'loss': {loss:.4}, 'grad_norm': {grad:.4}, 'learning_rate': {:e}, 'epoch': {epoch:.2}}}",
                lr_at(step)
            )?;
        }
        if step % 500 == 0 {
            let eval = loss_at(step, 0.05 + rng.f64() * 0.03);
            writeln!(
                log,
                "{{'eval_loss': {eval:.4}, 'eval_runtime': 12.31, 'eval_samples_per_second': 81.2, \
                 'eval_steps_per_second': 10.16, 'epoch': {epoch:.2}}}"
            )?;
        }
        if step == ROTATE_AT {
            writeln!(log)?;
            writeln!(log, "[INFO] rotating train.log -> train.log.1")?;
            drop(log);
            fs::rename(log_dir.join("train.log"), log_dir.join("train.log.1"))?;
            log = OpenOptions::new().create(true).append(true).open(log_dir.join("train.log"))?;
            writeln!(log, "[INFO] log rotated; run {EXPERIMENT} continues at step {step}")?;
        }
        if step % SAVE_EVERY == 0 {
            let name = format!("{EXPERIMENT}_step_{step}.pt");
            let path = ckpt_dir.join(&name);
            write_checkpoint(&path, &mut rng)?;
            writeln!(log)?;
            writeln!(log, "Saving model checkpoint to checkpoints/{name}")?;
            saved.push(path);
            while saved.len() > SAVE_TOTAL_LIMIT {
                let old = saved.remove(0);
                let _ = fs::remove_file(old);
            }
        }
    }
    let runtime = start.elapsed().as_secs_f64();
    writeln!(log)?;
    writeln!(
        log,
        "{{'train_runtime': {runtime:.2}, 'train_samples_per_second': {:.3}, 'train_steps_per_second': {:.3}, \
         'train_loss': {:.4}, 'epoch': 3.0}}",
        TOTAL_STEPS as f64 * 8.0 / runtime,
        TOTAL_STEPS as f64 / runtime,
        loss_at(TOTAL_STEPS / 2, 0.0)
    )?;
    // The run is over; stay like a finished job until the console stops the demo.
    while parent.is_none_or(alive) {
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// Writes a checkpoint the way `torch.save` does: in pieces, into its final name.
fn write_checkpoint(path: &Path, rng: &mut fastrand::Rng) -> io::Result<()> {
    let mut f = File::create(path)?;
    let mut chunk = vec![0u8; CHECKPOINT_BYTES / 4];
    for _ in 0..4 {
        for b in chunk.chunks_mut(8) {
            let v = rng.u64(..).to_le_bytes();
            b.copy_from_slice(&v[..b.len()]);
        }
        f.write_all(&chunk)?;
    }
    f.sync_all()
}

/// Where `opsconsole demo` records the simulated trainer's pid, for the demo GPU.
pub fn trainer_pid_file(root: &Path) -> PathBuf {
    root.join(".opsconsole").join("demo-trainer.pid")
}
