//! The metrics of a run: latest values and bounded (step, loss) / (step, eval loss) series.

use serde::Serialize;

use super::parse::MetricUpdate;
use super::scancache::{Dec, Enc};

/// Latest values, `None` while unknown (`null` in `status --json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    pub step: Option<u64>,
    pub loss: Option<f64>,
    pub eval_loss: Option<f64>,
    pub learning_rate: Option<f64>,
    pub grad_norm: Option<f64>,
    pub epoch: Option<f64>,
    pub tokens_per_second: Option<f64>,
    pub eta_seconds: Option<f64>,
    /// Not in `status --json`'s documented keys but useful on screen.
    #[serde(skip)]
    pub total_steps: Option<u64>,
    #[serde(skip)]
    pub iterations_per_second: Option<f64>,
    #[serde(skip)]
    pub train_runtime: Option<f64>,
    #[serde(skip)]
    pub final_train_loss: Option<f64>,
}

impl MetricsSnapshot {
    /// Values of `newer` override ours where present.
    pub fn overlay(&mut self, newer: &MetricsSnapshot) {
        let MetricsSnapshot {
            step,
            loss,
            eval_loss,
            learning_rate,
            grad_norm,
            epoch,
            tokens_per_second,
            eta_seconds,
            total_steps,
            iterations_per_second,
            train_runtime,
            final_train_loss,
        } = *newer;
        macro_rules! newer {
            ($($f:ident),*) => { $( if $f.is_some() { self.$f = $f; } )* };
        }
        newer!(
            step,
            loss,
            eval_loss,
            learning_rate,
            grad_norm,
            epoch,
            tokens_per_second,
            eta_seconds,
            total_steps,
            iterations_per_second,
            train_runtime,
            final_train_loss
        );
    }
}

/// A chart series with at most `cap` points: when full, every other point is dropped
/// and only every `stride`-th new point is kept, so a long run keeps its whole shape.
/// The latest point is always kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    points: Vec<(f64, f64)>,
    last: Option<(f64, f64)>,
    cap: usize,
    stride: u64,
    seen: u64,
    /// Points pushed in all, including those of a merged history.
    count: u64,
}

impl Series {
    pub fn new(cap: usize) -> Self {
        Self { points: Vec::new(), last: None, cap: cap.max(4), stride: 1, seen: 0, count: 0 }
    }

    pub fn push(&mut self, x: f64, y: f64) {
        if !x.is_finite() || !y.is_finite() || self.last == Some((x, y)) {
            return;
        }
        self.last = Some((x, y));
        self.count += 1;
        if self.seen.is_multiple_of(self.stride) {
            self.points.push((x, y));
            if self.points.len() >= self.cap {
                let mut keep = false;
                self.points.retain(|_| {
                    keep = !keep;
                    keep
                });
                self.stride *= 2;
            }
        }
        self.seen += 1;
    }

    /// The points to draw, oldest first, ending with the latest point.
    pub fn points(&self) -> Vec<(f64, f64)> {
        let mut out = self.points.clone();
        if let Some(l) = self.last
            && out.last() != Some(&l)
        {
            out.push(l);
        }
        out
    }

