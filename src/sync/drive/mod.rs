//! The Google Drive remote (`kind = "drive"`): a service account's key and tokens
//! ([`auth`]), the Drive v3 API and its errors in words ([`api`]), and [`DriveRemote`], the
//! [`Remote`](super::remote::Remote) the engine stores a level through ([`remote`]).

pub mod api;
pub mod auth;
pub mod remote;

pub use remote::{DriveRemote, DriveSettings};
