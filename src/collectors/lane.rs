//! The collectors' blocking work, on one thread. Tokio's blocking pool runs each
//! `spawn_blocking` on a thread of its own: the collectors whose turns fall on the same
//! tick (the grid of `crate::ticker`) woke three or four threads at once, which
//! then fought over the pool's lock, and each result woke the UI task separately. A
//! [`Lane`] runs the jobs in turn on one thread and hands their results over together
//! when it has none left, so a tick's sampling costs one thread's wake-up and one of the
//! UI task.
//!
//! One job that hangs (a `statvfs` of a dead NFS mount, a stuck GPU driver) must not stop
//! the others: a job queued while every thread of the lane has been busy for
//! [`HUNG_AFTER`] starts another thread, and the results already done are handed over by
//! whichever thread finds the queue empty. A thread beyond the first leaves after
//! [`SPARE_IDLE`] with nothing to do.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long every thread of the lane must have been on one job before a job queued behind
/// them gets a thread of its own.
pub const HUNG_AFTER: Duration = Duration::from_secs(2);

/// How long a thread beyond the first waits for work before it leaves.
pub const SPARE_IDLE: Duration = Duration::from_secs(30);

type Deliver = Box<dyn FnOnce() + Send>;
type Job = Box<dyn FnOnce() -> Deliver + Send>;

/// The lane's work ended before it was done (it panicked, or the lane closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the collector's work ended without a result (it panicked, or the console is stopping)")]
pub struct LaneGone;

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Results of jobs done, handed over when the queue is empty.
    done: Vec<Deliver>,
    /// When each busy thread started its job.
    busy: Vec<(u64, Instant)>,
    idle: usize,
    threads: usize,
    next_id: u64,
    closed: bool,
    /// Threads started, ever (for tests).
    started: u64,
}

struct Inner {
    state: Mutex<State>,
    ready: Condvar,
}

/// Closes the lane when the last [`Lane`] handle goes.
struct Closer(Arc<Inner>);

impl Drop for Closer {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.closed = true;
        }
        self.0.ready.notify_all();
    }
}

/// Runs blocking closures in turn on one thread (more only when one hangs); see the
/// module's documentation. Clones share the lane.
#[derive(Clone)]
pub struct Lane {
    inner: Arc<Inner>,
    _closer: Arc<Closer>,
}

impl Default for Lane {
    fn default() -> Self {
        Self::new()
    }
}

impl Lane {
    pub fn new() -> Self {
        let inner = Arc::new(Inner { state: Mutex::new(State::default()), ready: Condvar::new() });
        Self { _closer: Arc::new(Closer(inner.clone())), inner }
    }

    /// Runs `f` on the lane; its result comes when the lane has nothing left to run (in
    /// the same wake-up of the UI task as the results of the jobs queued with it).
    pub fn run<T, F>(&self, f: F) -> impl std::future::Future<Output = Result<T, LaneGone>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let value = f();
            Box::new(move || {
                let _ = tx.send(value);
            })
        });
        self.push(job);
        let lane = self.clone();
        async move {
            let mut rx = rx;
            // Every `HUNG_AFTER` the result has not come, the lane is asked whether every
            // thread is stuck with something waiting behind (a job, or results done): then
            // another thread takes it. A quick job's timer goes before it ever fires.
            loop {
                tokio::select! {
                    r = &mut rx => return r.map_err(|_| LaneGone),
                    _ = tokio::time::sleep(HUNG_AFTER) => lane.rescue(),
                }
            }
        }
    }

    /// Starts another thread when every thread has been on one job for `HUNG_AFTER` while
    /// something waits behind them: a queued job, or results done and not handed over.
    fn rescue(&self) {
        let Ok(mut s) = self.inner.state.lock() else { return };
        if s.idle == 0 && (!s.queue.is_empty() || !s.done.is_empty()) && all_stuck(&s) {
            self.start_thread(&mut s);
        }
    }

    fn start_thread(&self, s: &mut State) {
        if s.threads > 0 {
            tracing::warn!(
                threads = s.threads,
                "collector lane: every thread is on one job for {HUNG_AFTER:?}; another starts"
            );
        }
        s.threads += 1;
        s.started += 1;
        let inner = self.inner.clone();
        if let Err(e) = std::thread::Builder::new().name("collect".into()).spawn(move || work(&inner)) {
            s.threads -= 1;
            tracing::error!("collector lane: no thread: {e}");
        }
    }

    /// How many threads the lane has started so far.
    pub fn threads_started(&self) -> u64 {
        self.inner.state.lock().map(|s| s.started).unwrap_or(0)
    }

    fn push(&self, job: Job) {
        let Ok(mut s) = self.inner.state.lock() else { return };
        s.queue.push_back(job);
        if s.idle > 0 {
            // Woken after the lock is let go: woken under it, the thread would wake only
            // to wait for the lock (a second switch).
            drop(s);
            self.inner.ready.notify_one();
            return;
        }
        if s.threads == 0 || all_stuck(&s) {
            self.start_thread(&mut s);
            if s.threads == 0 {
                // Nothing will run the job: dropping it ends its result with `LaneGone`.
                s.queue.pop_back();
            }
        }
    }
}

/// Whether every thread of the lane has been on its job for `HUNG_AFTER` (none idle, none
/// handing results over).
fn all_stuck(s: &State) -> bool {
    let now = Instant::now();
    s.threads > 0 && s.busy.len() == s.threads && s.busy.iter().all(|(_, t)| now.duration_since(*t) >= HUNG_AFTER)
}

