//! `opsconsole status`: a one-shot snapshot of every collector, for scripts and checks.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::Config;
use crate::disk::{self, DiskInfo};
use crate::util;
use crate::workspace::{HostInfo, Workspace};

/// Everything the console knows at one moment. JSON keys are snake_case.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub version: String,
    pub taken_unix: u64,
    pub host: HostStatus,
    pub workspace: String,
    pub config_file: Option<String>,
    pub disks: Vec<DiskStatus>,
    pub disk_errors: Vec<String>,
    /// `nvml`, `gpus`, `tier`, `tier_fit`.
    #[serde(flatten)]
    pub gpu: crate::gpu::GpuStatus,
    pub log: crate::logtail::LogStatus,
    pub metrics: crate::logtail::MetricsStatus,
    /// Upload levels from the sync ledger (null when the ledger cannot be read).
    pub sync: Option<crate::sync::SyncStatus>,
    /// Checkpoints in the configured roots (`path`, `step`, `bytes`, `writing`, `confirmed_on`…).
    pub checkpoints: Vec<crate::checkpoints::Checkpoint>,
    /// What takes the workspace's space.
    pub usage: crate::disk::usage::UsageBreakdown,
    /// Idle now (every GPU under `idle.gpu_util_below_pct`, no training process), since
    /// when (estimated from the boot time and the newest log or checkpoint write), and what
    /// that cost.
    pub idle: crate::checklist::idle::IdleStatus,
    /// The protocol's rules (data on the local SSD…): each `state` (`ok`, `flag`, `off`,
    /// `unknown`), `message`, and its facts.
    pub rules: crate::rules::RulesReport,
}

/// A disk with its growth and time to each level (null when not growing or no history).
#[derive(Debug, Clone, Serialize)]
pub struct DiskStatus {
    #[serde(flatten)]
    pub info: DiskInfo,
    #[serde(flatten)]
    pub forecast: crate::disk::growth::DiskForecast,
}

