//! The terminal and the event loop. [`run`] owns the real terminal (init and restore on
//! every exit path), its input, the signals and the [`Executor`]; [`run_loop`] is the loop
//! itself, generic over the backend, the input source, the clock and whoever carries out
//! effects, so tests drive it with a `TestBackend`, scripted input and paused time.

use std::time::{Duration, SystemTime};

use color_eyre::eyre::Result;
use ratatui::backend::Backend;
use ratatui::crossterm::event::{Event, KeyEventKind};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::app::{self, AppState, Msg};
use crate::collectors::Collectors;
use crate::exec::{Effects, Executor};
use crate::ticker::Ticker;
use crate::ui;
use crate::ui::screen::Screen;

/// How long after start and after input every message is drawn at once.
pub const LIVELY: Duration = Duration::from_secs(2);

/// How much later than `LOG_LEAD` before a tick a collector's sample may arrive and still
/// be drawn as that tick's frame (the turn's work and the hand-over take a moment).
const TICK_EARLY_SLACK: Duration = Duration::from_millis(15);

/// How long after its point a tick's clock is read (a timer's resolution and the wake-up).
const TICK_READ_AFTER: Duration = Duration::from_millis(1);

/// Restores the terminal when dropped, whatever path leaves the loop.
struct RestoreGuard;

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// The console needs a terminal to draw on and to read keys from: say so in words, before
/// anything starts, instead of an OS error from deep inside the terminal library.
pub fn check_terminal() -> Result<()> {
    use std::io::IsTerminal;
    let scripts = "for scripts use `opsconsole status --json`, `opsconsole sync --daemon` or `opsconsole prune --yes`";
    if !std::io::stdout().is_terminal() {
        color_eyre::eyre::bail!(
            "the console needs a terminal, and its output is not one (a pipe or a file); run it in an SSH \
             session or a tmux pane, or {scripts}"
        );
    }
    if !std::io::stdin().is_terminal()
        && let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty")
    {
        color_eyre::eyre::bail!(
            "the console needs a terminal to read keys from: its input is not one and there is no controlling \
             terminal (/dev/tty: {e}); run it in an SSH session or a tmux pane, or {scripts}"
        );
    }
    Ok(())
}

/// The terminal as `ratatui::try_init` makes it (a panic hook that restores it first,
/// raw mode, the alternate screen), with its output through a buffer. `Stdout` is
/// line-buffered in 1 KB pieces and locked for every piece of every cell's escape codes,
/// so a frame of a wide terminal went out as three or four `write(2)`s, each waking the
/// terminal (tmux, sshd) again; through the buffer it is one, sent when the frame is
/// complete ([`Screen::draw`] flushes the backend after every frame).
fn init_terminal() -> std::io::Result<Screen<ui::term::Term<std::io::BufWriter<std::io::Stdout>>>> {
    use ratatui::crossterm::{execute, terminal};
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        ratatui::restore();
        hook(info);
    }));
    terminal::enable_raw_mode()?;
    execute!(std::io::stdout(), terminal::EnterAlternateScreen)?;
    let out = std::io::BufWriter::with_capacity(FRAME_BUFFER, std::io::stdout());
    Screen::new(ui::term::Term::new(out))
}

/// The output buffer: a usual frame's changes are 1–4 KB and go out in one write; a
/// full frame of a large terminal (20–60 KB) goes out in pieces of this size. Only what a
/// frame fills is touched, so this is also the most a frame adds to the resident memory.
const FRAME_BUFFER: usize = 16 * 1024;

/// A terminal that can ring its bell. The loop rings when `update` asked for it
/// (`AppState::alerts.bells` grew); tmux turns BEL into its window alert.
pub trait Bell {
    fn bell(&mut self) -> std::io::Result<()>;
}

impl<W: std::io::Write> Bell for ratatui::backend::CrosstermBackend<W> {
    fn bell(&mut self) -> std::io::Result<()> {
        // BEL moves no cursor and draws nothing: it can go between frames.
        std::io::Write::write_all(self, b"\x07")?;
        std::io::Write::flush(self)
    }
}

/// Options for a console run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Leave right after the first full frame is on screen (for start-up benchmarks).
    pub exit_after_first_frame: bool,
    /// Panic right after the first frame (tests that a panic restores the terminal).
    pub panic_after_first_frame: bool,
    /// `[metrics] listen`: the exporter thread the console hands its figures to.
    pub metrics: Option<crate::metrics::feed::ConsoleFeed>,
}