fn work(inner: &Inner) {
    let Ok(mut s) = inner.state.lock() else { return };
    let id = s.next_id;
    s.next_id += 1;
    loop {
        if let Some(job) = s.queue.pop_front() {
            s.busy.push((id, Instant::now()));
            drop(s);
            // A job that panics ends its result (`LaneGone`), not the lane.
            let deliver = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).ok();
            s = match inner.state.lock() {
                Ok(g) => g,
                Err(_) => return,
            };
            s.busy.retain(|(b, _)| *b != id);
            s.done.extend(deliver);
            continue;
        }
        if !s.done.is_empty() {
            // Nothing left to run: every result done goes to its task now, together.
            let done = std::mem::take(&mut s.done);
            drop(s);
            for d in done {
                d();
            }
            s = match inner.state.lock() {
                Ok(g) => g,
                Err(_) => return,
            };
            continue;
        }
        if s.closed {
            s.threads -= 1;
            return;
        }
        s.idle += 1;
        let (mut after, timed_out) = match inner.ready.wait_timeout(s, SPARE_IDLE) {
            Ok((g, t)) => (g, t.timed_out()),
            Err(_) => return,
        };
        after.idle -= 1;
        if timed_out && after.queue.is_empty() && after.threads > 1 {
            after.threads -= 1;
            return;
        }
        s = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    #[test]
    fn jobs_run_in_turn_on_one_thread_and_their_results_come_together() {
        rt().block_on(async {
            let lane = Lane::new();
            let order = Arc::new(Mutex::new(Vec::new()));
            let runs: Vec<_> = (0..4)
                .map(|i| {
                    let order = order.clone();
                    lane.run(move || {
                        order.lock().unwrap().push((i, std::thread::current().id()));
                        std::thread::sleep(Duration::from_millis(5));
                        i * 10
                    })
                })
                .collect();
            let mut got = Vec::new();
            for r in runs {
                got.push(r.await.unwrap());
            }
            assert_eq!(got, vec![0, 10, 20, 30]);
            let order = order.lock().unwrap();
            assert_eq!(order.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
            assert!(order.iter().all(|(_, t)| *t == order[0].1), "one thread: {order:?}");
            assert_eq!(lane.threads_started(), 1);
        });
    }

    #[test]
    fn a_hung_job_does_not_stop_the_others() {
        rt().block_on(async {
            let lane = Lane::new();
            let (release, hold) = std::sync::mpsc::channel::<()>();
            let hung = lane.run(move || hold.recv().is_ok());
            // Queued behind it within HUNG_AFTER: waits for it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(lane.threads_started(), 1);
            // Queued after HUNG_AFTER: another thread takes it.
            tokio::time::sleep(HUNG_AFTER).await;
            let other = lane.run(|| 7);
            let got = tokio::time::timeout(Duration::from_secs(5), other).await;
            assert_eq!(got.expect("not stuck behind the hung job"), Ok(7));
            assert_eq!(lane.threads_started(), 2);
            release.send(()).unwrap();
            assert_eq!(hung.await, Ok(true));
        });
    }

    #[test]
    fn a_job_that_panics_ends_its_result_and_the_lane_goes_on() {
        rt().block_on(async {
            let lane = Lane::new();
            let bad = lane.run(|| -> u8 { panic!("a collector bug") });
            let good = lane.run(|| 1u8);
            assert_eq!(bad.await, Err(LaneGone));
            assert_eq!(good.await, Ok(1));
            assert_eq!(lane.threads_started(), 1);
        });
    }

    /// Found by an attacker review: the collectors take their turns on the same grid, so a job
    /// is queued a moment after the one that hangs (a statvfs of a dead mount), and its
    /// collector then waits for its result before queueing anything again. With no job
    /// queued after `HUNG_AFTER`, no thread is ever started for it.
    #[test]
    fn a_job_queued_just_behind_a_hung_one_is_not_stuck_there_forever() {
        rt().block_on(async {
            let lane = Lane::new();
            let (release, hold) = std::sync::mpsc::channel::<()>();
            let hung = lane.run(move || hold.recv().is_ok());
            tokio::time::sleep(Duration::from_millis(50)).await;
            let other = lane.run(|| 7);
            let got = tokio::time::timeout(HUNG_AFTER * 4, other).await;
            let threads = lane.threads_started();
            release.send(()).unwrap();
            assert_eq!(hung.await, Ok(true));
            assert_eq!(
                got.expect("stuck behind the hung job for 8 s: no thread started for it"),
                Ok(7),
                "threads started: {threads}"
            );
        });
    }

    /// Found by an attacker review: a result done on the second thread is held while that thread runs the next
    /// job, and that one hangs too: the first result is never handed over though its job
    /// is long done.
    #[test]
    fn a_result_done_before_a_second_hang_is_handed_over() {
        rt().block_on(async {
            let lane = Lane::new();
            let (release1, hold1) = std::sync::mpsc::channel::<()>();
            let (release2, hold2) = std::sync::mpsc::channel::<()>();
            let hung1 = lane.run(move || hold1.recv().is_ok());
            tokio::time::sleep(HUNG_AFTER + Duration::from_millis(100)).await;
            // A second thread starts for this one; the hung job queued right behind it.
            let quick = lane.run(|| {
                std::thread::sleep(Duration::from_millis(100));
                5
            });
            let hung2 = lane.run(move || hold2.recv().is_ok());
            let got = tokio::time::timeout(HUNG_AFTER * 4, quick).await;
            release1.send(()).unwrap();
            release2.send(()).unwrap();
            let _ = (hung1.await, hung2.await);
            assert_eq!(got.expect("the quick job's result was held back for 8 s"), Ok(5));
        });
    }
}
