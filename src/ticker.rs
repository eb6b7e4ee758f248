//! Ticks on the process's grid (multiples of a period from [`crate::util::grid_base`]),
//! for the loop's frame tick and the collectors' turns.
//!
//! Tokio's timer wheel keeps a deadline more than 64 ms away on a coarser level and moves
//! it down when the level's slot comes, which wakes the runtime: every one-second interval
//! cost the UI thread two wake-ups a tick, the slot's and the deadline's (strace beside a
//! run: a wake-up 20-60 ms before each tick that did nothing). A [`Ticker`] on a `timerfd`
//! the runtime polls wakes it once, at the tick; the kernel keeps the period, so the ticks
//! stay on the grid. Tests whose clock is paused, and any runtime where no `timerfd` can be
//! had, use tokio's interval on the same grid.

use std::os::fd::OwnedFd;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

/// An interval on the grid: the first tick is the next grid point (less `lead`), then one
/// every period; a tick that comes late is not made up for.
pub enum Ticker {
    Fd(FdTicker),
    /// Tokio's interval, and its lead.
    Tokio(tokio::time::Interval, Duration),
}

/// The `timerfd` kind of [`Ticker`].
pub struct FdTicker {
    fd: AsyncFd<OwnedFd>,
    period: Duration,
    lead: Duration,
}

impl Ticker {
    /// Ticks `lead` before each grid point of `period` (`lead` at most half a period), on a
    /// `timerfd` (else tokio's interval). The runtime must have its I/O driver.
    pub fn on_grid(period: Duration, lead: Duration) -> Self {
        match FdTicker::new(period, lead) {
            Ok(t) => Ticker::Fd(t),
            Err(e) => {
                tracing::debug!("no timerfd for a {period:?} tick ({e}): tokio's timer");
                Self::tokio(period, lead)
            }
        }
    }

    /// Tokio's interval on the grid (tests with a paused clock drive it).
    pub fn tokio(period: Duration, lead: Duration) -> Self {
        let period = period.max(Duration::from_millis(1));
        // Tokio's clock (paused in tests), not the system's.
        let at = next_point(period, lead, tokio::time::Instant::now().into_std());
        let mut i = tokio::time::interval_at(tokio::time::Instant::from_std(at), period);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Ticker::Tokio(i, lead)
    }

    /// Waits for the next tick.
    pub async fn tick(&mut self) {
        match self {
            Ticker::Fd(t) => t.tick().await,
            Ticker::Tokio(i, _) => {
                i.tick().await;
            }
        }
    }

    /// How long from `now` to the next tick's point.
    pub fn until_next(&self, now: std::time::Instant) -> Duration {
        let (period, lead) = match self {
            Ticker::Fd(t) => (t.period, t.lead),
            Ticker::Tokio(i, lead) => (i.period(), *lead),
        };
        next_point(period, lead, now).saturating_duration_since(now)
    }

    /// The tick due within the next half period is not waited for: the next one is the one
    /// after it (a frame drawn a moment before its tick needs no second one at the tick).
    pub fn skip_next(&mut self) {
        match self {
            Ticker::Fd(t) => t.skip_next(),
            Ticker::Tokio(i, lead) => {
                let period = i.period();
                let now = tokio::time::Instant::now().into_std();
                let next = next_point(period, *lead, now + period / 2);
                i.reset_at(tokio::time::Instant::from_std(next));
            }
        }
    }
}

/// The first grid point (less `lead`) at or after `after`.
fn next_point(period: Duration, lead: Duration, after: std::time::Instant) -> std::time::Instant {
    crate::util::Lead::new(period, lead).next_after(after, Duration::ZERO)
}

