//! Keys as the config names them: every action the user can ask for, declared once with
//! its default keys and help text (`action`), independent of the terminal library.

pub mod action;

pub use action::{Action, KeysConfig};
