//! The VM's external address, from the cloud's metadata server: looked up once it answers,
//! again every minute until then (it may not answer at boot). Only where the machine is a
//! cloud VM the lookup knows (see `checklist::metadata::enabled`).

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::app::Msg;
use crate::checklist::config::ExternalIpConfig;

/// Starts the lookup; it ends at once (with a debug line) where it is not enabled.
pub(super) fn spawn_external_ip(cfg: ExternalIpConfig, tx: mpsc::UnboundedSender<Msg>) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Whether this is such a VM is read from /sys: off the UI task too.
        let c = cfg.clone();
        let dmi = std::path::Path::new(crate::checklist::metadata::DMI_PRODUCT_NAME);
        match tokio::task::spawn_blocking(move || crate::checklist::metadata::enabled(&c, dmi)).await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                tracing::debug!("external address not looked up: {why}");
                return;
            }
            Err(e) => {
                tracing::error!("external address lookup failed: {e}");
                return;
            }
        }
        // Once it is known it does not change while the VM runs; until then, try again
        // every minute (the metadata server may not answer at boot).
        loop {
            let c = cfg.clone();
            let r = tokio::task::spawn_blocking(move || crate::checklist::metadata::lookup(&c))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let ok = r.is_ok();
            if let Err(e) = &r {
                tracing::info!("external address not known: {e}");
            }
            if tx.send(Msg::ExternalIp(r.map(|a| a.to_string()))).is_err() || ok {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        }
    })
}
