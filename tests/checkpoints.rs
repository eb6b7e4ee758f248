//! Checkpoint pruning: policy properties, links, the executor against a changing world,
//! and a real full disk (tmpfs, as root).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

#[path = "support/tmux.rs"]
mod tmux;
use tmux::Tmux;

use opsconsole::checkpoints::inventory::{self, Checkpoint, Inventory, ScanOptions};
use opsconsole::checkpoints::ledger::{
    ConfirmationMap, ConfirmationSource, MemoryEventSink, PruneEvent, PruneEventKind, PruneEventSink, is_confirmed,
};
use opsconsole::checkpoints::plan::{PlanAction, PlanInputs, PrunePlan, Reason, build_plan, plan_checkpoints};
use opsconsole::checkpoints::roots::{RootDir, Unit, UnitKind};
use opsconsole::checkpoints::{
    CheckpointsConfig, DiskSpace, ExecContext, ItemOutcome, LogPruneConfig, PruneProgress, PruneReport, run_plan,
    safedelete,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------- synthetic inventories

fn root(path: &str) -> RootDir {
    RootDir {
        path: PathBuf::from(path),
        anchor: PathBuf::from("/ws"),
        rel: PathBuf::from(path.trim_start_matches("/ws/")),
        pattern: "checkpoints".into(),
    }
}

#[derive(Debug, Clone)]
struct Gen {
    series: usize,
    step: u64,
    mtime: u64,
    writing: bool,
    confirmed: Vec<&'static str>,
    bytes: u64,
}

fn gen_item() -> impl Strategy<Value = Gen> {
    (
        0usize..4,
        0u64..40,
        0u64..1000,
        prop::bool::weighted(0.2),
        prop::sample::subsequence(vec!["L1", "L2", "L3"], 0..=3),
        1u64..1000,
    )
        .prop_map(|(series, step, mtime, writing, confirmed, bytes)| Gen {
            series,
            step: step * 100,
            mtime,
            writing,
            confirmed,
            bytes,
        })
}

/// Series 0-1 have steps in their names; 2-3 have none (ordered by mtime).
fn inventory_of(items: &[Gen]) -> Inventory {
    let roots = vec![root("/ws/checkpoints"), root("/ws/experiments/v1/checkpoints")];
    let mut seen = std::collections::HashSet::new();
    let mut cks = Vec::new();
    for (i, g) in items.iter().enumerate() {
        let r = &roots[g.series % 2];
        let name = match g.series {
            0 => format!("v1_step_{}.pt", g.step),
            1 => format!("checkpoint-{}", g.step),
            2 => format!("latest_{i}.pt"),
            _ => format!("model-{i}.safetensors"),
        };
        if !seen.insert((g.series, name.clone())) {
            continue;
        }
        let path = r.path.join(&name);
        let step = inventory::parse_step(&name);
        let rel_dir = r.rel.clone();
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + g.mtime);
        cks.push(Checkpoint {
            rel_path: path.strip_prefix("/ws").unwrap().to_string_lossy().into_owned(),
            path: path.clone(),
            kind: if g.series == 1 { UnitKind::Folder } else { UnitKind::File },
            step,
            series: inventory::series_key(&rel_dir, &name),
            bytes: g.bytes,
            freeable_bytes: g.bytes,
            mtime,
            age_secs: 0,
            writing: g.writing,
            writing_why: None,
            confirmed_on: g.confirmed.iter().map(|s| s.to_string()).collect(),
            unit: Unit {
                root: r.clone(),
                rel_in_root: PathBuf::from(&name),
                kind: UnitKind::File,
                bytes: g.bytes,
                freeable_bytes: g.bytes,
                mtime,
                dev: 1,
                ino: i as u64,
            },
        });
    }
    Inventory::new(roots, cks, Vec::new())
}

