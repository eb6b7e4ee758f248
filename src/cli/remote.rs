//! `opsconsole remote check [NAME] [--init] [--json]`.

use std::path::Path;

use crate::sync::check::{run, to_text};

/// The command: exit 0 when every step of every checked remote passed, 1 when one failed,
/// 2 on a config error (an unknown NAME, no remote at all).
pub fn cli_run(workspace: &Path, cfg: &crate::config::Config, only: Option<&str>, init: bool, json: bool) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            say!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(workspace, cfg, only, init)) {
        Err(e) => {
            say!("error: {e}");
            2
        }
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(t) => println!("{t}"),
                    Err(e) => {
                        say!("error: {e}");
                        return 1;
                    }
                }
            } else {
                print!("{}", to_text(&report));
            }
            if report.ok { 0 } else { 1 }
        }
    }
}
