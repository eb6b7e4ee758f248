//! `/proc/PID/stat` read the way the kernel writes it: the command name in brackets may
//! hold spaces and `)`, so fields are counted from after its last `) `.
#![allow(dead_code)]

/// The fields after the command name of process `pid` (a number, or `self`): `state` is
/// the first, `session` the fourth. `None` when the process is gone.
pub fn fields(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}
