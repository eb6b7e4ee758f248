//! Shared test support: fixture states and the stand-ins for external systems.
#![allow(dead_code)]

pub mod fixtures;
