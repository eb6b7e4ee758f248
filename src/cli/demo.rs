//! `opsconsole demo`: a throwaway workspace (`crate::demo`), its simulated trainer, and
//! the console on it.

use std::fs;

use color_eyre::eyre::{Result, WrapErr};

use crate::config;
use crate::demo::{DemoOptions, create_workspace, remotes_dir, spawn_trainer, stop_trainer, trainer_pid_file};
use crate::workspace::Workspace;

/// Runs the demo: workspace, trainer, console; cleans up unless `keep`.
pub fn run(opts: DemoOptions, run_opts: crate::tui::RunOptions) -> Result<()> {
    let root = match &opts.dir {
        Some(d) => {
            fs::create_dir_all(d).wrap_err_with(|| format!("creating {}", d.display()))?;
            d.canonicalize()?
        }
        None => tempfile::Builder::new().prefix("opsconsole-demo-").tempdir()?.keep(),
    };
    create_workspace(&root).wrap_err("creating the demo workspace")?;
    tracing::info!(workspace = %root.display(), "demo workspace created");
    let mut trainer = spawn_trainer(&root, opts.speed)?;
    // The demo GPU lists the trainer as its compute process.
    let pid_file = trainer_pid_file(&root);
    if let Some(dir) = pid_file.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(&pid_file, trainer.id().to_string())?;
    let ws = Workspace::at(&root);
    let (cfg, _) = config::load(ws.config_path.as_deref())?;
    let result = crate::cli::console(ws, cfg, true, run_opts);
    stop_trainer(&mut trainer);
    if opts.keep || opts.dir.is_some() {
        println!("demo workspace kept at {} (its remotes at {})", root.display(), remotes_dir(&root).display());
    } else {
        for dir in [root.clone(), remotes_dir(&root)] {
            if let Err(e) = fs::remove_dir_all(&dir) {
                say!("could not remove the demo folder {}: {e}", dir.display());
            }
        }
    }
    result
}
