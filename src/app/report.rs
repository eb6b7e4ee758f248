//! The figures the console holds, in `status --json`'s shape: what the console's exporter
//! (`[metrics] listen`) serves, from the samples its collectors already sent — no collector
//! runs twice.

use crate::status::{DiskStatus, HostStatus, StatusReport};

use super::AppState;

/// The state's latest samples as a [`StatusReport`] (`config_file` is not known here).
pub fn status_report(state: &AppState) -> StatusReport {
    let cfg = &state.config;
    let (disks, disk_errors) = match &state.disk.sample {
        Some(s) => (
            s.disks
                .iter()
                .map(|info| DiskStatus {
                    forecast: state.prune.forecasts.get(&info.mount).copied().unwrap_or_default(),
                    info: info.clone(),
                })
                .collect(),
            s.errors.clone(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let gpu = match &state.gpu.sample {
        Some(s) => crate::gpu::GpuStatus {
            nvml: crate::gpu::report::NvmlReport { status: s.nvml.clone(), message: s.nvml.describe() },
            gpus: s.gpus.clone(),
            tier: state.gpu.machine_tier.as_ref().map(|t| t.name.clone()),
            tier_fit: state.gpu.fit.clone(),
        },
        None => crate::gpu::GpuStatus {
            nvml: crate::gpu::report::NvmlReport {
                status: crate::gpu::NvmlStatus::NotOpened,
                message: crate::gpu::NvmlStatus::NotOpened.describe(),
            },
            gpus: Vec::new(),
            tier: None,
            tier_fit: None,
        },
    };
    let log = state.log.status(state.now);
    let tier = gpu.tier.clone();
    let (checkpoints, usage) = match &state.prune.sample {
        Some(s) => (s.checkpoints.clone(), s.usage),
        None => (Vec::new(), Default::default()),
    };
    StatusReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        taken_unix: state.now_unix(),
        host: HostStatus {
            hostname: state.host.hostname.clone(),
            uptime_seconds: state.uptime().as_secs(),
            external_ip: state.external_ip.clone(),
            usage: state.host_usage.as_ref().map(Into::into),
        },
        workspace: state.workspace_root.display().to_string(),
        config_file: None,
        disks,
        disk_errors,
        gpu,
        metrics: state.log.metrics.latest,
        log,
        sync: state.uploads.sample.as_ref().map(|s| s.status.clone()),
        checkpoints,
        usage,
        idle: state.idle.status(state.now, &cfg.idle, tier.as_deref()),
        // Not exported as metrics yet; before the first rules sample, every rule reads `ok`.
        rules: state.rules.clone().unwrap_or_default(),
    }
}
