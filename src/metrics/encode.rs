//! One [`StatusReport`] as metric families, encoded by the `prometheus-client` crate in the
//! OpenMetrics text format and in Prometheus's 0.0.4 text format.
//!
//! Every family is a gauge: the figures are readings of a state (a log's error count starts
//! again with a new log), so none is a counter. Names are snake_case with their unit; labels
//! are `host`, `gpu`, `model`, `mount`, `level`, `remote`, `tier`, `root`, `kind`, `verdict`,
//! `currency`, `version`, all from a bounded set (config names, mount points, GPU indexes):
//! never a file path, a log line, a token or any file's content.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::status::StatusReport;

/// The `Content-Type` of [`Exposition::openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The `Content-Type` of [`Exposition::text`].
pub const TEXT_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// One rendering of the figures, in both formats.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// OpenMetrics 1.0 text, ending with `# EOF`.
    pub openmetrics: bytes::Bytes,
    /// Prometheus text format 0.0.4 (also what node_exporter's textfile collector reads).
    pub text: bytes::Bytes,
}

/// What the report alone does not say.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// The configured checkpoint roots as found on disk: (folder, its `checkpoints.roots`
    /// pattern), the pattern being the `root` label.
    pub checkpoint_roots: Vec<(PathBuf, String)>,
    /// Also the DCGM exporter's GPU names (`[metrics] dcgm_names`).
    pub dcgm_names: bool,
    /// How long taking the sample took, in seconds.
    pub sample_duration_seconds: Option<f64>,
    /// The experiments folder (`[paths] experiments`, absolute): a log under
    /// `EXPERIMENTS/NAME/` gives its series the label `experiment="NAME"`.
    pub experiments_dir: Option<PathBuf>,
}

type Labels = Vec<(&'static str, String)>;

/// Families in the order they are added.
struct Out {
    reg: Registry,
    host: String,
}

impl Out {
    /// A gauge family; one with no sample is left out.
    fn gauge(&mut self, name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, f64)>) {
        let fam = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let mut any = false;
        for (labels, v) in samples {
            let mut all = vec![("host", self.host.clone())];
            all.extend(labels);
            fam.get_or_create(&all).set(v);
            any = true;
        }
        if any {
            self.reg.register(name, help, fam);
        }
    }

    /// A gauge family whose labels are given whole (no `host`): the DCGM names.
    fn gauge_raw(&mut self, name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, f64)>) {
        let fam = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let mut any = false;
        for (labels, v) in samples {
            fam.get_or_create(&labels).set(v);
            any = true;
        }
        if any {
            self.reg.register(name, help, fam);
        }
    }
}

fn b(v: bool) -> f64 {
    if v { 1.0 } else { 0.0 }
}

/// The families of one report, encoded in both formats.
pub fn render(r: &StatusReport, opts: &RenderOptions) -> Exposition {
    let reg = registry(r, opts);
    let mut om = String::with_capacity(16 * 1024);
    let mut plain = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail.
    let _ = text::encode(&mut om, &reg);
    let _ = prometheus_text::encode(&mut plain, &reg);
    Exposition { openmetrics: om.into(), text: plain.into() }
}

/// The families of one report.
pub fn registry(r: &StatusReport, opts: &RenderOptions) -> Registry {
    let mut o = Out { reg: Registry::default(), host: r.host.hostname.clone() };
    o.gauge("opsconsole_build_info", "opsconsole's version (always 1)", [(vec![("version", r.version.clone())], 1.0)]);
    o.gauge(
        "opsconsole_sample_timestamp_seconds",
        "When these figures were sampled (Unix time)",
        [(vec![], r.taken_unix as f64)],
    );
    o.gauge(
        "opsconsole_sample_duration_seconds",
        "How long sampling every collector took",
        opts.sample_duration_seconds.map(|d| (vec![], d)),
    );
    o.gauge(
        "opsconsole_host_uptime_seconds",
        "Seconds since the machine booted",
        [(vec![], r.host.uptime_seconds as f64)],
    );
    gpu(&mut o, r, opts);
    disks(&mut o, r);
    log(&mut o, r, opts);
    checkpoints(&mut o, r, opts);
    uploads(&mut o, r);
    idle(&mut o, r);
    o.reg
}