fn policy() -> impl Strategy<Value = (CheckpointsConfig, bool, BTreeMap<u64, f64>)> {
    (
        0usize..6,
        prop::sample::select(vec![0u64, 200, 500, 1000]),
        prop::bool::ANY,
        prop::sample::subsequence(vec!["L2", "L3"], 0..=2),
        prop::bool::weighted(0.3),
        prop::collection::btree_map(0u64..40, 0.0f64..10.0, 0..20),
    )
        .prop_map(|(keep_last, every, best, req, allow, metrics)| {
            let cfg = CheckpointsConfig {
                keep_last,
                keep_every_steps: every,
                keep_best_metric: if best { "eval_loss".into() } else { String::new() },
                keep_best_count: 2,
                require_confirmed_on: req.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            let metrics = metrics.into_iter().map(|(k, v)| (k * 100, v)).collect();
            (cfg, allow, metrics)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_plan_breaks_a_hard_rule(items in prop::collection::vec(gen_item(), 0..30), (cfg, allow, metrics) in policy()) {
        let inv = inventory_of(&items);
        let inputs = PlanInputs { metric_by_step: metrics, allow_unconfirmed: allow, disks: Vec::new() };
        let plan = plan_checkpoints(&inv, &cfg, &inputs);
        prop_assert_eq!(plan.len(), inv.checkpoints.len());
        for (_, series) in inv.series() {
            let n = series.len();
            let item = |c: &Checkpoint| plan.iter().find(|p| p.path == c.path).unwrap();
            // newest by order, newest complete, newest by mtime: never deleted
            prop_assert_eq!(item(series[n - 1]).action, PlanAction::Keep);
            if let Some(c) = series.iter().rev().find(|c| !c.writing) {
                prop_assert_eq!(item(c).action, PlanAction::Keep);
            }
            let newest_mtime = series.iter().map(|c| c.mtime).max().unwrap();
            for c in series.iter().filter(|c| c.mtime == newest_mtime) {
                // one of the tied newest is protected; with ties, the latest in order is
                if series.iter().filter(|d| d.mtime == newest_mtime).count() == 1 {
                    prop_assert_eq!(item(c).action, PlanAction::Keep);
                }
            }
            // keep_last keeps exactly the newest N eligible (complete) checkpoints
            let eligible: Vec<&&Checkpoint> = series.iter().filter(|c| !c.writing).collect();
            let n_keep = cfg.keep_last.max(1);
            for (rank, c) in eligible.iter().rev().enumerate() {
                let p = item(c);
                if rank < n_keep {
                    prop_assert_eq!(p.action, PlanAction::Keep);
                    prop_assert!(matches!(p.reason, Reason::WithinKeepLast | Reason::Newest), "{:?}", p.reason);
                } else {
                    prop_assert!(p.reason != Reason::WithinKeepLast);
                    prop_assert!(
                        p.action == PlanAction::Delete
                            || matches!(p.reason, Reason::Best | Reason::MetricUnknown | Reason::Milestone | Reason::Unconfirmed | Reason::Newest),
                        "kept beyond keep_last for {:?}", p.reason
                    );
                }
            }
        }
        for p in &plan {
            let c = inv.checkpoints.iter().find(|c| c.path == p.path).unwrap();
            if p.action == PlanAction::Delete {
                prop_assert!(!c.writing, "deletes a checkpoint being written");
                prop_assert!(inv.roots.iter().any(|r| p.path.starts_with(&r.path)), "outside the roots");
                let confirmed = is_confirmed(&c.confirmed_on, &cfg.require_confirmed_on);
                prop_assert!(confirmed || allow, "deletes an unconfirmed checkpoint without override");
                prop_assert_eq!(p.unconfirmed_override, !confirmed);
            } else {
                prop_assert!(!p.unconfirmed_override);
            }
            if p.reason == Reason::Writing { prop_assert!(c.writing); }
        }
    }
}

// ---------------------------------------------------------------- real files

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

fn set_mtime(p: &Path, t: SystemTime) {
    fs::File::open(p).unwrap().set_modified(t).unwrap();
}

/// Set a link's own modification time (not its target's).
fn set_link_mtime(p: &Path, t: SystemTime) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let ts = Timespec { tv_sec: d.as_secs() as i64, tv_nsec: 0 };
    let times = Timestamps { last_access: ts, last_modification: ts };
    utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW).expect("utimensat");
}

fn write_at(p: &Path, bytes: &[u8], t: SystemTime) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, bytes).unwrap();
    set_mtime(p, t);
}

fn sha(p: &Path) -> String {
    let mut h = Sha256::new();
    h.update(fs::read(p).unwrap());
    format!("{:x}", h.finalize())
}

fn tree_hashes(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.insert(e.path(), sha(&e.path()));
            } else {
                out.insert(e.path(), format!("link:{}", fs::read_link(e.path()).unwrap().display()));
            }
        }
    }
    out
}

fn all_confirmed(ws: &Path, cfg: &CheckpointsConfig) -> ConfirmationMap {
    let inv = inventory::scan(ws, cfg, SystemTime::now(), ScanOptions::default());
    ConfirmationMap(
        inv.checkpoints.iter().map(|c| (c.rel_path.clone(), vec!["L2".to_string(), "L3".to_string()])).collect(),
    )
}

fn ctx(ws: &Path, cfg: &CheckpointsConfig, confirm: impl ConfirmationSource + Send + Sync + 'static) -> ExecContext {
    ExecContext {
        workspace: ws.to_path_buf(),
        cfg: cfg.clone(),
        log_cfg: LogPruneConfig::default(),
        confirm: Arc::new(confirm),
        metric_by_step: BTreeMap::new(),
        clock: Arc::new(SystemTime::now),
        check_open_files: true,
    }
}

fn make_plan(ctx: &ExecContext, allow: bool) -> PrunePlan {
    let mut inv = inventory::scan(
        &ctx.workspace,
        &ctx.cfg,
        (ctx.clock)(),
        ScanOptions { previous: None, check_open_files: true },
    );
    inv.apply_confirmations(ctx.confirm.as_ref());
    let inputs = PlanInputs {
        metric_by_step: ctx.metric_by_step.clone(),
        allow_unconfirmed: allow,
        disks: DiskSpace::of_path(&ctx.workspace).ok().into_iter().collect(),
    };
    build_plan(&inv, &[], &ctx.cfg, &ctx.log_cfg, &inputs, (ctx.clock)())
}

fn run(plan: &PrunePlan, ctx: &ExecContext, sink: &mut dyn PruneEventSink) -> (PruneReport, Vec<PruneProgress>) {
    let mut events = Vec::new();
    let rep = run_plan(plan, ctx, sink, &AtomicBool::new(false), &mut |e| events.push(e));
    (rep, events)
}

fn outcome_of<'a>(rep: &'a PruneReport, p: &Path) -> Option<&'a ItemOutcome> {
    rep.items.iter().find(|i| i.path == p).map(|i| &i.outcome)
}

