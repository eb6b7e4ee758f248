//! `opsconsole estimate EXPERIMENT [DURATION] [--json]`: the rule time estimates
//! (docs/rules.md) from the command line.

use std::time::SystemTime;

use crate::config::Config;
use crate::rules::RunFacts;
use crate::rules::estimate;

/// `opsconsole estimate EXPERIMENT [DURATION]`: records the estimate, or prints it and
/// the rule's verdict. Exit 0, 1 on a bad duration or experiment, or a write failure.
pub fn cli_run(
    ws: &crate::workspace::Workspace,
    cfg: &Config,
    experiment: &str,
    duration: Option<&str>,
    json: bool,
) -> u8 {
    let exp = match crate::airlock::experiment::resolve(&ws.root, &cfg.paths.experiments, Some(experiment)) {
        Ok(e) => e,
        Err(why) => {
            say!("error: {why}");
            return 1;
        }
    };
    if let Some(text) = duration {
        let Some(d) = estimate::parse_duration(text) else {
            say!("error: {text:?} is not a duration: write e.g. 6h, 90m, 1h30m, \"6 hours\" or 2d");
            return 1;
        };
        if let Err(e) = estimate::record(&ws.root, &exp.name, d, text.trim(), SystemTime::now()) {
            say!("error: recording the estimate in {}: {e}", estimate::ESTIMATES_FILE);
            return 1;
        }
    }
    let run = RunFacts { experiment: Some(exp.name.clone()), ..Default::default() };
    let mut facts = crate::rules::find_run(&ws.root, cfg, None, &crate::rules::Probe::default());
    if facts.experiment.as_deref() != Some(exp.name.as_str()) {
        facts = run;
    }
    let rule = estimate::check(&ws.root, cfg, &facts, SystemTime::now());
    if json {
        println!("{}", serde_json::to_string_pretty(&rule).unwrap_or_default());
    } else {
        if duration.is_some() {
            println!("recorded: {} training {}", exp.name, estimate::fmt(rule.estimate_s.unwrap_or(0)));
        }
        println!("{}", rule.verdict.message);
    }
    0
}
