//! The protocol's rules (docs/rules.md), each from prepared workspaces and fixture samples,
//! and their header flags as snapshots at 80x24 and 160x48.

#[path = "support/airlock.rs"]
mod airlock;
mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use opsconsole::app::{Msg, update};
use opsconsole::config::Config;
use opsconsole::rules::{self, Inputs, Probe, RuleState, RulesReport};
use support::fixtures as fx;
use support::log_fixtures as lf;

/// A child that holds `data` open for reading and appends to `log` (a stand-in trainer:
/// the log's writer is the training process), until killed.
struct Trainer(Child);

impl Trainer {
    fn start(data: &Path, log: &Path) -> Self {
        let child = Command::new("sh")
            .arg("-c")
            .arg("exec 3<\"$1\" 4>>\"$2\"; exec sleep 60")
            .arg("trainer")
            .arg(data)
            .arg(log)
            .spawn()
            .expect("sh");
        // Wait until both files are open (the fds show in /proc).
        let pid = child.id();
        for _ in 0..200 {
            let n = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if n >= 5 && cmd.starts_with("sleep") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Self(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Trainer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A workspace with `experiments/v7_small/logs/train.log` and a data file.
fn workspace() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("experiments/v7_small/logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("train.log");
    std::fs::write(&log, "step 1 loss 2.0\n").unwrap();
    let data = dir.path().join("shards");
    std::fs::create_dir_all(&data).unwrap();
    let shard = data.join("train-00001.arrow");
    std::fs::write(&shard, b"data").unwrap();
    (dir, log, shard)
}

/// A mountinfo fixture: `/` as ext4 and `point` (with the real device of `dev_of`) as `kind`.
fn mountinfo(dir: &Path, point: &Path, dev_of: &Path, kind: &str) -> PathBuf {
    let dev = std::fs::metadata(dev_of).unwrap().dev();
    let (maj, min) = rules::mounts::split_dev(dev);
    let text = format!(
        "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
         40 22 {maj}:{min} / {} rw,nosuid,nodev shared:30 - {kind} my-bucket rw,user_id=0\n",
        point.display()
    );
    let f = dir.join("mountinfo.fixture");
    std::fs::write(&f, text).unwrap();
    f
}

fn judge(ws: &Path, cfg: &Config, probe: &Probe) -> RulesReport {
    rules::evaluate(ws, cfg, &Inputs { gpu: None, now: std::time::SystemTime::now(), probe })
}

// ---- Rule 1: data on the local SSD ------------------------------------------------------

#[test]
fn a_trainer_reading_data_from_a_fuse_mount_is_flagged() {
    let (dir, log, shard) = workspace();
    let ws = dir.path().canonicalize().unwrap();
    let fixture = mountinfo(&ws, &ws.join("shards"), &shard, "fuse.gcsfuse");
    let trainer = Trainer::start(&shard, &log);
    let probe = Probe { proc_root: "/proc".into(), mounts_file: Some(fixture), shared_scan: None };
    let report = judge(&ws, &Config::default(), &probe);
    assert!(report.run.pids.contains(&trainer.pid()), "the log's writer is the run: {:?}", report.run);
    assert_eq!(report.run.experiment.as_deref(), Some("v7_small"));
    let d = &report.data_local;
    assert_eq!(d.verdict.state, RuleState::Flag, "{d:?}");
    assert!(
        d.verdict.message.starts_with("training reads data from a network mount (gcsfuse): pre-fetch it to /data"),
        "{}",
        d.verdict.message
    );
    assert!(d.verdict.message.contains("train-00001.arrow"), "{}", d.verdict.message);
    assert_eq!(d.network_reads.len(), 1, "the log (open for writing) is not data: {:?}", d.network_reads);
    assert_eq!(d.network_reads[0].pid, trainer.pid());
    assert_eq!(d.network_reads[0].fs_type, "fuse.gcsfuse");
    assert_eq!(report.flags()[0].short, "data on gcsfuse");
    // The same JSON keys `status --json` prints.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["data_local"]["state"], "flag");
    assert_eq!(json["data_local"]["network_reads"][0]["fs_type"], "fuse.gcsfuse");
}

#[test]
fn the_same_trainer_on_a_local_filesystem_passes_and_the_switch_turns_the_rule_off() {
    let (dir, log, shard) = workspace();
    let ws = dir.path().canonicalize().unwrap();
    let fixture = mountinfo(&ws, &ws.join("shards"), &shard, "ext4");
    let _trainer = Trainer::start(&shard, &log);
    let probe = Probe { proc_root: "/proc".into(), mounts_file: Some(fixture.clone()), shared_scan: None };
    let report = judge(&ws, &Config::default(), &probe);
    assert_eq!(report.data_local.verdict.state, RuleState::Ok, "{:?}", report.data_local);
    assert!(report.flags().is_empty());

    // Off: nothing is read, the state says so.
    let nfs = mountinfo(&ws, &ws.join("shards"), &shard, "nfs4");
    let mut cfg = Config::default();
    cfg.rules.data_local = false;
    let off = judge(&ws, &cfg, &Probe { proc_root: "/proc".into(), mounts_file: Some(nfs.clone()), shared_scan: None });
    assert_eq!(off.data_local.verdict.state, RuleState::Off);
    assert_eq!(off.data_local.verdict.message, "turned off (rules.data_local = false)");
    let on =
        judge(&ws, &Config::default(), &Probe { proc_root: "/proc".into(), mounts_file: Some(nfs), shared_scan: None });
    assert!(on.data_local.verdict.message.contains("(nfs4)"), "{:?}", on.data_local);
}

#[test]
fn a_data_folder_on_a_network_mount_is_flagged_with_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(ws.join("data")).unwrap();
    // A /proc/mounts-shaped table (no device numbers): matched by the longest mount point.
    let table = ws.join("mounts.fixture");
    std::fs::write(
        &table,
        format!("/dev/sda1 / ext4 rw 0 0\nremote:bucket {} fuse.rclone rw 0 0\n", ws.join("data").display()),
    )
    .unwrap();
    let mut cfg = Config::default();
    cfg.paths.data = "data".into();
    let report =
        judge(&ws, &cfg, &Probe { proc_root: "/nonexistent-proc".into(), mounts_file: Some(table), shared_scan: None });
    let d = &report.data_local;
    assert_eq!(d.verdict.state, RuleState::Flag, "{d:?}");
    assert!(d.verdict.message.contains("the data folder data is on a network mount (rclone"), "{}", d.verdict.message);
    let fs = d.data_fs.as_ref().unwrap();
    assert_eq!((fs.fs_type.as_str(), fs.network), ("fuse.rclone", true));
}

#[test]
fn code_and_libraries_on_a_network_mount_are_not_data() {
    let (dir, log, _shard) = workspace();
    let ws = dir.path().canonicalize().unwrap();
    let code = ws.join("shards/model.py");
    std::fs::write(&code, "x = 1\n").unwrap();
    let fixture = mountinfo(&ws, &ws.join("shards"), &code, "fuse.gcsfuse");
    let _trainer = Trainer::start(&code, &log);
    let report = judge(
        &ws,
        &Config::default(),
        &Probe { proc_root: "/proc".into(), mounts_file: Some(fixture), shared_scan: None },
    );
    assert!(report.data_local.network_reads.is_empty(), "{:?}", report.data_local);
}

// ---- Rule 2: tier purpose ----------------------------------------------------------------

use opsconsole::gpu::{GpuDevice, GpuProcess, GpuSample, NvmlStatus};

const MIB: u64 = 1 << 20;

/// Llama-2-7B's config.json (meta-llama/Llama-2-7b-hf): 6.74B parameters.
const LLAMA_7B: &str = r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 11008,
 "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32, "vocab_size": 32000,
 "hidden_act": "silu", "tie_word_embeddings": false, "torch_dtype": "float16", "model_type": "llama"}"#;

/// GPT-2 small's config.json: 124M parameters.
const GPT2: &str = r#"{"n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024, "vocab_size": 50257}"#;

/// One GPU (`name`, `total` bytes) running one process from `cwd`, started `age` ago.
fn gpu_sample(name: &str, total: u64, cwd: &Path, age: Duration) -> GpuSample {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let process = GpuProcess {
        pid: 4_000_000,
        gpu_index: 0,
        used_bytes: Some(18 * 1024 * MIB),
        command: Some("python train.py".into()),
        user: Some("me".into()),
        uid: Some(1000),
        start_time_unix_s: Some(now - age.as_secs()),
        start_ticks: Some(1),
        cwd: Some(cwd.to_path_buf()),
        sm_util_pct: None,
    };
    GpuSample {
        taken_at_unix_ms: now * 1000,
        nvml: NvmlStatus::Ok { driver_version: "550.54.15".into() },
        gpus: vec![GpuDevice {
            index: 0,
            name: name.into(),
            uuid: None,
            memory_used_bytes: Some(19 * 1024 * MIB),
            memory_total_bytes: Some(total),
            utilization_pct: Some(97),
            memory_utilization_pct: Some(60),
            temperature_c: Some(70),
            power_draw_mw: Some(70_000),
            power_limit_mw: Some(72_000),
            processes: vec![process],
            processes_error: None,
            error: None,
        }],
    }
}

fn judge_gpu(ws: &Path, cfg: &Config, gpu: &GpuSample) -> RulesReport {
    let probe = Probe { proc_root: "/nonexistent-proc".into(), mounts_file: None, shared_scan: None };
    rules::evaluate(ws, cfg, &Inputs { gpu: Some(gpu), now: std::time::SystemTime::now(), probe: &probe })
}

fn experiment(ws: &Path, name: &str, config_json: &str) -> PathBuf {
    let dir = ws.join("experiments").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), config_json).unwrap();
    dir
}

