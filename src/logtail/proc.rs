//! Is anything still writing the log? A process holding the log open for writing is the
//! training run (or the `tee` beside it). Linux `/proc` only; other processes' folders
//! that cannot be read (another user's, without root) are skipped.

use std::io;
use std::path::Path;

/// Process ids (other than this one) that have `path` open for writing, by device and
/// inode (a writer through a bind mount or in a container counts): the one `/proc`
/// scanner, [`crate::procfs`].
pub fn writers_of(path: &Path) -> io::Result<Vec<u32>> {
    crate::procfs::writers_of(path)
}
