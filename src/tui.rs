//! The terminal: init and restore (on every exit path), the event loop, signals.

use std::time::{Duration, Instant, SystemTime};

/// How long after start and after input every message is drawn at once.
const LIVELY: Duration = Duration::from_secs(2);

use color_eyre::eyre::Result;
use crossterm::event::{Event, KeyEventKind};
use ratatui::DefaultTerminal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::app::{self, AppState, Effect, Msg};
use crate::collectors::Collectors;
use crate::ui;

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

/// Options for a console run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Leave right after the first full frame is on screen (for start-up benchmarks).
    pub exit_after_first_frame: bool,
    /// Panic right after the first frame (tests that a panic restores the terminal).
    pub panic_after_first_frame: bool,
}

/// Runs the console until the user quits or a signal arrives.
pub async fn run(mut state: AppState, collectors: Collectors, opts: RunOptions) -> Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    // In raw mode ctrl-c is a key; a SIGINT comes from outside (`kill -INT`) and ends the
    // console cleanly like SIGTERM, restoring the terminal.
    let mut sigint = signal(SignalKind::interrupt())?;
    watch_hangup(tx.clone());
    let handles = collectors.spawn(tx.clone());
    let prune = crate::prune::PruneRunner::start(&state, &tx);
    let checklist = crate::shutdown::ChecklistRunner::start(&state, &tx);
    let airlock = crate::airlock_console::AirlockRunner::default();

    let mut terminal: DefaultTerminal = ratatui::try_init()?;
    let _guard = RestoreGuard;
    if let Ok(size) = terminal.size() {
        state.size = (size.width, size.height);
    }
    let mut input = read_input();
    let mut tick = crate::util::aligned_interval(Duration::from_millis(state.config.general.refresh_ms));

    let started = Instant::now();
    let mut last_input: Option<Instant> = None;
    let mut draw = true;
    let mut first_frame = true;
    let result = async {
        loop {
            if draw {
                terminal.draw(|f| ui::render(&state, f))?;
                draw = false;
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
                ev = input.recv() => match ev {
                    Some(Ok(ev)) => event_msg(ev),
                    Some(Err(e)) => return Err(e.into()),
                    None => Some(Msg::Terminate("terminal input closed".into())),
                },
                _ = tick.tick() => Some(Msg::Tick(SystemTime::now())),
                Some(m) = rx.recv() => Some(m),
                _ = sigterm.recv() => Some(Msg::Terminate("SIGTERM".into())),
                _ = sighup.recv() => Some(Msg::Terminate("SIGHUP".into())),
                _ = sigint.recv() => Some(Msg::Terminate("SIGINT".into())),
            };
            let mut pending: Vec<Msg> = first.into_iter().collect();
            while let Ok(m) = rx.try_recv() {
                pending.push(m);
            }
            while let Ok(ev) = input.try_recv() {
                pending.extend(event_msg(ev?));
            }
            // Collector samples wait for the next tick, except while the screen first fills
            // and for a moment after input (an answer to `ctrl-r`, `s`, `c` shows at once).
            let now = Instant::now();
            let lively = now.duration_since(started) < LIVELY || last_input.is_some_and(|t| now - t < LIVELY);
            for msg in pending {
                if matches!(msg, Msg::Key(_) | Msg::Resize(..)) {
                    last_input = Some(now);
                }
                draw |= lively || msg.draws_at_once();
                for effect in app::update(&mut state, msg) {
                    match effect {
                        Effect::Quit => {}
                        Effect::RefreshNow => {
                            handles.refresh_now();
                            prune.on_effect(&effect, &state, &tx);
                        }
                        Effect::TerminateProcess { pid, start_ticks } => {
                            let result = crate::gpu::terminate(pid, start_ticks).map_err(|e| e.to_string());
                            let _ = tx.send(Msg::ProcessTerminated { pid, result });
                        }
                        Effect::SwitchLog(path) => handles.switch_log(path),
                        Effect::Sync(cmd) => handles.sync_command(cmd),
                        e @ (Effect::Checklist { .. } | Effect::Shutdown { .. }) => {
                            checklist.on_effect(&e, &state, &tx)
                        }
                        Effect::Airlock(e) => airlock.on_effect(&e, &state, &tx),
                        other => prune.on_effect(&other, &state, &tx),
                    }
                }
            }
            if state.should_quit {
                return Ok::<(), color_eyre::Report>(());
            }
        }
    }
    .await;
    handles.stop();
    prune.stop();
    checklist.stop();
    airlock.stop();
    result
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
            let ev = crossterm::event::read();
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
            // No events asked for: only POLLHUP/POLLERR/POLLNVAL wake it, never input.
            let mut fds = libc::pollfd { fd: 0, events: 0, revents: 0 };
            // SAFETY: one valid pollfd; blocks without a timeout.
            let n = unsafe { libc::poll(&mut fds, 1, -1) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            if fds.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
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