/// Where the loop's wall-clock time comes from (ages, uptimes, stalls are computed from
/// it), and its frame tick. Its monotonic time is tokio's, which tests pause and move
/// forward.
pub trait Clock {
    fn now(&self) -> SystemTime;

    /// The frame tick, every `period` on the process's grid: tokio's interval, which a
    /// paused test clock drives, unless the clock has a better one.
    fn ticker(&self, period: Duration) -> Ticker {
        Ticker::tokio(period, Duration::ZERO)
    }
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    /// On a `timerfd`: one wake-up a tick (`crate::ticker`).
    fn ticker(&self, period: Duration) -> Ticker {
        Ticker::on_grid(period, Duration::ZERO)
    }
}

/// What the loop reads besides the app channel: terminal events and the process signals
/// that end it (by name: "SIGTERM").
pub struct Inputs {
    pub terminal: mpsc::UnboundedReceiver<std::io::Result<Event>>,
    pub signals: mpsc::UnboundedReceiver<String>,
}

/// Runs the console until the user quits or a signal arrives. The state comes boxed: an
/// async function keeps its arguments for as long as it runs, and 8 KB of state held by
/// value would make this future, and the stack frame that creates it, that much larger.
pub async fn run(state: Box<AppState>, collectors: Collectors, opts: RunOptions) -> Result<()> {
    let (tx, rx) = mpsc::unbounded_channel::<Msg>();
    let signals = watch_signals()?;
    watch_hangup(tx.clone());
    let engine = crate::exec::engine::EngineConfig {
        workspace: state.workspace_root.clone(),
        sync: state.config.sync.clone(),
        remotes: state.config.remotes.clone(),
        checkpoint_roots: state.config.checkpoints.roots.clone(),
        start_engine: true,
    };
    let mut executor = Executor::start(collectors, engine, tx);
    // Boxed for the same reason as the console's own future (cli::console).
    let result = Box::pin(async {
        let mut terminal = init_terminal()?;
        let _guard = RestoreGuard;
        let inputs = Inputs { terminal: read_input(), signals };
        let mut state = state;
        run_loop(&mut terminal, &mut state, rx, inputs, &SystemClock, &mut executor, &opts).await
    })
    .await;
    executor.stop().await;
    result
}