#[test]
fn links_in_a_root_are_never_followed_or_deleted_through() {
    let ws_dir = tempfile::tempdir().unwrap();
    let ws = ws_dir.path();
    let out_dir = tempfile::tempdir().unwrap();
    let outside = out_dir.path();
    // Outside the workspace: old checkpoints a careless walker would delete.
    for s in [100, 200, 300] {
        write_at(&outside.join(format!("v1_step_{s}.pt")), &[s as u8; 4096], ago(90_000));
    }
    write_at(&outside.join("weights.bin"), &[9u8; 4096], ago(90_000));
    write_at(&outside.join("checkpoints/v9_step_1.pt"), &[1u8; 4096], ago(90_000));
    write_at(&outside.join("checkpoints/v9_step_2.pt"), &[2u8; 4096], ago(90_000));
    let before = tree_hashes(outside);

    // A root that is itself a link, a link to a file, a link to a folder, and a folder
    // checkpoint holding a link.
    fs::create_dir_all(ws.join("experiments/v2")).unwrap();
    std::os::unix::fs::symlink(outside, ws.join("experiments/v2/checkpoints")).unwrap();
    for s in [1000, 2000, 3000, 4000, 5000] {
        write_at(&ws.join(format!("checkpoints/v1_step_{s}.pt")), &[1u8; 4096], ago(80_000 - s));
    }
    std::os::unix::fs::symlink(outside.join("v1_step_100.pt"), ws.join("checkpoints/v1_step_10.pt")).unwrap();
    std::os::unix::fs::symlink(outside, ws.join("checkpoints/old-run")).unwrap();
    let hf = ws.join("checkpoints/checkpoint-10");
    write_at(&hf.join("config.json"), b"{}", ago(90_000));
    std::os::unix::fs::symlink(outside.join("weights.bin"), hf.join("pytorch_model.bin")).unwrap();
    set_link_mtime(&hf.join("pytorch_model.bin"), ago(90_000));
    set_mtime(&hf, ago(90_000));
    write_at(&ws.join("checkpoints/checkpoint-20/model.safetensors"), &[3u8; 100], ago(1000));
    set_mtime(&ws.join("checkpoints/checkpoint-20"), ago(1000));

    let cfg = CheckpointsConfig { keep_last: 1, ..Default::default() };
    let c = ctx(ws, &cfg, all_confirmed(ws, &cfg));
    let plan = make_plan(&c, true);
    for item in &plan.items {
        assert!(item.path.starts_with(ws.join("checkpoints")), "{}", item.path.display());
    }
    let inv = inventory::scan(ws, &cfg, SystemTime::now(), ScanOptions::default());
    let skipped: Vec<&Path> = inv.skipped.iter().map(|s| s.path.as_path()).collect();
    assert!(skipped.contains(&ws.join("experiments/v2/checkpoints").as_path()));
    assert!(skipped.contains(&ws.join("checkpoints/v1_step_10.pt").as_path()));
    assert!(skipped.contains(&ws.join("checkpoints/old-run").as_path()));

    let mut sink = MemoryEventSink::default();
    let (rep, _) = run(&plan, &c, &mut sink);
    assert_eq!(rep.deleted, 5, "{rep:#?}"); // v1 steps 1000..4000 and checkpoint-10
    assert!(!hf.exists(), "the folder checkpoint went");
    assert_eq!(tree_hashes(outside), before, "nothing outside changed");
    assert!(fs::symlink_metadata(ws.join("checkpoints/v1_step_10.pt")).is_ok(), "a link is left alone");
    assert!(ws.join("checkpoints/v1_step_5000.pt").exists());
    assert!(ws.join("checkpoints/checkpoint-20").exists());
}

#[test]
fn a_folder_swapped_for_a_link_after_planning_is_not_deleted_through() {
    let ws_dir = tempfile::tempdir().unwrap();
    let ws = ws_dir.path();
    let out_dir = tempfile::tempdir().unwrap();
    let outside = out_dir.path();
    let ck = ws.join("experiments/v3/checkpoints");
    for s in [1, 2, 3] {
        write_at(&ck.join(format!("v3_step_{s}.pt")), &[s as u8; 1000], ago(10_000 - s));
    }
    let cfg = CheckpointsConfig { keep_last: 1, ..Default::default() };
    let c = ctx(ws, &cfg, all_confirmed(ws, &cfg));
    let plan = make_plan(&c, false);
    assert_eq!(plan.delete_count, 2);
    // Swap: the real folder moves away, a link to an outside copy takes its place.
    for s in [1, 2, 3] {
        write_at(&outside.join(format!("checkpoints/v3_step_{s}.pt")), &[7u8; 1000], ago(10_000 - s));
    }
    let before = tree_hashes(outside);
    fs::rename(ws.join("experiments/v3"), ws.join("moved")).unwrap();
    fs::create_dir_all(ws.join("experiments/v3")).unwrap();
    fs::remove_dir(ws.join("experiments/v3")).unwrap();
    std::os::unix::fs::symlink(outside, ws.join("experiments/v3")).unwrap();

    // The safe-delete primitive alone refuses (no re-check involved).
    let item = plan.deletions()[0].clone();
    let err = safedelete::delete_unit(&item.unit).unwrap_err();
    assert!(err.to_string().contains("not a real folder"), "{err}");
    // And the executor skips both.
    let (rep, _) = run(&plan, &c, &mut MemoryEventSink::default());
    assert_eq!(rep.deleted, 0, "{rep:#?}");
    assert_eq!(rep.skipped, 2);
    assert_eq!(tree_hashes(outside), before);
    assert_eq!(fs::read_dir(ws.join("moved/checkpoints")).unwrap().count(), 3);
}

