//! Whole GPU samples: what the collector sends to the UI and to `status --json`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Whether NVML could be opened, and if not, why — in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NvmlStatus {
    /// GPU sampling is switched off in config.
    Disabled,
    /// Not tried yet (the first sample opens the library).
    NotOpened,
    /// Open; `driver_version` as NVML reports it ("n/a" when it would not say).
    Ok { driver_version: String },
    /// The NVML library file could not be loaded.
    LibraryMissing { library: String, detail: String },
    /// The library loaded but the NVIDIA kernel driver is not running.
    DriverNotLoaded,
    /// The driver refused this user.
    NoPermission,
    /// Anything else NVML said.
    Other { detail: String },
}

impl NvmlStatus {
    /// True when GPUs can be read.
    pub fn is_ok(&self) -> bool {
        matches!(self, NvmlStatus::Ok { .. })
    }

    /// One plain line for the panel and the CLI.
    pub fn describe(&self) -> String {
        match self {
            NvmlStatus::Disabled => "GPU sampling is off (gpu.enabled = false)".into(),
            NvmlStatus::NotOpened => "NVML not opened yet".into(),
            NvmlStatus::Ok { driver_version } => format!("NVIDIA driver {driver_version}"),
            NvmlStatus::LibraryMissing { library, .. } => format!(
                "no NVIDIA library ({library} not found): no NVIDIA driver is installed here, \
                 or set gpu.lib_path"
            ),
            NvmlStatus::DriverNotLoaded => "the NVIDIA driver is not loaded (is there a GPU on this machine? \
                 try nvidia-smi)"
                .into(),
            NvmlStatus::NoPermission => "no permission to talk to the NVIDIA driver (check /dev/nvidia* access)".into(),
            NvmlStatus::Other { detail } => format!("NVML failed: {detail}"),
        }
    }
}

/// One sample of every GPU on the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    /// When the sample was taken, milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
    pub nvml: NvmlStatus,
    pub gpus: Vec<GpuDevice>,
}

impl GpuSample {
    /// A sample with no GPUs and the given status.
    pub fn unavailable(taken_at_unix_ms: u64, nvml: NvmlStatus) -> Self {
        Self { taken_at_unix_ms, nvml, gpus: Vec::new() }
    }

    /// Every compute process on every GPU.
    pub fn processes(&self) -> impl Iterator<Item = &GpuProcess> {
        self.gpus.iter().flat_map(|g| g.processes.iter())
    }
}

/// One GPU. A field the GPU does not support (or that failed) is `None`, shown as "n/a".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuDevice {
    pub index: u32,
    pub name: String,
    /// NVML's UUID of the GPU (`GPU-…`), where the driver gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Used framebuffer memory (NVML v2 memory info, as nvidia-smi prints it).
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    /// Percent of time a kernel ran during the last sample period.
    pub utilization_pct: Option<u32>,
    /// Percent of time device memory was read or written.
    pub memory_utilization_pct: Option<u32>,
    pub temperature_c: Option<u32>,
    pub power_draw_mw: Option<u32>,
    pub power_limit_mw: Option<u32>,
    pub processes: Vec<GpuProcess>,
    /// Why the process list could not be read (an old driver, say), if so.
    pub processes_error: Option<String>,
    /// Why this GPU could not be read at all (its handle failed), if so.
    pub error: Option<String>,
}

/// A compute process on one GPU, with what the OS knows about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuProcess {
    pub pid: u32,
    pub gpu_index: u32,
    /// VRAM the process holds on this GPU; `None` where the driver does not say.
    pub used_bytes: Option<u64>,
    /// Full command line, arguments joined by spaces; `None` when the process is gone
    /// or hidden (another PID namespace).
    pub command: Option<String>,
    pub user: Option<String>,
    pub uid: Option<u32>,
    /// Start time, seconds since the Unix epoch.
    pub start_time_unix_s: Option<u64>,
    /// Start time in clock ticks after boot (from /proc/PID/stat): with the pid, names
    /// this process even after the pid is reused.
    pub start_ticks: Option<u64>,
    pub cwd: Option<PathBuf>,
    /// The process's share of the GPU's SM (compute) time over the last sample period,
    /// from `nvmlDeviceGetProcessUtilization`; `None` where the GPU does not report it.
    #[serde(default)]
    pub sm_util_pct: Option<u32>,
}

impl GpuProcess {
    /// A process on GPU `gpu_index`, described by what `/proc` said of it.
    pub fn new(pid: u32, gpu_index: u32, used_bytes: Option<u64>, info: super::procinfo::ProcInfo) -> Self {
        Self {
            pid,
            gpu_index,
            used_bytes,
            command: info.command,
            user: info.user,
            uid: info.uid,
            start_time_unix_s: info.start_time_unix_s,
            start_ticks: info.start_ticks,
            cwd: info.cwd,
            sm_util_pct: None,
        }
    }

    /// The program and its script (`python train.py`, `opsconsole`), or `pid N` when the
    /// command line is unknown.
    pub fn short_name(&self) -> String {
        match self.program() {
            Some(p) => p.short,
            None => format!("pid {}", self.pid),
        }
    }

    /// The command line as a list shows it: program and script first, folders last.
    pub fn program(&self) -> Option<super::procinfo::ProgramName> {
        self.command.as_deref().and_then(super::procinfo::program_name)
    }
}
