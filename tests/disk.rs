//! The disk collector on real filesystems: thresholds, deduplication, df semantics, and a
//! real tmpfs filled to 100% (as root; skipped with the reason elsewhere).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use opsconsole::disk::{self, Level, Mount, Thresholds};

const T: Thresholds = Thresholds { warn_pct: 80.0, critical_pct: 90.0, full_pct: 100.0 };

#[test]
fn levels_against_the_crash_loop_thresholds() {
    for (pct, want) in [
        (0.0, Level::Ok),
        (79.9, Level::Ok),
        (80.0, Level::Warn),
        (89.99, Level::Warn),
        (90.0, Level::Critical),
        (99.9, Level::Critical),
        (100.0, Level::Full),
    ] {
        assert_eq!(T.level(pct), want, "{pct}%");
    }
    let custom = Thresholds { warn_pct: 50.0, critical_pct: 60.0, full_pct: 95.0 };
    assert_eq!(custom.level(96.0), Level::Full);
}

#[test]
fn fill_is_df_use_percent() {
    assert_eq!(disk::fill_pct(0, 0), 0.0);
    assert_eq!(disk::fill_pct(50, 50), 50.0);
    // Reserved blocks: used 95, available 0 (5 reserved for root) is full for a user.
    assert_eq!(disk::fill_pct(95, 0), 100.0);
}

fn root_mount() -> Mount {
    Mount { point: PathBuf::from("/"), device: "rootdev".into(), fs_type: "ext4".into() }
}

#[test]
fn paths_on_one_filesystem_are_one_row_with_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let paths = vec![
        ("workspace".to_string(), dir.path().to_path_buf()),
        ("checkpoints".to_string(), dir.path().join("checkpoints/not-yet-created")),
        ("root".to_string(), PathBuf::from("/")),
    ];
    let s = disk::sample_with(&paths, T, &[root_mount()]);
    assert_eq!(s.disks.len(), 1, "{s:?}");
    assert_eq!(s.disks[0].roles, vec!["workspace", "checkpoints", "root"]);
    assert!(s.errors.is_empty());
}

#[test]
fn the_longest_mount_prefix_wins() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().canonicalize().unwrap();
    let mounts = vec![root_mount(), Mount { point: inner.clone(), device: "d2".into(), fs_type: "xfs".into() }];
    let m = disk::mount_for(&inner.join("a/b/c"), &mounts).unwrap();
    assert_eq!(m.point, inner);
    assert_eq!(disk::mount_for(Path::new("/"), &mounts).unwrap().point, PathBuf::from("/"));
}

#[test]
fn statvfs_agrees_with_df() {
    let (total, used, avail) = disk::statvfs(Path::new("/")).unwrap();
    let out = Command::new("df").args(["-B1", "--output=size,used,avail", "/"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text.lines().nth(1).unwrap().split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert_eq!(total, nums[0], "size");
    // Other processes write meanwhile: allow 1% of the disk.
    let tol = total / 100;
    assert!(used.abs_diff(nums[1]) <= tol, "used {used} vs df {}", nums[1]);
    assert!(avail.abs_diff(nums[2]) <= tol, "avail {avail} vs df {}", nums[2]);
}

struct TmpfsGuard(PathBuf);

impl Drop for TmpfsGuard {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Mounts a small tmpfs at `dir`, or says why it cannot.
fn mount_tmpfs(dir: &Path, size: &str) -> Result<TmpfsGuard, String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(TmpfsGuard(dir.to_path_buf()))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[test]
#[ignore = "needs root"]
fn a_real_tmpfs_filled_to_the_brim_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _guard = mount_tmpfs(&mnt, "8m").unwrap_or_else(|why| panic!("cannot mount a tmpfs (needs root): {why}"));
    let paths = vec![("checkpoints".to_string(), mnt.join("checkpoints"))];
    let before = disk::sample(&paths, T);
    assert_eq!(before.disks.len(), 1, "{before:?}");
    let d = &before.disks[0];
    assert_eq!(d.fs_type, "tmpfs");
    assert_eq!(PathBuf::from(&d.mount), mnt.canonicalize().unwrap());
    assert_eq!(d.level, Level::Ok);

    // A trainer writing until the disk refuses.
    let mut f = std::fs::File::create(mnt.join("v01_step_100.pt")).unwrap();
    let chunk = vec![7u8; 256 * 1024];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = f.flush();
    let after = disk::sample(&paths, T);
    let d = &after.disks[0];
    assert_eq!(d.level, Level::Full, "{d:?}");
    assert!(d.fill_pct >= 99.99 && d.available_bytes < 4096 * 4, "{d:?}");
}