#[test]
fn the_executor_rechecks_the_world_before_each_deletion() {
    let ws_dir = tempfile::tempdir().unwrap();
    let ws = ws_dir.path();
    let ck = ws.join("checkpoints");
    for s in 1..=6u64 {
        write_at(&ck.join(format!("v5_step_{s}00.pt")), &[s as u8; 2000], ago(50_000 - s * 100));
    }
    let cfg = CheckpointsConfig { keep_last: 2, ..Default::default() };
    let c = ctx(ws, &cfg, all_confirmed(ws, &cfg));
    let plan = make_plan(&c, false);
    let del: Vec<String> = plan.deletions().iter().map(|i| i.rel_path.clone()).collect();
    assert_eq!(
        del,
        [
            "checkpoints/v5_step_100.pt",
            "checkpoints/v5_step_200.pt",
            "checkpoints/v5_step_300.pt",
            "checkpoints/v5_step_400.pt"
        ]
    );
    // Since the plan: the user removed the two newest by hand (so 300 and 400 are now the
    // newest two), step 100 is being written to again, and 200 was replaced.
    fs::remove_file(ck.join("v5_step_600.pt")).unwrap();
    fs::remove_file(ck.join("v5_step_500.pt")).unwrap();
    let mut held = fs::OpenOptions::new().append(true).open(ck.join("v5_step_100.pt")).unwrap();
    held.write_all(b"").unwrap();
    fs::remove_file(ck.join("v5_step_200.pt")).unwrap();
    write_at(&ck.join("v5_step_200.pt"), &[2u8; 2000], ago(49_850));

    let mut sink = MemoryEventSink::default();
    let (rep, events) = run(&plan, &c, &mut sink);
    assert_eq!(rep.deleted, 0, "{rep:#?}");
    let why = |n: &str| match outcome_of(&rep, &ck.join(n)) {
        Some(ItemOutcome::Skipped(w)) => w.clone(),
        o => panic!("{n}: {o:?}"),
    };
    assert!(why("v5_step_100.pt").contains("writing"), "{}", why("v5_step_100.pt"));
    assert!(why("v5_step_200.pt").contains("replaced"), "{}", why("v5_step_200.pt"));
    assert!(why("v5_step_300.pt").contains("keep_last"), "{}", why("v5_step_300.pt"));
    assert!(why("v5_step_400.pt").contains("newest"), "{}", why("v5_step_400.pt"));
    for n in ["v5_step_100.pt", "v5_step_200.pt", "v5_step_300.pt", "v5_step_400.pt"] {
        assert!(ck.join(n).exists());
    }
    assert!(matches!(events.first(), Some(PruneProgress::Started { items: 4, .. })));
    assert!(matches!(events.last(), Some(PruneProgress::Done { .. })));
    assert_eq!(events.iter().filter(|e| matches!(e, PruneProgress::Progress { .. })).count(), 4);
    let recorded = sink.0.lock().unwrap();
    assert_eq!(recorded.iter().filter(|e| e.kind == PruneEventKind::Skipped).count(), 4);
    drop(held);
}

struct FailingSink;
impl PruneEventSink for FailingSink {
    fn record(&mut self, _: &PruneEvent) -> std::io::Result<()> {
        Err(std::io::Error::other("ledger unavailable"))
    }
}

#[test]
fn unconfirmed_checkpoints_need_the_override_and_it_is_recorded_first() {
    let ws_dir = tempfile::tempdir().unwrap();
    let ws = ws_dir.path();
    let ck = ws.join("checkpoints");
    for s in 1..=4u64 {
        write_at(&ck.join(format!("v7_step_{s}.pt")), &[s as u8; 3000], ago(50_000 - s));
    }
    let cfg = CheckpointsConfig { keep_last: 1, ..Default::default() };
    // Only step 1 is on L3; step 2 is on L2 only (policy wants L3); step 3 nowhere.
    let mut m = HashMap::new();
    m.insert("checkpoints/v7_step_1.pt".to_string(), vec!["L3".to_string()]);
    m.insert("checkpoints/v7_step_2.pt".to_string(), vec!["L2".to_string()]);
    let c = ctx(ws, &cfg, ConfirmationMap(m));

    let plan = make_plan(&c, false);
    let reasons: Vec<(Option<u64>, PlanAction, Reason)> =
        plan.items.iter().map(|i| (i.step, i.action, i.reason)).collect();
    assert_eq!(
        reasons,
        [
            (Some(1), PlanAction::Delete, Reason::BeyondKeepLast),
            (Some(2), PlanAction::Keep, Reason::Unconfirmed),
            (Some(3), PlanAction::Keep, Reason::Unconfirmed),
            (Some(4), PlanAction::Keep, Reason::Newest),
        ]
    );
    assert_eq!(plan.kept_unconfirmed, 2);
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["items"][0]["action"], "delete");
    assert_eq!(json["items"][0]["reason"], "beyond_keep_last");
    assert_eq!(json["items"][1]["reason"], "unconfirmed");
    assert!(json["items"][0]["bytes"].is_u64() && json["items"][0]["path"].is_string());

    // With the override, but a record that cannot be written: nothing unconfirmed goes.
    let over = make_plan(&c, true);
    assert_eq!(over.unconfirmed_deletes, 2);
    let (rep, _) = run(&over, &c, &mut FailingSink);
    assert_eq!(rep.deleted, 1, "{rep:#?}");
    assert!(ck.join("v7_step_2.pt").exists() && ck.join("v7_step_3.pt").exists());

    // With a working record: intent is written before each deletion.
    let over = make_plan(&c, true);
    let mut sink = MemoryEventSink::default();
    let (rep, _) = run(&over, &c, &mut sink);
    assert_eq!(rep.deleted, 2, "{rep:#?}");
    let ev = sink.0.lock().unwrap();
    let kinds: Vec<(&str, &PruneEventKind)> = ev.iter().map(|e| (e.path.as_str(), &e.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("checkpoints/v7_step_2.pt", &PruneEventKind::OverrideIntent),
            ("checkpoints/v7_step_2.pt", &PruneEventKind::Deleted),
            ("checkpoints/v7_step_3.pt", &PruneEventKind::OverrideIntent),
            ("checkpoints/v7_step_3.pt", &PruneEventKind::Deleted),
        ]
    );
    assert!(ev.iter().all(|e| e.unconfirmed_override));
    assert!(ck.join("v7_step_4.pt").exists(), "the newest stays even with the override");
}

