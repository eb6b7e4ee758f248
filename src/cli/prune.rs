//! `opsconsole prune`: the plan, a prompt, and the run, on the same code as the `p` screen.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use color_eyre::eyre::Result;

use crate::checkpoints::PruneProgress;
use crate::checkpoints::plan::{PlanAction, PrunePlan};
use crate::config::Config;
use crate::prune::{event_sink, exec_context, make_plan};
use crate::util;

/// Options of `opsconsole prune`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneOptions {
    pub dry_run: bool,
    pub yes: bool,
    pub json: bool,
    pub allow_unsynced: bool,
}

fn plan_text(plan: &PrunePlan, workspace: &Path) -> String {
    let mut out = String::new();
    // File names are the world's: control characters in them are shown, never obeyed.
    let rel = |p: &Path| util::printable(&p.strip_prefix(workspace).unwrap_or(p).display().to_string()).into_owned();
    for i in &plan.items {
        let action = match i.action {
            PlanAction::Keep => "keep",
            PlanAction::Delete if i.unconfirmed_override => "DELETE",
            PlanAction::Delete => "delete",
        };
        out.push_str(&format!(
            "  {action:<7} {:<17} {:>9}  {}\n",
            i.reason.as_str(),
            util::bytes(i.bytes),
            rel(&i.path)
        ));
        if let Some(note) = &i.note {
            out.push_str(&format!("          ↳ {note}\n"));
        }
    }
    if plan.items.is_empty() {
        out.push_str("  no checkpoints found in the configured roots\n");
    }
    out.push_str(&format!(
        "delete {} of {} items, free {}",
        plan.delete_count,
        plan.items.len(),
        util::bytes(plan.bytes_to_free)
    ));
    if let Some(fill) = plan.fill_text(workspace, "->") {
        out.push_str(&format!("; {fill}"));
    }
    out.push('\n');
    if plan.unconfirmed_deletes > 0 {
        out.push_str(&format!(
            "{} of them are NOT confirmed on another level (DELETE): this is the only copy\n",
            plan.unconfirmed_deletes
        ));
    } else if plan.kept_unconfirmed > 0 {
        out.push_str(&format!(
            "{} kept only because they are not confirmed elsewhere; --allow-unsynced deletes them too (logged)\n",
            plan.kept_unconfirmed
        ));
    }
    out
}

fn ask(prompt: &str) -> Option<String> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim().to_string())
}

/// `opsconsole prune [--dry-run] [--yes] [--json] [--allow-unsynced]`.
pub fn run_cli(workspace: &Path, cfg: &Config, opts: PruneOptions) -> Result<ExitCode> {
    let plan = make_plan(workspace, cfg, opts.allow_unsynced, SystemTime::now());
    if !opts.json {
        print!("prune plan for {}\n{}", util::printable(&workspace.display().to_string()), plan_text(&plan, workspace));
    }
    let mut run = !opts.dry_run && plan.delete_count > 0;
    if run && !opts.yes {
        if std::io::stdin().is_terminal() && !opts.json {
            let answer = if plan.unconfirmed_deletes > 0 {
                ask(&format!(
                    "{} unconfirmed items would be deleted. Type `delete` to go ahead: ",
                    plan.unconfirmed_deletes
                ))
                .is_some_and(|a| a == "delete")
            } else {
                ask(&format!("Delete {} items? [y/N] ", plan.delete_count))
                    .is_some_and(|a| a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes"))
            };
            run = answer;
        } else {
            run = false;
            if !opts.json {
                println!("not deleting: give --yes to run the plan without asking");
            }
        }
    }
    let report = if run {
        let ctx = exec_context(workspace, cfg);
        let mut sink = event_sink(workspace);
        let quiet = opts.json;
        let rep = crate::checkpoints::run_plan(&plan, &ctx, sink.as_mut(), &AtomicBool::new(false), &mut |p| {
            if let (false, PruneProgress::Progress { done, total, item, .. }) = (quiet, &p) {
                let what = match &item.outcome {
                    crate::checkpoints::ItemOutcome::Deleted => "deleted".to_string(),
                    crate::checkpoints::ItemOutcome::Skipped(w) => format!("skipped ({w})"),
                    crate::checkpoints::ItemOutcome::Failed(e) => format!("FAILED ({e})"),
                };
                say!("[{done}/{total}] {}", util::printable(&format!("{what}: {}", item.path.display())));
            }
        });
        Some(rep)
    } else {
        if opts.dry_run && !opts.json {
            println!("dry run: nothing deleted");
        }
        None
    };
    if opts.json {
        let mut v = serde_json::to_value(&plan)?;
        if let (Some(obj), Some(r)) = (v.as_object_mut(), &report) {
            obj.insert("report".into(), serde_json::to_value(r)?);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if let Some(r) = &report {
        println!("{}", util::printable(&r.summary()));
    }
    Ok(if report.as_ref().is_some_and(|r| r.failed > 0) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
