//! `opsconsole completions SHELL` (clap_complete) and `opsconsole man [--dir DIR]`
//! (clap_mangen): generated from the same clap definition as the parser, so they never
//! fall behind a new subcommand or flag.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::Cli;

/// The completion script for `shell`, written to `out` (built in memory first:
/// clap_complete panics on a write error, and `| head` is one).
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = without_hidden(&Cli::command());
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "opsconsole", &mut script);
    out.write_all(&script)?;
    out.flush()
}

/// `cmd` without its hidden subcommands and flags (the demo's trainer, test-only flags):
/// clap_complete would offer them. Names, help, value names, possible values, defaults
/// and conflicts stay as the parser has them.
fn without_hidden(cmd: &clap::Command) -> clap::Command {
    let mut out = clap::Command::new(cmd.get_name().to_string());
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        out = out.version(version.to_string());
    }
    let kept: Vec<&clap::Arg> = cmd.get_arguments().filter(|a| !a.is_hide_set()).collect();
    for a in &kept {
        out = out.arg((*a).clone());
    }
    // A group naming a hidden argument (the one derive makes of every field) is left out.
    for g in cmd.get_groups().filter(|g| g.get_args().all(|id| kept.iter().any(|a| a.get_id() == id))) {
        out = out.group(g.clone());
    }
    for s in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out = out.subcommand(without_hidden(s));
    }
    out
}

/// A reader that went away (`| head`) is not an error for a printing command.
pub fn ok_if_pipe_closed(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// The man page opsconsole(1), in roff, written to `out`: the synopsis, every global
/// option and the subcommands with what each does.
pub fn man(out: &mut dyn Write) -> io::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    out.write_all(&page)?;
    out.flush()
}

/// opsconsole(1) and one page per visible subcommand (`opsconsole-status.1`,
/// `opsconsole-remote-check.1`, …) written into `dir` (which must exist); returns the
/// files written, sorted.
pub fn man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{} is not a folder", dir.display())));
    }
    fn walk(cmd: &clap::Command, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, dir, out)?;
        }
        out.push(clap_mangen::Man::new(cmd.clone()).generate_to(dir)?);
        Ok(())
    }
    // Built, so each subcommand's page is named after its full path (`opsconsole-status`).
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, dir, &mut out)?;
    out.sort();
    Ok(out)
}