#[test]
fn old_logs_are_planned_and_pruned_when_enabled() {
    let ws_dir = tempfile::tempdir().unwrap();
    let ws = ws_dir.path();
    let logs = ws.join("experiments/v1/logs");
    write_at(&logs.join("train.log.1"), &[b'a'; 500], ago(40 * 86_400));
    write_at(&logs.join("train.log.2"), &[b'b'; 500], ago(30 * 86_400));
    write_at(&logs.join("eval.log"), &[b'c'; 500], ago(20 * 86_400));
    write_at(&logs.join("train.log"), &[b'd'; 500], ago(10));
    let log_cfg = LogPruneConfig { enabled: true, ..Default::default() };
    let mut m = HashMap::new();
    for n in ["train.log.1", "train.log.2", "eval.log"] {
        m.insert(format!("experiments/v1/logs/{n}"), vec!["L2".to_string()]);
    }
    m.remove("experiments/v1/logs/train.log.2");
    let confirm = ConfirmationMap(m);
    let (found, _) = opsconsole::checkpoints::logs::scan_logs(ws, &log_cfg, 60, SystemTime::now(), true, &confirm);
    let cfg = CheckpointsConfig::default();
    let inv = inventory::scan(ws, &cfg, SystemTime::now(), ScanOptions::default());
    let plan = build_plan(&inv, &found, &cfg, &log_cfg, &PlanInputs::default(), SystemTime::now());
    let mut got: Vec<(String, PlanAction, Reason)> =
        plan.items.iter().map(|i| (i.rel_path.clone(), i.action, i.reason)).collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("experiments/v1/logs/eval.log".to_string(), PlanAction::Delete, Reason::LogTooOld),
            ("experiments/v1/logs/train.log.1".to_string(), PlanAction::Delete, Reason::LogTooOld),
            ("experiments/v1/logs/train.log.2".to_string(), PlanAction::Keep, Reason::Unconfirmed),
        ]
    );
    let mut c = ctx(ws, &cfg, confirm);
    c.log_cfg = log_cfg;
    let (rep, _) = run(&plan, &c, &mut MemoryEventSink::default());
    assert_eq!(rep.deleted, 2, "{rep:#?}");
    assert!(logs.join("train.log").exists() && logs.join("train.log.2").exists());
    assert!(!logs.join("eval.log").exists());
}

/// A plan made while a file was only a log (or by a build that did not tell them apart):
/// when the executor looks again and finds it is a checkpoint, the log rules do not delete
/// it.
#[test]
fn the_executor_never_deletes_a_checkpoint_as_a_log() {
    let ws_dir = tempfile::tempdir().unwrap();
    let ws = ws_dir.path();
    let ck = ws.join("checkpoints");
    for (i, s) in [100, 200, 300].into_iter().enumerate() {
        write_at(&ck.join(format!("v1_step_{s}.pt")), &[s as u8; 500], ago(40 * 86_400 - i as u64));
    }
    let log_cfg = LogPruneConfig {
        enabled: true,
        roots: vec!["checkpoints".into()],
        patterns: vec!["*.pt".into()],
        require_confirmed_on: vec![],
        ..Default::default()
    };
    let cfg = CheckpointsConfig::default();
    let confirm = all_confirmed(ws, &cfg);
    let (found, _) = opsconsole::checkpoints::logs::scan_logs(ws, &log_cfg, 60, SystemTime::now(), true, &confirm);
    let items = opsconsole::checkpoints::plan::plan_logs(&found, &log_cfg, false, SystemTime::now());
    let plan = opsconsole::checkpoints::plan::summarize(items, &PlanInputs::default(), SystemTime::now());
    assert_eq!(plan.delete_count, 2, "the log rules alone would delete two: {plan:#?}");
    let mut c = ctx(ws, &cfg, confirm);
    c.log_cfg = log_cfg;
    let (rep, _) = run(&plan, &c, &mut MemoryEventSink::default());
    assert_eq!((rep.deleted, rep.skipped), (0, 2), "{rep:#?}");
    for s in [100, 200, 300] {
        assert!(ck.join(format!("v1_step_{s}.pt")).exists());
    }
    assert!(
        matches!(outcome_of(&rep, &ck.join("v1_step_100.pt")), Some(ItemOutcome::Skipped(w)) if w.contains("is a checkpoint")),
        "{rep:#?}"
    );
}

// ---------------------------------------------------------------- a real full disk

/// A tmux session running one command (then `EXIT=<code>`) with its own state folder;
/// fails when tmux is not installed.
fn start_tmux(name: &str, w: u16, h: u16, cmd: &str) -> Tmux {
    Tmux::require();
    let state = std::env::temp_dir().join(format!("opsconsole-ckpt-state-{}", std::process::id()));
    let full = format!("env XDG_STATE_HOME={} {cmd}; echo EXIT=$?; sleep 60", state.display());
    Tmux::new(&format!("ckpt-{name}"), w, h, &full)
}