#[test]
fn a_7b_model_on_tier_1_is_flagged_once_and_tier_2_is_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().canonicalize().unwrap();
    let exp = experiment(&ws, "v9_big", LLAMA_7B);
    let l4 = gpu_sample("NVIDIA L4", 23034 * MIB, &exp, Duration::from_secs(20 * 60));
    let report = judge_gpu(&ws, &Config::default(), &l4);
    assert_eq!(report.run.experiment.as_deref(), Some("v9_big"));
    let t = &report.tier_purpose;
    assert_eq!(t.verdict.state, RuleState::Flag, "{t:?}");
    assert_eq!(t.tier.as_deref(), Some("tier1"));
    assert_eq!(t.params, Some(6_738_415_616), "Llama-2-7B's published count");
    assert!(t.params_source.as_deref().is_some_and(|s| s.contains("experiments/v9_big")), "{t:?}");
    assert!(t.verdict.message.contains("~6.7B parameters"), "{}", t.verdict.message);
    assert!(t.verdict.message.contains("belongs on tier2"), "{}", t.verdict.message);
    assert_eq!(report.flags().len(), 1, "said once: {:?}", report.flags());
    assert_eq!(report.flags()[0].short, "6.7B on tier 1");

    // The same job on an A100 80 GB (tier 2) is where it belongs.
    let a100 = gpu_sample("NVIDIA A100-SXM4-80GB", 81920 * MIB, &exp, Duration::from_secs(20 * 60));
    let r2 = judge_gpu(&ws, &Config::default(), &a100);
    assert_eq!(r2.tier_purpose.verdict.state, RuleState::Ok, "{:?}", r2.tier_purpose);
    assert_eq!(r2.tier_purpose.tier.as_deref(), Some("tier2"));

    // The switch.
    let mut cfg = Config::default();
    cfg.rules.tier_purpose = false;
    assert_eq!(judge_gpu(&ws, &cfg, &l4).tier_purpose.verdict.state, RuleState::Off);
}

