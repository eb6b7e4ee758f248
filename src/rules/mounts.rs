//! The mount table, read from `/proc/PID/mountinfo` (device numbers, so an open file is
//! matched to its filesystem by `st_dev`, whatever path it was opened by) or from a
//! `/proc/mounts`-shaped file (no device numbers: matched by the longest mount point).
//! Tests pass a fixture file; the reader is bounded ([`MAX_MOUNTS_BYTES`]).

use std::io::Read;
use std::path::{Path, PathBuf};

/// The most of a mount table read (a machine with thousands of mounts still fits).
pub const MAX_MOUNTS_BYTES: u64 = 4 << 20;

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub point: PathBuf,
    pub fs_type: String,
    pub source: String,
    /// `(major, minor)` from mountinfo; `None` from a `/proc/mounts`-shaped table.
    pub dev: Option<(u32, u32)>,
}

/// Filesystem types that are network (or host-share) filesystems, besides `fuse.*`.
const NETWORK: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "9p",
    "drvfs",
    "ceph",
    "glusterfs",
    "lustre",
    "beegfs",
    "gpfs",
    "afs",
    "davfs",
    "fuse",
    "sshfs",
    "ncpfs",
    "vboxsf",
];

/// `fuse.*` types that are local: NTFS/exFAT drivers, container helpers, desktop portals.
const LOCAL_FUSE: &[&str] =
    &["fuseblk", "fuse.lxcfs", "fuse.portal", "fuse.gvfsd-fuse", "fuse.snapfuse", "fuse.squashfuse", "fusectl"];

/// Whether a filesystem type is a network or FUSE mount (`extra` adds types from config).
pub fn is_network(fs_type: &str, extra: &[String]) -> bool {
    let t = fs_type.to_ascii_lowercase();
    if extra.iter().any(|e| e.eq_ignore_ascii_case(&t)) {
        return true;
    }
    if LOCAL_FUSE.contains(&t.as_str()) {
        return false;
    }
    NETWORK.contains(&t.as_str()) || t.starts_with("fuse.") || t.starts_with("nfs")
}

/// The short name shown to people: `fuse.gcsfuse` -> `gcsfuse`.
pub fn kind_name(fs_type: &str) -> &str {
    fs_type.strip_prefix("fuse.").unwrap_or(fs_type)
}

/// Undo the octal escapes of mount tables (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a mount table: mountinfo lines (`36 35 98:0 /mnt1 /mnt2 rw … - ext3 /dev/root rw`)
/// or `/proc/mounts` lines (`/dev/sda1 / ext4 rw 0 0`), told apart line by line.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let Some(sep) = f.iter().position(|w| *w == "-")
                && sep >= 6
                && f.len() >= sep + 3
            {
                let (maj, min) = f[2].split_once(':')?;
                return Some(MountEntry {
                    point: PathBuf::from(unescape(f[4])),
                    fs_type: f[sep + 1].to_string(),
                    source: unescape(f[sep + 2]),
                    dev: Some((maj.parse().ok()?, min.parse().ok()?)),
                });
            }
            (f.len() >= 3 && f[1].starts_with('/')).then(|| MountEntry {
                point: PathBuf::from(unescape(f[1])),
                fs_type: f[2].to_string(),
                source: unescape(f[0]),
                dev: None,
            })
        })
        .collect()
}

/// Reads a mount table file (bounded).
pub fn read(path: &Path) -> std::io::Result<Vec<MountEntry>> {
    let mut text = String::new();
    std::fs::File::open(path)?.take(MAX_MOUNTS_BYTES).read_to_string(&mut text)?;
    Ok(parse(&text))
}

/// The mount table a process sees: its own mountinfo, else this process's.
pub fn for_process(proc_root: &Path, pid: Option<u32>) -> std::io::Result<Vec<MountEntry>> {
    if let Some(pid) = pid
        && let Ok(m) = read(&proc_root.join(pid.to_string()).join("mountinfo"))
        && !m.is_empty()
    {
        return Ok(m);
    }
    read(&proc_root.join("self").join("mountinfo")).or_else(|_| read(&proc_root.join("mounts")))
}

/// Linux's `major`/`minor` of a `st_dev`.
pub fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    (major as u32, minor as u32)
}

