//! The rate of one upload: bytes sent in this attempt over a sliding window, so a resumed
//! upload does not count the bytes it resumed from, and a capped one reads the cap rather
//! than the burst it started with.

use std::collections::VecDeque;
use std::time::Duration;

/// Progress readings older than this (before the newest) no longer count.
pub const WINDOW: Duration = Duration::from_secs(10);
/// No rate (and no ETA) until the readings span this long: the first moments of a
/// transfer (a token bucket's burst, a first chunk written before the cap makes it wait)
/// say nothing about its pace.
pub const MIN_SPAN: Duration = Duration::from_secs(3);

/// Progress readings (seconds on any clock that does not go back, bytes done) of one
/// attempt at one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateWindow {
    readings: VecDeque<(f64, u64)>,
}

impl RateWindow {
    pub fn new() -> Self {
        Self::default()
    }

    /// A reading: `bytes` done at `at_secs`. A reading with fewer bytes than the last (a
    /// new attempt, restarting lower) starts the window again; one at the same time as the
    /// last replaces it; one earlier than the last is ignored.
    pub fn push(&mut self, at_secs: f64, bytes: u64) {
        if !at_secs.is_finite() {
            return;
        }
        match self.readings.back().copied() {
            Some((_, b)) if bytes < b => self.readings.clear(),
            Some((t, _)) if at_secs < t => return,
            Some((t, _)) if at_secs == t => {
                self.readings.pop_back();
            }
            _ => {}
        }
        self.readings.push_back((at_secs, bytes));
        // Keep one reading at or before the window's start, so the window is covered whole.
        let start = at_secs - WINDOW.as_secs_f64();
        while self.readings.len() > 2 && self.readings[1].0 <= start {
            self.readings.pop_front();
        }
    }

    /// Bytes per second: the least-squares slope of bytes over time in the window (a
    /// transfer in bursts — a chunk written, then a wait — reads its mean pace, not the
    /// burst's); `None` until the readings span [`MIN_SPAN`].
    pub fn rate(&self) -> Option<f64> {
        let (first, last) = (self.readings.front()?, self.readings.back()?);
        if last.0 - first.0 < MIN_SPAN.as_secs_f64() {
            return None;
        }
        let n = self.readings.len() as f64;
        let mt = self.readings.iter().map(|r| r.0 - first.0).sum::<f64>() / n;
        let mb = self.readings.iter().map(|r| (r.1 - first.1) as f64).sum::<f64>() / n;
        let (mut num, mut den) = (0.0, 0.0);
        for (t, b) in &self.readings {
            let dt = t - first.0 - mt;
            num += dt * ((b - first.1) as f64 - mb);
            den += dt * dt;
        }
        (den > 0.0).then(|| (num / den).max(0.0))
    }

    /// The rate as whole bytes per second (0 while unknown).
    pub fn bytes_per_s(&self) -> u64 {
        self.rate().map_or(0, |r| r.round() as u64)
    }