/// Seen on a lent H200 machine (2026-11-30): the GPU was read, but the default tiers (L4,
/// A100) have none for it, and the rule said "no GPU read".
#[test]
fn a_gpu_that_matches_no_tier_is_named_not_reported_as_unread() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().canonicalize().unwrap();
    let exp = experiment(&ws, "v9_big", LLAMA_7B);
    let h200 = gpu_sample("NVIDIA H200", 143_771 * MIB, &exp, Duration::from_secs(60));
    let t = judge_gpu(&ws, &Config::default(), &h200).tier_purpose;
    assert_eq!(t.verdict.state, RuleState::Unknown, "{t:?}");
    assert_eq!(t.tier, None);
    assert!(t.verdict.message.contains("NVIDIA H200 matches no tier in gpu.tiers"), "{}", t.verdict.message);
    assert!(!t.verdict.message.contains("no GPU read"), "{}", t.verdict.message);
    // With no GPU read, it says that.
    let mut none = h200.clone();
    none.gpus.clear();
    let t = judge_gpu(&ws, &Config::default(), &none).tier_purpose;
    assert!(t.verdict.message.contains("no GPU read"), "{}", t.verdict.message);
}

#[test]
fn a_small_model_training_past_tier1_max_run_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().canonicalize().unwrap();
    let exp = experiment(&ws, "v3_toy", GPT2);
    let short = gpu_sample("NVIDIA L4", 23034 * MIB, &exp, Duration::from_secs(30 * 60));
    let r = judge_gpu(&ws, &Config::default(), &short);
    assert_eq!(r.tier_purpose.verdict.state, RuleState::Ok, "{:?}", r.tier_purpose);
    assert!(r.tier_purpose.verdict.message.contains("~124M parameters"), "{}", r.tier_purpose.verdict.message);
    let long = gpu_sample("NVIDIA L4", 23034 * MIB, &exp, Duration::from_secs(2 * 3600 + 30 * 60));
    let r = judge_gpu(&ws, &Config::default(), &long);
    let t = &r.tier_purpose;
    assert_eq!(t.verdict.state, RuleState::Flag, "{t:?}");
    assert!(
        t.verdict.message.contains("trained for 2h30m on tier 1 (tiers.tier1_max_run 2h)"),
        "{}",
        t.verdict.message
    );
    // A longer limit in config.
    let mut cfg = Config::default();
    cfg.tiers.tier1_max_run = Duration::from_secs(3 * 3600);
    assert_eq!(judge_gpu(&ws, &cfg, &long).tier_purpose.verdict.state, RuleState::Ok);
}

