//! The console's log collector task: picks the log to follow (and a newer one later),
//! runs the collector for it, switches on request, and sends the candidate list.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::app::Msg;
use crate::logtail::collector::{CollectorOptions, LogCollector, spawn_collector};
use crate::logtail::discover;

/// How often the candidate logs are listed again.
const LIST_EVERY: Duration = Duration::from_secs(10);

/// Runs until the app channel closes. `switch` asks to follow another log. Each log is
/// followed with `follow` (its config, pace and lead points), in the workspace `root`.
pub async fn supervise(
    root: PathBuf,
    follow: CollectorOptions,
    tx: mpsc::UnboundedSender<Msg>,
    refresh: Arc<Notify>,
    mut switch: mpsc::UnboundedReceiver<PathBuf>,
    lane: super::lane::Lane,
) {
    let mut current: Option<LogCollector> = None;
    let mut next: Option<PathBuf> = None;
    let mut every = crate::ticker::Ticker::on_grid(LIST_EVERY, super::LOG_LEAD);
    loop {
        let (r, c) = (root.clone(), follow.config.clone());
        let candidates = lane.run(move || discover::candidates(&r, &c)).await.unwrap_or_default();
        if current.is_none() && next.is_none() {
            next = candidates.first().map(|c| c.path.clone());
        }
        if let Some(path) = next.take() {
            if let Some(old) = current.take() {
                // Stopping joins the follow thread: off the async task.
                let _ = tokio::task::spawn_blocking(move || drop(old)).await;
            }
            let mut opts = follow.clone();
            opts.workspace = Some(root.clone());
            let tx2 = tx.clone();
            let started = tokio::task::spawn_blocking(move || {
                spawn_collector(path, opts, move |s| tx2.send(Msg::Log(Box::new(s))).is_ok())
            })
            .await;
            match started {
                Ok(Ok(c)) => current = Some(c),
                Ok(Err(e)) => tracing::error!("log collector could not start: {e}"),
                Err(e) => tracing::error!("log collector could not start: {e}"),
            }
        }
        if tx.send(Msg::LogCandidates(candidates)).is_err() {
            return;
        }
        tokio::select! {
            _ = every.tick() => {}
            _ = refresh.notified() => {}
            p = switch.recv() => match p {
                Some(p) => next = Some(p),
                None => return,
            },
        }
    }
}