impl std::ops::Deref for DiskStatus {
    type Target = DiskInfo;
    fn deref(&self) -> &DiskInfo {
        &self.info
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    pub hostname: String,
    pub uptime_seconds: u64,
    /// The VM's external address from the metadata server (null off GCE, or when unknown).
    pub external_ip: Option<String>,
    /// CPU, RAM and swap (`cpu_pct`, `cpus`, `memory_*_bytes`, `swap_*_bytes`,
    /// `memory_level`); absent only before the console's first host reading.
    #[serde(flatten)]
    pub usage: Option<HostUsageStatus>,
}

/// The host's CPU, RAM and swap as `status` reports them.
#[derive(Debug, Clone, Serialize)]
pub struct HostUsageStatus {
    /// Every CPU together, percent, between two readings; null when only one was taken.
    pub cpu_pct: Option<f32>,
    pub cpus: usize,
    pub memory_total_bytes: u64,
    /// What programs can still get without swapping (MemAvailable).
    pub memory_available_bytes: u64,
    /// Total less available.
    pub memory_used_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    /// `ok`, `warn` (RAM at 80% or swap over 10%) or `critical` (RAM at 90% or swap over
    /// half): dataloaders that exhaust RAM get the trainer `Killed`.
    pub memory_level: crate::disk::Level,
}

impl From<&crate::host::HostSample> for HostUsageStatus {
    fn from(h: &crate::host::HostSample) -> Self {
        Self {
            cpu_pct: h.cpu_pct.map(|c| (c * 10.0).round() / 10.0),
            cpus: h.cpus,
            memory_total_bytes: h.memory_total_bytes,
            memory_available_bytes: h.memory_available_bytes,
            memory_used_bytes: h.memory_used_bytes(),
            swap_total_bytes: h.swap_total_bytes,
            swap_used_bytes: h.swap_used_bytes,
            memory_level: h.memory_level(),
        }
    }
}

/// Samples every collector once.
pub fn collect(ws: &Workspace, cfg: &Config) -> StatusReport {
    collect_with(ws, cfg, &mut crate::gpu::GpuCollector::new(&cfg.gpu), &mut crate::host::HostSampler::new())
}

/// [`collect`] with a GPU collector and a host sampler kept between calls (the metrics
/// exporter samples every few seconds, opens NVML once, and measures CPU use between its
/// samples).
pub fn collect_with(
    ws: &Workspace,
    cfg: &Config,
    gpu: &mut crate::gpu::GpuCollector,
    host_sampler: &mut crate::host::HostSampler,
) -> StatusReport {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let host = HostInfo::current();
    // CPU use is measured between two readings. A sampler that has none (a one-shot
    // `status`) measures since the previous call of this workspace when that was recent
    // (its counters are kept in `.opsconsole/hostcpu`); otherwise it takes one reading now
    // and the second after the other collectors, at least sysinfo's minimum interval later.
    let kept_cpu = if host_sampler.has_reading() {
        None
    } else {
        crate::host::CpuTimes::read().and_then(|now| {
            crate::host::usage_since_kept(
                &crate::host::kept_cpu_path(&ws.root),
                now,
                crate::unixtime::millis(SystemTime::now()),
            )
        })
    };
    let first_reading = (!host_sampler.has_reading() && kept_cpu.is_none()).then(|| {
        host_sampler.sample(SystemTime::now());
        std::time::Instant::now()
    });
    let disks = disk::sample(&disk::watched_paths(ws, cfg), (&cfg.disk).into());
    let (log, metrics) = crate::logtail::status::workspace_status(&ws.root, &cfg.log);
    let (forecasts, checkpoints, usage) = status_extras(ws, cfg, &disks);
    let sample = gpu.sample(SystemTime::now());
    let gpu = crate::gpu::GpuStatus::from_sample(&cfg.gpu, &sample, &ws.root);
    let rules = crate::rules::evaluate(
        &ws.root,
        cfg,
        &crate::rules::Inputs { gpu: Some(&sample), now: SystemTime::now(), probe: &crate::rules::Probe::default() },
    );
    let idle = idle_now(ws, cfg, &sample, gpu.tier.as_deref(), &checkpoints, host.boot_time_unix);
    let external_ip = crate::checklist::metadata::enabled(
        &cfg.external_ip,
        std::path::Path::new(crate::checklist::metadata::DMI_PRODUCT_NAME),
    )
    .and_then(|()| crate::checklist::metadata::lookup(&cfg.external_ip))
    .map(|a| a.to_string())
    .ok();
    if let Some(rest) = first_reading.and_then(|t| sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.checked_sub(t.elapsed())) {
        std::thread::sleep(rest);
    }
    let mut host_sample = host_sampler.sample(SystemTime::now());
    if kept_cpu.is_some() {
        host_sample.cpu_pct = kept_cpu;
    }
    let host_usage = HostUsageStatus::from(&host_sample);
    let disk_list = disks
        .disks
        .into_iter()
        .map(|info| DiskStatus { forecast: forecasts.get(&info.mount).copied().unwrap_or_default(), info })
        .collect();
    StatusReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        taken_unix: now,
        host: HostStatus {
            uptime_seconds: now.saturating_sub(host.boot_time_unix),
            hostname: host.hostname,
            external_ip,
            usage: Some(host_usage),
        },
        workspace: ws.root.display().to_string(),
        config_file: ws.config_path.as_ref().map(|p| p.display().to_string()),
        disks: disk_list,
        disk_errors: disks.errors,
        gpu,
        log,
        metrics,
        sync: crate::sync::read_status(&ws.root, &cfg.sync, &cfg.remotes, crate::unixtime::now_ms()).ok().map(
            |mut s| {
                let env = crate::sync::RemoteEnv::with_roots(&ws.root, &cfg.checkpoints.roots);
                crate::sync::status::mark_same_disk(&mut s, &cfg.sync, &cfg.remotes, &env);
                s
            },
        ),
        checkpoints,
        usage,
        idle,
        rules,
    }
}

/// Idle from one sample: "since" is the newest of the boot time, the training log's last
/// write and the newest checkpoint's.
fn idle_now(
    ws: &Workspace,
    cfg: &Config,
    sample: &crate::gpu::GpuSample,
    tier: Option<&str>,
    checkpoints: &[crate::checkpoints::Checkpoint],
    boot_unix: u64,
) -> crate::checklist::idle::IdleStatus {
    use crate::checklist::idle;
    let log = crate::logtail::discover::select(&ws.root, &cfg.log).filter(|l| l.exists);
    let writer = log.as_ref().and_then(|l| crate::logtail::proc::writers_of(&l.path).ok()).map(|w| !w.is_empty());
    let writes = checkpoints.iter().map(|c| c.mtime).chain(log.map(|l| l.modified));
    let now = SystemTime::now();
    let mut t = idle::IdleTracker::default();
    t.observe(now, idle::activity(sample, writer, &cfg.idle), idle::floor(boot_unix, writes));
    t.status(now, &cfg.idle, tier)
}