#[test]
fn a_bundle_warns_when_no_mini_train_on_tier_1_is_found() {
    use airlock::{config, repo, write};
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    repo(&ws, "v68_lane");
    let cfg = config(&ws, "");
    let build = || match opsconsole::airlock::bundle::build(
        &ws,
        &cfg,
        &opsconsole::airlock::bundle::BundleOptions { experiment: None, upload: false },
        &mut |_| {},
        &std::sync::atomic::AtomicBool::new(false),
    )
    .unwrap()
    {
        opsconsole::airlock::bundle::Outcome::Built(b) => b.warnings,
        other => panic!("not built: {other:?}"),
    };
    let w = build();
    assert!(
        w.iter().any(|w| w.contains("no mini-train of v68_lane on tier 1")
            && w.contains("don't start a 2-day A100 job without testing on L4 first")),
        "{w:?}"
    );
    // An imported cluster log is not a mini-train here.
    write(&ws, "experiments/v68_lane/logs/train_external.log", b"step 1 loss 2\n");
    assert!(build().iter().any(|w| w.contains("no mini-train")));
    // The journal says so.
    write(&ws, "journal.md", b"# Journal\n## v68 lane unification\nMini-train on the L4: 5 mins, loss falls.\n");
    assert!(!build().iter().any(|w| w.contains("no mini-train")), "the journal entry counts");
    std::fs::remove_file(ws.join("journal.md")).unwrap();
    // A local training log (ignored by git, so the tree stays clean).
    write(&ws, "experiments/v68_lane/logs/train.log", b"step 1 loss 2\n");
    assert!(!build().iter().any(|w| w.contains("no mini-train")), "the local log counts");
    // Off with the rule.
    std::fs::remove_file(ws.join("experiments/v68_lane/logs/train.log")).unwrap();
    let mut off = cfg.clone();
    off.rules.tier_purpose = false;
    let w = match opsconsole::airlock::bundle::build(
        &ws,
        &off,
        &opsconsole::airlock::bundle::BundleOptions { experiment: None, upload: false },
        &mut |_| {},
        &std::sync::atomic::AtomicBool::new(false),
    )
    .unwrap()
    {
        opsconsole::airlock::bundle::Outcome::Built(b) => b.warnings,
        other => panic!("not built: {other:?}"),
    };
    assert!(!w.iter().any(|w| w.contains("no mini-train")), "{w:?}");
}

