//! `opsconsole ssh-config HOST IP [--file PATH] [--print]`.

use std::net::IpAddr;
use std::path::Path;

use crate::checklist::sshconfig::{apply, default_path, valid_host};

/// `opsconsole ssh-config HOST IP [--file PATH] [--print]`: exit 0 done (or nothing to do),
/// 1 the file could not be read or written, 2 bad arguments.
pub fn cli_run(host: &str, ip: &str, file: Option<&Path>, print: bool) -> u8 {
    let ip: IpAddr = match ip.trim().trim_start_matches('[').trim_end_matches(']').parse() {
        Ok(a) => a,
        Err(_) => {
            say!("error: {ip:?} is not an IP address (like 34.123.45.67)");
            return 2;
        }
    };
    if let Err(e) = valid_host(host) {
        say!("error: {e}");
        return 2;
    }
    let path = match file.map(Path::to_path_buf).map(Ok).unwrap_or_else(default_path) {
        Ok(p) => p,
        Err(e) => {
            say!("error: {e}");
            return 2;
        }
    };
    match apply(&path, host, ip, print) {
        Ok(a) => {
            for w in &a.edit.warnings {
                say!("warning: {w}");
            }
            if print {
                print!("{}", a.diff);
                return 0;
            }
            match (&a.written, a.created) {
                (None, _) => println!("{}", a.edit.summary),
                (Some(p), true) => println!("{} (created {} with mode 0600)", a.edit.summary, p.display()),
                (Some(p), false) => println!(
                    "{} in {}; backup: {}",
                    a.edit.summary,
                    p.display(),
                    a.backup.as_ref().map(|b| b.display().to_string()).unwrap_or_default()
                ),
            }
            0
        }
        Err(e) => {
            say!("error: {e}");
            1
        }
    }
}
