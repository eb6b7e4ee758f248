//! The NVML collector: opens the library lazily, reads every GPU and its compute
//! processes, and never panics when there is no GPU.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

use super::config::GpuConfig;
use super::procinfo::ProcReader;
use super::sample::{GpuDevice, GpuProcess, GpuSample, NvmlStatus};
use crate::unixtime::millis as unix_ms;

/// The library name NVML is loaded by when `gpu.lib_path` is not set.
pub const DEFAULT_LIBRARY: &str = "libnvidia-ml.so.1";

/// How long to wait before trying to open NVML again after it failed (a driver may be
/// installed or loaded while the console runs).
pub const REOPEN_AFTER_MS: u64 = 60_000;

/// Samples every GPU. Create it anywhere; NVML is opened on the first `sample` call, so
/// build it on the collector's own thread, never on the UI task.
pub struct GpuCollector {
    enabled: bool,
    lib_path: Option<PathBuf>,
    /// Boxed: NVML's table of function pointers is 12 KB, and a collector moved or
    /// sampled on a thread's stack would touch that much of it (docs/performance.md).
    nvml: Option<Box<Nvml>>,
    status: NvmlStatus,
    last_open_attempt_ms: Option<u64>,
    procs: ProcReader,
    /// Per GPU, what the last read of its processes' SM utilization said.
    proc_util: HashMap<u32, ProcUtil>,
    /// `gpu.process_util_ms`: the time between two such reads; 0: never.
    proc_util_every_ms: u64,
}

/// One GPU's processes' SM utilization as last read. NVML's answer costs milliseconds of
/// CPU (1.5-2.3 ms on an H200, driver 580, against under 0.1 ms for the rest of a sample),
/// so it is read every `gpu.process_util_ms` and when a process appears, not every sample.
#[derive(Debug, Default)]
struct ProcUtil {
    /// The newest sample read (NVML's µs timestamp): the next read asks for samples after it.
    seen: u64,
    /// When it was last read (unix ms); `None`: never.
    read_at_ms: Option<u64>,
    /// Whether the GPU answers at all; `false`: the figure is unknown, not 0.
    supported: bool,
    /// Each process listed at the last read, with its share (0 when NVML left it out: it
    /// lists only processes with a non-zero sample).
    pct: HashMap<u32, u32>,
}

impl ProcUtil {
    /// Each of `pids`' SM share, reading NVML only when `every_ms` has passed since the last
    /// read or a pid was not listed then.
    fn shares(
        &mut self,
        device: &nvml_wrapper::Device,
        pids: &[u32],
        now_ms: u64,
        every_ms: u64,
    ) -> Option<&HashMap<u32, u32>> {
        if every_ms == 0 || pids.is_empty() {
            return None;
        }
        let due = self.read_at_ms.is_none_or(|t| now_ms.saturating_sub(t) >= every_ms)
            || pids.iter().any(|p| !self.pct.contains_key(p));
        if due {
            self.read_at_ms = Some(now_ms);
            let newest = process_utilization(device, &mut self.seen);
            self.supported = newest.is_some();
            let newest = newest.unwrap_or_default();
            self.pct = pids.iter().map(|&p| (p, newest.get(&p).map_or(0, |(_, sm)| (*sm).min(100)))).collect();
        }
        self.supported.then_some(&self.pct)
    }
}