    /// How many points [`Series::points`] returns, without copying them.
    pub fn points_len(&self) -> usize {
        self.points.len() + usize::from(self.last.is_some() && self.points.last() != self.last.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_none()
    }

    /// How many points were pushed in all (a merged history's included).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// For the kept state of a log read (`scancache`): every field, bit for bit.
    pub(super) fn save(&self, w: &mut Enc) {
        w.u64(self.points.len() as u64);
        for (x, y) in &self.points {
            w.f64(*x);
            w.f64(*y);
        }
        w.u8(u8::from(self.last.is_some()));
        let (x, y) = self.last.unwrap_or_default();
        w.f64(x);
        w.f64(y);
        w.u64(self.cap as u64);
        w.u64(self.stride);
        w.u64(self.seen);
        w.u64(self.count);
    }

    /// What [`Series::save`] wrote (`None` when it does not hold a series).
    pub(super) fn load(r: &mut Dec<'_>) -> Option<Self> {
        let n = r.count(16)?;
        let mut points = Vec::with_capacity(n);
        for _ in 0..n {
            points.push((r.f64()?, r.f64()?));
        }
        let has_last = match r.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let last = (r.f64()?, r.f64()?);
        let cap = usize::try_from(r.u64()?).ok()?;
        let (stride, seen, count) = (r.u64()?, r.u64()?, r.u64()?);
        if cap < 4 || points.len() >= cap || stride == 0 {
            return None;
        }
        Some(Self { points, last: has_last.then_some(last), cap, stride, seen, count })
    }

    /// `earlier` followed by `self`, thinned to the cap.
    pub fn after(&self, earlier: &Series) -> Series {
        let mut out = Series::new(self.cap);
        for (x, y) in earlier.points().into_iter().chain(self.points()) {
            out.push(x, y);
        }
        out.count = earlier.count + self.count;
        out
    }
}

/// The series [`MetricsState::after_reusing`] merged last, and from what.
#[derive(Debug, Clone)]
pub struct MergedSeries {
    key: [u64; 5],
    loss: Series,
    eval_loss: Series,
}

/// Metrics folded from parsed lines.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsState {
    pub latest: MetricsSnapshot,
    pub loss: Series,
    pub eval_loss: Series,
    /// The largest progress-bar total seen: the training bar. Smaller bars (evaluation)
    /// do not move the step.
    main_total: Option<u64>,
    /// Loss points seen, the x of a loss when no step is known.
    losses: u64,
    /// The run's bars count epochs (Lightning, torchtune): steps come from those bars'
    /// own reckoning, and a bar without it (the new epoch's first draw, `0/200`) says
    /// nothing about the step, the total or the time left.
    epoch_bars: bool,
}

impl MetricsState {
    pub fn new(chart_points: usize) -> Self {
        Self {
            latest: MetricsSnapshot::default(),
            loss: Series::new(chart_points),
            eval_loss: Series::new(chart_points),
            main_total: None,
            losses: 0,
            epoch_bars: false,
        }
    }

    pub fn apply(&mut self, u: &MetricUpdate) {
        let l = &mut self.latest;
        if u.from_bar && (u.epoch_bar || self.epoch_bars) {
            if u.epoch_bar && !self.epoch_bars {
                // What earlier bars gave as the total and time left was one epoch's.
                self.epoch_bars = true;
                self.main_total = None;
                l.total_steps = None;
                l.eta_seconds = None;
            }
            if u.epoch_bar {
                l.step = u.step.or(l.step);
            }
            l.iterations_per_second = u.iterations_per_second.or(l.iterations_per_second);
        } else if u.from_bar {
            let main = match (u.total_steps, self.main_total) {
                (Some(t), Some(m)) => t >= m,
                (Some(_), None) => true,
                (None, m) => m.is_none(),
            };
            if main {
                if u.total_steps.is_some() {
                    self.main_total = u.total_steps;
                    l.total_steps = u.total_steps;
                }
                l.step = u.step.or(l.step);
                l.eta_seconds = u.eta_seconds.or(l.eta_seconds);
                l.iterations_per_second = u.iterations_per_second.or(l.iterations_per_second);
            }
        } else {
            if u.step.is_some() {
                l.step = u.step;
            }
            if u.total_steps.is_some() {
                l.total_steps = u.total_steps;
            }
            if u.eta_seconds.is_some() {
                l.eta_seconds = u.eta_seconds;
            } else if let (Some(total), Some(step), Some(rate)) = (l.total_steps, l.step, l.iterations_per_second)
                && u.step.is_some()
                && rate > 0.0
            {
                l.eta_seconds = Some(total.saturating_sub(step) as f64 / rate);
            }
        }
        macro_rules! keep {
            ($($f:ident),*) => { $( if u.$f.is_some() { l.$f = u.$f; } )* };
        }
        keep!(learning_rate, grad_norm, epoch, tokens_per_second, train_runtime, final_train_loss);
        if let Some(loss) = u.loss {
            l.loss = Some(loss);
            self.losses += 1;
            let x = u.step.or(l.step).map_or(self.losses as f64, |s| s as f64);
            self.loss.push(x, loss);
        }
        if let Some(eval) = u.eval_loss {
            l.eval_loss = Some(eval);
            let x = u.step.or(l.step).map_or(self.losses as f64, |s| s as f64);
            self.eval_loss.push(x, eval);
        }
        if let Some(r) = u.train_runtime
            && u.final_train_loss.is_some()
            && r >= 0.0
        {
            // The run has ended.
            l.eta_seconds = Some(0.0);
        }
    }