/// The loop: waits for one message (a key, a resize, the tick, a collector sample, a job's
/// report, a signal), drains everything else already pending, folds each message into the
/// state with [`app::update`] and hands every effect to `effects`, then draws at most once,
/// and only when the screen would change: an update that changed what is shown (it bumps
/// `state.generation`), or a tick at or after the time the last frame's clock-derived
/// text reads differently (`ui::clock`). A collector sample that changed something draws
/// only at the next tick, except during the first [`LIVELY`] and for [`LIVELY`] after a
/// key. A frame draws only the parts of the screen that changed ([`ui::parts_of`] the
/// messages, and the parts whose clock-derived text is due) with the header and footer,
/// unless something is drawn over the panels ([`ui::whole_frame`]). Returns when the
/// state says quit.
pub async fn run_loop<B: Backend + Bell, C: Clock, E: Effects>(
    terminal: &mut Screen<B>,
    state: &mut AppState,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    mut inputs: Inputs,
    clock: &C,
    effects: &mut E,
    opts: &RunOptions,
) -> Result<()>
where
    B::Error: Send + Sync + 'static,
{
    if let Ok(size) = terminal.size() {
        state.size = (size.width, size.height);
    }
    let period = Duration::from_millis(state.config.general.refresh_ms).max(Duration::from_millis(1));
    let mut tick = clock.ticker(period);
    let started = Instant::now();
    let mut last_input: Option<Instant> = None;
    let mut metrics = opts.metrics.clone();
    let mut draw = true;
    let mut first_frame = true;
    // Whether a change waits for the tick, and the parts of the screen the next frame draws.
    let mut waiting = false;
    let mut dirty = ui::Parts::ALL;
    let mut rung = state.alerts.bells;
    // The tick whose frame was drawn ahead of it (at most one such frame a tick), and when
    // the last log sample came (while the log grows, the turn's frame is the log's).
    let mut drawn_ahead: Option<(std::time::Instant, bool)> = None;
    let mut last_log: Option<Instant> = None;
    loop {
        if state.alerts.bells > rung {
            rung = state.alerts.bells;
            // A terminal that cannot take a byte now will show the problem anyway.
            if let Err(e) = terminal.backend_mut().bell() {
                tracing::warn!("could not ring the terminal bell: {e}");
            }
        }
        if draw {
            // What is drawn over the panels (an overlay, a job's screen) is drawn in whole frames.
            if dirty.has(ui::Part::Overlay) || ui::whole_frame(state) {
                terminal.draw(|f| ui::render(state, f))?;
            } else {
                let parts = dirty | ui::Parts::of(ui::Part::Header) | ui::Parts::of(ui::Part::Footer);
                let rects = |area| {
                    let areas = ui::part_areas(state, area);
                    ui::Part::ALL.into_iter().filter(|p| parts.has(*p)).map(|p| areas[p as usize]).collect()
                };
                terminal.draw_parts(rects, |f, whole| {
                    if whole { ui::render(state, f) } else { ui::render_parts(state, f, parts) }
                })?;
            }
            // Keys that move by a page move by what the user sees.
            state.viewport = ui::viewport(state);
            draw = false;
            waiting = false;
            dirty = ui::Parts::NONE;
        }
        if first_frame && opts.exit_after_first_frame {
            return Ok(());
        }
        if first_frame && opts.panic_after_first_frame {
            panic!("panic requested by --panic-after-first-frame");
        }
        first_frame = false;
        // Wait for one message, then drain everything already pending, then draw at most once.
        let first = tokio::select! {
            ev = inputs.terminal.recv() => match ev {
                Some(Ok(ev)) => event_msg(ev),
                Some(Err(e)) => return Err(e.into()),
                None => Some(Msg::Terminate("terminal input closed".into())),
            },
            _ = tick.tick() => Some(Msg::Tick(clock.now())),
            Some(m) = rx.recv() => Some(m),
            Some(name) = inputs.signals.recv() => Some(Msg::Terminate(name)),
        };
        let mut pending: Vec<Msg> = first.into_iter().collect();
        while let Ok(m) = rx.try_recv() {
            pending.push(m);
        }
        while let Ok(ev) = inputs.terminal.try_recv() {
            pending.extend(event_msg(ev?));
        }
        // Collector samples wait for the next tick, except while the screen first fills
        // and for a moment after input (an answer to `ctrl-r`, `s`, `c` shows at once).
        let now = Instant::now();
        let lively = now.duration_since(started) < LIVELY || last_input.is_some_and(|t| now - t < LIVELY);
        // The collectors take their turns `LOG_LEAD` before the ticks, and a growing log is
        // read then too, for the tick's frame: that frame is drawn when their samples
        // come, as the tick would draw it, and the tick is not waited for (the UI thread
        // wakes for the turn and its results, not again for the tick). While the log
        // grows, its sample draws it (the lane's results of the turn, a moment before or
        // after it, wait for it or for the next frame: one frame a tick, not two);
        // otherwise the first of the turn's samples does. At most one frame a tick is drawn
        // ahead of it (two when the log's sample comes after another's, the first time
        // it grows): what comes after it waits, as any sample does.
        let log_now = pending.iter().any(|m| matches!(m, Msg::Log(_)));
        let log_grows = log_now || last_log.is_some_and(|t| now.duration_since(t) < period * 3 / 2);
        if log_now {
            last_log = Some(now);
        }
        let early = if log_grows { log_now } else { pending.iter().any(|m| !m.draws_at_once()) };
        if !lively && early && !pending.iter().any(|m| matches!(m, Msg::Tick(_))) {
            let ahead = tick.until_next(now.into_std());
            let point = now.into_std() + ahead;
            let drawn = drawn_ahead.is_some_and(|(p, by_log)| p == point && (by_log || !log_now));
            if ahead <= crate::collectors::LOG_LEAD + TICK_EARLY_SLACK && !drawn {
                // As the tick: at the time the tick would read (its point, and the moment
                // a wake-up takes after it; a timer's millisecond), so what the clock changes
                // then (an age, the status line's expiry) is drawn now, not a period late.
                pending.push(Msg::Tick(clock.now() + ahead + TICK_READ_AFTER));
                tick.skip_next();
                drawn_ahead = Some((point, log_now));
            }
        }
        let mut ticked = false;
        for msg in pending {
            if matches!(msg, Msg::Key(_) | Msg::Resize(..)) {
                last_input = Some(now);
            }
            ticked |= matches!(msg, Msg::Tick(_));
            let at_once = lively || msg.draws_at_once();
            let generation = state.generation;
            let parts = ui::parts_of(&msg);
            for effect in app::update(state, msg) {
                effects.run(effect, state);
            }
            // Only what changes the screen is drawn: a sample equal to the one shown, or
            // a tick that changes no text, costs no frame.
            if state.generation != generation {
                dirty |= parts;
                if at_once {
                    draw = true;
                } else {
                    waiting = true;
                }
            }
        }
        if ticked {
            // The parts whose time-derived text (an age, the uptime, the status line's
            // expiry) now reads differently.
            for part in ui::Part::ALL {
                if ui::clock::next_change_of(part).is_some_and(|t| state.now >= t) {
                    dirty |= ui::Parts::of(part);
                    draw = true;
                }
            }
            draw |= waiting;
        }
        // `[metrics] listen`: the figures held, handed to the exporter thread.
        if let Some(m) = metrics.as_mut().filter(|m| m.due()) {
            m.send(app::report::status_report(state));
        }
        if state.should_quit {
            return Ok(());
        }
    }
}

