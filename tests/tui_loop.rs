//! The whole event loop (`tui::run_loop`) without a terminal: a `TestBackend` that counts
//! frames, scripted terminal events and signals, tokio's paused clock with a wall clock
//! that follows it, and a recorder in place of the executor. What the loop promises:
//! pending messages are drained and drawn once; a collector sample waits for the tick
//! except during the first 2 s and for 2 s after a key; only what changes the screen is
//! drawn (a sample equal to the one shown, or a tick that changes no text, draws nothing);
//! effects reach the executor; `q` asks while a job runs; a signal ends the loop cleanly.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use opsconsole::app::{AppState, Effect, JobEvent, Msg};
use opsconsole::exec::Effects;
use opsconsole::tui::{Clock, Inputs, RunOptions, run_loop};
use ratatui::backend::{Backend, ClearType, TestBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Position, Size};
use support::fixtures as fx;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

/// A `TestBackend` shared with the test, counting the frames flushed to it.
#[derive(Clone)]
struct Screen {
    backend: Arc<Mutex<TestBackend>>,
    frames: Arc<AtomicUsize>,
    bells: Arc<AtomicUsize>,
}

impl opsconsole::tui::Bell for Screen {
    fn bell(&mut self) -> std::io::Result<()> {
        self.bells.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl Screen {
    fn new(w: u16, h: u16) -> Self {
        Self {
            backend: Arc::new(Mutex::new(TestBackend::new(w, h))),
            frames: Arc::new(AtomicUsize::new(0)),
            bells: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn frames(&self) -> usize {
        self.frames.load(Ordering::SeqCst)
    }

    fn text(&self) -> String {
        let b = self.backend.lock().expect("backend");
        let buf = b.buffer();
        let mut out = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }
}

impl Backend for Screen {
    type Error = Infallible;

    fn draw<'a, I: Iterator<Item = (u16, u16, &'a Cell)>>(&mut self, content: I) -> Result<(), Infallible> {
        self.backend.lock().expect("backend").draw(content)
    }
    fn hide_cursor(&mut self) -> Result<(), Infallible> {
        self.backend.lock().expect("backend").hide_cursor()
    }
    fn show_cursor(&mut self) -> Result<(), Infallible> {
        self.backend.lock().expect("backend").show_cursor()
    }
    fn get_cursor_position(&mut self) -> Result<Position, Infallible> {
        self.backend.lock().expect("backend").get_cursor_position()
    }
    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Infallible> {
        self.backend.lock().expect("backend").set_cursor_position(position)
    }
    fn clear(&mut self) -> Result<(), Infallible> {
        self.backend.lock().expect("backend").clear()
    }
    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Infallible> {
        self.backend.lock().expect("backend").clear_region(clear_type)
    }
    fn size(&self) -> Result<Size, Infallible> {
        self.backend.lock().expect("backend").size()
    }
    fn window_size(&mut self) -> Result<WindowSize, Infallible> {
        self.backend.lock().expect("backend").window_size()
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        self.frames.fetch_add(1, Ordering::SeqCst);
        self.backend.lock().expect("backend").flush()
    }
}

/// Wall time that moves with tokio's (paused) clock, from the fixtures' `NOW`. The loop
/// reads it once per tick, so it also counts the ticks.
struct FakeClock {
    base: SystemTime,
    start: Instant,
    ticks: Arc<AtomicUsize>,
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        self.ticks.fetch_add(1, Ordering::SeqCst);
        self.base + self.start.elapsed()
    }
}

/// Records every effect instead of carrying it out.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Effect>>>);

impl Recorder {
    fn effects(&self) -> Vec<Effect> {
        self.0.lock().expect("recorder").clone()
    }
}

impl Effects for Recorder {
    fn run(&mut self, effect: Effect, _state: &AppState) {
        self.0.lock().expect("recorder").push(effect);
    }
}

/// A running loop and the test's ends of its inputs.
struct Harness {
    screen: Screen,
    app: mpsc::UnboundedSender<Msg>,
    keys: mpsc::UnboundedSender<std::io::Result<Event>>,
    signals: mpsc::UnboundedSender<String>,
    effects: Recorder,
    task: JoinHandle<(color_eyre::Result<()>, AppState)>,
    started: Instant,
    ticks: Arc<AtomicUsize>,
    /// Frames the loop drew in parts (`Screen::frames_in_parts`) and the cells they kept
    /// as shown (`Screen::cells_kept`), once it has ended.
    in_parts: Arc<AtomicUsize>,
    kept: Arc<AtomicUsize>,
}

impl Harness {
    fn start(mut state: AppState) -> Self {
        let screen = Screen::new(80, 24);
        let (app, rx) = mpsc::unbounded_channel();
        let (keys, terminal) = mpsc::unbounded_channel();
        let (signals, sig_rx) = mpsc::unbounded_channel();
        let effects = Recorder::default();
        let mut fx_runner = effects.clone();
        let backend = screen.clone();
        let started = Instant::now();
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = ticks.clone();
        let in_parts = Arc::new(AtomicUsize::new(0));
        let parts_seen = in_parts.clone();
        let kept = Arc::new(AtomicUsize::new(0));
        let kept_seen = kept.clone();
        let task = tokio::spawn(async move {
            let mut term = opsconsole::ui::screen::Screen::new(backend).expect("terminal");
            let clock = FakeClock { base: fx::at(fx::NOW), start: Instant::now(), ticks: counted };
            let inputs = Inputs { terminal, signals: sig_rx };
            let r = run_loop(&mut term, &mut state, rx, inputs, &clock, &mut fx_runner, &RunOptions::default()).await;
            parts_seen.store(term.frames_in_parts(), Ordering::SeqCst);
            kept_seen.store(term.cells_kept(), Ordering::SeqCst);
            (r, state)
        });
        Self { screen, app, keys, signals, effects, task, started, ticks, in_parts, kept }
    }

    fn resize(&self, w: u16, h: u16) {
        self.screen.backend.lock().expect("backend").resize(w, h);
        self.keys.send(Ok(Event::Resize(w, h))).expect("loop listens");
    }

    fn key(&self, code: KeyCode) {
        self.keys.send(Ok(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))).expect("loop listens");
    }

    fn send(&self, msg: Msg) {
        self.app.send(msg).expect("loop listens");
    }

    /// Lets the loop take everything pending (paused time only moves when every task waits).
    async fn settle(&self) {
        sleep(Duration::from_millis(1)).await;
    }

    /// Waits until the loop has handled the next tick (and drawn, if it draws).
    async fn next_tick(&self) {
        let before = self.ticks.load(Ordering::SeqCst);
        for _ in 0..400 {
            sleep(Duration::from_millis(5)).await;
            if self.ticks.load(Ordering::SeqCst) > before {
                self.settle().await;
                return;
            }
        }
        panic!("no tick within 2 s");
    }

    /// Waits until `n` more ticks have been handled.
    async fn ticks(&self, n: usize) {
        for _ in 0..n {
            self.next_tick().await;
        }
    }

    async fn finish(self) -> AppState {
        let _ = self.signals.send("SIGTERM".into());
        let (r, state) = self.task.await.expect("the loop task");
        r.expect("the loop ends cleanly");
        state
    }
}

fn disks(pct: f64) -> Msg {
    fx::disks(vec![fx::disk("/", pct, &["workspace", "checkpoints", "root"])])
}

#[tokio::test(start_paused = true)]
async fn everything_pending_is_folded_then_drawn_once() {
    let h = Harness::start(fx::state());
    h.settle().await;
    assert_eq!(h.screen.frames(), 1, "the first frame");
    // Twenty samples and a key arrive together: one frame shows the last of them.
    for i in 0..20 {
        h.send(disks(50.0 + i as f64));
    }
    h.key(KeyCode::Tab);
    h.settle().await;
    assert_eq!(h.screen.frames(), 2, "one frame for the whole batch");
    assert!(h.screen.text().contains("69%"), "the newest sample is on screen:\n{}", h.screen.text());
    let s = h.finish().await;
    assert_eq!(s.disk.sample.as_ref().map(|d| d.disks[0].fill_pct), Some(69.0));
}

#[tokio::test(start_paused = true)]
async fn a_sample_waits_for_the_tick_once_the_screen_has_filled() {
    let h = Harness::start(fx::state());
    h.settle().await;
    // During the first 2 s a sample is drawn at once.
    h.send(disks(50.0));
    h.settle().await;
    assert_eq!(h.screen.frames(), 2);
    assert!(h.screen.text().contains("50%"));
    sleep(Duration::from_millis(2500) - h.started.elapsed()).await;
    h.next_tick().await;
    let frames = h.screen.frames();
    h.send(disks(77.0));
    sleep(Duration::from_millis(500)).await;
    assert_eq!(h.screen.frames(), frames, "a collector sample does not draw a frame of its own");
    assert!(h.screen.text().contains("50%"), "the screen still shows the old sample");
    h.next_tick().await;
    assert!(h.screen.text().contains("77%"), "the tick draws it:\n{}", h.screen.text());
    let ran = h.started.elapsed();
    let s = h.finish().await;
    // The ticks moved the state's clock with the injected one: to the last tick, within a
    // period of the time the loop ran.
    let moved = s.now.duration_since(fx::at(fx::NOW)).expect("the clock moved forward");
    assert!(moved <= ran && ran - moved <= Duration::from_secs(1), "moved {moved:?} in {ran:?}");
}

#[tokio::test(start_paused = true)]
async fn a_key_draws_at_once_and_samples_follow_at_once_for_two_seconds() {
    let h = Harness::start(fx::state());
    sleep(Duration::from_secs(3)).await;
    h.next_tick().await;
    let frames = h.screen.frames();
    h.key(KeyCode::Char('?'));
    h.settle().await;
    assert_eq!(h.screen.frames(), frames + 1, "a key is answered at once");
    assert!(h.screen.text().contains("Keys · config [keys]"), "the help overlay:\n{}", h.screen.text());
    h.key(KeyCode::Esc);
    h.settle().await;
    // Within 2 s of the key a sample is drawn at once...
    sleep(Duration::from_millis(300)).await;
    let frames = h.screen.frames();
    h.send(disks(61.0));
    h.settle().await;
    assert_eq!(h.screen.frames(), frames + 1);
    assert!(h.screen.text().contains("61%"));
    // ...and after that it waits for the tick again.
    sleep(Duration::from_secs(2)).await;
    h.next_tick().await;
    let frames = h.screen.frames();
    h.send(disks(62.0));
    sleep(Duration::from_millis(300)).await;
    assert_eq!(h.screen.frames(), frames);
    assert!(h.screen.text().contains("61%"));
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn effects_reach_the_executor_in_order() {
    let h = Harness::start(fx::state());
    h.settle().await;
    h.keys.send(Ok(Event::Key(KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL)))).expect("send");
    h.key(KeyCode::Char('s'));
    h.key(KeyCode::Char('p'));
    h.settle().await;
    assert_eq!(
        h.effects.effects(),
        vec![
            Effect::RefreshNow,
            Effect::Sync(opsconsole::sync::Command::SyncNow(None)),
            Effect::PlanPrune { allow_unconfirmed: false }
        ]
    );
    assert!(h.screen.text().contains("Prune plan"), "{}", h.screen.text());
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn q_asks_while_a_job_runs_and_y_leaves_the_loop() {
    let mut state = fx::state();
    state.jobs.apply(JobEvent::Started { id: 1, name: "prune 4 checkpoints".into() }, state.now);
    let h = Harness::start(state);
    h.settle().await;
    h.key(KeyCode::Char('q'));
    h.settle().await;
    assert!(!h.task.is_finished(), "the loop still runs while the question is open");
    let text = h.screen.text();
    assert!(text.contains("y quit anyway · n keep running"), "the question:\n{text}");
    assert!(text.contains("· prune 4 checkpoints"), "it names the job:\n{text}");
    h.key(KeyCode::Char('y'));
    h.settle().await;
    assert!(h.task.is_finished(), "y leaves the loop");
    assert_eq!(h.effects.effects(), vec![Effect::Quit], "the executor hears about it (it cancels the job)");
    let (r, state) = h.task.await.expect("the loop task");
    r.expect("a clean end");
    assert!(state.should_quit);
}

#[tokio::test(start_paused = true)]
async fn a_signal_ends_the_loop_cleanly_with_a_notice() {
    let h = Harness::start(fx::state());
    h.settle().await;
    h.signals.send("SIGTERM".into()).expect("send");
    h.settle().await;
    assert!(h.task.is_finished());
    let (r, state) = h.task.await.expect("the loop task");
    r.expect("a clean end");
    assert_eq!(state.notice.as_deref(), Some("stopping: SIGTERM"));
    assert_eq!(h.effects.effects(), vec![Effect::Quit]);
}

#[tokio::test(start_paused = true)]
async fn a_closed_terminal_ends_the_loop() {
    let h = Harness::start(fx::state());
    h.settle().await;
    let Harness { keys, task, .. } = h;
    drop(keys);
    let (r, state) = task.await.expect("the loop task");
    r.expect("a clean end");
    assert_eq!(state.notice.as_deref(), Some("stopping: terminal input closed"));
}

#[tokio::test(start_paused = true)]
async fn a_resize_is_drawn_at_the_new_size() {
    let h = Harness::start(fx::state());
    h.settle().await;
    h.keys.send(Ok(Event::Resize(120, 40))).expect("send");
    h.settle().await;
    let s = h.finish().await;
    assert_eq!(s.size, (120, 40));
}

fn host(cpu: f32, used_gib: f64) -> Msg {
    let gib = 1u64 << 30;
    Msg::Host(opsconsole::host::HostSample {
        taken_at_unix_ms: fx::NOW * 1000,
        cpu_pct: Some(cpu),
        cpus: 8,
        memory_total_bytes: 64 * gib,
        memory_available_bytes: 64 * gib - (used_gib * gib as f64) as u64,
        swap_total_bytes: 0,
        swap_used_bytes: 0,
    })
}

fn no_gpu(at_ms: u64) -> Msg {
    Msg::Gpu(opsconsole::gpu::GpuSample::unavailable(
        at_ms,
        opsconsole::gpu::NvmlStatus::LibraryMissing {
            library: "libnvidia-ml.so.1".into(),
            detail: "cannot open shared object file".into(),
        },
    ))
}

/// Past the first 2 s, on a tick, with a disk, host and GPU sample on screen.
async fn idle_harness() -> Harness {
    let h = Harness::start(fx::state());
    h.settle().await;
    h.send(disks(50.0));
    h.send(host(3.2, 20.0));
    h.send(no_gpu(fx::NOW * 1000));
    sleep(Duration::from_millis(2500)).await;
    h.next_tick().await;
    h
}

#[tokio::test(start_paused = true)]
async fn an_idle_console_does_not_redraw_on_ticks_for_samples_that_change_nothing() {
    let h = idle_harness().await;
    let frames = h.screen.frames();
    let text = h.screen.text();
    assert!(text.contains("up 3h12m") && text.contains("cpu 3% ram 20/64G"), "{text}");
    // Twenty ticks, each with samples equal as drawn to those shown: a CPU reading that
    // rounds to the same percent, a GPU sample that only has a newer timestamp.
    for i in 0..20u64 {
        h.send(disks(50.0));
        h.send(host(if i % 2 == 0 { 2.8 } else { 3.4 }, 20.01));
        h.send(no_gpu((fx::NOW + 3 + i) * 1000));
        h.next_tick().await;
    }
    assert_eq!(h.screen.frames(), frames, "no tick drew a frame: nothing on screen changed");
    assert_eq!(h.screen.text(), text);
    // A reading that changes what the panel shows is drawn at the next tick, once.
    h.send(host(7.0, 20.0));
    sleep(Duration::from_millis(10)).await;
    assert_eq!(h.screen.frames(), frames, "a sample waits for the tick");
    h.next_tick().await;
    assert_eq!(h.screen.frames(), frames + 1, "the tick draws the changed sample");
    assert!(h.screen.text().contains("cpu 7% ram 20/64G"), "{}", h.screen.text());
    h.ticks(3).await;
    assert_eq!(h.screen.frames(), frames + 1, "and then nothing again");
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_tick_redraws_when_the_uptime_text_changes_and_not_before() {
    let h = idle_harness().await;
    let frames = h.screen.frames();
    assert!(h.screen.text().contains("up 3h12m"));
    // The uptime reads 3h12m until a minute has passed since the start (NOW is on a
    // minute): one frame then, none for the other ticks.
    // The ticks lie on the process-wide grid of `crate::ticker`, whose phase
    // depends on the tests that ran before in this process: the minute turns at the first
    // tick at or after 60 s, whichever second that is.
    let mut seen = Vec::new();
    while h.started.elapsed() < Duration::from_secs(63) {
        h.next_tick().await;
        seen.push((h.started.elapsed(), h.screen.frames() - frames));
    }
    let drawn: Vec<Duration> = seen.windows(2).filter(|w| w[1].1 > w[0].1).map(|w| w[1].0).collect();
    let turned = seen.iter().map(|(t, _)| *t).find(|t| *t >= Duration::from_secs(60));
    assert_eq!(drawn, turned.into_iter().collect::<Vec<_>>(), "one frame, at the tick the minute turned: {seen:?}");
    assert_eq!(h.screen.frames(), frames + 1);
    assert!(h.screen.text().contains("up 3h13m"), "{}", h.screen.text());
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_key_and_a_resize_redraw_at_once() {
    let h = idle_harness().await;
    let frames = h.screen.frames();
    h.key(KeyCode::Tab);
    h.settle().await;
    assert_eq!(h.screen.frames(), frames + 1, "a key draws at once");
    h.resize(100, 30);
    h.settle().await;
    assert_eq!(h.screen.frames(), frames + 2, "a resize draws at once");
    assert_eq!(h.screen.text().lines().next().map(|l| l.chars().count()), Some(100), "at the new width");
    // Samples equal to those shown, during the 2 s after input: still nothing to draw.
    h.send(disks(50.0));
    h.settle().await;
    assert_eq!(h.screen.frames(), frames + 2);
    let s = h.finish().await;
    assert_eq!(s.size, (100, 30));
}

#[tokio::test(start_paused = true)]
async fn an_expiring_status_line_disappears_at_the_tick_it_expires() {
    let h = idle_harness().await;
    h.key(KeyCode::Char('s'));
    h.settle().await;
    assert!(h.screen.text().contains("sync requested on every level"), "{}", h.screen.text());
    let frames = h.screen.frames();
    // The answer is stamped with the state's clock, the last tick's time (just before the
    // key), and shown for STATUS_TTL (6 s): the five ticks after the key draw nothing, the
    // sixth draws the footer without it.
    for tick in 1..=5 {
        h.next_tick().await;
        assert_eq!(h.screen.frames(), frames, "no frame at tick {tick} after the answer");
        assert!(h.screen.text().contains("sync requested on every level"));
    }
    h.next_tick().await;
    let text = h.screen.text();
    assert_eq!(h.screen.frames(), frames + 1, "one frame at the tick it expired");
    assert!(!text.contains("sync requested"), "gone at that tick:\n{text}");
    assert!(text.contains("?  help"), "the key hints are back:\n{text}");
    h.ticks(2).await;
    assert_eq!(h.screen.frames(), frames + 1);
    h.finish().await;
}

/// The loop rings the terminal's bell once when `update` asks (a disk crossed critical
/// after the first sample), not once per frame or per sample.
#[tokio::test(start_paused = true)]
async fn the_bell_rings_once_per_new_condition() {
    let h = Harness::start(fx::state());
    h.send(disks(50.0));
    h.settle().await;
    assert_eq!(h.screen.bells.load(Ordering::SeqCst), 0);
    for _ in 0..3 {
        h.send(disks(95.0));
        h.settle().await;
        h.next_tick().await;
    }
    assert_eq!(h.screen.bells.load(Ordering::SeqCst), 1, "once, not per sample or frame");
    h.send(disks(50.0));
    h.send(disks(96.0));
    h.settle().await;
    assert_eq!(h.screen.bells.load(Ordering::SeqCst), 2, "again after it cleared and came back");
    h.finish().await;
}

/// Past the first 2 s, samples of every kind arrive between ticks (a growing log with a
/// progress bar, the host, the disks, the ledger unreadable then read, the GPU), and each
/// tick draws only the parts they changed, with the header and footer. Every frame drawn in
/// parts is checked against the whole frame by the screen itself in this (debug) build, so
/// a part a message changes but `ui::parts_of` leaves out fails here; and at the end the
/// terminal shows exactly the whole frame of the final state.
#[tokio::test(start_paused = true)]
async fn samples_of_every_kind_are_drawn_in_parts_that_match_the_whole_frame() {
    use support::log_fixtures::{hf_lines, log_sample};
    let h = idle_harness().await;
    let frames = h.screen.frames();
    for i in 0..12u64 {
        let now = fx::at(fx::NOW + 3 + i);
        let step = 500 + 50 * i;
        let bar = format!("  3%|▍         | {}/24000 [00:30<1:58:00, 19.90it/s]", step + 10);
        h.send(log_sample(&hf_lines(step), now, true, Some(&bar)));
        if i % 2 == 0 {
            h.send(host(3.0 + i as f32, 20.0 + i as f64));
        }
        if i % 3 == 0 {
            h.send(disks(50.0 + i as f64));
        }
        match i {
            4 => h.send(Msg::SyncUnreadable("the sync ledger cannot be read: disk I/O error".into())),
            7 => h.send(Msg::Sync(Box::new(opsconsole::sync::SyncSample {
                source: opsconsole::sync::EngineSource::Daemon { pid: 4242 },
                status: opsconsole::sync::status::SyncStatus::default(),
                queue: vec![],
            }))),
            9 => h.send(no_gpu((fx::NOW + 20) * 1000)),
            _ => {}
        }
        h.next_tick().await;
    }
    assert!(h.screen.frames() >= frames + 12, "every tick drew: each brought a new log line");
    let drawn = h.screen.frames() - frames;
    let text = h.screen.text();
    assert!(text.contains("step 1060/24000"), "the last progress bar is shown:\n{text}");
    assert!(text.contains("cpu 13% ram 30/64G"), "the last host reading is shown:\n{text}");
    let in_parts = h.in_parts.clone();
    let state = h.finish().await;
    assert!(in_parts.load(Ordering::SeqCst) >= drawn, "every frame after the first 2 s was drawn in parts");
    // The footer now says the loop was stopped (SIGTERM): the rest is compared.
    let above_footer = |t: &str| t.lines().take(23).collect::<Vec<_>>().join("\n");
    assert_eq!(
        above_footer(&text),
        above_footer(&fx::screen_text(&state, 80, 24)),
        "the terminal shows the whole frame of the final state"
    );
}

/// Beside a run most ticks move only the progress bar (and the ages): the log's other rows
/// and the loss chart are on screen already and are kept, not drawn and compared again. A
/// new line then moves every row, and the rows and chart drawn anew are what the whole
/// frame shows (the screen checks each frame drawn in parts in this debug build).
#[tokio::test(start_paused = true)]
async fn a_moving_progress_bar_keeps_the_logs_other_rows_and_chart_as_shown() {
    use support::log_fixtures::{hf_lines, log_sample};
    let h = idle_harness().await;
    h.resize(160, 48);
    sleep(Duration::from_millis(2500)).await;
    h.next_tick().await;
    let lines = hf_lines(2000);
    for i in 0..6u64 {
        let bar = format!("  8%|▊         | {}/24000 [01:40<1:58:00, 19.90it/s]", 2001 + 5 * i);
        h.send(log_sample(&lines, fx::at(fx::NOW + 5 + i), true, Some(&bar)));
        h.next_tick().await;
    }
    assert!(h.screen.text().contains("2026/24000"), "the last progress bar is shown:\n{}", h.screen.text());
    // A new line: every row moves, and the chart gains a point.
    let more = hf_lines(2050);
    h.send(log_sample(&more, fx::at(fx::NOW + 12), true, Some("  8%|▊         | 2051/24000")));
    h.next_tick().await;
    let text = h.screen.text();
    let (in_parts, kept) = (h.in_parts.clone(), h.kept.clone());
    let state = h.finish().await;
    // The footer now says the loop was stopped (SIGTERM): the rest is compared.
    let above_footer = |t: &str| t.lines().take(47).collect::<Vec<_>>().join("\n");
    assert_eq!(
        above_footer(&text),
        above_footer(&fx::screen_text(&state, 160, 48)),
        "the terminal shows the whole frame of the final state"
    );
    assert!(in_parts.load(Ordering::SeqCst) >= 6, "the progress bar's frames were drawn in parts");
    // Five frames that only moved the bar each kept the chart (about 1,300 cells) and the
    // rows above the bar (about 1,750): both, not one of them.
    assert!(kept.load(Ordering::SeqCst) > 5 * 2500, "cells kept: {}", kept.load(Ordering::SeqCst));
}

/// A sample in the middle of a period waits for the tick; one ~30 ms before the tick (the
/// collectors' turn) is drawn at once, as the tick's frame, and that tick does not come
/// (one wake-up a second, not two); the tick after comes as usual.
async fn drawn_as_the_ticks_frame_just_before_it(mid: Msg, mid_shown: &str, early: Msg, early_shown: &str) {
    let h = idle_harness().await;
    sleep(Duration::from_millis(2500)).await;
    h.next_tick().await;
    sleep(Duration::from_millis(400)).await;
    let frames = h.screen.frames();
    h.send(mid);
    h.settle().await;
    assert_eq!(h.screen.frames(), frames, "a sample in the middle of a period waits");
    h.next_tick().await;
    assert!(h.screen.text().contains(mid_shown), "drawn at the tick:\n{}", h.screen.text());
    sleep(Duration::from_millis(964)).await;
    let (frames, ticks) = (h.screen.frames(), h.ticks.load(Ordering::SeqCst));
    h.send(early);
    h.settle().await;
    assert_eq!(h.screen.frames(), frames + 1, "drawn at once");
    assert!(h.screen.text().contains(early_shown), "the new sample:\n{}", h.screen.text());
    let ticks = ticks + 1;
    assert_eq!(h.ticks.load(Ordering::SeqCst), ticks, "drawn as a tick (the clock read once)");
    sleep(Duration::from_millis(200)).await;
    assert_eq!(h.ticks.load(Ordering::SeqCst), ticks, "the tick it stood for did not come");
    assert_eq!(h.screen.frames(), frames + 1);
    sleep(Duration::from_millis(1000)).await;
    assert!(h.ticks.load(Ordering::SeqCst) > ticks, "the following tick came");
    h.finish().await;
}

/// While the log grows its follower reads it 25 ms before each tick: that sample is drawn
/// at once, as the tick's frame.
#[tokio::test(start_paused = true)]
async fn a_log_sample_read_just_before_the_tick_is_drawn_at_once_and_the_tick_skipped() {
    use support::log_fixtures::{hf_lines, log_sample};
    let lines = hf_lines(2000);
    drawn_as_the_ticks_frame_just_before_it(
        log_sample(&lines, fx::at(fx::NOW + 3), true, Some("  8%|▊         | 2001/24000")),
        "2001/24000",
        log_sample(&lines, fx::at(fx::NOW + 4), true, Some("  8%|▊         | 2021/24000")),
        "2021/24000",
    )
    .await;
}

/// The same for any collector's sample of the turn while no log grows (the disks, the
/// host, the uploads).
#[tokio::test(start_paused = true)]
async fn a_collector_sample_just_before_the_tick_is_drawn_as_its_frame_and_the_tick_skipped() {
    drawn_as_the_ticks_frame_just_before_it(disks(57.0), "57%", disks(63.0), "63%").await;
}

/// A resize the loop has not heard of yet: the terminal is already 100x30 while the event
/// read says 90x28 (the next one is on its way). A frame drawn in parts then is laid out
/// on the screen as it is, not on the size the state knows, and once the last event
/// arrives the terminal shows the whole frame of the state. (Before, the parts were worked
/// out for the stale size while the panels were drawn at the real one: broken borders, and
/// in this debug build the frame check panicked.)
#[tokio::test(start_paused = true)]
async fn a_frame_in_parts_during_a_resize_not_yet_read_is_laid_out_on_the_screen_as_it_is() {
    let h = idle_harness().await;
    h.screen.backend.lock().expect("backend").resize(100, 30);
    h.keys.send(Ok(Event::Resize(90, 28))).expect("loop listens");
    h.settle().await;
    // Within 2 s of that input a sample is drawn at once, in parts.
    h.send(disks(61.0));
    h.settle().await;
    assert!(!h.task.is_finished(), "the loop is still running");
    assert!(h.screen.text().contains("61%"), "{}", h.screen.text());
    h.keys.send(Ok(Event::Resize(100, 30))).expect("loop listens");
    h.settle().await;
    let text = h.screen.text();
    let in_parts = h.in_parts.clone();
    let state = h.finish().await;
    assert!(in_parts.load(Ordering::SeqCst) >= 1, "the sample's frame was drawn in parts");
    let above_footer = |t: &str| t.lines().take(29).collect::<Vec<_>>().join("\n");
    assert_eq!(above_footer(&text), above_footer(&fx::screen_text(&state, 100, 30)));
}

/// The screen as a whole frame of `state` draws it, drawn on a thread of its own (no
/// rows or chart kept from the loop's frames), all rows but the footer (which now says
/// the loop was stopped).
fn whole_frame_above_footer(state: &AppState, w: u16, h: u16) -> String {
    let state = state.clone();
    let text = std::thread::spawn(move || fx::screen_text(&state, w, h)).join().expect("draws");
    text.lines().take(h as usize - 1).collect::<Vec<_>>().join("\n")
}

/// Ends the loop and checks the terminal shows the whole frame of its final state.
async fn shows_the_whole_frame(h: Harness, w: u16, hgt: u16, what: &str) {
    let text = h.screen.text();
    let state = h.finish().await;
    let shown = text.lines().take(hgt as usize - 1).collect::<Vec<_>>().join("\n");
    assert_eq!(shown, whole_frame_above_footer(&state, w, hgt), "{what}");
}

/// A seeded mix of what a console hears beside a run, in any order: log samples (new
/// lines, a moving progress bar, an OOM, a rotation that empties the chart, a newer log, a
/// read error, the writer gone), disk, host and unreadable-ledger samples, keys (focus,
/// zoom, errors-only, wrap, follow, sideways, search, the log switcher, help, paging),
/// single ticks and quiet gaps. Every frame drawn in parts is checked against the whole
/// frame by the screen itself (debug build), and after five more ticks the terminal shows
/// the whole frame of the final state, ages included. Four sizes, five seeds each.
/// (Written first by an attacker helper; it found none of these broken, and the resize
/// above.)
#[tokio::test(start_paused = true)]
async fn any_mix_of_samples_keys_and_ticks_leaves_the_whole_frame_on_screen() {
    use opsconsole::logtail::{MetricsState, TailNote};
    use support::log_fixtures::{hf_lines, log_sample, oom_lines};
    let variant = |lines: &[String], at, alive, f: &dyn Fn(&mut opsconsole::logtail::LogSample)| match log_sample(
        lines, at, alive, None,
    ) {
        Msg::Log(mut s) => {
            f(&mut s);
            Msg::Log(s)
        }
        _ => unreachable!("log_sample makes a log sample"),
    };
    let keys = [
        KeyCode::Tab,
        KeyCode::Char('z'),
        KeyCode::Char('3'),
        KeyCode::Char('e'),
        KeyCode::Char('w'),
        KeyCode::Char('f'),
        KeyCode::Right,
        KeyCode::Left,
        KeyCode::Char('G'),
        KeyCode::Esc,
        KeyCode::Char('s'),
        KeyCode::Up,
        KeyCode::Char('/'),
        KeyCode::Char('l'),
        KeyCode::Enter,
        KeyCode::Char('L'),
        KeyCode::Char('?'),
        KeyCode::PageUp,
    ];
    for seed in 1..=20u64 {
        let (w, hgt) = [(80, 24), (160, 48), (60, 40), (120, 40)][(seed % 4) as usize];
        let h = idle_harness().await;
        h.resize(w, hgt);
        h.settle().await;
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut step = 500u64;
        let mut lines = hf_lines(step);
        for _ in 0..150 {
            let at = fx::at(fx::NOW + h.started.elapsed().as_secs());
            match rng.u32(0..40) {
                0..=7 => {
                    step += 50;
                    lines = hf_lines(step);
                    let bar = format!("  3%|▍         | {}/24000 [00:30<1:58:00, 19.90it/s]", step + 7);
                    h.send(log_sample(&lines, at, true, Some(&bar)));
                }
                8..=10 => {
                    let bar = format!("  3%|▍         | {}/24000 [00:30<1:58:00, 19.90it/s]", step + rng.u64(0..40));
                    h.send(log_sample(&lines, at, true, Some(&bar)));
                }
                11 => h.send(log_sample(&oom_lines(), at, rng.bool(), None)),
                12 => h.send(variant(&[], at, true, &|s| {
                    s.reset = false;
                    s.notes = vec![TailNote::Rotated];
                    s.metrics = MetricsState::new(2000);
                })),
                13 => h.send(variant(&lines, at, true, &|s| {
                    s.newer_log = Some("/home/me/rsm/experiments/v69/logs/train.log".into());
                })),
                14 => h.send(variant(&lines, at, true, &|s| s.error = Some("read error: EIO".into()))),
                15 => h.send(log_sample(&lines, at, false, None)),
                16..=17 => h.send(disks(40.0 + rng.u32(0..60) as f64)),
                18 => h.send(host(rng.u32(0..100) as f32, 10.0 + rng.u32(0..50) as f64)),
                19 => h.send(Msg::SyncUnreadable(format!("the sync ledger cannot be read: {}", rng.u32(0..3)))),
                20..=31 => h.key(keys[rng.usize(0..keys.len())]),
                32..=35 => h.next_tick().await,
                36..=37 => {
                    sleep(Duration::from_millis(2500)).await;
                    h.next_tick().await;
                }
                _ => h.ticks(3).await,
            }
            h.settle().await;
            assert!(!h.task.is_finished(), "seed {seed}: the loop stopped (a frame in parts differed?)");
        }
        h.ticks(5).await;
        shows_the_whole_frame(h, w, hgt, &format!("seed {seed} at {w}x{hgt}")).await;
    }
}

/// A quiet console beside a stalled log for 75 ticks: the ages ("last line 1m15s ago",
/// the stall banner, the uptime) each follow the clock in their own part.
#[tokio::test(start_paused = true)]
async fn the_ages_of_a_quiet_console_follow_the_clock_part_by_part() {
    use support::log_fixtures::{hf_lines, log_sample};
    let h = idle_harness().await;
    h.send(log_sample(&hf_lines(800), fx::at(fx::NOW + 3), true, Some("  3%|▍  | 810/24000")));
    h.next_tick().await;
    h.send(disks(55.0));
    h.ticks(75).await;
    assert!(h.screen.text().contains("stalled"), "{}", h.screen.text());
    shows_the_whole_frame(h, 80, 24, "after 75 quiet ticks").await;
}

/// Found by an attacker review: the answer to `s` is stamped with the last tick's time and
/// expires STATUS_TTL (6 s) later, at a tick. Beside a growing log the follower's sample
/// arrives 25-30 ms before that tick (once the 2 s after the key are over): it is drawn as
/// the tick's frame, the tick skipped, but with the clock read 30 ms early the status line
/// is not yet due, and it stays on screen for another whole tick.
#[tokio::test(start_paused = true)]
async fn an_expiring_status_line_beside_a_growing_log_disappears_at_the_tick_it_expires() {
    use support::log_fixtures::{hf_lines, log_sample};
    let h = idle_harness().await;
    h.key(KeyCode::Char('s'));
    h.settle().await;
    assert!(h.screen.text().contains("sync requested on every level"), "{}", h.screen.text());
    for _ in 1..=5 {
        h.next_tick().await;
    }
    assert!(h.screen.text().contains("sync requested on every level"));
    // ~6 ms after the 5th tick: 30 ms before the 6th, the one it expires at.
    sleep(Duration::from_millis(964)).await;
    let lines = hf_lines(2000);
    h.send(log_sample(&lines, fx::at(fx::NOW + 6), true, Some("  8%|▊         | 2001/24000")));
    h.settle().await;
    // Past the 6th tick's time.
    sleep(Duration::from_millis(200)).await;
    let text = h.screen.text();
    assert!(text.contains("2001/24000"), "the sample was drawn:\n{text}");
    let late = text.contains("sync requested");
    // It goes at the next tick, a whole period late.
    h.next_tick().await;
    let gone_next = !h.screen.text().contains("sync requested");
    assert!(
        !late,
        "200 ms after the tick it expired at, the status line is still shown (gone at the next tick: {gone_next}):\n{text}"
    );
    h.finish().await;
}

/// Found by an attacker review: the seeded storm with the panels' other states: a GPU with a process (the demo
/// GPU) and none (no NVML), GPU keys (details, kill, sort), sync samples, narrow and short
/// terminals and resizes in the middle, zoom and focus on every panel.
#[tokio::test(start_paused = true)]
async fn storm_with_gpu_states_sync_and_resizes_leaves_the_whole_frame_on_screen() {
    use support::log_fixtures::{hf_lines, log_sample, oom_lines};
    let keys = [
        KeyCode::Tab,
        KeyCode::BackTab,
        KeyCode::Char('z'),
        KeyCode::Char('1'),
        KeyCode::Char('2'),
        KeyCode::Char('3'),
        KeyCode::Char('4'),
        KeyCode::Char('e'),
        KeyCode::Char('w'),
        KeyCode::Char('f'),
        KeyCode::Right,
        KeyCode::Esc,
        KeyCode::Char('s'),
        KeyCode::Up,
        KeyCode::Down,
        KeyCode::Enter,
        KeyCode::Char('K'),
        KeyCode::Char('n'),
        KeyCode::Char('o'),
        KeyCode::Char('/'),
        KeyCode::Char('x'),
        KeyCode::Char('?'),
        KeyCode::Char('u'),
        KeyCode::Char('L'),
        KeyCode::Char('G'),
        KeyCode::Left,
        KeyCode::PageUp,
        KeyCode::PageDown,
        KeyCode::Char('l'),
        KeyCode::Char('p'),
        KeyCode::Char('c'),
    ];
    let sizes = [
        (80u16, 24u16),
        (160, 48),
        (60, 40),
        (120, 40),
        (70, 20),
        (69, 30),
        (40, 12),
        (100, 14),
        (80, 5),
        (50, 7),
        (200, 60),
        (101, 9),
        (30, 4),
    ];
    let seeds: u64 = std::env::var("STORM_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    for seed in 1..=seeds {
        let (mut w, mut hgt) = sizes[(seed % sizes.len() as u64) as usize];
        let h = idle_harness().await;
        h.resize(w, hgt);
        h.settle().await;
        let mut gpu = opsconsole::gpu::demo::DemoGpu::new("/nonexistent/pid".into(), fx::at(fx::NOW - 100));
        let mut rng = fastrand::Rng::with_seed(seed * 7919);
        let mut step = 500u64;
        let mut lines = hf_lines(step);
        for _ in 0..200 {
            let at = fx::at(fx::NOW + h.started.elapsed().as_secs());
            match rng.u32(0..44) {
                0..=5 => {
                    step += 50;
                    lines = hf_lines(step);
                    let bar = format!("  3%|▍         | {}/24000 [00:30<1:58:00, 19.90it/s]", step + 7);
                    h.send(log_sample(&lines, at, true, Some(&bar)));
                }
                6..=7 => {
                    let bar = format!("  3%|▍         | {}/24000", step + rng.u64(0..40));
                    h.send(log_sample(&lines, at, true, Some(&bar)));
                }
                8 => h.send(log_sample(&oom_lines(), at, rng.bool(), None)),
                9..=12 => h.send(Msg::Gpu(gpu.sample(at))),
                13 => h.send(no_gpu(fx::NOW * 1000 + h.started.elapsed().as_millis() as u64)),
                14 => h.send(disks(40.0 + rng.u32(0..60) as f64)),
                15 => h.send(host(rng.u32(0..100) as f32, 10.0 + rng.u32(0..50) as f64)),
                16 => h.send(Msg::SyncUnreadable(format!("the sync ledger cannot be read: {}", rng.u32(0..3)))),
                17 => h.send(Msg::Sync(Box::new(opsconsole::sync::SyncSample {
                    source: opsconsole::sync::EngineSource::Daemon { pid: 4242 },
                    status: opsconsole::sync::status::SyncStatus::default(),
                    queue: vec![],
                }))),
                18..=19 => {
                    let (nw, nh) = sizes[rng.usize(0..sizes.len())];
                    w = nw;
                    hgt = nh;
                    h.resize(w, hgt);
                }
                20..=31 => h.key(keys[rng.usize(0..keys.len())]),
                32..=35 => h.next_tick().await,
                36..=38 => {
                    sleep(Duration::from_millis(2500)).await;
                    h.next_tick().await;
                }
                39 => {
                    // Just before a tick: drawn as the tick's frame.
                    h.next_tick().await;
                    sleep(Duration::from_millis(964)).await;
                    h.send(log_sample(&lines, at, true, Some("  3%|▍         | 1/24000")));
                }
                _ => h.ticks(3).await,
            }
            h.settle().await;
            assert!(!h.task.is_finished(), "seed {seed}: the loop stopped (a frame in parts differed?)");
        }
        h.key(KeyCode::Esc);
        h.ticks(5).await;
        let (in_parts, kept) = (h.in_parts.clone(), h.kept.clone());
        shows_the_whole_frame(h, w, hgt, &format!("seed {seed} at {w}x{hgt}")).await;
        eprintln!(
            "storm seed {seed}: {} frames in parts, {} cells kept",
            in_parts.load(Ordering::SeqCst),
            kept.load(Ordering::SeqCst)
        );
    }
}

/// Found by an attacker review: with every collector sample drawing the tick's frame
/// ahead of it, a stream of engine events (a hash pass over many small files sends one
/// `Queued` a file, a few ms apart) drew a frame for every event in the 40 ms before each
/// tick. At most one frame a tick is drawn ahead of it.
#[tokio::test(start_paused = true)]
async fn a_stream_of_engine_events_costs_one_frame_per_tick_not_one_each() {
    use opsconsole::sync::SyncEvent;
    let h = idle_harness().await;
    sleep(Duration::from_millis(2500)).await;
    h.next_tick().await;
    let (frames, ticks) = (h.screen.frames(), h.ticks.load(Ordering::SeqCst));
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(3000) {
        h.send(Msg::SyncEvent(SyncEvent::Queued {
            level: "L2".into(),
            path: format!("ckpt/step-1000/shard-{n:05}.bin"),
            bytes: 1 << 20,
        }));
        n += 1;
        sleep(Duration::from_millis(4)).await;
    }
    let drawn = h.screen.frames() - frames;
    let clock_reads = h.ticks.load(Ordering::SeqCst) - ticks;
    assert!(drawn <= 4, "{drawn} frames in 3 s ({n} events, the clock read {clock_reads} times): one a tick expected");
    h.finish().await;
}

/// Found by an attacker review: the turn's results come in two messages a few ms apart
/// (the lane's disk and host samples together, and the growing log's sample from its own
/// thread). While the log grows, its sample draws the tick's frame, with whatever came
/// before it: one frame for the turn, not one for each.
#[tokio::test(start_paused = true)]
async fn the_lanes_results_and_the_logs_sample_of_one_turn_cost_one_frame() {
    use support::log_fixtures::{hf_lines, log_sample};
    let h = idle_harness().await;
    sleep(Duration::from_millis(2500)).await;
    // The log grows: a sample at the tick before.
    h.send(log_sample(&hf_lines(2000), fx::at(fx::NOW + 5), true, Some("  8%|▊         | 2000/24000")));
    h.next_tick().await;
    // ~30 ms before the next tick: the lane's results, the log's sample 3 ms later.
    sleep(Duration::from_millis(964)).await;
    let frames = h.screen.frames();
    h.send(disks(61.0));
    h.send(host(9.0, 21.0));
    sleep(Duration::from_millis(3)).await;
    h.send(log_sample(&hf_lines(2000), fx::at(fx::NOW + 6), true, Some("  8%|▊         | 2001/24000")));
    // Past the tick.
    sleep(Duration::from_millis(200)).await;
    let text = h.screen.text();
    assert!(text.contains("61%") && text.contains("2001/24000"), "all drawn by the tick:\n{text}");
    assert_eq!(h.screen.frames(), frames + 1, "one frame for the turn's samples");
    h.finish().await;
}

/// When the log starts to grow (no sample of it the period before), the lane's results of
/// the turn draw the tick's frame ahead of it, and the log's sample that comes a moment
/// later is drawn too, not held a period: two frames that tick, the log's last.
#[tokio::test(start_paused = true)]
async fn a_log_that_starts_to_grow_after_the_turns_results_is_drawn_before_the_tick() {
    use support::log_fixtures::{hf_lines, log_sample};
    let h = idle_harness().await;
    sleep(Duration::from_millis(2500)).await;
    h.next_tick().await;
    sleep(Duration::from_millis(964)).await;
    let frames = h.screen.frames();
    h.send(disks(61.0));
    h.settle().await;
    assert_eq!(h.screen.frames(), frames + 1, "the turn's results drawn ahead of the tick");
    sleep(Duration::from_millis(3)).await;
    h.send(log_sample(&hf_lines(2000), fx::at(fx::NOW + 6), true, Some("  8%|▊         | 2001/24000")));
    h.settle().await;
    assert_eq!(h.screen.frames(), frames + 2, "the log's sample drawn ahead of the tick too");
    assert!(h.screen.text().contains("2001/24000"), "{}", h.screen.text());
    // The tick itself does not come; nor a third frame.
    sleep(Duration::from_millis(200)).await;
    assert_eq!(h.screen.frames(), frames + 2);
    h.finish().await;
}