impl std::fmt::Debug for GpuCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuCollector")
            .field("enabled", &self.enabled)
            .field("lib_path", &self.lib_path)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl GpuCollector {
    pub fn new(config: &GpuConfig) -> Self {
        Self {
            enabled: config.enabled,
            lib_path: config.lib_path.clone(),
            nvml: None,
            status: if config.enabled { NvmlStatus::NotOpened } else { NvmlStatus::Disabled },
            last_open_attempt_ms: None,
            procs: ProcReader::default(),
            proc_util: HashMap::new(),
            proc_util_every_ms: config.process_util_ms,
        }
    }

    /// NVML's state after the last sample.
    pub fn status(&self) -> &NvmlStatus {
        &self.status
    }

    /// One whole sample at `now`. Opens NVML when needed (again at most every
    /// [`REOPEN_AFTER_MS`] after a failure).
    /// Whether the next sample at `now` calls into NVML (opening it, or reading the GPUs).
    /// When it does not, the sample is only the last status again and costs nothing.
    pub fn touches_nvml(&self, now: SystemTime) -> bool {
        let now_ms = unix_ms(now);
        self.enabled
            && (self.nvml.is_some()
                || self.last_open_attempt_ms.is_none_or(|t| now_ms.saturating_sub(t) >= REOPEN_AFTER_MS))
    }

    pub fn sample(&mut self, now: SystemTime) -> GpuSample {
        let now_ms = unix_ms(now);
        if !self.enabled {
            return GpuSample::unavailable(now_ms, NvmlStatus::Disabled);
        }
        if self.nvml.is_none() {
            let due = self.last_open_attempt_ms.is_none_or(|t| now_ms.saturating_sub(t) >= REOPEN_AFTER_MS);
            if due {
                self.last_open_attempt_ms = Some(now_ms);
                self.open();
            }
        }
        let Some(nvml) = &self.nvml else {
            return GpuSample::unavailable(now_ms, self.status.clone());
        };
        let count = match nvml.device_count() {
            Ok(n) => n,
            Err(e) => {
                let status = classify(e, self.library_name());
                // Keep the handle; a later sample may succeed (GPU reset).
                return GpuSample::unavailable(now_ms, status);
            }
        };
        let mut gpus = Vec::with_capacity(count as usize);
        for index in 0..count {
            let util = self.proc_util.entry(index).or_default();
            gpus.push(read_device(nvml, index, &mut self.procs, util, now_ms, self.proc_util_every_ms));
        }
        let alive: Vec<u32> = gpus.iter().flat_map(|g| g.processes.iter().map(|p| p.pid)).collect();
        self.procs.retain(&alive);
        GpuSample { taken_at_unix_ms: now_ms, nvml: self.status.clone(), gpus }
    }

    fn library_name(&self) -> String {
        match &self.lib_path {
            Some(p) => p.display().to_string(),
            None => DEFAULT_LIBRARY.to_string(),
        }
    }

    /// Not inlined into [`GpuCollector::sample`]: opening builds NVML's 12 KB table on the
    /// stack, and every page of a frame is touched when the function is entered, so only
    /// an attempt to open should pay for it, not every sample.
    #[inline(never)]
    fn open(&mut self) {
        let mut builder = Nvml::builder();
        if let Some(path) = &self.lib_path {
            builder.lib_path(path.as_os_str());
        }
        match builder.init() {
            Ok(nvml) => {
                let driver_version = nvml.sys_driver_version().unwrap_or_else(|_| "n/a".to_string());
                tracing::info!(%driver_version, "NVML opened");
                self.status = NvmlStatus::Ok { driver_version };
                self.nvml = Some(Box::new(nvml));
            }
            Err(e) => {
                self.status = classify(e, self.library_name());
                tracing::info!(status = ?self.status, "NVML not available");
            }
        }
    }
}

/// Turn an NVML error from opening or listing into a status a person can act on.
pub fn classify(e: NvmlError, library: String) -> NvmlStatus {
    match e {
        NvmlError::LibloadingError(err) => {
            let detail = err.to_string();
            if detail.contains("No such file") || detail.contains("cannot open shared object") {
                NvmlStatus::LibraryMissing { library, detail }
            } else {
                NvmlStatus::Other { detail: format!("{library} could not be loaded: {detail}") }
            }
        }
        NvmlError::DriverNotLoaded => NvmlStatus::DriverNotLoaded,
        NvmlError::NoPermission => NvmlStatus::NoPermission,
        NvmlError::FailedToLoadSymbol(sym) => {
            NvmlStatus::Other { detail: format!("{library} is not a usable NVML library: {sym}") }
        }
        other => NvmlStatus::Other { detail: other.to_string() },
    }
}

/// Each process's SM utilization since `seen` (µs, NVML's clock; 0 = everything the driver
/// buffered), the newest sample per pid; `seen` moves to the newest sample. `None` when
/// the GPU or driver does not report it; `Some(empty)` when it does and no process used the
/// SMs in that time (NVML lists only processes with a non-zero sample).
fn process_utilization(device: &nvml_wrapper::Device, seen: &mut u64) -> Option<HashMap<u32, (u64, u32)>> {
    let last = (*seen > 0).then_some(*seen);
    match device.process_utilization_stats(last) {
        Ok(samples) => {
            let mut newest: HashMap<u32, (u64, u32)> = HashMap::new();
            for s in samples {
                let e = newest.entry(s.pid).or_insert((s.timestamp, s.sm_util));
                if s.timestamp >= e.0 {
                    *e = (s.timestamp, s.sm_util);
                }
                *seen = (*seen).max(s.timestamp);
            }
            Some(newest)
        }
        Err(NvmlError::NotFound) => Some(Default::default()),
        Err(_) => None,
    }
}