fn gpu(o: &mut Out, r: &StatusReport, opts: &RenderOptions) {
    use crate::gpu::NvmlStatus;
    let g = &r.gpu;
    o.gauge(
        "opsconsole_nvml_up",
        "1 when NVML answered the last sample, 0 when not (see status --json nvml)",
        [(vec![], b(matches!(g.nvml.status, NvmlStatus::Ok { .. })))],
    );
    let labels =
        |d: &crate::gpu::GpuDevice| -> Labels { vec![("gpu", d.index.to_string()), ("model", d.name.clone())] };
    let each = |f: &dyn Fn(&crate::gpu::GpuDevice) -> Option<f64>| -> Vec<(Labels, f64)> {
        g.gpus.iter().filter_map(|d| f(d).map(|v| (labels(d), v))).collect()
    };
    o.gauge("opsconsole_gpu_memory_used_bytes", "GPU memory in use", each(&|d| d.memory_used_bytes.map(|v| v as f64)));
    o.gauge("opsconsole_gpu_memory_total_bytes", "GPU memory", each(&|d| d.memory_total_bytes.map(|v| v as f64)));
    o.gauge(
        "opsconsole_gpu_utilization_ratio",
        "Share of the last sample period a kernel ran on the GPU (0 to 1)",
        each(&|d| d.utilization_pct.map(|v| f64::from(v) / 100.0)),
    );
    o.gauge(
        "opsconsole_gpu_memory_utilization_ratio",
        "Share of the last sample period GPU memory was read or written (0 to 1)",
        each(&|d| d.memory_utilization_pct.map(|v| f64::from(v) / 100.0)),
    );
    o.gauge("opsconsole_gpu_temperature_celsius", "GPU core temperature", each(&|d| d.temperature_c.map(f64::from)));
    o.gauge("opsconsole_gpu_power_watts", "GPU power draw", each(&|d| d.power_draw_mw.map(|v| f64::from(v) / 1000.0)));
    o.gauge(
        "opsconsole_gpu_power_limit_watts",
        "GPU power limit",
        each(&|d| d.power_limit_mw.map(|v| f64::from(v) / 1000.0)),
    );
    if let Some(fit) = &g.tier_fit {
        let t = || vec![("tier", fit.tier.clone())];
        o.gauge(
            "opsconsole_tier_budget_bytes",
            "The tier's VRAM budget per GPU ([[gpu.tiers]])",
            [(t(), fit.budget_bytes as f64)],
        );
        o.gauge(
            "opsconsole_tier_used_bytes",
            "The job's VRAM now on the GPU where it holds the most",
            [(t(), fit.used_bytes as f64)],
        );
        o.gauge(
            "opsconsole_tier_peak_bytes",
            "The job's highest VRAM since it started",
            [(t(), fit.peak_bytes as f64)],
        );
        use crate::gpu::tier::Verdict;
        o.gauge(
            "opsconsole_tier_verdict",
            "The peak against the tier's budget: 1 for the verdict that holds (fits, near, exceeds)",
            [Verdict::Fits, Verdict::Near, Verdict::Exceeds]
                .map(|v| (vec![("tier", fit.tier.clone()), ("verdict", v.as_str().to_string())], b(v == fit.verdict))),
        );
    }
    if opts.dcgm_names {
        let dcgm = |d: &crate::gpu::GpuDevice| -> Labels {
            vec![
                ("gpu", d.index.to_string()),
                // NVML's UUID; empty where the driver does not give it, so queries that
                // group by it still work.
                ("UUID", d.uuid.clone().unwrap_or_default()),
                ("modelName", d.name.clone()),
                ("Hostname", r.host.hostname.clone()),
            ]
        };
        let each = |f: &dyn Fn(&crate::gpu::GpuDevice) -> Option<f64>| -> Vec<(Labels, f64)> {
            g.gpus.iter().filter_map(|d| f(d).map(|v| (dcgm(d), v))).collect()
        };
        const MIB: f64 = 1024.0 * 1024.0;
        o.gauge_raw(
            "DCGM_FI_DEV_FB_USED",
            "Framebuffer memory used (in MiB)",
            each(&|d| d.memory_used_bytes.map(|v| (v as f64 / MIB).round())),
        );
        o.gauge_raw(
            "DCGM_FI_DEV_FB_FREE",
            "Framebuffer memory free (in MiB)",
            each(&|d| match (d.memory_total_bytes, d.memory_used_bytes) {
                (Some(t), Some(u)) => Some((t.saturating_sub(u) as f64 / MIB).round()),
                _ => None,
            }),
        );
        o.gauge_raw("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)", each(&|d| d.utilization_pct.map(f64::from)));
        o.gauge_raw("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)", each(&|d| d.temperature_c.map(f64::from)));
        o.gauge_raw(
            "DCGM_FI_DEV_POWER_USAGE",
            "Power draw (in W)",
            each(&|d| d.power_draw_mw.map(|v| f64::from(v) / 1000.0)),
        );
    }
}