impl FdTicker {
    fn new(period: Duration, lead: Duration) -> std::io::Result<Self> {
        use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
        let period = period.max(Duration::from_millis(1));
        let fd = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC)?;
        // SAFETY: `fd` is an owned descriptor the `AsyncFd` takes: it stays open, and the
        // same, for as long as the `AsyncFd` lives.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let t = Self { fd, period, lead };
        t.arm(std::time::Instant::now())?;
        Ok(t)
    }

    /// Sets the timer to the first grid point at or after `after`, then every period.
    fn arm(&self, after: std::time::Instant) -> std::io::Result<()> {
        use rustix::time::{ClockId, Itimerspec, TimerfdTimerFlags, Timespec, clock_gettime, timerfd_settime};
        let first = next_point(self.period, self.lead, after);
        // `Instant` is CLOCK_MONOTONIC: the point, as that clock's time.
        let (now_instant, now_clock) = (std::time::Instant::now(), clock_gettime(ClockId::Monotonic));
        let at = Duration::new(now_clock.tv_sec as u64, now_clock.tv_nsec as u32)
            + first.saturating_duration_since(now_instant);
        let spec = |d: Duration| Timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos() as _ };
        let value = Itimerspec { it_interval: spec(self.period), it_value: spec(at.max(Duration::from_nanos(1))) };
        timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::ABSTIME, &value)?;
        Ok(())
    }

    async fn tick(&mut self) {
        loop {
            let Ok(mut ready) = self.fd.readable().await else {
                // The driver is gone (the runtime is shutting down): never ticks again.
                return std::future::pending().await;
            };
            let mut expirations = [0u8; 8];
            match rustix::io::read(self.fd.get_ref(), &mut expirations) {
                // Ticks missed while busy are counted here, and not made up for. The count
                // is read: nothing is left to read until the next tick.
                Ok(8) => {
                    ready.clear_ready();
                    return;
                }
                Ok(_) | Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => ready.clear_ready(),
                Err(e) => {
                    tracing::warn!("the tick's timer failed: {e}");
                    return std::future::pending().await;
                }
            }
        }
    }

    fn skip_next(&mut self) {
        // Anything already expired is read away, then the timer starts after the next tick.
        let mut expirations = [0u8; 8];
        let _ = rustix::io::read(self.fd.get_ref(), &mut expirations);
        if let Err(e) = self.arm(std::time::Instant::now() + self.period / 2) {
            tracing::warn!("the tick's timer could not be set: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    /// Ticks land on the grid (less the lead), one a period, and a skipped tick is not
    /// waited for.
    #[test]
    fn fd_ticks_fall_on_the_grid_and_a_skipped_one_is_not_waited_for() {
        rt().block_on(async {
            let period = Duration::from_millis(40);
            let lead = Duration::from_millis(10);
            let mut t = Ticker::on_grid(period, lead);
            assert!(matches!(t, Ticker::Fd(_)), "a timerfd where the runtime has an I/O driver");
            let base = crate::util::grid_base();
            let off_grid = |at: std::time::Instant| {
                let ns = (at + lead).duration_since(base).as_nanos() % period.as_nanos();
                ns.min(period.as_nanos() - ns)
            };
            let mut ticks = Vec::new();
            for _ in 0..4 {
                t.tick().await;
                ticks.push(std::time::Instant::now());
            }
            for (i, at) in ticks.iter().enumerate() {
                // Woken at most a few ms after its point (a loaded machine may be later).
                assert!(off_grid(*at) < Duration::from_millis(15).as_nanos(), "tick {i} is off the grid");
            }
            for w in ticks.windows(2) {
                let gap = w[1] - w[0];
                assert!(gap > period / 2 && gap < period * 3 / 2, "{gap:?} between ticks");
            }
            // Skipped a moment before it is due: the one after it comes instead.
            let last = *ticks.last().unwrap();
            tokio::time::sleep(period * 3 / 4).await;
            t.skip_next();
            t.tick().await;
            let gap = std::time::Instant::now() - last;
            assert!(gap > period * 3 / 2, "the skipped tick came: {gap:?} after the last");
        });
    }

    #[test]
    fn tokios_ticker_keeps_the_grid_and_skips_too() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("rt");
        rt.block_on(async {
            let period = Duration::from_millis(100);
            let mut t = Ticker::tokio(period, Duration::ZERO);
            t.tick().await;
            let first = tokio::time::Instant::now();
            t.tick().await;
            assert_eq!(tokio::time::Instant::now() - first, period);
            tokio::time::sleep(period * 3 / 4).await;
            t.skip_next();
            t.tick().await;
            assert_eq!(tokio::time::Instant::now() - first, period * 3, "the tick at 2 periods was skipped");
        });
    }
}