// ---- Rule 3: time estimates -------------------------------------------------------------

/// A workspace whose journal says `Training: ~6 hours` for v68_lane and whose log's progress
/// bar says 9h30m are left, written by a running trainer.
fn overrunning_workspace() -> (tempfile::TempDir, PathBuf, Trainer) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().canonicalize().unwrap();
    let logs = ws.join("experiments/v68_lane/logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        ws.join("journal.md"),
        "# Journal\n\n## v67 baseline\n- Training: 2 hours\n\n## v68 lane unification\n\
         Total: ~3 hours implementation + 6 hours training + 10 mins eval\n- **Training**: ~6 hours\n",
    )
    .unwrap();
    let log = logs.join("train.log");
    std::fs::write(
        &log,
        "{'loss': 3.6, 'grad_norm': 0.8, 'learning_rate': 0.0003, 'epoch': 0.1}\n\
           5%|▌         | 1200/24000 [30:00<9:30:00, 0.67it/s]\n",
    )
    .unwrap();
    let data = ws.join("data.bin");
    std::fs::write(&data, b"x").unwrap();
    let trainer = Trainer::start(&data, &log);
    (dir, ws, trainer)
}

#[test]
fn a_log_whose_eta_overruns_the_journal_estimate_is_flagged_until_a_new_estimate_is_recorded() {
    let (_dir, ws, _trainer) = overrunning_workspace();
    let probe = Probe::default();
    let report = judge(&ws, &Config::default(), &probe);
    let e = &report.time_estimate;
    assert_eq!(e.experiment.as_deref(), Some("v68_lane"));
    assert_eq!(e.estimate_s, Some(6 * 3600), "the last estimate line of the entry: {e:?}");
    assert!(e.estimate_source.as_deref().is_some_and(|s| s.contains("journal.md")), "{e:?}");
    assert_eq!(e.eta_s, Some(9 * 3600 + 30 * 60));
    assert_eq!(e.verdict.state, RuleState::Flag, "{e:?}");
    assert!(e.verdict.header.starts_with("training will take ~9h3"), "{}", e.verdict.header);
    assert!(e.verdict.header.ends_with("estimate was 6h: tell the user"), "{}", e.verdict.header);
    assert!(e.verdict.message.contains("`opsconsole estimate v68_lane 10h`"), "{}", e.verdict.message);

    // The checklist says so too, with the command that records the update.
    let cfg = Config::default();
    let r = opsconsole::checklist::gather::gather(
        &ws,
        &cfg,
        std::time::SystemTime::now(),
        opsconsole::checklist::gather::Sources { gpu: None, disks: None, live: false, cache: None },
    );
    let item = r.item("estimate").expect("the estimate item");
    assert_eq!(item.status, opsconsole::checklist::Status::Fail, "{item:?}");
    assert_eq!(item.fix.as_ref().and_then(|f| f.command.as_deref()), Some("opsconsole estimate v68_lane 10h"));

    // The user was told: a new estimate, through the binary.
    let out = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("--workspace")
        .arg(&ws)
        .args(["estimate", "v68_lane", "10h"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("recorded: v68_lane training 10h"), "{text}");
    assert!(text.contains("on course"), "{text}");
    let again = judge(&ws, &Config::default(), &probe);
    assert_eq!(again.time_estimate.verdict.state, RuleState::Ok, "{:?}", again.time_estimate);
    assert_eq!(again.time_estimate.estimate_s, Some(10 * 3600));
    // A bad duration is refused in words.
    let bad = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("--workspace")
        .arg(&ws)
        .args(["estimate", "v68_lane", "soon"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"soon\" is not a duration"));

    // Off.
    let mut off = Config::default();
    off.rules.time_estimates = false;
    assert_eq!(judge(&ws, &off, &probe).time_estimate.verdict.state, RuleState::Off);
}

#[test]
fn an_eta_within_the_estimate_passes_and_no_estimate_says_how_to_give_one() {
    let (_dir, ws, _trainer) = overrunning_workspace();
    std::fs::write(ws.join("journal.md"), "## v68\nTraining: 5 mins mini-train, 8 hours full\n").unwrap();
    let r = judge(&ws, &Config::default(), &Probe::default());
    assert_eq!(r.time_estimate.estimate_s, Some(8 * 3600));
    assert_eq!(r.time_estimate.verdict.state, RuleState::Ok, "9h30m is within 1.5x 8h: {:?}", r.time_estimate);
    std::fs::write(ws.join("journal.md"), "## v68\nnothing planned\n").unwrap();
    let r = judge(&ws, &Config::default(), &Probe::default());
    assert_eq!(r.time_estimate.verdict.state, RuleState::Unknown);
    assert!(r.time_estimate.verdict.message.contains("opsconsole estimate v68_lane 6h"), "{:?}", r.time_estimate);
}

// ---- Rule 4: dependency hygiene ---------------------------------------------------------

fn set_mtime(path: &Path, secs_ago: u64) {
    let t = std::time::SystemTime::now() - Duration::from_secs(secs_ago);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
}

/// An installed distribution in a fake site-packages: its METADATA name and either
/// `top_level.txt` or a `RECORD`.
fn dist(site: &Path, folder: &str, name: &str, top_level: Option<&str>, record: Option<&str>) {
    let d = site.join(folder);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("METADATA"), format!("Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")).unwrap();
    if let Some(t) = top_level {
        std::fs::write(d.join("top_level.txt"), t).unwrap();
    }
    if let Some(r) = record {
        std::fs::write(d.join("RECORD"), r).unwrap();
    }
}