/// SIGTERM, SIGHUP and SIGINT end the console cleanly (in raw mode ctrl-c is a key; a
/// SIGINT comes from outside, `kill -INT`), restoring the terminal.
fn watch_signals() -> Result<mpsc::UnboundedReceiver<String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    for (kind, name) in
        [(SignalKind::terminate(), "SIGTERM"), (SignalKind::hangup(), "SIGHUP"), (SignalKind::interrupt(), "SIGINT")]
    {
        let mut s = signal(kind)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(name.to_string()).is_err() {
                    return;
                }
            }
        });
    }
    Ok(rx)
}

/// Reads terminal input on a thread of its own, blocked in crossterm's `read` (a `poll(2)`
/// on the terminal and the resize signal) until something arrives. crossterm's
/// `EventStream` keeps a reader thread too, but every poll of the stream spins on the lock
/// that thread holds, which cost more CPU than the rest of an idle console together.
/// The thread stops after the first read error (a terminal that is gone) or when the loop
/// no longer listens.
fn read_input() -> mpsc::UnboundedReceiver<std::io::Result<Event>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let spawned = std::thread::Builder::new().name("input".into()).spawn(move || {
        loop {
            let ev = ratatui::crossterm::event::read();
            let failed = ev.is_err();
            if tx.send(ev).is_err() || failed {
                return;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("no terminal input reader: {e}");
    }
    rx
}

/// Watches, on a thread of its own that sleeps in `poll(2)` until the terminal is hung up
/// (a closed SSH session or tmux pane), and asks the loop to quit. Reading a terminal that
/// is gone can keep the input reader spinning and the loop starved, so if the process is
/// still here 3 s later the thread restores what it can and exits.
fn watch_hangup(tx: mpsc::UnboundedSender<Msg>) {
    let spawned = std::thread::Builder::new().name("hangup-watch".into()).spawn(move || {
        loop {
            use rustix::event::{PollFd, PollFlags};
            // No events asked for: only POLLHUP/POLLERR/POLLNVAL wake it, never input.
            let stdin = std::io::stdin();
            let mut fds = [PollFd::new(&stdin, PollFlags::empty())];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            }
            if fds[0].revents().intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
                break;
            }
        }
        tracing::info!("stopping: the terminal closed");
        if tx.send(Msg::Terminate("the terminal closed".into())).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_secs(3));
        tracing::warn!("the console did not stop within 3 s of its terminal closing; exiting");
        ratatui::restore();
        std::process::exit(0);
    });
    if let Err(e) = spawned {
        tracing::warn!("no hang-up watcher: {e}");
    }
}

fn event_msg(ev: Event) -> Option<Msg> {
    match ev {
        Event::Key(k) if k.kind != KeyEventKind::Release => Some(Msg::Key(k)),
        Event::Resize(w, h) => Some(Msg::Resize(w, h)),
        _ => None,
    }
}
