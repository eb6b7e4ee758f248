//! Glue between the checkpoints domain and the sync ledger: where confirmations come from
//! (`confirm`), where prune events are recorded (`events`), and a plan built from the
//! config for the workspace as it is now (`plan`). Used alike by the console's prune jobs
//! and by `opsconsole prune`.

pub mod confirm;
pub mod events;
pub mod plan;

pub use confirm::confirmation_source;
pub use events::event_sink;
pub use plan::{exec_context, make_plan};