fn disks(o: &mut Out, r: &StatusReport) {
    use crate::disk::Level;
    let m = |d: &crate::status::DiskStatus| -> Labels { vec![("mount", d.mount.clone())] };
    let each = |f: &dyn Fn(&crate::status::DiskStatus) -> Option<f64>| -> Vec<(Labels, f64)> {
        r.disks.iter().filter_map(|d| f(d).map(|v| (m(d), v))).collect()
    };
    o.gauge("opsconsole_filesystem_size_bytes", "Filesystem size", each(&|d| Some(d.total_bytes as f64)));
    o.gauge("opsconsole_filesystem_used_bytes", "Filesystem space in use", each(&|d| Some(d.used_bytes as f64)));
    o.gauge(
        "opsconsole_filesystem_avail_bytes",
        "Filesystem space available to unprivileged users",
        each(&|d| Some(d.available_bytes as f64)),
    );
    o.gauge(
        "opsconsole_filesystem_fill_ratio",
        "Filesystem fill as the console computes it (0 to 1; [disk] thresholds apply to it)",
        each(&|d| Some(d.fill_pct / 100.0)),
    );
    o.gauge(
        "opsconsole_filesystem_level",
        "The filesystem's level by [disk] thresholds: 1 for the level that holds (ok, warn, critical, full)",
        r.disks.iter().flat_map(|d| {
            [Level::Ok, Level::Warn, Level::Critical, Level::Full]
                .map(|l| (vec![("mount", d.mount.clone()), ("level", l.as_str().to_string())], b(l == d.level)))
        }),
    );
    o.gauge(
        "opsconsole_filesystem_growth_bytes_per_second",
        "How fast the filesystem fills, over the growth window (absent while there is no history)",
        each(&|d| d.forecast.growth_bytes_per_hour.map(|v| v / 3600.0)),
    );
    o.gauge(
        "opsconsole_filesystem_seconds_to_critical",
        "Seconds until the critical level at the current growth (absent when not growing)",
        each(&|d| d.forecast.seconds_to_critical.map(|v| v as f64)),
    );
    o.gauge(
        "opsconsole_filesystem_seconds_to_full",
        "Seconds until the filesystem is full at the current growth (absent when not growing)",
        each(&|d| d.forecast.seconds_to_full.map(|v| v as f64)),
    );
}

