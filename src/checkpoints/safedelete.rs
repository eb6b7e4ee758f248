//! Deleting without following links: every folder from the root's anchor down to the item
//! is opened with `O_NOFOLLOW`, the item is checked against the identity (device, inode,
//! type) it had in the plan, and it is removed relative to its parent's descriptor
//! (`unlinkat`). Folders are emptied the same way, descriptor by descriptor, so a link
//! planted anywhere on the way is never followed: a link inside a folder checkpoint is
//! removed as a link, its target untouched.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use super::roots::{Unit, UnitKind};

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::other("name contains a NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;

fn open_anchor(anchor: &Path) -> io::Result<OwnedFd> {
    let c = cstr(anchor.as_os_str())?;
    // SAFETY: valid C string; the returned descriptor is owned below.
    let fd = check(unsafe { libc::open(c.as_ptr(), DIR_FLAGS) })?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_child_dir(parent: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: valid descriptor and C string.
    let fd =
        check(unsafe { libc::openat(parent.as_raw_fd(), c.as_ptr(), DIR_FLAGS | libc::O_NOFOLLOW) }).map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::ENOTDIR) {
                io::Error::other(format!("{} is not a real folder (a link?); not followed", name.to_string_lossy()))
            } else {
                e
            }
        })?;
    // SAFETY: freshly opened descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn lstat_at(dir: &OwnedFd, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and out-pointer.
    check(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
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
    let fmt = st.st_mode & libc::S_IFMT;
    let want = match unit.kind {
        UnitKind::File => libc::S_IFREG,
        UnitKind::Folder => libc::S_IFDIR,
    };
    if fmt != want || st.st_ino != unit.ino || st.st_dev != unit.dev {
        return Err(io::Error::other("replaced since the plan was made; refused"));
    }
    match unit.kind {
        UnitKind::File => unlink_at(&dir, &cname, 0),
        UnitKind::Folder => remove_tree_at(&dir, name),
    }
}

fn unlink_at(dir: &OwnedFd, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid descriptor and C string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(|_| ())
}

/// Remove folder `name` under `parent` and everything in it, never following a link.
fn remove_tree_at(parent: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let dir = open_child_dir(parent, name)?;
    for (c, is_dir) in crate::disk::usage::list_dir(&dir)? {
        let child = OsStr::from_bytes(c.as_bytes());
        let is_dir = match is_dir {
            Some(d) => d,
            None => lstat_at(&dir, &c)?.st_mode & libc::S_IFMT == libc::S_IFDIR,
        };
        if is_dir {
            remove_tree_at(&dir, child)?;
        } else {
            unlink_at(&dir, &c, 0)?;
        }
    }
    unlink_at(parent, &cstr(name)?, libc::AT_REMOVEDIR)
}
