//! A process holding a file open for writing, and a mount undone on drop: the tests that
//! check writers are seen from outside (bind mounts, mount namespaces, filesystems below
//! a root).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A process holding `path` open for writing on fd 3, started by `wrapper` (a command
/// prefix such as `unshare --mount`) running `script` first; ready when returned.
pub struct Holder(pub Child);

impl Holder {
    pub fn start(wrapper: &[&str], script: &str, path: &Path) -> Self {
        let (prog, args) = wrapper.split_first().map_or(("sh", &[][..]), |(p, a)| (*p, a));
        let mut cmd = Command::new(prog);
        cmd.args(args);
        if prog != "sh" {
            cmd.arg("sh");
        }
        let mut child = cmd
            .arg("-c")
            .arg(format!("{script}\nexec 3>>\"$0\" && echo ready && exec sleep 60"))
            .arg(path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn holder");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "ready", "the holder did not start");
        Holder(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lazily unmounts its path when dropped.
pub struct Unmount(pub PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