fn read_device(
    nvml: &Nvml,
    index: u32,
    procs: &mut ProcReader,
    proc_util: &mut ProcUtil,
    now_ms: u64,
    util_every_ms: u64,
) -> GpuDevice {
    let device = match nvml.device_by_index(index) {
        Ok(d) => d,
        Err(e) => {
            return GpuDevice {
                index,
                name: format!("GPU {index}"),
                uuid: None,
                memory_used_bytes: None,
                memory_total_bytes: None,
                utilization_pct: None,
                memory_utilization_pct: None,
                temperature_c: None,
                power_draw_mw: None,
                power_limit_mw: None,
                processes: Vec::new(),
                processes_error: None,
                error: Some(format!("cannot read GPU {index}: {e}")),
            };
        }
    };
    let name = device.name().unwrap_or_else(|_| format!("GPU {index}"));
    let memory = device.memory_info().ok();
    let util = device.utilization_rates().ok();
    let (list, processes_error) = match device.running_compute_processes() {
        Ok(list) => (list, None),
        Err(NvmlError::NotSupported) => (Vec::new(), Some("this GPU does not list its processes".to_string())),
        Err(NvmlError::FailedToLoadSymbol(_)) => (
            Vec::new(),
            Some(
                "this driver's NVML lacks nvmlDeviceGetComputeRunningProcesses_v3 (driver 510 or newer \
                 lists processes)"
                    .to_string(),
            ),
        ),
        Err(e) => (Vec::new(), Some(format!("cannot list processes: {e}"))),
    };
    let pids: Vec<u32> = list.iter().map(|p| p.pid).collect();
    let shares = proc_util.shares(&device, &pids, now_ms, util_every_ms);
    let processes = list
        .into_iter()
        .map(|p| {
            let used = match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => Some(b),
                UsedGpuMemory::Unavailable => None,
            };
            let mut proc_ = GpuProcess::new(p.pid, index, used, procs.info(p.pid));
            proc_.sm_util_pct = shares.and_then(|u| u.get(&p.pid).copied());
            proc_
        })
        .collect();
    GpuDevice {
        index,
        name,
        uuid: device.uuid().ok(),
        memory_used_bytes: memory.as_ref().map(|m| m.used),
        memory_total_bytes: memory.as_ref().map(|m| m.total),
        utilization_pct: util.as_ref().map(|u| u.gpu),
        memory_utilization_pct: util.as_ref().map(|u| u.memory),
        temperature_c: device.temperature(TemperatureSensor::Gpu).ok(),
        power_draw_mw: device.power_usage().ok(),
        power_limit_mw: device.enforced_power_limit().ok(),
        processes,
        processes_error,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn collector_can_move_to_its_own_thread() {
        assert_send::<GpuCollector>();
    }

    #[test]
    fn disabled_collector_never_opens() {
        let cfg = GpuConfig { enabled: false, ..GpuConfig::default() };
        let mut c = GpuCollector::new(&cfg);
        assert!(!c.touches_nvml(SystemTime::UNIX_EPOCH));
        let s = c.sample(SystemTime::UNIX_EPOCH);
        assert_eq!(s.nvml, NvmlStatus::Disabled);
        assert!(s.gpus.is_empty());
    }

    #[test]
    fn missing_library_is_a_status_and_is_retried_only_after_a_while() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = GpuConfig { lib_path: Some(dir.path().join("libnvidia-ml.so.1")), ..GpuConfig::default() };
        let mut c = GpuCollector::new(&cfg);
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        assert!(c.touches_nvml(t0), "the first sample opens NVML");
        let s = c.sample(t0);
        assert!(!c.touches_nvml(t0 + std::time::Duration::from_secs(5)), "nothing to open yet");
        assert!(c.touches_nvml(t0 + std::time::Duration::from_secs(61)), "time to try again");
        assert!(matches!(s.nvml, NvmlStatus::LibraryMissing { .. }), "{:?}", s.nvml);
        assert!(s.nvml.describe().contains("not found"));
        assert_eq!(c.last_open_attempt_ms, Some(1_000_000));
        c.sample(t0 + std::time::Duration::from_secs(5));
        assert_eq!(c.last_open_attempt_ms, Some(1_000_000), "retried too soon");
        c.sample(t0 + std::time::Duration::from_secs(61));
        assert_eq!(c.last_open_attempt_ms, Some(1_061_000));
    }

    #[test]
    fn a_file_that_is_not_a_library_is_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("libnvidia-ml.so.1");
        std::fs::write(&path, b"not an ELF file").expect("write");
        let cfg = GpuConfig { lib_path: Some(path), ..GpuConfig::default() };
        let s = GpuCollector::new(&cfg).sample(SystemTime::UNIX_EPOCH);
        assert!(matches!(s.nvml, NvmlStatus::Other { .. }), "{:?}", s.nvml);
    }
}
