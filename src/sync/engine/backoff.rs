//! Retry delays: exponential, capped, jittered, and never shorter than a Retry-After hint.

use std::time::Duration;

/// Delay before retry number `attempt` (1-based): exponential from `base`, capped at
/// `max`, with "equal jitter" (`jitter` in 0..1 picks within the upper half), and never
/// shorter than a Retry-After hint.
pub fn backoff_delay(
    attempt: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let exp = base.checked_mul(1u32 << attempt.saturating_sub(1).min(20)).unwrap_or(max).min(max);
    let half = exp / 2;
    let d = half + half.mul_f64(jitter.clamp(0.0, 1.0));
    match retry_after {
        Some(ra) if ra > d => ra,
        _ => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let b = Duration::from_secs(2);
        let m = Duration::from_secs(60);
        assert_eq!(backoff_delay(1, b, m, None, 1.0), Duration::from_secs(2));
        assert_eq!(backoff_delay(1, b, m, None, 0.0), Duration::from_secs(1));
        assert_eq!(backoff_delay(3, b, m, None, 1.0), Duration::from_secs(8));
        assert_eq!(backoff_delay(30, b, m, None, 1.0), m);
        assert_eq!(backoff_delay(30, b, m, None, 0.0), m / 2);
        assert_eq!(backoff_delay(1, b, m, Some(Duration::from_secs(120)), 0.5), Duration::from_secs(120));
        assert_eq!(backoff_delay(3, b, m, Some(Duration::from_millis(10)), 1.0), Duration::from_secs(8));
    }
}