/// "growing +1.2 GB/h · warn in 3h10m · critical in 5h · full in 19h", "not growing",
/// or nothing while the growth is unknown (too little history). A level already reached
/// is not repeated (the disk line says it).
fn forecast_text(f: &crate::disk::growth::DiskForecast) -> Option<String> {
    let rate = f.growth_bytes_per_hour?;
    if rate <= 0.0 {
        return Some("not growing".into());
    }
    let mut parts = vec![format!("growing +{}/h", util::bytes(rate as u64))];
    for (name, t) in [("warn", f.seconds_to_warn), ("critical", f.seconds_to_critical), ("full", f.seconds_to_full)] {
        if let Some(t) = t.filter(|t| *t > 0) {
            parts.push(format!("{name} in {}", util::duration(std::time::Duration::from_secs(t))));
        }
    }
    Some(parts.join(" · "))
}

impl StatusReport {
    /// "checkpoints: 12 (34.5 GB) · newest step 1200, 3m ago · 1 being written ·
    /// confirmed on L2 10, L3 4 · on no remote 2", and what takes the workspace's space.
    fn checkpoints_text(&self) -> String {
        let c = &self.checkpoints;
        let mut out = String::new();
        if c.is_empty() {
            out.push_str("checkpoints: none found (checkpoints.roots)\n");
        } else {
            let bytes: u64 = c.iter().map(|c| c.bytes).sum();
            let mut parts = vec![format!("checkpoints: {} ({})", c.len(), util::bytes(bytes))];
            if let Some(newest) = c.iter().max_by_key(|c| c.mtime) {
                let step = newest.step.map_or_else(|| newest.rel_path.clone(), |s| format!("step {s}"));
                parts.push(format!(
                    "newest {step}, {} ago",
                    util::duration(std::time::Duration::from_secs(newest.age_secs))
                ));
            }
            let writing = c.iter().filter(|c| c.writing).count();
            if writing > 0 {
                parts.push(format!("{writing} being written"));
            }
            let mut levels: std::collections::BTreeMap<&str, usize> = Default::default();
            for l in c.iter().flat_map(|c| &c.confirmed_on) {
                *levels.entry(l.as_str()).or_default() += 1;
            }
            if !levels.is_empty() {
                let per: Vec<String> = levels.iter().map(|(l, n)| format!("{l} {n}")).collect();
                parts.push(format!("confirmed on {}", per.join(", ")));
            }
            let nowhere = c.iter().filter(|c| c.confirmed_on.is_empty()).count();
            if nowhere > 0 {
                parts.push(format!("on no remote {nowhere}"));
            }
            out.push_str(&parts.join(" · "));
            out.push('\n');
        }
        let u = &self.usage;
        if u.total_bytes > 0 {
            out.push_str(&format!(
                "space: checkpoints {} · logs {} · data {} · other {} (workspace {}{})\n",
                util::bytes(u.checkpoints_bytes),
                util::bytes(u.logs_bytes),
                util::bytes(u.data_bytes),
                util::bytes(u.other_bytes),
                util::bytes(u.total_bytes),
                if u.unreadable > 0 { format!(", {} unreadable", u.unreadable) } else { String::new() }
            ));
        }
        out
    }

    /// A short human-readable summary (control characters in names shown, not obeyed).
    pub fn to_text(&self) -> String {
        self.text().lines().map(|l| crate::util::printable(l).into_owned() + "\n").collect()
    }

