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
        let ticks = rustix::param::clock_ticks_per_second();
        Self {
            root,
            boot_time_s,
            ticks_per_s: if ticks > 0 { ticks } else { 100 },
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

/// /proc/PID/cmdline is NUL-separated; empty for kernel threads and zombies. The words
/// are joined by spaces, a word that holds a space or a quote put in single quotes (as a
/// shell would need it), so [`split_command`] gives the words back.
pub(crate) fn join_cmdline(bytes: &[u8]) -> Option<String> {
    let words: Vec<String> = bytes
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| quote_word(&String::from_utf8_lossy(w)).into_owned())
        .collect();
    if words.is_empty() { None } else { Some(words.join(" ")) }
}

/// `word`, or `'word'` when it holds whitespace, a quote or a backslash (a `'` inside
/// becomes `'\''`).
pub fn quote_word(word: &str) -> std::borrow::Cow<'_, str> {
    if !word.is_empty() && !word.chars().any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '\\')) {
        return word.into();
    }
    format!("'{}'", word.replace('\'', "'\\''")).into()
}

/// The words of a command line as [`join_cmdline`] writes it (or as a shell reads it:
/// single quotes, double quotes and backslashes). An unclosed quote runs to the end.
pub fn split_command(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// How a process is named in a list: the program and its script first, as a user calls
/// them (`python train.py --lr 3e-4`, `opsconsole`), and the folders they were found in
/// after (`/home/me/proj/.venv/bin/`), so a cut line keeps what the process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramName {
    /// The program's file name, then its arguments, the script by its file name.
    pub head: String,
    /// The folders taken off the program and the script, in that order, each ending in `/`.
    pub dirs: Vec<String>,
    /// The program and its script (or `-m` module) only: `python train.py`, a name for a
    /// question ("stop python train.py?").
    pub short: String,
}

/// File name endings of scripts an interpreter or a launcher runs.
const SCRIPT_ENDINGS: &[&str] =
    &[".py", ".sh", ".bash", ".pl", ".rb", ".js", ".mjs", ".R", ".r", ".jl", ".lua", ".ipynb"];

/// [`ProgramName`] of a command line (as [`join_cmdline`] writes it). The first word loses
/// its folder; so does the script: the first later word that names a script file
/// (`/home/me/proj/train.py`, `scripts/run.sh`). Other arguments are kept as they are.
/// `None` for an empty command line.
pub fn program_name(cmd: &str) -> Option<ProgramName> {
    let words = split_command(cmd);
    let (program, args) = words.split_first()?;
    let mut dirs = Vec::new();
    let mut head = vec![take_dir(program, &mut dirs)];
    let mut short = vec![head[0].clone()];
    let mut script_seen = false;
    let mut module_next = false;
    for a in args {
        let is_script =
            !script_seen && !a.starts_with('-') && SCRIPT_ENDINGS.iter().any(|e| a.len() > e.len() && a.ends_with(e));
        if is_script {
            script_seen = true;
            let name = take_dir(a, &mut dirs);
            short.push(name.clone());
            head.push(name);
        } else {
            if module_next && !script_seen {
                script_seen = true;
                short.extend(["-m".to_string(), a.clone()]);
            }
            head.push(a.clone());
        }
        module_next = a == "-m" && !script_seen;
    }
    let join = |w: &[String]| w.iter().map(|w| quote_word(w).into_owned()).collect::<Vec<_>>().join(" ");
    Some(ProgramName { head: join(&head), dirs, short: join(&short) })
}

/// The file name of `path`; its folder (with a trailing `/`) pushed onto `dirs`.
fn take_dir(path: &str, dirs: &mut Vec<String>) -> String {
    match path.rfind('/') {
        Some(i) if i + 1 < path.len() => {
            dirs.push(path[..=i].to_string());
            path[i + 1..].to_string()
        }
        _ => path.to_string(),
    }
}

/// User name for a uid from the system's user database. Raw libc: the user database goes
/// through NSS (`/etc/passwd`, LDAP, sssd), which rustix does not reach.
pub fn lookup_user(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16384];
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
    fn words_with_spaces_and_quotes_come_back() {
        let raw = b"/home/me/My Projects/.venv/bin/python\0train.py\0--name\0it's \"x\"\0\0--lr\x003e-4\0";
        let cmd = join_cmdline(raw).expect("words");
        assert_eq!(cmd, r#"'/home/me/My Projects/.venv/bin/python' train.py --name 'it'\''s "x"' --lr 3e-4"#);
        assert_eq!(
            split_command(&cmd),
            ["/home/me/My Projects/.venv/bin/python", "train.py", "--name", "it's \"x\"", "--lr", "3e-4"]
        );
        assert_eq!(split_command(r#"a "b c" d\ e 'f"#), ["a", "b c", "d e", "f"]);
        assert_eq!(split_command("  "), Vec::<String>::new());
    }

    #[test]
    fn program_and_script_first_folders_last() {
        let n = |c: &str| program_name(c).expect("a name");
        let p = n("/home/me/proj/.venv/bin/python train.py --lr 3e-4");
        assert_eq!(
            (p.head.as_str(), p.dirs.as_slice(), p.short.as_str()),
            ("python train.py --lr 3e-4", &["/home/me/proj/.venv/bin/".to_string()][..], "python train.py")
        );
        let p = n("/home/me/proj/target/release/opsconsole");
        assert_eq!(
            (p.head.as_str(), p.dirs.as_slice(), p.short.as_str()),
            ("opsconsole", &["/home/me/proj/target/release/".to_string()][..], "opsconsole")
        );
        let p = n("/usr/bin/python3 -u /home/me/proj/scripts/train.py --data /data/x.py");
        assert_eq!(p.head, "python3 -u train.py --data /data/x.py");
        assert_eq!(p.dirs, ["/usr/bin/", "/home/me/proj/scripts/"]);
        assert_eq!(p.short, "python3 train.py");
        let p = n("torchrun --nproc_per_node 8 recipes/finetune.py --cfg a.yaml");
        assert_eq!(
            (p.head.as_str(), p.short.as_str()),
            ("torchrun --nproc_per_node 8 finetune.py --cfg a.yaml", "torchrun finetune.py")
        );
        assert_eq!(p.dirs, ["recipes/"]);
        let p = n("python -m torch.distributed.run --nproc_per_node 2 train.py");
        assert_eq!(p.short, "python -m torch.distributed.run");
        assert_eq!(p.head, "python -m torch.distributed.run --nproc_per_node 2 train.py");
        let p = n("'/home/me/My Projects/bin/python' 'my train.py'");
        assert_eq!((p.head.as_str(), p.short.as_str()), ("python 'my train.py'", "python 'my train.py'"));
        assert_eq!(p.dirs, ["/home/me/My Projects/bin/"]);
        // A folder alone, or a bare program, keeps its word.
        assert_eq!(n("./").head, "./");
        assert_eq!(n("python").dirs, Vec::<String>::new());
        assert_eq!(program_name(""), None);
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
        assert_eq!(me.uid, Some(rustix::process::getuid().as_raw()));
        assert_eq!(me.cwd, std::env::current_dir().ok());
        let started = me.start_time_unix_s.expect("start time");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        assert!(started <= now + 1, "started {started} after now {now}");
        // A pid that cannot exist gives nothing, and is not cached.
        let gone = r.info(u32::MAX - 1);
        assert_eq!(gone, ProcInfo::default());
    }
}