#[test]
#[ignore = "needs tmux"]
fn prune_works_in_the_demo_with_the_typed_override() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let cmd = format!("{} demo --speed 10 --dir {}", env!("CARGO_BIN_EXE_opsconsole"), demo.display());
    let t = start_tmux("demo", 120, 36, &cmd);
    t.wait_for("the demo", |s| s.contains("Disk") && s.contains("checkpoints"));
    let ck = demo.join("checkpoints");
    let count = || fs::read_dir(&ck).map(|d| d.count()).unwrap_or(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count() < 20 {
        assert!(std::time::Instant::now() < deadline, "the demo trainer saved {} checkpoints", count());
        std::thread::sleep(Duration::from_millis(200));
    }
    t.send(&["p"]);
    t.wait_for("the plan", |s| s.contains("Prune plan") && s.contains("not confirmed on another level"));
    t.send(&["u"]);
    t.wait_for("the plan with unconfirmed copies", |s| s.contains("INCLUDING") && s.contains("DELETE"));
    t.send(&["y"]);
    t.wait_for("the override prompt", |s| s.contains("Type `delete`"));
    t.send(&["-l", "delete"]);
    t.send(&["Enter"]);
    t.wait_for("the job's summary", |s| s.contains("freed") && s.contains("skipped"));
    let log = fs::read_to_string(demo.join(".opsconsole/prune-events.jsonl")).unwrap();
    let deleted: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["kind"] == "deleted")
        .collect();
    assert!(!deleted.is_empty(), "{log}");
    // The demo's own sync engine may already have confirmed some on L3: those are deleted
    // as confirmed; every other deletion was an override with its intent recorded first.
    assert!(deleted.iter().any(|e| e["unconfirmed_override"] == true), "the override deleted something: {log}");
    for e in &deleted {
        if e["unconfirmed_override"] == true {
            let path = e["path"].as_str().unwrap();
            let intent = log.lines().position(|l| l.contains("override_intent") && l.contains(path));
            assert!(intent.is_some(), "intent recorded for {path}");
        } else {
            let on = e["confirmed_on"].as_array().unwrap();
            assert!(on.iter().any(|l| l == "L3"), "a deletion without override was confirmed on L3: {e}");
        }
        assert!(!demo.join(e["path"].as_str().unwrap()).exists());
    }
    t.send(&["Escape"]);
    t.wait_for("the plan to close", |s| !s.contains("Prune plan"));
    t.quit("the demo to end", |s| s.contains("EXIT=0"));
}