fn log(o: &mut Out, r: &StatusReport, opts: &RenderOptions) {
    let l = &r.log;
    let found = l.size_bytes.is_some();
    o.gauge("opsconsole_log_found", "1 when the training log the config picks exists", [(vec![], b(found))]);
    if !found {
        return;
    }
    // The experiment the log belongs to (a folder name: bounded, never the path).
    let experiment = match (&opts.experiments_dir, &l.path) {
        (Some(dir), Some(p)) => Path::new(p).strip_prefix(dir).ok().and_then(|rel| {
            let mut parts = rel.components();
            let first = parts.next()?;
            // Only a folder: a log directly in the experiments folder names none.
            parts.next()?;
            Some(first.as_os_str().to_string_lossy().into_owned())
        }),
        _ => None,
    };
    let base: Labels = experiment.map(|e| vec![("experiment", e)]).unwrap_or_default();
    let m = &r.metrics;
    let one = |v: Option<f64>| v.map(|v| (base.clone(), v));
    o.gauge("opsconsole_log_size_bytes", "Size of the training log", one(l.size_bytes.map(|v| v as f64)));
    o.gauge("opsconsole_log_step", "The last training step the log reports", one(m.step.map(|v| v as f64)));
    o.gauge(
        "opsconsole_log_total_steps",
        "The run's total steps, when the log says (a progress bar's total)",
        one(m.total_steps.map(|v| v as f64)),
    );
    o.gauge("opsconsole_log_loss", "The last training loss in the log (NaN when the loss was NaN)", one(m.loss));
    o.gauge("opsconsole_log_eval_loss", "The last evaluation loss in the log", one(m.eval_loss));
    o.gauge("opsconsole_log_learning_rate", "The last learning rate in the log", one(m.learning_rate));
    o.gauge("opsconsole_log_grad_norm", "The last gradient norm in the log", one(m.grad_norm));
    o.gauge("opsconsole_log_epoch", "The last epoch in the log", one(m.epoch));
    o.gauge("opsconsole_log_tokens_per_second", "The last throughput in the log", one(m.tokens_per_second));
    o.gauge(
        "opsconsole_log_seconds_since_last_line",
        "Seconds since the training log was last written",
        l.modified_unix.map(|t| (base.clone(), r.taken_unix.saturating_sub(t) as f64)),
    );
    o.gauge(
        "opsconsole_log_stalled",
        "1 when a training process holds the log but wrote nothing for [log] stall_after",
        [(base.clone(), b(l.stalled))],
    );
    let c = &l.error_counts;
    o.gauge(
        "opsconsole_log_errors",
        "Errors seen in the training log, by kind (cuda_oom, nan_loss, traceback, killed)",
        [("cuda_oom", c.cuda_oom), ("nan_loss", c.nan_loss), ("traceback", c.traceback), ("killed", c.killed)].map(
            |(k, n)| {
                let mut labels = base.clone();
                labels.push(("kind", k.to_string()));
                (labels, n as f64)
            },
        ),
    );
}

fn checkpoints(o: &mut Out, r: &StatusReport, opts: &RenderOptions) {
    #[derive(Default)]
    struct Root {
        count: u64,
        bytes: u64,
        newest_step: Option<u64>,
        unconfirmed: u64,
    }
    let mut roots: std::collections::BTreeMap<&str, Root> = std::collections::BTreeMap::new();
    for (_, pattern) in &opts.checkpoint_roots {
        roots.entry(pattern.as_str()).or_default();
    }
    for c in &r.checkpoints {
        // The deepest root holding it (roots may nest).
        let root = opts
            .checkpoint_roots
            .iter()
            .filter(|(dir, _)| c.path.starts_with(dir))
            .max_by_key(|(dir, _)| dir.components().count())
            .map(|(_, p)| p.as_str())
            .unwrap_or("");
        let e = roots.entry(root).or_default();
        e.count += 1;
        e.bytes += c.bytes;
        if let Some(s) = c.step {
            e.newest_step = Some(e.newest_step.map_or(s, |n| n.max(s)));
        }
        if c.confirmed_on.is_empty() && !c.writing {
            e.unconfirmed += 1;
        }
    }
    let lab = |k: &str| -> Labels { vec![("root", k.to_string())] };
    o.gauge(
        "opsconsole_checkpoints",
        "Checkpoints in each configured root",
        roots.iter().map(|(k, v)| (lab(k), v.count as f64)),
    );
    o.gauge(
        "opsconsole_checkpoints_size_bytes",
        "Bytes the checkpoints in each root take",
        roots.iter().map(|(k, v)| (lab(k), v.bytes as f64)),
    );
    o.gauge(
        "opsconsole_checkpoint_newest_step",
        "The highest training step among each root's checkpoints",
        roots.iter().filter_map(|(k, v)| v.newest_step.map(|s| (lab(k), s as f64))),
    );
    o.gauge(
        "opsconsole_checkpoints_unconfirmed",
        "Finished checkpoints confirmed on no upload level",
        roots.iter().map(|(k, v)| (lab(k), v.unconfirmed as f64)),
    );
    // The newest finished checkpoint, per level: how long it has waited for that level.
    let newest = r.checkpoints.iter().filter(|c| !c.writing).max_by_key(|c| c.mtime);
    if let (Some(c), Some(sync)) = (newest, &r.sync) {
        o.gauge(
            "opsconsole_checkpoint_newest_unconfirmed_seconds",
            "Seconds the newest finished checkpoint has waited to be confirmed on each level (0 once confirmed)",
            sync.levels.iter().filter(|l| l.enabled).map(|l| {
                let waiting = if c.confirmed_on.contains(&l.level) { 0.0 } else { c.age_secs as f64 };
                (vec![("level", l.level.clone()), ("remote", l.remote.clone())], waiting)
            }),
        );
    }
}

