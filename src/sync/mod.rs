//! Background sync: the ledger, routing and schedules, the watcher, the upload engine,
//! remotes (the trait and the local-folder remote) and the one-engine-per-workspace lock.
//! No UI here: the console and the CLI read [`status::SyncStatus`] and engine events.

pub mod config;
pub mod ledger;
pub mod routing;
pub mod hash;
pub mod local;
pub mod lock;
pub mod remote;
