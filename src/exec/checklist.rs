//! The console's checklist jobs: gathering the checklist off the UI task, and the shutdown
//! request (everything checked again, live, then the command run and waited for).
//! Answers come back as [`Msg::Checklist`] and [`Msg::Shutdown`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::app::Msg;
use crate::app::checklist::ShutdownEvent;
use crate::checklist::gather::{LiveCache, Sources, gather};
use crate::config::Config;
use crate::disk::DiskSample;
use crate::gpu::GpuSample;

/// What a gather reads besides the workspace: the newest samples the console holds.
pub struct Facts {
    pub workspace: PathBuf,
    pub config: Config,
    pub gpu: Option<GpuSample>,
    pub disks: Option<DiskSample>,
}

/// Gathers the checklist on a blocking thread; `live` also checks copies on their remotes
/// and runs the extra commands (their answers are cached in `cache` for the next gathers).
pub fn gather_job(facts: Facts, live: bool, cache: Arc<Mutex<LiveCache>>, tx: mpsc::UnboundedSender<Msg>) {
    tokio::task::spawn_blocking(move || {
        let r = run_gather(&facts, live, &cache);
        let _ = tx.send(Msg::Checklist(Box::new(r)));
    });
}

/// Checks every item again, live, and when every failing one is among `overrides`, records
/// the decision and runs the shutdown command, then waits for it to end.
pub fn shutdown_job(
    facts: Facts,
    overrides: BTreeSet<String>,
    cache: Arc<Mutex<LiveCache>>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    tokio::task::spawn_blocking(move || {
        // Everything again, live: the decision is made on what is true now.
        let report = run_gather(&facts, true, &cache);
        let (outcome, child) =
            crate::checklist::shutdown::execute(&facts.workspace, &facts.config.shutdown.command, &report, &overrides);
        let _ = tx.send(Msg::Shutdown(ShutdownEvent::Decided { report: Box::new(report), outcome }));
        if let Some(mut child) = child {
            let pid = child.id();
            let code = child.wait().ok().and_then(|s| s.code());
            tracing::info!(pid, ?code, "the shutdown command ended");
            let _ = tx.send(Msg::Shutdown(ShutdownEvent::Exited { pid, code }));
        }
    });
}

fn run_gather(f: &Facts, live: bool, cache: &Mutex<LiveCache>) -> crate::checklist::Report {
    let sources = Sources { gpu: f.gpu.as_ref(), disks: f.disks.as_ref(), live, cache: Some(cache) };
    gather(&f.workspace, &f.config, SystemTime::now(), sources)
}
