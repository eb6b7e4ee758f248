//! When the time-derived text of a frame changes next. `render` is a function of the
//! state and its clock (`state.now`): ages ("last ok 3m01s ago"), the uptime, the stall
//! timer, the status line's expiry. Every piece of text drawn from the clock tells this
//! module when it would read differently; after a frame the loop asks [`next_change`]
//! and draws again on a tick only when that time has come (or the state changed), so an
//! idle console does no render work for ticks that would draw the same screen.
//!
//! The times are kept per thread for the frame being drawn, one per part of the screen
//! ([`super::Part`]): `render` starts a part afresh before drawing it ([`begin`]), the
//! helpers below lower the time of the part being drawn, and [`next_change`] and
//! [`next_change_of`] read them. A frame that draws only some parts keeps the others'.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Part;

thread_local! {
    static NEXT: Cell<[Option<SystemTime>; Part::COUNT]> = const { Cell::new([None; Part::COUNT]) };
    /// The part being drawn; none outside [`super::render_parts`], where what is worked
    /// out from the clock is not drawn (the page size for paging keys) and records nothing.
    static CURRENT: Cell<Option<Part>> = const { Cell::new(None) };
}

/// Starts drawing `part`: no time-derived text of it drawn yet; what the helpers record
/// until the next `begin` is its.
pub(super) fn begin(part: Part) {
    CURRENT.with(|c| c.set(Some(part)));
    NEXT.with(|n| {
        let mut all = n.get();
        all[part as usize] = None;
        n.set(all);
    });
}

/// Drawing is over: what is worked out from the clock until the next [`begin`] is not
/// drawn, and records nothing.
pub(super) fn end() {
    CURRENT.with(|c| c.set(None));
}

/// The times of every part, to put back with [`restore`] after drawing a frame that is
/// not shown (the whole frame a frame drawn in parts is checked against).
#[cfg(debug_assertions)]
pub(super) fn save() -> [Option<SystemTime>; Part::COUNT] {
    NEXT.with(Cell::get)
}

#[cfg(debug_assertions)]
pub(super) fn restore(kept: [Option<SystemTime>; Part::COUNT]) {
    NEXT.with(|n| n.set(kept));
}

/// The earliest time at which some text of the frames last drawn on this thread reads
/// differently; `None` when nothing on them depends on the clock.
pub fn next_change() -> Option<SystemTime> {
    NEXT.with(|n| n.get().into_iter().flatten().min())
}

/// When the time-derived text of `part`, as last drawn on this thread, reads differently.
pub fn next_change_of(part: Part) -> Option<SystemTime> {
    NEXT.with(|n| n.get()[part as usize])
}

/// Something on screen changes at `t` (a threshold: a status line expires, a stall
/// begins). Times not after `now` are ignored: the frame already shows them.
pub(crate) fn at(now: SystemTime, t: SystemTime) {
    if let Some(part) = CURRENT.with(Cell::get).filter(|_| t > now) {
        NEXT.with(|n| {
            let mut all = n.get();
            all[part as usize] = Some(all[part as usize].map_or(t, |m| m.min(t)));
            n.set(all);
        });
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

    /// A frame of one part, started afresh.
    fn reset() {
        for p in Part::ALL {
            begin(p);
        }
    }

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