/// Run the real binary on a workspace and parse its JSON output.
fn opsconsole_json(ws: &Path, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("--workspace")
        .arg(ws)
        .args(args)
        .env("XDG_STATE_HOME", std::env::temp_dir())
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root and tmux"]
fn a_full_disk_is_pruned_and_kept_files_are_intact() {
    let mnt_dir = tempfile::tempdir().unwrap();
    let mnt = mnt_dir.path().to_path_buf();
    // mode=0755: a tmpfs root is world-writable (1777) by default, and a config in a folder
    // anyone can write is refused as possibly planted.
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs"])
        .arg(&mnt)
        .output();
    match st {
        Ok(o) => {
            assert!(o.status.success(), "mounting a tmpfs (needs root): {}", String::from_utf8_lossy(&o.stderr).trim())
        }
        Err(e) => panic!("cannot run mount: {e}"),
    }
    let _guard = Unmount(mnt.clone());
    let ws = mnt.as_path();
    fs::write(ws.join("opsconsole.toml"), "[checkpoints]\nkeep_last = 2\n").unwrap();
    fs::create_dir_all(ws.join(".opsconsole")).unwrap();
    fs::write(ws.join(".opsconsole/ledger.sqlite"), vec![0x5au8; 64 * 1024]).unwrap();
    write_at(&ws.join("experiments/v68/logs/train.log"), b"step 1 loss 2.3\n", ago(5000));
    let keep_hashes_of = |paths: &[PathBuf]| paths.iter().map(|p| (p.clone(), sha(p))).collect::<BTreeMap<_, _>>();
    let config_before = keep_hashes_of(&[ws.join("opsconsole.toml"), ws.join(".opsconsole/ledger.sqlite")]);

    // The simulated trainer: 3 MiB checkpoints every "10 minutes" until the disk is full.
    let ck = ws.join("experiments/v68/checkpoints");
    fs::create_dir_all(&ck).unwrap();
    let mut step = 0u64;
    let full = loop {
        step += 100;
        let p = ck.join(format!("v68_step_{step}.pt"));
        let mut f = fs::File::create(&p).unwrap();
        let chunk: Vec<u8> = (0..(3u32 << 20)).map(|i| (i as u64 * 31 + step) as u8).collect();
        match f.write_all(&chunk).and_then(|_| f.sync_all()) {
            Ok(()) => {
                drop(f);
                set_mtime(&p, ago(100_000 - step));
            }
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(rustix::io::Errno::NOSPC.raw_os_error()), "{e}");
                drop(f);
                set_mtime(&p, ago(100_000 - step));
                break step;
            }
        }
    };
    let space = DiskSpace::of_path(ws).unwrap();
    assert_eq!(space.available_bytes, 0, "the disk is full");
    assert!(space.fill() >= 0.999);
    assert!(fs::write(ws.join("probe"), vec![1u8; 8192]).is_err(), "writes fail on the full disk");

    // The binary on the full disk: status says `full`; prune without a ledger keeps
    // everything (nothing is confirmed anywhere), and neither crashes.
    let status = opsconsole_json(ws, &["status", "--json"]);
    let mount = status["disks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| Path::new(d["mount"].as_str().unwrap()) == ws)
        .cloned()
        .unwrap_or_else(|| panic!("the tmpfs is listed: {status:#}"));
    assert_eq!(mount["level"], "full", "{mount:#}");
    assert!(status["checkpoints"].as_array().unwrap().len() >= 10);
    let dry = opsconsole_json(ws, &["prune", "--json", "--dry-run"]);
    assert_eq!(dry["delete_count"], 0, "no ledger: nothing confirmed, nothing deleted");
    assert!(dry["items"].as_array().unwrap().iter().any(|i| i["reason"] == "unconfirmed"));
    let with_override = opsconsole_json(ws, &["prune", "--json", "--dry-run", "--allow-unsynced"]);
    assert!(with_override["delete_count"].as_u64().unwrap() >= 10, "{with_override:#}");
    assert!(with_override["fill_before"].as_f64().unwrap() >= 0.999);
    // The console on the full disk keeps running, shows `full`, and opens the plan.
    {
        let t =
            start_tmux("full", 100, 30, &format!("{} --workspace {}", env!("CARGO_BIN_EXE_opsconsole"), ws.display()));
        t.wait_for("the full disk on screen", |s| s.contains("disk full") && s.contains("is full (100%)"));
        t.send(&["p"]);
        t.wait_for("the prune plan", |s| s.contains("Prune plan") && s.contains("not confirmed on another level"));
        t.send(&["Escape"]);
        t.wait_for("the plan to close", |s| !s.contains("Prune plan"));
        t.send(&["q"]);
        t.wait_for("the console to quit", |s| s.contains("EXIT=0"));
    }

    // The ledger says every complete checkpoint reached L3; the partial newest did not.
    let cfg = CheckpointsConfig { keep_last: 2, ..Default::default() };
    let mut m = HashMap::new();
    for s in (100..full).step_by(100) {
        m.insert(format!("experiments/v68/checkpoints/v68_step_{s}.pt"), vec!["L3".to_string()]);
    }
    let c = ctx(ws, &cfg, ConfirmationMap(m));
    // One old checkpoint is held open for writing by a process: never deleted.
    let held_path = ck.join("v68_step_200.pt");
    let held = fs::OpenOptions::new().write(true).open(&held_path).unwrap();
    let plan = make_plan(&c, false);
    assert_eq!(plan.fill_before.map(|f| f >= 0.999), Some(true));
    let kept: Vec<PathBuf> =
        plan.items.iter().filter(|i| i.action == PlanAction::Keep).map(|i| i.path.clone()).collect();
    assert!(kept.contains(&held_path));
    assert!(kept.contains(&ck.join(format!("v68_step_{full}.pt"))), "the partial newest is kept");
    let kept_before = keep_hashes_of(&kept);
    assert!(plan.delete_count >= 10, "{}", plan.delete_count);
    assert!(plan.fill_after.unwrap() < 0.5);

    let mut sink = opsconsole::checkpoints::JsonlEventSink::in_workspace(ws);
    let mut progress = Vec::new();
    let rep = run_plan(&plan, &c, &mut sink, &AtomicBool::new(false), &mut |e| progress.push(e));
    assert_eq!(rep.deleted, plan.delete_count, "{rep:#?}");
    assert_eq!(rep.failed, 0);
    let after = DiskSpace::of_path(ws).unwrap();
    assert!(after.available_bytes >= rep.freed_bytes - (1 << 20), "space came back: {after:?}");
    assert!(after.fill() < 0.5, "{after:?}");
    assert_eq!(keep_hashes_of(&kept), kept_before, "every kept file is byte-for-byte intact");
    assert_eq!(keep_hashes_of(&[ws.join("opsconsole.toml"), ws.join(".opsconsole/ledger.sqlite")]), config_before);
    assert!(ws.join("experiments/v68/logs/train.log").exists());
    // The record: the first deletion may have found no space to log; the rest did.
    let log = fs::read_to_string(ws.join(".opsconsole/prune-events.jsonl")).unwrap();
    assert!(log.lines().count() + rep.record_errors >= rep.deleted);
    assert!(rep.record_errors <= 1);
    // The trainer can save again, and the binary no longer says full.
    fs::write(ck.join("v68_step_99999.pt"), vec![1u8; 3 << 20]).unwrap();
    drop(held);
    let status = opsconsole_json(ws, &["status", "--json"]);
    let d = status["disks"].as_array().unwrap().iter().find(|d| Path::new(d["mount"].as_str().unwrap()) == ws).cloned();
    assert_eq!(d.unwrap()["level"], "ok");
}

// ---------------------------------------------------------------- random real trees

#[derive(Debug, Clone)]
enum Entry {
    File { dir: usize, step: u64, age: u64 },
    HfFolder { dir: usize, step: u64, age: u64 },
    LinkToOutsideFile { dir: usize, step: u64 },
    LinkToOutsideDir { dir: usize, name: usize },
}

const DIRS: [&str; 7] = [
    "checkpoints",
    "checkpoints/sub",
    "experiments/a/checkpoints",
    "experiments/b",
    "other",
    "checkpoints/a/b/c",
    "checkpoints/a/b/c/d",
];

