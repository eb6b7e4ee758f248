//! When the time-derived text of a frame changes next. `render` is a function of the
//! state and its clock (`state.now`): ages ("last ok 3m01s ago"), the uptime, the stall
//! timer, the status line's expiry. Every piece of text drawn from the clock tells this
//! module when it would read differently; after a frame the loop asks [`next_change`]
//! and draws again on a tick only when that time has come (or the state changed), so an
//! idle console does no render work for ticks that would draw the same screen.
//!
//! The times are kept per thread for the frame being drawn: `render` starts afresh, the
//! helpers below lower the time, and [`next_change`] reads it.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

thread_local! {
    static NEXT: Cell<Option<SystemTime>> = const { Cell::new(None) };
}

/// Starts a frame: no time-derived text drawn yet.
pub(super) fn reset() {
    NEXT.with(|n| n.set(None));
}

/// The earliest time at which some text of the last frame drawn on this thread reads
/// differently; `None` when nothing on it depends on the clock.
pub fn next_change() -> Option<SystemTime> {
    NEXT.with(Cell::get)
}

/// Something on screen changes at `t` (a threshold: a status line expires, a stall
/// begins). Times not after `now` are ignored: the frame already shows them.
pub(crate) fn at(now: SystemTime, t: SystemTime) {
    if t > now {
        NEXT.with(|n| n.set(Some(n.get().map_or(t, |m| m.min(t)))));
    }
}

/// Something on screen changes at every tick (a running counter with no fixed step).
pub(crate) fn every_tick(now: SystemTime) {
    at(now, now + Duration::from_millis(1));
}

/// The step of [`crate::util::duration`]'s text for a duration of `secs`: seconds under
/// an hour, minutes under a day, hours beyond.
fn step(secs: u64) -> u64 {
    if secs < 3600 {
        1
    } else if secs < 86_400 {
        60
    } else {
        3600
    }
}

/// The age of `then` at `now` (zero for a time in the future), as drawn with
/// [`crate::util::duration`]; records when that text changes next.
pub(crate) fn since(now: SystemTime, then: SystemTime) -> Duration {
    let age = now.duration_since(then).unwrap_or(Duration::ZERO);
    let s = age.as_secs();
    let next = (s / step(s) + 1) * step(s);
    at(now, then + Duration::from_secs(next));
    age
}

/// The age in whole seconds of the Unix time `then_unix` at `now` (the state's
/// `now_unix() - then`), as drawn with [`crate::util::duration`]; records when that text
/// changes next.
pub(crate) fn since_unix(now: SystemTime, then_unix: u64) -> Duration {
    let now_unix = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let s = now_unix.saturating_sub(then_unix);
    let next = (s / step(s) + 1) * step(s);
    at(now, UNIX_EPOCH + Duration::from_secs(then_unix + next));
    Duration::from_secs(s)
}

/// Seconds left until the Unix time `t_unix` (the state's `t - now_unix()`), for a
/// countdown; records the next second, when the count goes down.
pub(crate) fn until_unix(now: SystemTime, t_unix: i64) -> i64 {
    let now_unix = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let left = t_unix.saturating_sub(now_unix);
    if left > 0 {
        at(now, UNIX_EPOCH + Duration::from_secs(now_unix as u64 + 1));
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::duration;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    /// The recorded time is the first at which the drawn text differs, never later.
    #[test]
    fn since_records_the_next_change_of_the_text() {
        let then = t(1_000_000) + Duration::from_millis(400);
        for age_ms in [0u64, 999, 1000, 59_400, 61_000, 3_599_500, 3_600_000, 3_659_999, 86_399_000, 90_000_000] {
            reset();
            let now = then + Duration::from_millis(age_ms);
            let shown = duration(since(now, then));
            let next = next_change().expect("an age changes");
            assert!(next > now);
            let later = duration(next.duration_since(then).unwrap());
            assert_ne!(shown, later, "at {age_ms} ms the text changes at the recorded time");
            let before = duration((next - Duration::from_millis(1)).duration_since(then).unwrap());
            assert_eq!(shown, before, "at {age_ms} ms nothing changes before it");
        }
    }

    #[test]
    fn since_unix_and_thresholds_keep_the_earliest() {
        reset();
        let now = t(10_000) + Duration::from_millis(300);
        assert_eq!(since_unix(now, 10_000 - 7200), Duration::from_secs(7200));
        assert_eq!(next_change(), Some(t(10_060)), "2h00m reads 2h01m a minute later");
        at(now, t(10_030));
        assert_eq!(next_change(), Some(t(10_030)));
        at(now, t(9_000));
        assert_eq!(next_change(), Some(t(10_030)), "a time passed already is not waited for");
        assert_eq!(until_unix(now, 10_100), 100);
        assert_eq!(next_change(), Some(t(10_001)));
        reset();
        assert_eq!(next_change(), None);
    }
}