fn deps_workspace() -> (tempfile::TempDir, PathBuf, Config) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().canonicalize().unwrap();
    let exp = ws.join("experiments/v5_deps");
    std::fs::create_dir_all(exp.join("models")).unwrap();
    std::fs::write(exp.join("models/__init__.py"), "").unwrap();
    std::fs::write(
        exp.join("train.py"),
        "import os\nimport torch\nimport wandb\nfrom sklearn import metrics\nimport myvis.transforms as T\n\
         import cv2\nfrom models import Net\ntry:\n    import apex\nexcept ImportError:\n    apex = None\n",
    )
    .unwrap();
    std::fs::write(exp.join("setup_env.py"), "import os\nos.system(\"pip install flash-attn\")\n").unwrap();
    std::fs::write(ws.join("requirements.txt"), "torch==2.3.0\nscikit-learn==1.4.2\nmy_vision_lib==0.3\n").unwrap();
    std::fs::write(ws.join("frozen_requirements.txt"), "torch==2.3.0\n").unwrap();
    set_mtime(&ws.join("frozen_requirements.txt"), 3600);
    let site = ws.join("site");
    dist(&site, "scikit_learn-1.4.2.dist-info", "scikit-learn", Some("sklearn\n"), None);
    dist(
        &site,
        "my_vision_lib-0.3.dist-info",
        "my_vision_lib",
        None,
        Some("myvis/__init__.py,sha256=x,1\nmyvis/transforms.py,,\n"),
    );
    dist(&site, "opencv_python-4.9.0.dist-info", "opencv-python", Some("cv2\n"), None);
    dist(&site, "wandb-0.17.0.dist-info", "wandb", None, Some("wandb/__init__.py,,\n../../bin/wandb,,\n"));
    let mut cfg = Config::default();
    cfg.rules.site_packages = vec!["site".into()];
    (dir, ws, cfg)
}