/// The mount holding a file: by device number when the table has them (the last mount
/// of that device under the longest matching point, else any with that device), else
/// by the longest mount point that is a prefix of `path`.
pub fn lookup<'a>(mounts: &'a [MountEntry], path: &Path, dev: Option<u64>) -> Option<&'a MountEntry> {
    let by_path = |cands: &mut dyn Iterator<Item = &'a MountEntry>| {
        cands.filter(|m| path.starts_with(&m.point)).max_by_key(|m| m.point.as_os_str().len())
    };
    if let Some(d) = dev.map(split_dev)
        && mounts.iter().any(|m| m.dev.is_some())
    {
        let same: Vec<&MountEntry> = mounts.iter().filter(|m| m.dev == Some(d)).collect();
        if !same.is_empty() {
            return by_path(&mut same.iter().copied()).or_else(|| same.last().copied());
        }
    }
    by_path(&mut mounts.iter())
}

/// The mount holding `path`, or its nearest existing ancestor (a folder not made yet).
pub fn mount_of<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    use std::os::unix::fs::MetadataExt;
    let mut p = path.to_path_buf();
    loop {
        if let Ok(meta) = std::fs::metadata(&p) {
            let canon = p.canonicalize().unwrap_or(p);
            return lookup(mounts, &canon, Some(meta.dev()));
        }
        if !p.pop() {
            return lookup(mounts, path, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_and_proc_mounts() {
        let text = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:45 / /mnt/gcs rw,nosuid,nodev,relatime shared:30 - fuse.gcsfuse my-bucket rw,user_id=0
41 22 0:46 / /mnt/with\\040space rw - nfs4 host:/export rw
drive /content/drive fuse.drive rw,nosuid 0 0
";
        let m = parse(text);
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].fs_type, "fuse.gcsfuse");
        assert_eq!(m[1].source, "my-bucket");
        assert_eq!(m[1].dev, Some((0, 45)));
        assert_eq!(m[2].point, PathBuf::from("/mnt/with space"));
        assert_eq!(m[3].point, PathBuf::from("/content/drive"));
        assert_eq!(m[3].dev, None);
    }

    #[test]
    fn network_kinds() {
        for t in ["nfs", "nfs4", "cifs", "fuse.gcsfuse", "fuse.rclone", "fuse.sshfs", "9p", "drvfs", "fuse.drive"] {
            assert!(is_network(t, &[]), "{t}");
        }
        for t in ["ext4", "xfs", "btrfs", "tmpfs", "overlay", "fuseblk", "fuse.lxcfs", "zfs"] {
            assert!(!is_network(t, &[]), "{t}");
        }
        assert!(is_network("weirdfs", &["WeirdFS".into()]));
        assert_eq!(kind_name("fuse.gcsfuse"), "gcsfuse");
        assert_eq!(kind_name("nfs4"), "nfs4");
    }

    #[test]
    fn lookup_by_device_then_by_path() {
        let m = parse(
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 22 0:45 / /mnt/gcs rw - fuse.gcsfuse b rw\n\
             41 22 8:1 /home /bind rw - ext4 /dev/sda1 rw\n",
        );
        // 0:45 as a st_dev.
        let dev = 45u64;
        assert_eq!(lookup(&m, Path::new("/elsewhere/x"), Some(dev)).unwrap().fs_type, "fuse.gcsfuse");
        // 8:1 as a st_dev: the longest matching point among its mounts.
        let sda = (8u64 << 8) | 1;
        assert_eq!(lookup(&m, Path::new("/bind/x"), Some(sda)).unwrap().point, PathBuf::from("/bind"));
        assert_eq!(split_dev(sda), (8, 1));
        // No device numbers: the longest prefix.
        let pm = parse("/dev/sda1 / ext4 rw 0 0\nb /mnt/gcs fuse.gcsfuse rw 0 0\n");
        assert_eq!(lookup(&pm, Path::new("/mnt/gcs/a/b"), Some(1)).unwrap().fs_type, "fuse.gcsfuse");
        assert_eq!(lookup(&pm, Path::new("/mnt/gcsx"), None).unwrap().fs_type, "ext4");
    }
}
