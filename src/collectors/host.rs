//! The host collector: CPU, RAM and swap every two seconds (and on a refresh), read on a
//! the collectors' lane.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::app::Msg;

pub(super) fn spawn_host(
    tx: mpsc::UnboundedSender<Msg>,
    refresh: Arc<Notify>,
    lane: super::lane::Lane,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut sampler = crate::host::HostSampler::new();
        let mut every = crate::ticker::Ticker::on_grid(Duration::from_secs(2), super::LOG_LEAD);
        loop {
            let res = lane
                .run(move || {
                    let s = sampler.sample(std::time::SystemTime::now());
                    (sampler, s)
                })
                .await;
            let Ok((s, sample)) = res else { return };
            sampler = s;
            if tx.send(Msg::Host(sample)).is_err() {
                return;
            }
            tokio::select! {
                _ = every.tick() => {}
                _ = refresh.notified() => {}
            }
        }
    })
}
