//! The command line. Each subcommand calls the same domain code the console's keys call.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand};
use color_eyre::eyre::{Result, WrapErr};

use crate::app::AppState;
use crate::collectors::Collectors;
use crate::config::{self, Config, ConfigError};
use crate::workspace::{HostInfo, Workspace};
use crate::{demo, logging, status, tui};

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
        #[arg(long)]
        json: bool,
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
    /// Print the resolved configuration and where it came from.
    Config,
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

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let _ = color_eyre::install();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(ce) = e.downcast_ref::<ConfigError>() {
                eprintln!("error: {ce}");
                return ExitCode::from(2);
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Finds the workspace and loads its config, as every subcommand does.
pub fn load_workspace(cli: &Cli) -> Result<(Workspace, Config)> {
    let ws = match (&cli.config, &cli.workspace) {
        (Some(cfg), _) => {
            let cfg = cfg.canonicalize().wrap_err_with(|| format!("config file {}", cfg.display()))?;
            let root = cfg.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
            Workspace { root, config_path: Some(cfg) }
        }
        (None, Some(dir)) => Workspace::at(dir),
        (None, None) => Workspace::discover(&std::env::current_dir()?),
    };
    let (cfg, _) = config::load(ws.config_path.as_deref())?;
    Ok((ws, cfg))
}

fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        None => {
            let (ws, cfg) = load_workspace(&cli)?;
            logging::init(cli.log_level.as_deref());
            tracing::info!(workspace = %ws.root.display(), "console starting");
            console(ws, cfg, false, cli.exit_after_first_frame)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Demo { keep, dir, speed }) => {
            logging::init(cli.log_level.as_deref());
            let opts = demo::DemoOptions { keep: *keep, dir: dir.clone(), speed: *speed };
            demo::run(opts, cli.exit_after_first_frame)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Status { json }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            let report = status::collect(&ws, &cfg);
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Prune { dry_run, yes, json, allow_unsynced }) => {
            let (ws, cfg) = load_workspace(&cli)?;
            let opts = crate::prune::PruneOptions {
                dry_run: *dry_run,
                yes: *yes,
                json: *json,
                allow_unsynced: *allow_unsynced,
            };
            crate::prune::run_cli(&ws.root, &cfg, opts)
        }
        Some(Command::Init) => {
            let dir = std::env::current_dir()?;
            match config::write_default(&dir) {
                Ok(p) => {
                    println!("wrote {}", p.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    eprintln!("error: {} already exists; not overwriting it", dir.join(config::CONFIG_FILE).display());
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e).wrap_err("writing opsconsole.toml"),
            }
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
            demo::run_trainer(dir, *speed, *parent)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs the console on a workspace (the default command, and the demo's screen).
pub fn console(ws: Workspace, cfg: Config, demo: bool, exit_after_first_frame: bool) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let collectors = Collectors::new(&ws, &cfg);
        let mut state = AppState::new(cfg, HostInfo::current(), ws.root.clone(), SystemTime::now());
        state.demo = demo;
        crate::prune::seed_history(&mut state);
        // The first frame is a full one: take the first disk sample before drawing.
        let first = crate::disk::sample(&collectors.disk_paths, collectors.thresholds);
        crate::app::update(&mut state, crate::app::Msg::Disk(first));
        tui::run(state, collectors, tui::RunOptions { exit_after_first_frame }).await
    })
}
