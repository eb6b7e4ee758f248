//! The console's log collector task: picks the log to follow (and a newer one later),
//! runs the collector for it, switches on request, and sends the candidate list.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::app::Msg;
use crate::logtail::collector::{CollectorOptions, LogCollector, Turn, spawn_collector_turns};
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
    let mut current: Option<(LogCollector, Option<tokio::task::JoinHandle<()>>)> = None;
    let mut next: Option<PathBuf> = None;
    let mut every = crate::ticker::Ticker::on_grid(LIST_EVERY, super::LOG_LEAD);
    loop {
        let (r, c) = (root.clone(), follow.config.clone());
        let candidates = lane.run(move || discover::candidates(&r, &c)).await.unwrap_or_default();
        if current.is_none() && next.is_none() {
            next = candidates.first().map(|c| c.path.clone());
        }
        if let Some(path) = next.take() {
            if let Some((old, turns)) = current.take() {
                if let Some(t) = turns {
                    t.abort();
                }
                // Stopping joins the follow thread: off the async task.
                let _ = tokio::task::spawn_blocking(move || drop(old)).await;
            }
            let mut opts = follow.clone();
            opts.workspace = Some(root.clone());
            let tx2 = tx.clone();
            let grows = Arc::new(Notify::new());
            let on_turns = {
                let grows = grows.clone();
                move || grows.notify_one()
            };
            let started = tokio::task::spawn_blocking(move || {
                spawn_collector_turns(path, opts, move |s| tx2.send(Msg::Log(Box::new(s))).is_ok(), on_turns)
            })
            .await;
            match started {
                Ok(Ok(c)) => {
                    let turns = match (follow.turns, follow.hot_at) {
                        (true, Some(at)) => {
                            Some(tokio::spawn(turns(c.turner(), c.releaser(), grows, lane.clone(), at)))
                        }
                        _ => None,
                    };
                    current = Some((c, turns));
                }
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
                None => {
                    if let Some((_, Some(t))) = &current {
                        t.abort();
                    }
                    return;
                }
            },
        }
    }
}

/// While the followed log grows, it is read at the collectors' turns, on their lane, at
/// the log's lead points (`at`, a little before each frame's tick): the read is one more
/// job of the turn, and its sample reaches the UI task with the turn's other results, in
/// one wake-up of the UI thread and none of the follow thread (which had woken at each
/// lead point to read, and woken the UI thread a second time). `grows` says the log
/// started to grow; the turns stop when one reads nothing (the follow thread watches the
/// folder again).
async fn turns(
    turn: Turn,
    release: Arc<dyn Fn() + Send + Sync>,
    grows: Arc<Notify>,
    lane: super::lane::Lane,
    at: crate::util::Lead,
) {
    loop {
        grows.notified().await;
        let mut every = crate::ticker::Ticker::on_grid(at.period, at.lead);
        loop {
            every.tick().await;
            let t = turn.clone();
            let still = lane.run(move || t()).await;
            // The samples made since the turn began go out now, in order.
            release();
            // A read that panicked is tried again at the next turn.
            if still == Ok(false) {
                break;
            }
        }
    }
}
