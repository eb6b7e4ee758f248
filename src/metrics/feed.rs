//! The console's exporter (`[metrics] listen`): the UI loop hands over the figures it
//! already holds every `[metrics] sample_ms` (a clone, no I/O); a thread of its own renders
//! them and serves `/metrics`. No collector runs twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::encode::render;
use super::sampler::{Latest, options};
use crate::config::Config;
use crate::status::StatusReport;
use crate::workspace::Workspace;

/// The UI loop's end: [`ConsoleFeed::due`] says when to hand over a report.
#[derive(Debug, Clone)]
pub struct ConsoleFeed {
    tx: Arc<watch::Sender<Option<Arc<StatusReport>>>>,
    every: Duration,
    next: Instant,
}

/// The first report waits for the collectors' first samples, at most this long.
const FIRST_AFTER: Duration = Duration::from_secs(2);

impl ConsoleFeed {
    /// Whether a report is due now.
    pub fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    /// Hands a report to the exporter thread (the previous one, if not yet rendered, is
    /// replaced).
    pub fn send(&mut self, report: StatusReport) {
        self.next = Instant::now() + self.every;
        let _ = self.tx.send(Some(Arc::new(report)));
    }
}

/// Starts the exporter thread on `listener`; the console feeds it.
pub fn start(ws: &Workspace, cfg: &Config, listener: std::net::TcpListener) -> std::io::Result<ConsoleFeed> {
    let (tx, mut rx) = watch::channel::<Option<Arc<StatusReport>>>(None);
    let (ws, cfg) = (ws.clone(), cfg.clone());
    let every = Duration::from_millis(cfg.metrics.sample_ms);
    listener.set_nonblocking(true)?;
    super::server::on_own_thread(move || async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("metrics: {e}");
                return;
            }
        };
        let latest = Latest::default();
        tokio::spawn(super::server::serve(listener, latest.clone()));
        // Until the console quits (the sender is dropped with the UI loop).
        while rx.changed().await.is_ok() {
            let report = rx.borrow_and_update().clone();
            if let Some(r) = report {
                latest.set(render(&r, &options(&ws, &cfg)));
            }
        }
    })?;
    Ok(ConsoleFeed { tx: Arc::new(tx), every, next: Instant::now() + FIRST_AFTER.min(every) })
}
