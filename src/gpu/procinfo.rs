//! What the OS knows about a process: command line, owner, start time, working folder.
//! Read from /proc (Linux). Everything is optional: a process may end between NVML listing
//! it and us reading /proc, or live in another PID namespace.

use std::collections::HashMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};

/// Facts about one process read from /proc.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcInfo {
    pub command: Option<String>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub start_ticks: Option<u64>,
    pub start_time_unix_s: Option<u64>,
    pub cwd: Option<PathBuf>,
}

/// Reads /proc (or another root, for tests) and remembers what does not change for the
/// life of a process, keyed by pid and start time so a reused pid is read afresh.
#[derive(Debug)]
pub struct ProcReader {
    root: PathBuf,
    boot_time_s: Option<u64>,
    ticks_per_s: u64,
    cache: HashMap<u32, ProcInfo>,
    users: HashMap<u32, Option<String>>,
}

impl Default for ProcReader {
    fn default() -> Self {
        Self::new("/proc")
    }
}

impl ProcReader {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let boot_time_s = std::fs::read_to_string(root.join("stat")).ok().and_then(|s| parse_btime(&s));
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Self {
            root,
            boot_time_s,
            ticks_per_s: if ticks > 0 { ticks as u64 } else { 100 },
            cache: HashMap::new(),
            users: HashMap::new(),
        }
    }

    /// Facts about `pid`; cached while its start time stays the same.
    pub fn info(&mut self, pid: u32) -> ProcInfo {
        let dir = self.root.join(pid.to_string());
        let start_ticks = read_start_ticks(&dir);
        if let Some(cached) = self.cache.get(&pid)
            && start_ticks.is_some()
            && cached.start_ticks == start_ticks
        {
            return cached.clone();
        }
        let command = std::fs::read(dir.join("cmdline")).ok().and_then(|b| join_cmdline(&b));
        let uid = std::fs::read_to_string(dir.join("status")).ok().and_then(|s| parse_real_uid(&s));
        let user = uid.and_then(|u| self.user_name(u));
        let start_time_unix_s = match (start_ticks, self.boot_time_s) {
            (Some(t), Some(boot)) => Some(boot + t / self.ticks_per_s),
            _ => None,
        };
        let cwd = std::fs::read_link(dir.join("cwd")).ok();
        let info = ProcInfo { command, uid, user, start_ticks, start_time_unix_s, cwd };
        // A process caught in the middle of exec has no command line yet: read it again.
        if start_ticks.is_some() && info.command.is_some() {
            self.cache.insert(pid, info.clone());
        }
        info
    }

    /// Forget processes not in `alive`, so the cache stays as small as the process list.
    pub fn retain(&mut self, alive: &[u32]) {
        self.cache.retain(|pid, _| alive.contains(pid));
    }

    fn user_name(&mut self, uid: u32) -> Option<String> {
        self.users.entry(uid).or_insert_with(|| lookup_user(uid)).clone()
    }
}

/// `btime` from /proc/stat: boot time in seconds since the epoch.
pub(crate) fn parse_btime(stat: &str) -> Option<u64> {
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// Field 22 (starttime) of /proc/PID/stat. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after the last ')'.
pub(crate) fn parse_start_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub(crate) fn read_start_ticks(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join("stat")).ok().and_then(|s| parse_start_ticks(&s))
}

/// The real uid from /proc/PID/status.
pub(crate) fn parse_real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// /proc/PID/cmdline is NUL-separated; empty for kernel threads and zombies.
pub(crate) fn join_cmdline(bytes: &[u8]) -> Option<String> {
    let words: Vec<String> =
        bytes.split(|b| *b == 0).filter(|w| !w.is_empty()).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
    if words.is_empty() { None } else { Some(words.join(" ")) }
}

/// User name for a uid from the system's user database.
pub fn lookup_user(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: a zeroed passwd is a valid out-parameter; buf outlives the call and its
    // length is passed; the result pointer is only read when getpwuid_r reports success.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        Some(CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ticks_survive_odd_command_names() {
        let stat = "4121 (python (x) y) S 1 4121 4121 0 -1 4194560 1 0 0 0 5 3 0 0 20 0 7 0 \
                    987654 1000 10 18446744073709551615";
        assert_eq!(parse_start_ticks(stat), Some(987654));
        assert_eq!(parse_start_ticks("garbage"), None);
    }

    #[test]
    fn cmdline_words_are_joined() {
        assert_eq!(join_cmdline(b"python\0train.py\0--lr\x003e-4\0"), Some("python train.py --lr 3e-4".into()));
        assert_eq!(join_cmdline(b""), None);
    }

    #[test]
    fn status_and_btime_parse() {
        assert_eq!(parse_real_uid("Name:\tx\nUid:\t1000\t1001\t1000\t1000\n"), Some(1000));
        assert_eq!(parse_btime("cpu 1 2 3\nbtime 1764300000\nprocesses 9\n"), Some(1_764_300_000));
    }

    #[test]
    fn reads_this_very_process() {
        let mut r = ProcReader::default();
        let me = r.info(std::process::id());
        let cmd = me.command.expect("own command line");
        assert!(!cmd.is_empty());
        // SAFETY: getuid has no preconditions.
        assert_eq!(me.uid, Some(unsafe { libc::getuid() }));
        assert_eq!(me.cwd, std::env::current_dir().ok());
        let started = me.start_time_unix_s.expect("start time");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        assert!(started <= now + 1, "started {started} after now {now}");
        // A pid that cannot exist gives nothing, and is not cached.
        let gone = r.info(u32::MAX - 1);
        assert_eq!(gone, ProcInfo::default());
    }
}
