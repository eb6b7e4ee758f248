//! Unix time: the one place a `SystemTime` becomes epoch seconds or milliseconds.
//!
//! Every conversion saturates: a time before the epoch (a clock set back, a file with a
//! 1969 mtime) reads as 0 rather than panicking or wrapping.

use std::time::{SystemTime, UNIX_EPOCH};

/// Whole seconds since the Unix epoch (0 for times before it).
pub fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Milliseconds since the Unix epoch (0 before it, `u64::MAX` past the year 584 million).
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// Milliseconds since the Unix epoch as the ledger stores them (SQLite integers are `i64`).
pub fn millis_i64(t: SystemTime) -> i64 {
    i64::try_from(millis(t)).unwrap_or(i64::MAX)
}

/// The wall clock now, in milliseconds since the Unix epoch, as the ledger stores it.
pub fn now_ms() -> i64 {
    millis_i64(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn before_the_epoch_reads_as_zero() {
        let t = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!((secs(t), millis(t), millis_i64(t)), (0, 0, 0));
    }

    #[test]
    fn seconds_truncate_and_milliseconds_keep_the_fraction() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_000_000_999);
        assert_eq!(secs(t), 1_764_000_000);
        assert_eq!(millis(t), 1_764_000_000_999);
        assert_eq!(millis_i64(t), 1_764_000_000_999);
    }

    #[test]
    fn now_is_after_2025() {
        assert!(now_ms() > 1_735_689_600_000, "{}", now_ms());
    }
}
