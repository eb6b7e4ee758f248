//! Deleting without following links: every folder from the root's anchor down to the item
//! is opened with `O_NOFOLLOW`, the item is checked against the identity (device, inode,
//! type) it had in the plan, and it is removed relative to its parent's descriptor
//! (`unlinkat`). Folders are emptied the same way, descriptor by descriptor, so a link
//! planted anywhere on the way is never followed: a link inside a folder checkpoint is
//! removed as a link, its target untouched.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::roots::{Unit, UnitKind};

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::other("name contains a NUL byte"))
}

const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

fn open_anchor(anchor: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(cstr(anchor.as_os_str())?.as_c_str(), DIR_FLAGS, Mode::empty())?)
}

fn open_child_dir(parent: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    rustix::fs::openat(parent, c.as_c_str(), DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty()).map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => {
            io::Error::other(format!("{} is not a real folder (a link?); not followed", name.to_string_lossy()))
        }
        e => e.into(),
    })
}

fn lstat_at(dir: &OwnedFd, name: &CStr) -> io::Result<Stat> {
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// Delete a planned unit, or fail without touching anything if any folder on the way is a
/// link or the item is no longer the one planned.
pub fn delete_unit(unit: &Unit) -> io::Result<()> {
    let full = unit.root.rel.join(&unit.rel_in_root);
    let mut comps = Vec::new();
    for c in full.components() {
        match c {
            Component::Normal(s) => comps.push(s),
            _ => return Err(io::Error::other("path leaves its root; refused")),
        }
    }
    let Some((name, dirs)) = comps.split_last() else {
        return Err(io::Error::other("empty path; refused"));
    };
    let mut dir = open_anchor(&unit.root.anchor)?;
    for d in dirs {
        dir = open_child_dir(&dir, d)?;
    }
    let cname = cstr(name)?;
    let st = lstat_at(&dir, &cname)?;
    let fmt = FileType::from_raw_mode(st.st_mode);
    let want = match unit.kind {
        UnitKind::File => FileType::RegularFile,
        UnitKind::Folder => FileType::Directory,
    };
    if fmt != want || st.st_ino != unit.ino || st.st_dev != unit.dev {
        return Err(io::Error::other("replaced since the plan was made; refused"));
    }
    match unit.kind {
        UnitKind::File => unlink_at(&dir, &cname, AtFlags::empty()),
        UnitKind::Folder => remove_tree_at(&dir, name),
    }
}

fn unlink_at(dir: &OwnedFd, name: &CStr, flags: AtFlags) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, flags)?)
}

/// Remove folder `name` under `parent` and everything in it, never following a link.
fn remove_tree_at(parent: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let dir = open_child_dir(parent, name)?;
    for (c, is_dir) in crate::disk::usage::list_dir(&dir)? {
        let child = OsStr::from_bytes(c.as_bytes());
        let is_dir = match is_dir {
            Some(d) => d,
            None => FileType::from_raw_mode(lstat_at(&dir, &c)?.st_mode) == FileType::Directory,
        };
        if is_dir {
            remove_tree_at(&dir, child)?;
        } else {
            unlink_at(&dir, &c, AtFlags::empty())?;
        }
    }
    unlink_at(parent, &cstr(name)?, AtFlags::REMOVEDIR)
}
