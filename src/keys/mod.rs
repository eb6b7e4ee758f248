//! Keys as the config names them: every action the user can ask for, declared once with
//! its default keys and help text (`action`), and key strings parsed into chords with the
//! check of a whole `[keys]` table (`chord`), independent of the terminal library.

pub mod action;
pub mod chord;

pub use action::{Action, KeysConfig};