    /// For the kept state of a log read (`scancache`): every field, bit for bit.
    pub(super) fn save(&self, w: &mut Enc) {
        let l = &self.latest;
        w.opt_u64(l.step);
        w.opt_u64(l.total_steps);
        for v in [
            l.loss,
            l.eval_loss,
            l.learning_rate,
            l.grad_norm,
            l.epoch,
            l.tokens_per_second,
            l.eta_seconds,
            l.iterations_per_second,
            l.train_runtime,
            l.final_train_loss,
        ] {
            w.opt_f64(v);
        }
        self.loss.save(w);
        self.eval_loss.save(w);
        w.opt_u64(self.main_total);
        w.u64(self.losses);
        w.u8(u8::from(self.epoch_bars));
    }

    /// What [`MetricsState::save`] wrote, for series of `chart_points` (`None` when it
    /// does not hold a state, or one with another number of points).
    pub(super) fn load(r: &mut Dec<'_>, chart_points: usize) -> Option<Self> {
        let (step, total_steps) = (r.opt_u64()?, r.opt_u64()?);
        let mut f = [None; 10];
        for v in &mut f {
            *v = r.opt_f64()?;
        }
        let [
            loss,
            eval_loss,
            learning_rate,
            grad_norm,
            epoch,
            tokens_per_second,
            eta_seconds,
            iterations_per_second,
            train_runtime,
            final_train_loss,
        ] = f;
        let latest = MetricsSnapshot {
            step,
            loss,
            eval_loss,
            learning_rate,
            grad_norm,
            epoch,
            tokens_per_second,
            eta_seconds,
            total_steps,
            iterations_per_second,
            train_runtime,
            final_train_loss,
        };
        let (loss, eval_loss) = (Series::load(r)?, Series::load(r)?);
        let want = Series::new(chart_points).cap;
        if loss.cap != want || eval_loss.cap != want {
            return None;
        }
        let (main_total, losses) = (r.opt_u64()?, r.u64()?);
        let epoch_bars = match r.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        Some(Self { latest, loss, eval_loss, main_total, losses, epoch_bars })
    }

    /// The history read in the background (`earlier`) followed by `self`.
    pub fn after(&self, earlier: &MetricsState) -> MetricsState {
        self.after_reusing(earlier, 0, &mut None)
    }

