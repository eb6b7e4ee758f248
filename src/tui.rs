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
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    watch_hangup(tx.clone());
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
                _ = sigterm.recv() => Some(Msg::Terminate("SIGTERM".into())),
                _ = sighup.recv() => Some(Msg::Terminate("SIGHUP".into())),
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
    handles.stop();
    prune.stop();
    result
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