    fn text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "host {} · up {}\nworkspace {}{}\n",
            self.host.hostname,
            util::duration(std::time::Duration::from_secs(self.host.uptime_seconds)),
            self.workspace,
            match &self.config_file {
                Some(c) => format!(" (config {c})"),
                None => " (no opsconsole.toml: defaults)".into(),
            }
        ));
        if let Some(u) = &self.host.usage {
            let g = |b: u64| b as f64 / (1u64 << 30) as f64;
            let cpu = u.cpu_pct.map_or_else(|| "n/a".to_string(), |c| format!("{c:.0}%"));
            let ram_pct = if u.memory_total_bytes == 0 {
                0.0
            } else {
                u.memory_used_bytes as f64 * 100.0 / u.memory_total_bytes as f64
            };
            out.push_str(&format!(
                "cpu {cpu} of {} cpus · ram {:.1}/{:.1} GiB {ram_pct:.0}% ({:.1} GiB available) · swap {:.1}/{:.1} GiB{}\n",
                u.cpus,
                g(u.memory_used_bytes),
                g(u.memory_total_bytes),
                g(u.memory_available_bytes),
                g(u.swap_used_bytes),
                g(u.swap_total_bytes),
                match u.memory_level {
                    crate::disk::Level::Ok => String::new(),
                    l => format!(" · memory {}", l.as_str()),
                }
            ));
        }
        out.push_str("disks:\n");
        for d in &self.disks {
            out.push_str(&format!(
                "  {:<20} {:>5.1}%  {:<8} {} / {}  ({})\n",
                d.mount,
                d.fill_pct,
                d.level.as_str(),
                util::bytes(d.used_bytes),
                util::bytes(d.total_bytes),
                d.roles.join(",")
            ));
            if let Some(f) = forecast_text(&d.forecast) {
                out.push_str(&format!("  {:<20} {f}\n", ""));
            }
        }
        for e in &self.disk_errors {
            out.push_str(&format!("  ! {e}\n"));
        }
        out.push_str(&self.checkpoints_text());
        out.push_str(&self.gpu.to_text());
        out.push_str(&match self.idle.state {
            crate::checklist::idle::IdleState::Idle => format!("idle: {}\n", self.idle.banner_text()),
            crate::checklist::idle::IdleState::Busy => format!("idle: no, {}\n", self.idle.reason),
            // The GPUs' own trouble is on the line above: not said twice.
            crate::checklist::idle::IdleState::Unknown if self.idle.reason == self.gpu.nvml.message => {
                "idle: unknown (the GPUs cannot be read, see above)\n".to_string()
            }
            crate::checklist::idle::IdleState::Unknown => format!("idle: unknown ({})\n", self.idle.reason),
        });
        out.push_str(&self.log.to_text(&self.metrics));
        out.push_str(&self.rules.to_text());
        if let Some(sync) = &self.sync {
            match sync.engine_pid {
                Some(pid) => out.push_str(&format!("uploads (sync engine pid {pid}):\n")),
                None => out.push_str("uploads (no sync engine running: `opsconsole sync --daemon`):\n"),
            }
            for l in &sync.levels {
                let state = if !l.remote_configured {
                    format!("remote '{}' not configured", l.remote)
                } else {
                    let last = match (l.last_success_unix, l.nothing_to_store) {
                        (Some(t), _) => format!(
                            ", last ok {} ago",
                            util::duration(std::time::Duration::from_secs(
                                self.taken_unix.saturating_sub(t.max(0) as u64)
                            ))
                        ),
                        (None, true) => ", nothing to store".to_string(),
                        (None, false) => ", never stored".to_string(),
                    };
                    format!(
                        "{} pending ({}), {} failed, {} confirmed{}{}{}{}",
                        l.pending_files,
                        util::bytes(l.pending_bytes),
                        l.failed,
                        l.confirmed_files,
                        last,
                        if l.overdue { ", OVERDUE" } else { "" },
                        match (&l.in_flight, &l.interrupted) {
                            (Some(f), _) => format!(
                                ", uploading {} {}/{}",
                                f.path,
                                util::bytes(f.bytes_done),
                                util::bytes(f.bytes_total)
                            ),
                            (None, Some(f)) => format!(
                                ", {} interrupted at {}/{} (resumes when sync runs)",
                                f.path,
                                util::bytes(f.bytes_done),
                                util::bytes(f.bytes_total)
                            ),
                            (None, None) => String::new(),
                        },
                        if l.same_disk { ", same disk: not a backup" } else { "" }
                    )
                };
                out.push_str(&format!("  {} {:<8} {state}\n", l.level, l.remote));
            }
            if let Some(w) = sync.withheld_line() {
                out.push_str(&format!("  {w}\n"));
                for f in &sync.withheld {
                    out.push_str(&format!("    {}: {}\n", f.path, f.why));
                }
            }
        }
        out
    }
}

/// For `status`: growth forecasts from the disk history (this sample included), the
/// checkpoint list and the usage breakdown.
fn status_extras(
    ws: &crate::workspace::Workspace,
    cfg: &Config,
    disks: &crate::disk::DiskSample,
) -> (
    std::collections::BTreeMap<String, crate::disk::growth::DiskForecast>,
    Vec<crate::checkpoints::Checkpoint>,
    crate::disk::usage::UsageBreakdown,
) {
    let now = SystemTime::now();
    crate::disk::history::record_disk_history(&ws.root, disks, now);
    let hist = crate::disk::history::load(&ws.root, now);
    let forecasts = disks
        .disks
        .iter()
        .map(|d| {
            let samples = hist.get(&d.mount).map(Vec::as_slice).unwrap_or_default();
            (d.mount.clone(), crate::disk::growth::forecast_disk(samples, d, (&cfg.disk).into(), now))
        })
        .collect();
    let spec = crate::checkpoints::sample::usage_spec(&cfg.checkpoints, &cfg.prune, &cfg.paths.data);
    let s = crate::checkpoints::sample::collect(
        &ws.root,
        &cfg.checkpoints,
        &spec,
        crate::prune::confirmation_source(&ws.root, cfg).as_ref(),
        None,
        now,
    );
    (forecasts, s.checkpoints, s.usage)
}