    /// [`MetricsState::after`], with the two series merged again only when a point was
    /// added to either side, or `earlier` is another one (`earlier_id` changed): the log
    /// follower merges them at every sample, a second apart, while a new loss comes every
    /// few steps (each merge went through every point of both, up to 2,000 each).
    pub fn after_reusing(&self, earlier: &MetricsState, earlier_id: u64, cache: &mut Option<MergedSeries>) -> Self {
        let mut latest = earlier.latest;
        latest.overlay(&self.latest);
        let key = [earlier_id, self.loss.count, self.eval_loss.count, earlier.loss.count, earlier.eval_loss.count];
        let merged = match cache.take().filter(|c| c.key == key) {
            Some(c) => c,
            None => MergedSeries {
                key,
                loss: self.loss.after(&earlier.loss),
                eval_loss: self.eval_loss.after(&earlier.eval_loss),
            },
        };
        let out = MetricsState {
            latest,
            loss: merged.loss.clone(),
            eval_loss: merged.eval_loss.clone(),
            main_total: self.main_total.max(earlier.main_total),
            losses: self.losses + earlier.losses,
            epoch_bars: self.epoch_bars || earlier.epoch_bars,
        };
        *cache = Some(merged);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logtail::parse::MetricParser;

    fn feed(lines: &[&str]) -> MetricsState {
        let parser = MetricParser::default();
        let mut m = MetricsState::new(100);
        for l in lines {
            if let Some(u) = parser.parse(l.as_bytes()) {
                m.apply(&u);
            }
        }
        m
    }

    #[test]
    fn hf_loss_takes_step_from_training_bar_not_eval_bar() {
        let m = feed(&[
            " 10%|█         | 100/1000 [00:10<01:30,  10.00it/s]",
            "{'loss': 2.5, 'grad_norm': 1.0, 'learning_rate': 0.0001, 'epoch': 0.1}",
            "100%|██████████| 20/20 [00:02<00:00,  9.50it/s]",
            "{'eval_loss': 2.4, 'eval_runtime': 2.1, 'epoch': 0.1}",
            " 20%|██        | 200/1000 [00:20<01:20,  10.00it/s]",
            "{'loss': 2.2, 'grad_norm': 0.9, 'learning_rate': 0.0001, 'epoch': 0.2}",
        ]);
        assert_eq!(m.loss.points(), vec![(100.0, 2.5), (200.0, 2.2)]);
        assert_eq!(m.eval_loss.points(), vec![(100.0, 2.4)]);
        assert_eq!(m.latest.step, Some(200));
        assert_eq!(m.latest.eta_seconds, Some(80.0));
        assert_eq!(m.latest.total_steps, Some(1000));
    }

    #[test]
    fn eta_computed_from_rate_and_total() {
        let m = feed(&[" 10%|█         | 100/1000 [00:10<01:30,  10.00it/s]", "step 500 | loss 1.0"]);
        assert_eq!(m.latest.eta_seconds, Some(50.0));
    }

    #[test]
    fn series_is_bounded_and_keeps_ends() {
        let mut s = Series::new(64);
        for i in 0..100_000 {
            s.push(i as f64, (i % 7) as f64);
        }
        let pts = s.points();
        assert!(pts.len() <= 65, "{}", pts.len());
        assert_eq!(pts.first().map(|p| p.0), Some(0.0));
        assert_eq!(pts.last().map(|p| p.0), Some(99_999.0));
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(s.count(), 100_000);
    }

    #[test]
    fn nan_loss_is_latest_but_not_charted() {
        let m = feed(&["step 1 loss 2.0", "step 2 loss nan"]);
        assert!(m.latest.loss.is_some_and(f64::is_nan));
        assert_eq!(m.loss.points(), vec![(1.0, 2.0)]);
    }

    #[test]
    fn merge_history_then_live() {
        let before = feed(&["step 1 loss 3.0 lr 0.1", "step 2 loss 2.0"]);
        let live = feed(&["step 3 loss 1.0"]);
        let m = live.after(&before);
        assert_eq!(m.loss.points(), vec![(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)]);
        assert_eq!((m.latest.step, m.latest.loss, m.latest.learning_rate), (Some(3), Some(1.0), Some(0.1)));
    }

    /// Merging through the cache gives what merging afresh gives, at every sample: while
    /// only the latest values move, after a new point on either side, and when the
    /// earlier state is another one with the same counts.
    #[test]
    fn merges_reused_between_samples_equal_fresh_merges() {
        let parser = MetricParser::default();
        let preview = feed(&["step 1 loss 3.0", "step 2 loss 2.5"]);
        let history = feed(&["step 1 loss 3.5", "step 2 loss 2.0"]);
        let mut live = MetricsState::new(8);
        let mut cache = None;
        for i in 3..40u64 {
            let earlier = if i < 20 { &preview } else { &history };
            let id = u64::from(i >= 20);
            // A bar every sample, a loss every third.
            let line = if i % 3 == 0 {
                format!("step {i} loss {}", 2.0 - i as f64 / 100.0)
            } else {
                format!("{i}/100 [00:01<00:10]")
            };
            if let Some(u) = parser.parse(line.as_bytes()) {
                live.apply(&u);
            }
            let reused = live.after_reusing(earlier, id, &mut cache);
            assert_eq!(reused, live.after(earlier), "sample {i}");
        }
    }
}