#[test]
fn a_train_py_import_missing_from_requirements_and_pip_install_in_a_script_are_listed() {
    let (_dir, ws, cfg) = deps_workspace();
    let probe = Probe { proc_root: "/nonexistent-proc".into(), mounts_file: None, shared_scan: None };
    let r = judge(&ws, &cfg, &probe);
    let d = &r.dependencies;
    assert_eq!(d.verdict.state, RuleState::Flag, "{d:?}");
    let missing: Vec<(&str, &str, usize)> =
        d.missing.iter().map(|m| (m.module.as_str(), m.distribution.as_str(), m.line)).collect();
    // sklearn and myvis are listed under their distributions' names (installed metadata:
    // top_level.txt, RECORD); apex is optional (try/except ImportError); models is local.
    assert_eq!(missing, [("wandb", "wandb", 3), ("cv2", "opencv-python", 6)], "{d:?}");
    assert_eq!(d.pip_installs.len(), 1, "{d:?}");
    assert_eq!((d.pip_installs[0].file.as_str(), d.pip_installs[0].line), ("experiments/v5_deps/setup_env.py", 2));
    assert!(d.requirements_newer);
    assert!(d.verdict.message.contains("imported by train.py but not in the requirements: wandb, cv2 (opencv-python)"));
    assert!(d.verdict.message.contains("run `opsconsole freeze`"), "{}", d.verdict.message);
    assert_eq!(d.verdict.short, "deps: 4");

    // The checklist item: pip install and the missing imports (the frozen file is the
    // `requirements` item's).
    let rep = opsconsole::checklist::gather::gather(
        &ws,
        &cfg,
        std::time::SystemTime::now(),
        opsconsole::checklist::gather::Sources { gpu: None, disks: None, live: false, cache: None },
    );
    let item = rep.item("dependencies").unwrap();
    assert_eq!(item.status, opsconsole::checklist::Status::Fail, "{item:?}");
    assert!(!item.reason.contains("freeze"), "{item:?}");
    assert!(item.reason.contains("`pip install` in experiments/v5_deps/setup_env.py line 2"), "{item:?}");

    // Fixed: the packages required, the script cleaned, frozen again.
    std::fs::write(
        ws.join("requirements.txt"),
        "torch==2.3.0\nscikit-learn==1.4.2\nmy_vision_lib==0.3\nwandb\nopencv-python-headless\nopencv_python\n",
    )
    .unwrap();
    std::fs::write(ws.join("experiments/v5_deps/setup_env.py"), "print('ok')\n").unwrap();
    std::fs::write(ws.join("frozen_requirements.txt"), "torch==2.3.0\n").unwrap();
    let r = judge(&ws, &cfg, &probe);
    assert_eq!(r.dependencies.verdict.state, RuleState::Ok, "{:?}", r.dependencies);
    let mut off = cfg.clone();
    off.rules.dependencies = false;
    assert_eq!(judge(&ws, &off, &probe).dependencies.verdict.state, RuleState::Off);
    let rep = opsconsole::checklist::gather::gather(
        &ws,
        &off,
        std::time::SystemTime::now(),
        opsconsole::checklist::gather::Sources { gpu: None, disks: None, live: false, cache: None },
    );
    assert_eq!(rep.item("dependencies").unwrap().status, opsconsole::checklist::Status::Off);
}

// ---- Header flags ---------------------------------------------------------------------

fn flagged_report() -> RulesReport {
    let mut r = RulesReport::default();
    r.data_local.verdict = rules::Verdict::flag(
        "training reads data from a network mount (gcsfuse): pre-fetch it to /data (/mnt/gcs/train-00001.arrow)",
        "training reads data from a network mount (gcsfuse): pre-fetch it to /data",
        "data on gcsfuse",
    );
    r.data_local.data_fs = Some(rules::data::DataFs {
        path: "/data".into(),
        mount: "/data".into(),
        fs_type: "fuse.gcsfuse".into(),
        network: true,
    });
    r.tier_purpose.verdict = rules::Verdict::flag(
        "the job on tier 1 has ~6.7B parameters (experiments/v9_big (config.json (Llama layout))): …",
        "6.7B-param job on tier 1: full-scale training belongs on tier2",
        "6.7B on tier 1",
    );
    r.time_estimate.verdict = rules::Verdict::flag(
        "training will take ~9h50m, estimate was 6h (journal.md: …): tell the user, then …",
        "training will take ~9h50m, estimate was 6h: tell the user",
        "~9h50m vs est. 6h",
    );
    r.dependencies.verdict = rules::Verdict::flag(
        "v5: imported by train.py but not in the requirements: wandb",
        "dependencies: 1 missing from requirements.txt",
        "deps: 1",
    );
    r
}

