//! The command line. Each subcommand calls the same domain code the console's keys call.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand};

/// A line on stderr that cannot fail: a daemon whose terminal or pipe is gone (an SSH
/// session closed, `| head` done) keeps working instead of panicking in `eprintln!`.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod completions;
use color_eyre::eyre::{Result, WrapErr};

use crate::app::AppState;
use crate::collectors::Collectors;
use crate::config::{self, Config, ConfigError};
use crate::workspace::{HostInfo, Workspace};
use crate::{logging, status, tui};

pub mod airlock;
pub mod demo;
pub mod estimate;
pub mod fit;
pub mod log;
pub mod metrics;
pub mod progress;
pub mod prune;
pub mod remote;
pub mod shutdown_check;
pub mod ssh_config;
pub mod sync;

/// A terminal operations console for training ML models on rented cloud GPUs.
#[derive(Debug, Parser)]
#[command(name = "opsconsole", version, about, long_about = None)]
pub struct Cli {
    /// The workspace folder (default: walk up from the current folder to opsconsole.toml).
    #[arg(long, short = 'w', global = true, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Use this config file; its folder is the workspace.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log level or filter for the console's own log file (e.g. debug, opsconsole=trace).
    #[arg(long, global = true, env = "OPSCONSOLE_LOG", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Exit right after the first full frame (start-up benchmarks).
    #[arg(long, hide = true)]
    pub exit_after_first_frame: bool,
    /// Panic right after the first frame (tests that a panic restores the terminal).
    #[arg(long, hide = true)]
    pub panic_after_first_frame: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the console on a throwaway demo workspace with a simulated trainer.
    Demo {
        /// Keep the demo workspace after quitting (its path is printed).
        #[arg(long)]
        keep: bool,
        /// Create the demo workspace here instead of a temporary folder.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Speed of the simulated trainer (1.0 = 20 steps per second).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// Print a one-shot snapshot of every collector.
    Status {
        /// Print JSON (snake_case keys) instead of text.
        #[arg(long, conflicts_with = "openmetrics")]
        json: bool,
        /// Print the metrics `opsconsole exporter` serves (OpenMetrics text) instead of text.
        #[arg(long)]
        openmetrics: bool,
        /// Write the metrics (Prometheus text format) to PATH atomically, for
        /// node_exporter's textfile collector (e.g. /var/lib/node_exporter/opsconsole.prom).
        #[arg(long, value_name = "PATH")]
        textfile: Option<PathBuf>,
    },
    /// Serve every figure `status` reports as Prometheus metrics on GET /metrics (OpenMetrics
    /// text, or the 0.0.4 text format when asked), sampled every [metrics] sample_ms, until
    /// SIGINT/SIGTERM. Exit 0 stopped, 2 a bad --listen or a port in use.
    Exporter {
        /// ADDRESS:PORT to listen on (anything but loopback prints a warning: the metrics
        /// carry no password).
        #[arg(long, value_name = "ADDR", default_value = crate::metrics::DEFAULT_LISTEN)]
        listen: String,
    },
    /// Estimate a job's VRAM and which tier can run it, before anything runs.
    Fit(Box<fit::FitArgs>),
    /// Print the end of the training log, follow it, or list the candidate logs.
    Log {
        /// Keep printing new lines, across rotation and truncation (like `tail -F`).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Lines printed from the end.
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: usize,
        /// List the candidate logs, newest (the one followed) first.
        #[arg(long)]
        list: bool,
        /// Print the log's status and latest metrics as JSON.
        #[arg(long)]
        json: bool,
        /// This log instead of the one the config picks.
        #[arg(long, value_name = "FILE")]
        path: Option<PathBuf>,
    },
    /// Show the prune plan (which checkpoints and logs to delete, and why) and run it.
    Prune {
        /// Show the plan only; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run the plan without asking.
        #[arg(long)]
        yes: bool,
        /// Print the plan (and, when run, the report) as JSON.
        #[arg(long)]
        json: bool,
        /// Also delete checkpoints not confirmed on another level: the only copy (logged).
        #[arg(long)]
        allow_unsynced: bool,
    },
    /// Write a commented opsconsole.toml with every default into the current folder.
    Init,
    /// Upload logs (L2) and weights (L3) to their remotes: `--daemon` watches the workspace
    /// and keeps uploading on schedule; `--once` stores everything pending, then exits.
    #[command(group = clap::ArgGroup::new("sync_mode").required(true).multiple(true))]
    Sync {
        /// Run until SIGINT/SIGTERM, uploading on the schedules in [sync].
        #[arg(long, group = "sync_mode", conflicts_with = "once")]
        daemon: bool,
        /// One pass on every level, then exit (0 only when everything routed is confirmed).
        #[arg(long, group = "sync_mode")]
        once: bool,
        /// Hash every stored copy again (not trusting remembered checksums) and store
        /// again what is missing or changed; alone, it runs as `--once`.
        #[arg(long, group = "sync_mode")]
        verify: bool,
        /// With --daemon: also serve Prometheus metrics on ADDRESS:PORT (as `opsconsole
        /// exporter` does).
        #[arg(long, value_name = "ADDR", requires = "daemon")]
        metrics_listen: Option<String>,
        /// Install the daemon as a systemd user service (Restart=on-failure, started at
        /// boot with lingering, logs in the journal) and start it; without systemd, print
        /// the tmux / nohup / cron lines that keep it running instead.
        #[arg(long, group = "sync_mode", conflicts_with_all = ["daemon", "once", "verify", "uninstall_service"])]
        install_service: bool,
        /// Stop, disable and remove the service `--install-service` wrote.
        #[arg(long, group = "sync_mode", conflicts_with_all = ["daemon", "once", "verify"])]
        uninstall_service: bool,
    },
    /// Check the remotes: each step needed to store and read back a file, with the fix for
    /// a step that fails. `--init` sets a remote up first (a folder: created inside an
    /// existing one, with its identity marker). Exit 0 when every step passes, 1 when one
    /// fails, 2 on a config error.
    Remote {
        #[command(subcommand)]
        command: RemoteCommand,
    },
    /// The pre-shutdown checklist: each item ✓/✗ with its reason and fix. Exit 0 when every
    /// enabled item passes, 1 when one fails, 2 on a config error.
    #[command(name = "shutdown-check")]
    ShutdownCheck {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set HOST's HostName to IP in an OpenSSH client config (run it on your laptop after
    /// the VM came back with a new external address). Every other byte of the file is
    /// kept; a backup is written first and the file replaced atomically. Exit 0 done, 1 the
    /// file could not be read or written, 2 bad arguments.
    #[command(name = "ssh-config")]
    SshConfig {
        /// The name you `ssh` to (a `Host` entry).
        host: String,
        /// The VM's new external address.
        ip: String,
        /// The config file (default ~/.ssh/config; created with mode 0600 when missing).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Show the change as a unified diff; write nothing.
        #[arg(long)]
        print: bool,
    },
    /// Build bundles/bundle-EXP-SHA.zip from the committed code of an experiment (refused,
    /// listing the files, when its folder or the requirements have uncommitted changes or a
    /// file is a secret) and queue it on L2. Exit 0 built, 1 refused or failed, 2 config.
    Bundle {
        /// The experiment (a folder under experiments/; default: the newest).
        experiment: Option<String>,
        /// Build only; do not queue the bundle on L2.
        #[arg(long)]
        no_upload: bool,
        /// Print the result (or the refusal) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download the cluster's training log from L2 into experiments/EXP/logs/train_external.log
    /// and append what it says (run length, final and best metrics, errors) to journal.md.
    /// Exit 0 imported (or already in the journal), 1 failed, 2 config.
    Import {
        /// The experiment (default: the newest).
        experiment: Option<String>,
        /// This key on L2's remote (its workspace-relative path) instead of the newest log.
        #[arg(long, value_name = "REMOTE_PATH")]
        from: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The checkpoint to resume from: the newest that verifies on local disk, else on L2,
    /// else on L3 (a remote one is downloaded first). `--run` starts [resume] command from
    /// it, detached. Exit 0 found (and started), 1 none or refused, 2 config.
    Resume {
        /// The experiment (default: the newest).
        experiment: Option<String>,
        /// Print only the checkpoint's path, for `train.py --resume-from "$(opsconsole resume --print-path)"`.
        #[arg(long, conflicts_with = "json")]
        print_path: bool,
        /// Print the candidates, the winner and why as JSON.
        #[arg(long)]
        json: bool,
        /// Start [resume] command from the checkpoint in its own session (it outlives this
        /// shell), output appended to the experiment's log; refused while a training
        /// process runs.
        #[arg(long)]
        run: bool,
    },
    /// Record the exact package versions: `python3 -m pip freeze` ([freeze] python) into
    /// frozen_requirements.txt. Exit 0 written, 1 failed.
    Freeze {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The training estimate of an experiment (rule time estimates, docs/rules.md): with
    /// DURATION (6h, 90m, 1h30m, "6 hours"), record it; without, print it and whether the
    /// run is on course. Exit 0, 1 on a bad experiment or duration.
    Estimate {
        /// The experiment (a folder under experiments/).
        experiment: String,
        /// The training time expected, e.g. 6h.
        duration: Option<String>,
        /// Print the rule's verdict as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the resolved configuration and where it came from.
    Config,
    /// Print the shell completion script for SHELL: `source <(opsconsole completions bash)`,
    /// or install it where your shell looks (docs in README).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page opsconsole(1) in roff (`opsconsole man | man -l -`), or with
    /// `--dir` write it and one page per subcommand (opsconsole-status.1, …) into DIR.
    Man {
        /// Write opsconsole.1 and opsconsole-SUBCOMMAND.1 into this existing folder.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The demo's simulated trainer (started by `opsconsole demo`).
    #[command(name = "demo-trainer", hide = true)]
    DemoTrainer {
        dir: PathBuf,
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Stop when this process is gone.
        #[arg(long)]
        parent: Option<u32>,
    },
}

/// `opsconsole remote ...`.
#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Check every configured remote (or NAME).
    Check {
        /// The `[remotes.NAME]` to check (default: every one).
        name: Option<String>,
        /// Set the remote up first (a folder: create it inside an existing folder and
        /// write its identity marker for this workspace).
        #[arg(long)]
        init: bool,
        /// Print the steps as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let _ = color_eyre::install();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(ce) = e.downcast_ref::<ConfigError>() {
                say!("error: {ce}");
                return ExitCode::from(2);
            }
            say!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl Cli {
    fn run_options(&self) -> tui::RunOptions {
        tui::RunOptions {
            exit_after_first_frame: self.exit_after_first_frame,
            panic_after_first_frame: self.panic_after_first_frame,
            metrics: None,
        }
    }
}

/// Finds the workspace and loads its config, as every subcommand does.
pub fn load_workspace(cli: &Cli) -> Result<(Workspace, Config)> {
    let ws = match (&cli.config, &cli.workspace) {
        (Some(cfg), named) => {
            let cfg = cfg.canonicalize().wrap_err_with(|| format!("config file {}", cfg.display()))?;
            let root = cfg.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
            // The config's folder is the workspace: a `--workspace` naming another folder
            // would otherwise be ignored without a word.
            if let Some(dir) = named {
                let named = Workspace::open(dir)?.root;
                if named != root {
                    Err(crate::config::ConfigError {
                        file: cfg.clone(),
                        line: None,
                        key: None,
                        message: format!(
                            "--config makes its folder, {}, the workspace, and --workspace names another, {}: \
                             give one of them, or a config file inside the workspace folder",
                            root.display(),
                            named.display()
                        ),
                    })?;
                }
            }
            Workspace { root, config_path: Some(cfg) }
        }
        (None, Some(dir)) => Workspace::open(dir)?,
        (None, None) => Workspace::discover(&std::env::current_dir()?)?,
    };
    // A config found rather than named must be the user's own (git's safe.directory rule).
    if cli.config.is_none()
        && let Some(found) = &ws.config_path
    {
        crate::workspace::trust::check(found)?;
    }
    let (cfg, _) = config::load(ws.config_path.as_deref())?;
    Ok((ws, cfg))
}

impl Command {
    /// Commands whose whole job is to print: piped into `head` or `grep -m1`, the reader
    /// may close the pipe before they finish writing.
    fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Status { .. }
                | Command::Fit(_)
                | Command::Log { .. }
                | Command::ShutdownCheck { .. }
                | Command::Estimate { .. }
                | Command::Config
                | Command::Completions { .. }
                | Command::Man { .. }
        )
    }
}

/// Let a closed stdout end the process as it ends `cat` or `grep` (SIGPIPE's default
/// action), instead of Rust's ignored SIGPIPE, which turns the failed write into a panic
/// with a backtrace (`opsconsole status --json | head -1`). Only for commands that print
/// and exit: the console, the daemons and anything that talks to a child process keep
/// SIGPIPE ignored and see EPIPE as an error.
fn sigpipe_ends_printing(command: Option<&Command>) {
    if command.is_some_and(Command::only_prints) {
        // SAFETY: signal() with SIG_DFL installs no handler, so nothing runs in signal
        // context; it is called before this process starts any thread of its own.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    sigpipe_ends_printing(cli.command.as_ref());
    match &cli.command {
        None => {
            let (ws, cfg) = load_workspace(&cli)?;
            tui::check_terminal()?;
            logging::init(cli.log_level.as_deref());
            tracing::info!(workspace = %ws.root.display(), "console starting");
            console(ws, cfg, false, cli.run_options())?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Demo { keep, dir, speed }) => {
            tui::check_terminal()?;
            logging::init(cli.log_level.as_deref());
            let opts = crate::demo::DemoOptions { keep: *keep, dir: dir.clone(), speed: *speed };
            demo::run(opts, cli.run_options())?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Exporter { listen }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            logging::init(cli.log_level.as_deref());
            Ok(metrics::run_exporter(ws, cfg, Some(listen))?)
        }
        Some(Command::Status { json, openmetrics, textfile }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            let started = std::time::Instant::now();
            let report = status::collect(&ws, &cfg);
            if *openmetrics || textfile.is_some() {
                let took = started.elapsed();
                metrics::status(&ws, &cfg, &report, took, *openmetrics, textfile.as_deref())?;
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if !*openmetrics && textfile.is_none() {
                print!("{}", report.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Fit(args)) => {
            let (_, cfg) = load_workspace(&cli)?;
            let est = match crate::gpu::fit::run(&args.request(), &cfg.gpu.tiers) {
                Ok(est) if args.json => {
                    println!("{}", serde_json::to_string_pretty(&est)?);
                    est
                }
                Ok(est) => {
                    print!("{}", crate::gpu::fit::to_text(&est));
                    est
                }
                Err(e) => {
                    say!("error: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            Ok(ExitCode::from(crate::gpu::fit::exit_code(&est)))
        }
        Some(Command::Log { follow, lines, list, json, path }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            let args = log::LogArgs { list: *list, follow: *follow, lines: *lines, json: *json, path: path.clone() };
            Ok(ExitCode::from(log::run(&ws.root, &cfg.log, &args)?))
        }
        Some(Command::Prune { dry_run, yes, json, allow_unsynced }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            let opts =
                prune::PruneOptions { dry_run: *dry_run, yes: *yes, json: *json, allow_unsynced: *allow_unsynced };
            prune::run_cli(&ws.root, &cfg, opts)
        }
        Some(Command::Init) => {
            let dir = std::env::current_dir()?;
            match config::write_default(&dir) {
                Ok(p) => {
                    println!("wrote {}", p.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    say!("error: {} already exists; not overwriting it", dir.join(config::CONFIG_FILE).display());
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e).wrap_err("writing opsconsole.toml"),
            }
        }
        Some(Command::Sync { install_service, uninstall_service, .. }) if *install_service || *uninstall_service => {
            let (ws, _cfg) = load_workspace(&cli)?;
            let env = crate::sync::service::ServiceEnv::from_env()?;
            let report = if *install_service {
                let exe = std::env::current_exe().wrap_err("finding the opsconsole binary")?;
                let exe = exe.canonicalize().unwrap_or(exe);
                let workspace = ws.root.canonicalize().unwrap_or_else(|_| ws.root.clone());
                let config = match &cli.config {
                    Some(_) => ws.config_path.clone(),
                    None => None,
                };
                crate::sync::service::install(&env, &crate::sync::service::DaemonCommand { exe, workspace, config })
            } else {
                let workspace = ws.root.canonicalize().unwrap_or_else(|_| ws.root.clone());
                crate::sync::service::uninstall(&env, &workspace)
            };
            for l in &report.lines {
                println!("{l}");
            }
            Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Some(Command::Sync { daemon, verify, metrics_listen, .. }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            logging::init(cli.log_level.as_deref());
            if let Some(addr) = metrics_listen {
                match metrics::serve_beside(&ws, &cfg, addr) {
                    Ok(bound) => say!("serving metrics on http://{bound}/metrics"),
                    Err(e) => {
                        say!("error: {e}");
                        return Ok(ExitCode::from(2));
                    }
                }
            }
            let code = sync::cli_run(&ws.root, &cfg, *daemon, *verify);
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
        Some(Command::Remote { command: RemoteCommand::Check { name, init, json } }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            logging::init(cli.log_level.as_deref());
            let code = remote::cli_run(&ws.root, &cfg, name.as_deref(), *init, *json);
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
        Some(Command::ShutdownCheck { json }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            logging::init(cli.log_level.as_deref());
            match shutdown_check::cli_run(&ws, &cfg, *json) {
                Ok(code) => Ok(ExitCode::from(code)),
                Err(e) => {
                    say!("error: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Some(Command::SshConfig { host, ip, file, print }) => {
            // Runs on the laptop: no workspace, no config.
            Ok(ExitCode::from(ssh_config::cli_run(host, ip, file.as_deref(), *print)))
        }
        Some(Command::Bundle { experiment, no_upload, json }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            logging::init(cli.log_level.as_deref());
            let opts = crate::airlock::bundle::BundleOptions { experiment: experiment.clone(), upload: !*no_upload };
            Ok(ExitCode::from(airlock::bundle(&ws.root, &cfg, &opts, *json)))
        }
        Some(Command::Import { experiment, from, json }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            logging::init(cli.log_level.as_deref());
            let opts = crate::airlock::import::ImportOptions { experiment: experiment.clone(), from: from.clone() };
            Ok(ExitCode::from(airlock::import(&ws.root, &cfg, &opts, *json)))
        }
        Some(Command::Resume { experiment, print_path, json, run }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            logging::init(cli.log_level.as_deref());
            let opts = crate::airlock::resume::ResumeOptions { experiment: experiment.clone() };
            let flags = crate::airlock::resume::ResumeFlags { print_path: *print_path, json: *json, run: *run };
            Ok(ExitCode::from(airlock::resume(&ws.root, &cfg, &opts, flags)))
        }
        Some(Command::Freeze { json }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            Ok(ExitCode::from(airlock::freeze(&ws.root, &cfg, *json)))
        }
        Some(Command::Estimate { experiment, duration, json }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            Ok(ExitCode::from(estimate::cli_run(&ws, &cfg, experiment, duration.as_deref(), *json)))
        }
        Some(Command::Completions { shell }) => {
            completions::ok_if_pipe_closed(completions::completions(*shell, &mut std::io::stdout().lock()))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man { dir }) => {
            match dir {
                None => completions::ok_if_pipe_closed(completions::man(&mut std::io::stdout().lock()))?,
                Some(dir) => {
                    let pages = completions::man_pages(dir)
                        .wrap_err_with(|| format!("writing man pages into {}", dir.display()))?;
                    for p in pages {
                        println!("{}", p.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Config) => {
            let (ws, cfg) = load_workspace(&cli)?;
            match &ws.config_path {
                Some(p) => println!("# resolved config: {} over the built-in defaults", p.display()),
                None => println!("# resolved config: built-in defaults (no opsconsole.toml found)"),
            }
            println!("# workspace: {}", ws.root.display());
            print!("{}", cfg.to_toml());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::DemoTrainer { dir, speed, parent }) => {
            crate::demo::run_trainer(dir, *speed, *parent)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs the console on a workspace (the default command, and the demo's screen).
pub fn console(ws: Workspace, cfg: Config, demo: bool, mut opts: tui::RunOptions) -> Result<()> {
    fewer_malloc_arenas();
    // `[metrics] listen`: the exporter on its own thread, fed by the console's samples; a
    // bad address or a port in use stops the console before it takes the terminal.
    if !cfg.metrics.listen.is_empty() {
        let listener =
            metrics::listen(&cfg.metrics.listen).map_err(|e| color_eyre::eyre::eyre!("[metrics] listen: {e}"))?;
        tracing::info!(addr = ?listener.local_addr(), "console serving metrics");
        opts.metrics = Some(crate::metrics::feed::start(&ws, &cfg, listener)?);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // The futures are boxed where they are awaited: a future's whole size is reserved (and
    // every page of it touched) in the stack frame that creates it, and unboxed they nest,
    // the console's 37 KB inside this one (docs/performance.md, main thread's stack).
    let result = rt.block_on(Box::pin(async move {
        let mut collectors = Collectors::new(&ws, &cfg);
        if demo {
            collectors.gpu_demo = Some(crate::demo::trainer_pid_file(&ws.root));
        }
        // The first frame is a full one: the host, the disk history, the first disk sample
        // and the log's last screen (read backwards from the end: fast on any size) are
        // read before drawing, on a blocking thread like every other read.
        let (root, log_cfg, paths, thresholds) =
            (ws.root.clone(), cfg.log.clone(), collectors.disk_paths.clone(), collectors.thresholds);
        let (host, history, disks, log) = tokio::task::spawn_blocking(move || {
            let now = SystemTime::now();
            (
                HostInfo::current(),
                crate::disk::history::load(&root, now),
                crate::disk::sample(&paths, thresholds),
                crate::logtail::collector::first_sample(&root, &log_cfg, 200),
            )
        })
        .await?;
        let mut state = Box::new(AppState::new(cfg, host, ws.root.clone(), SystemTime::now()));
        state.demo = demo;
        state.prune.seed_history(history);
        crate::app::update(&mut state, crate::app::Msg::Disk(disks));
        if let Some(log) = log {
            crate::app::update(&mut state, crate::app::Msg::Log(Box::new(log)));
        }
        Box::pin(tui::run(state, collectors, opts)).await
    }));
    // Blocking work still running (a hash, a scan) must not keep the console from leaving.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

/// glibc gives every thread that allocates a malloc arena of its own (up to eight per
/// core), and an arena keeps the memory it once held. The console's threads (the blocking
/// pool's readers, the log follower, the watcher, the input reader) allocate little and
/// seldom at the same time: two arenas serve them, and the console's resident memory is
/// about 1.3 MiB smaller (docs/performance.md). Called before any thread starts.
/// A `MALLOC_ARENA_MAX` (or `glibc.malloc.arena_max` in `GLIBC_TUNABLES`) set by the
/// user wins.
fn fewer_malloc_arenas() {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() || tunables.contains("arena_max") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator; M_ARENA_MAX takes a count.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
