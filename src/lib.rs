
pub mod sync;