fn gen_entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        (0usize..7, 1u64..50, 100u64..90_000).prop_map(|(dir, step, age)| Entry::File { dir, step, age }),
        (0usize..7, 1u64..50, 100u64..90_000).prop_map(|(dir, step, age)| Entry::HfFolder { dir, step, age }),
        (0usize..7, 1u64..50).prop_map(|(dir, step)| Entry::LinkToOutsideFile { dir, step }),
        (0usize..7, 0usize..3).prop_map(|(dir, name)| Entry::LinkToOutsideDir { dir, name }),
    ]
}

fn all_paths(dir: &Path) -> Vec<PathBuf> {
    tree_hashes(dir).into_keys().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn pruning_a_random_tree_never_touches_anything_outside_the_roots(
        entries in prop::collection::vec(gen_entry(), 1..25),
        b_is_link in prop::bool::ANY,
    ) {
        let ws_dir = tempfile::tempdir().unwrap();
        let ws = ws_dir.path();
        let out_dir = tempfile::tempdir().unwrap();
        let outside = out_dir.path();
        for s in 1..50u64 {
            write_at(&outside.join(format!("v1_step_{s}.pt")), &[s as u8; 64], ago(95_000));
            write_at(&outside.join(format!("checkpoints/v1_step_{s}.pt")), &[s as u8; 64], ago(95_000));
        }
        write_at(&outside.join("checkpoint-7/model.bin"), &[7u8; 64], ago(95_000));
        for d in DIRS { fs::create_dir_all(ws.join(d)).unwrap(); }
        if b_is_link {
            std::os::unix::fs::symlink(outside, ws.join("experiments/b/checkpoints")).unwrap();
        }
        for e in &entries {
            match e {
                Entry::File { dir, step, age } => {
                    write_at(&ws.join(DIRS[*dir]).join(format!("v1_step_{step}.pt")), &[1u8; 64], ago(*age));
                }
                Entry::HfFolder { dir, step, age } => {
                    let f = ws.join(DIRS[*dir]).join(format!("checkpoint-{step}"));
                    write_at(&f.join("model.safetensors"), &[2u8; 64], ago(*age));
                    if *step % 3 == 0 {
                        let l = f.join("optimizer.pt");
                        let _ = std::os::unix::fs::symlink(outside.join("v1_step_1.pt"), &l);
                        set_link_mtime(&l, ago(*age));
                    }
                    set_mtime(&f, ago(*age));
                }
                Entry::LinkToOutsideFile { dir, step } => {
                    let _ = std::os::unix::fs::symlink(
                        outside.join(format!("v1_step_{step}.pt")),
                        ws.join(DIRS[*dir]).join(format!("v1_step_{step}.pt")),
                    );
                }
                Entry::LinkToOutsideDir { dir, name } => {
                    let _ = std::os::unix::fs::symlink(outside, ws.join(DIRS[*dir]).join(["run", "checkpoint-7", "sub"][*name]));
                }
            }
        }
        let outside_before = tree_hashes(outside);
        let ws_before = all_paths(ws);
        // The console's one-walk inventory sees exactly what the plain scan sees.
        let cfg0 = CheckpointsConfig::default();
        let spec = opsconsole::disk::usage::UsageSpec::default();
        let t = SystemTime::now();
        // The collector's inventory takes a /proc scan up to 3 s old shared with other
        // collectors (here: other tests' files, since deleted, whose inodes this tree may
        // reuse): take a new one first, so both inventories see the same moment.
        let _ = opsconsole::procfs::recent_write_handles(std::time::Duration::ZERO);
        let shared = opsconsole::checkpoints::sample::collect(ws, &cfg0, &spec, &opsconsole::checkpoints::NotConfirmed, None, t);
        let plain = inventory::scan(ws, &cfg0, t, ScanOptions { previous: None, check_open_files: true });
        prop_assert_eq!(&shared.checkpoints, &plain.checkpoints);
        let mut a: Vec<_> = shared.skipped.iter().map(|s| s.path.clone()).collect();
        let mut b: Vec<_> = plain.skipped.iter().map(|s| s.path.clone()).collect();
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
        let cfg = CheckpointsConfig { keep_last: 1, ..Default::default() };
        let c = ctx(ws, &cfg, all_confirmed(ws, &cfg));
        let plan = make_plan(&c, true);
        let roots = [ws.join("checkpoints"), ws.join("experiments/a/checkpoints")];
        for i in plan.deletions() {
            prop_assert!(roots.iter().any(|r| i.path.starts_with(r)), "planned outside: {}", i.path.display());
        }
        let (rep, _) = run(&plan, &c, &mut MemoryEventSink::default());
        prop_assert_eq!(rep.failed, 0, "{:#?}", rep);
        prop_assert_eq!(rep.deleted, plan.delete_count, "{:#?}", rep);
        prop_assert_eq!(tree_hashes(outside), outside_before);
        let ws_after = all_paths(ws);
        for p in ws_before.iter().filter(|p| !ws_after.contains(p)) {
            prop_assert!(roots.iter().any(|r| p.starts_with(r)), "deleted outside the roots: {}", p.display());
            // Nothing reached through a link: every folder between the root and it is real.
            let mut a = p.parent();
            while let Some(d) = a {
                if roots.iter().any(|r| r == d) { break; }
                if d.exists() || fs::symlink_metadata(d).is_ok() {
                    prop_assert!(!fs::symlink_metadata(d).unwrap().file_type().is_symlink(), "through a link: {}", p.display());
                }
                a = d.parent();
            }
        }
        for p in &ws_before {
            if p.starts_with(ws.join("other")) || p.starts_with(ws.join("experiments/b")) {
                prop_assert!(ws_after.contains(p), "{} went", p.display());
            }
        }
    }
}