fn both(name: &str, state: &opsconsole::app::AppState) {
    insta::assert_snapshot!(format!("{name}_80x24"), fx::render(state, 80, 24).backend());
    insta::assert_snapshot!(format!("{name}_160x48"), fx::render(state, 160, 48).backend());
}

#[test]
fn header_flags_at_80_and_160_columns() {
    let mut s = fx::state();
    // /data is a gcsfuse mount the disk list leaves out.
    update(&mut s, fx::disks(vec![fx::disk("/", 71.0, &["workspace", "checkpoints", "root"])]));
    update(&mut s, Msg::Rules(Box::new(flagged_report())));
    both("rules_flags", &s);
    let wide = fx::screen_text(&s, 160, 48);
    let header = wide.lines().next().unwrap();
    assert!(header.contains("training reads data from a network mount (gcsfuse): pre-fetch it to /data"), "{header}");
    assert!(
        header.contains(" · ~9h50m vs est. 6h · 6.7B on tier 1 · deps: 1"),
        "the next flags, short, by priority: {header}"
    );
    let narrow = fx::screen_text(&s, 80, 24);
    let header = narrow.lines().next().unwrap();
    assert!(
        header.contains("data on gcsfuse · ~9h50m vs est. 6h · +2 rules"),
        "short forms at 80 columns, the uptime gave way: {header}"
    );
    // The Disk panel names the data folder's filesystem, red when it is a network mount.
    assert!(wide.contains("data /data: fuse.gcsfuse (network)"), "{wide}");
    let mut local = fx::state();
    update(&mut local, fx::typical_disks());
    assert!(fx::screen_text(&local, 160, 48).contains("data ext4"), "the local data disk's kind");
}

#[test]
fn rule_flags_never_push_out_the_disk_level_or_a_stalled_log() {
    let mut s = fx::state();
    update(&mut s, fx::disks(vec![fx::disk("/", 93.0, &["workspace", "root"]), fx::disk("/data", 40.0, &["data"])]));
    update(&mut s, lf::log_sample(&lf::hf_lines(1200), fx::at(fx::NOW - 20 * 60), true, None));
    update(&mut s, Msg::Rules(Box::new(flagged_report())));
    both("rules_flags_with_disk_and_stall", &s);
    let text = fx::screen_text(&s, 80, 24);
    let header = text.lines().next().unwrap();
    assert!(header.contains("disk critical"), "{header}");
    assert!(header.contains("log stalled 20m00s"), "{header}");
    assert!(header.contains("· +4 rules"), "the flags counted, in place of the uptime: {header}");
    assert!(!header.contains("up 3h12m"), "{header}");
}

// ---- status --json through the binary ---------------------------------------------------

fn status_json(ws: &Path, config: &str) -> serde_json::Value {
    std::fs::write(ws.join("opsconsole.toml"), config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("--workspace")
        .arg(ws)
        .args(["status", "--json"])
        .output()
        .expect("run opsconsole");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn status_json_has_every_rule_and_the_switches_turn_them_off() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().canonicalize().unwrap();
    let v = status_json(&ws, "[gpu]\nenabled = false\n[paths]\ndata = \"data\"\n");
    let d = &v["rules"]["data_local"];
    assert!(d["state"] == "ok" || d["state"] == "flag", "{d}");
    assert_eq!(d["data_fs"]["path"], "data");
    assert!(d["data_fs"]["fs_type"].as_str().is_some_and(|t| !t.is_empty()), "{d}");
    let off = status_json(&ws, "[gpu]\nenabled = false\n[rules]\ndata_local = false\n");
    assert_eq!(off["rules"]["data_local"]["state"], "off");
    // No GPU read: the tier is not known.
    assert_eq!(v["rules"]["tier_purpose"]["state"], "unknown", "{}", v["rules"]);
    let forced = status_json(&ws, "[gpu]\nenabled = false\ntier = \"tier2\"\n");
    assert_eq!(forced["rules"]["tier_purpose"]["state"], "ok");
    assert_eq!(forced["rules"]["tier_purpose"]["tier"], "tier2");
}
