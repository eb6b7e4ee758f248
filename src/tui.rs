//! The terminal: init and restore (on every exit path), the event loop, signals.

use std::time::{Duration, SystemTime};

use color_eyre::eyre::Result;
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::{FutureExt, StreamExt};
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
    let sigterm = signal(SignalKind::terminate())?;
    let sighup = signal(SignalKind::hangup())?;
    let exit_watch = tokio::spawn(watch_exit(sigterm, sighup, tx.clone()));
    let handles = collectors.spawn(tx.clone());
    let prune = crate::prune::PruneRunner::start(&state, &tx);

    let mut terminal: DefaultTerminal = ratatui::try_init()?;
    let _guard = RestoreGuard;
    if let Ok(size) = terminal.size() {
        state.size = (size.width, size.height);
    }
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_millis(state.config.general.refresh_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let result = async {
        loop {
            terminal.draw(|f| ui::render(&state, f))?;
            if opts.exit_after_first_frame {
                return Ok(());
            }
            if opts.panic_after_first_frame {
                panic!("panic requested by --panic-after-first-frame");
            }
            // Wait for one message, then drain everything already pending, then draw once.
            let first = tokio::select! {
                ev = events.next() => match ev {
                    Some(Ok(ev)) => event_msg(ev),
                    Some(Err(e)) => return Err(e.into()),
                    None => Some(Msg::Terminate("terminal input closed".into())),
                },
                _ = tick.tick() => Some(Msg::Tick(SystemTime::now())),
                Some(m) = rx.recv() => Some(m),
            };
            let mut pending: Vec<Msg> = first.into_iter().collect();
            while let Ok(m) = rx.try_recv() {
                pending.push(m);
            }
            while let Some(Some(Ok(ev))) = events.next().now_or_never() {
                pending.extend(event_msg(ev));
            }
            for msg in pending {
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
    exit_watch.abort();
    handles.stop();
    prune.stop();
    result
}

/// Watches, on its own task, for SIGTERM, SIGHUP and the terminal going away (a closed SSH
/// session or tmux pane), and asks the loop to quit. If the loop has not stopped 3 s later
/// (reading a terminal that is gone can keep the input reader spinning), it restores what
/// it can and exits the process itself.
async fn watch_exit(
    mut sigterm: tokio::signal::unix::Signal,
    mut sighup: tokio::signal::unix::Signal,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let why = loop {
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sighup.recv() => break "SIGHUP",
            _ = check.tick() => if terminal_hung_up() { break "the terminal closed" },
        }
    };
    tracing::info!("stopping: {why}");
    let _ = tx.send(Msg::Terminate(why.into()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    tracing::warn!("the console did not stop within 3 s of {why}; exiting");
    ratatui::restore();
    std::process::exit(0);
}

/// Whether standard input is a terminal that has been hung up.
fn terminal_hung_up() -> bool {
    let mut fds = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut fds, 1, 0) };
    n > 0 && fds.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

fn event_msg(ev: Event) -> Option<Msg> {
    match ev {
        Event::Key(k) if k.kind != KeyEventKind::Release => Some(Msg::Key(k)),
        Event::Resize(w, h) => Some(Msg::Resize(w, h)),
        _ => None,
    }
}
