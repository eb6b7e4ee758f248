//! `opsconsole shutdown-check [--json]`.

use std::time::SystemTime;

use crate::checklist::gather::{Sources, gather};
use crate::config::Config;

/// `opsconsole shutdown-check`: samples the GPUs and disks, gathers live, prints.
/// Exit 0 when every enabled item passes, 1 otherwise.
pub fn cli_run(ws: &crate::workspace::Workspace, cfg: &Config, json: bool) -> std::io::Result<u8> {
    let now = SystemTime::now();
    let gpu = crate::gpu::GpuCollector::new(&cfg.gpu).sample(now);
    let disks = crate::disk::sample(&crate::disk::watched_paths(ws, cfg), (&cfg.disk).into());
    let report = gather(&ws.root, cfg, now, Sources { gpu: Some(&gpu), disks: Some(&disks), live: true, cache: None });
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
        println!("{text}");
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.ok { 0 } else { 1 })
}