fn uploads(o: &mut Out, r: &StatusReport) {
    o.gauge("opsconsole_sync_ledger_readable", "1 when the sync ledger could be read", [(vec![], b(r.sync.is_some()))]);
    let Some(sync) = &r.sync else { return };
    let lv = |l: &crate::sync::status::LevelStatus| -> Labels {
        vec![("level", l.level.clone()), ("remote", l.remote.clone())]
    };
    let each = |f: &dyn Fn(&crate::sync::status::LevelStatus) -> Option<f64>| -> Vec<(Labels, f64)> {
        sync.levels.iter().filter(|l| l.enabled).filter_map(|l| f(l).map(|v| (lv(l), v))).collect()
    };
    o.gauge(
        "opsconsole_upload_remote_configured",
        "1 when the level's remote is configured in [remotes]",
        each(&|l| Some(b(l.remote_configured))),
    );
    o.gauge("opsconsole_upload_pending_files", "Files waiting to be uploaded", each(&|l| Some(l.pending_files as f64)));
    o.gauge("opsconsole_upload_pending_bytes", "Bytes waiting to be uploaded", each(&|l| Some(l.pending_bytes as f64)));
    o.gauge(
        "opsconsole_upload_confirmed_files",
        "Files confirmed on the level's remote",
        each(&|l| Some(l.confirmed_files as f64)),
    );
    o.gauge("opsconsole_upload_failed_files", "Files whose upload failed", each(&|l| Some(l.failed as f64)));
    o.gauge(
        "opsconsole_upload_in_flight",
        "1 while a file is being uploaded",
        each(&|l| Some(b(l.in_flight.is_some()))),
    );
    o.gauge(
        "opsconsole_upload_in_flight_bytes",
        "Bytes of the file being uploaded sent so far",
        each(&|l| l.in_flight.as_ref().map(|f| f.bytes_done as f64)),
    );
    o.gauge(
        "opsconsole_upload_overdue",
        "1 when the level is overdue: pending files older than its interval",
        each(&|l| Some(b(l.overdue))),
    );
    o.gauge(
        "opsconsole_upload_interval_seconds",
        "The level's upload interval ([sync] interval_minutes)",
        each(&|l| Some((l.interval_minutes * 60) as f64)),
    );
    o.gauge(
        "opsconsole_upload_last_success_timestamp_seconds",
        "When the level last stored a file (Unix time; absent when never)",
        each(&|l| l.last_success_unix.map(|t| t as f64)),
    );
    o.gauge(
        "opsconsole_upload_same_disk",
        "1 when the level's remote is on the workspace's own disk (not a backup)",
        each(&|l| Some(b(l.same_disk))),
    );
    o.gauge(
        "opsconsole_upload_withheld_files",
        "Files the sync engine refuses to upload (secrets)",
        [(vec![], sync.withheld_files as f64)],
    );
}

fn idle(o: &mut Out, r: &StatusReport) {
    use crate::checklist::idle::IdleState;
    let i = &r.idle;
    o.gauge(
        "opsconsole_idle",
        "1 when every GPU is idle and no training process runs, 0 when busy (absent when unknown)",
        match i.state {
            IdleState::Idle => Some((vec![], 1.0)),
            IdleState::Busy => Some((vec![], 0.0)),
            IdleState::Unknown => None,
        },
    );
    o.gauge(
        "opsconsole_idle_seconds",
        "Seconds the machine has been idle",
        (i.state == IdleState::Idle).then(|| (vec![], i.idle_seconds as f64)),
    );
    o.gauge(
        "opsconsole_idle_banner",
        "1 when the idle banner shows (idle for longer than [idle] after)",
        [(vec![], b(i.banner))],
    );
    o.gauge(
        "opsconsole_idle_cost",
        "What the idle time cost at the tier's [idle.hourly_price]",
        i.cost_since.map(|c| (vec![("currency", i.currency.clone())], c)),
    );
    o.gauge(
        "opsconsole_hourly_price",
        "What an hour of this machine costs ([idle.hourly_price] for its tier)",
        i.hourly_price.map(|p| (vec![("currency", i.currency.clone())], p)),
    );
}