    /// Time left for `total` bytes at [`RateWindow::rate`]; `None` while the rate is
    /// unknown or nothing is moving.
    pub fn eta(&self, total: u64) -> Option<Duration> {
        let rate = self.rate().filter(|r| *r > 0.0)?;
        let done = self.readings.back()?.1;
        Some(Duration::from_secs_f64(total.saturating_sub(done) as f64 / rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A transfer as a capped remote makes it: a 4 MiB chunk written and announced at
    /// once, then a wait for the token bucket (which starts with a second of tokens).
    fn capped(cap: u64, chunk: u64, total: u64, offset: u64, tick: f64) -> Vec<(f64, u64)> {
        let mut bucket = cap as f64; // a full bucket: one second of burst
        let (mut t, mut done, mut announced_at) = (0.0f64, offset, Vec::new());
        while done < total {
            let n = chunk.min(total - done);
            done += n;
            announced_at.push((t, done));
            bucket -= n as f64;
            if bucket < 0.0 {
                let wait = -bucket / cap as f64;
                t += wait;
                bucket = 0.0;
            }
        }
        // Readings every `tick` seconds of what was announced by then.
        let end = t;
        let mut out = Vec::new();
        let mut now = 0.0;
        while now <= end + tick {
            let b = announced_at.iter().take_while(|(at, _)| *at <= now).last().map_or(offset, |r| r.1);
            out.push((now, b));
            now += tick;
        }
        out
    }

    #[test]
    fn under_a_cap_the_rate_is_the_cap_not_the_burst() {
        let cap = 10 * MIB;
        let total = 200 * MIB;
        let mut w = RateWindow::new();
        let mut naive_max = 0.0f64;
        for (t, b) in capped(cap, 4 * MIB, total, 0, 0.25) {
            w.push(t, b);
            if t > 0.0 {
                naive_max = naive_max.max(b as f64 / t);
            }
            if let Some(r) = w.rate() {
                // After the window has left the start's burst, within 5% of the cap.
                if t >= WINDOW.as_secs_f64() + 1.0 {
                    assert!((r - cap as f64).abs() < 0.05 * cap as f64, "t {t}: {} MiB/s", r / MIB as f64);
                }
                // Never the burst's pace.
                assert!(r < 1.6 * cap as f64, "t {t}: {} MiB/s", r / MIB as f64);
            } else {
                assert!(t < MIN_SPAN.as_secs_f64() + 0.01, "a rate once the readings span {MIN_SPAN:?}");
            }
        }
        // What the average since the start said at its first readings (the defect).
        assert!(naive_max > 5.0 * cap as f64, "{naive_max}");
    }

    #[test]
    fn a_resumed_upload_counts_only_the_bytes_it_sent() {
        let cap = 10 * MIB;
        let mut w = RateWindow::new();
        // Resumed at 190 MiB of 230: the first reading is the offset.
        for (t, b) in capped(cap, 4 * MIB, 230 * MIB, 190 * MIB, 0.25) {
            w.push(t, b);
        }
        let r = w.rate().expect("a rate");
        assert!((r - cap as f64).abs() < 0.1 * cap as f64, "{} MiB/s", r / MIB as f64);
    }

    #[test]
    fn steady_progress_gives_rate_and_eta() {
        let mut w = RateWindow::new();
        for i in 0..=40 {
            w.push(100.0 + i as f64 * 0.25, 1_000 + i * 250_000);
        }
        assert_eq!(w.bytes_per_s(), 1_000_000);
        // 10 MB done of 20 MB at 1 MB/s: 10 s left.
        let done = 1_000 + 40 * 250_000;
        assert_eq!(w.eta(done + 10_000_000).map(|d| d.as_secs()), Some(10));
        // Old readings leave the window: a slowdown shows within it.
        for i in 1..=60 {
            w.push(110.0 + i as f64 * 0.25, done + i * 25_000);
        }
        assert_eq!(w.bytes_per_s(), 100_000);
    }

    #[test]
    fn a_new_attempt_starts_again_and_bad_readings_are_ignored() {
        let mut w = RateWindow::new();
        for i in 0..20 {
            w.push(i as f64 * 0.5, 50_000_000 + i * 1_000_000);
        }
        assert!(w.rate().is_some());
        // The upload restarted lower (the remote lost the session): no rate until it
        // has run long enough again.
        w.push(10.0, 0);
        assert_eq!((w.rate(), w.eta(100)), (None, None));
        w.push(9.0, 10); // earlier than the last reading: ignored
        w.push(10.0, 5); // same time: replaces
        w.push(f64::NAN, 7);
        w.push(13.0, 3_000_005);
        assert_eq!(w.bytes_per_s(), 1_000_000);
        // Nothing moving: rate 0, no ETA.
        let mut still = RateWindow::new();
        still.push(0.0, 5);
        still.push(5.0, 5);
        assert_eq!((still.rate(), still.eta(10)), (Some(0.0), None));
    }
}
