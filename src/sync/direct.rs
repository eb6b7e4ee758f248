//! A local remote's copy written front to back without filling the page cache: on a
//! filesystem on a block device (ext4, XFS, btrfs, F2FS, bcachefs) the whole 4 KiB blocks
//! go straight to the disk with `O_DIRECT` (from the caller's memory where it is aligned,
//! as [`super::hash::pipeline`]'s pieces are, else from an aligned 4 MiB buffer); the bytes
//! before the first block boundary (a resumed copy) and after the last (the file's tail)
//! go through the page cache, as does everything on any other filesystem or wherever the
//! kernel refuses a direct write (`EINVAL`): then the writer carries on buffered, asking
//! the disk to start writing every [`WRITEBACK_EVERY`] bytes.
//!
//! Why: writing a 1 GiB copy through the page cache takes 1 GiB of fresh pages, and on a
//! VM whose host reclaims free memory (free page reporting) every one of them is a fault
//! on the host the first time; `dd` of a cached 1 GiB file on the build box: `bs=4M
//! oflag=direct conv=fsync` 0.66-1.0 s against `bs=128k conv=fsync` 2.4-4.4 s in its
//! first minutes (docs/performance.md, "Written -> confirmed"). What is written is the
//! same either way; the caller's `fsync` makes it durable.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use rustix::fs::OFlags;

/// Direct writes are aligned (memory, file offset and length) to this many bytes: the
/// largest logical block size of the disks this runs on.
pub const ALIGN: usize = 4096;
/// The aligned buffer: one direct write each time it fills.
const BLOCK: usize = 4 << 20;
/// Start the disk writing a buffered copy every this many bytes, so the final `fsync`
/// has little left to wait for.
const WRITEBACK_EVERY: u64 = 32 << 20;
/// A buffered copy goes to the page cache in writes of at most this many bytes. Large
/// writes are far slower per byte on this kernel (Linux 6.18, ext4): 1 GiB written from a
/// 4 MiB buffer took 2.6-2.7 s in 4 MiB `pwrite`s and 0.26-0.27 s in 128 KiB ones, and
/// `dd` was as slow from 256 KiB blocks up (docs/performance.md, "Written -> confirmed").
const WRITE_PIECE: usize = 128 << 10;

/// Filesystems whose files take `O_DIRECT` writes to their block device (by `statfs`
/// magic number).
pub const DIRECT_FS: [i64; 5] = [
    0xEF53,      // ext2/3/4
    0x5846_5342, // XFS
    0x9123_683E, // btrfs
    0xF2F5_2010, // F2FS
    0xCA45_1A4E, // bcachefs
];

/// Writes a file's bytes in order from a starting offset ([`DirectWriter::write`]), then
/// [`DirectWriter::finish`]. The file is passed to each call (the writer keeps only where
/// it is); it must be open for writing and not written by anyone else meanwhile.
pub struct DirectWriter {
    /// The file offset of `buf[start]`, the first byte not yet written.
    pos: u64,
    /// Bytes still to be written buffered before `pos` reaches a block boundary.
    head: usize,
    /// `BLOCK + 2 * ALIGN` bytes, used from `start` (aligned in memory); empty when
    /// buffered.
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    direct: bool,
    /// Where the writeback not yet asked for begins (buffered writes).
    written_back: u64,
    /// Bytes copied into `buf` (the rest went straight from the caller's memory).
    copied: u64,
}

impl DirectWriter {
    /// A writer starting at byte `from` of `f`: direct where `f`'s filesystem takes it.
    pub fn new(f: &File, from: u64) -> Self {
        Self::with_misalignment(f, from, 0)
    }

    /// [`DirectWriter::new`], its buffer starting `misalign` bytes past an aligned address
    /// (tests: any `misalign` but 0 makes the kernel refuse every direct write).
    fn with_misalignment(f: &File, from: u64, misalign: usize) -> Self {
        let mut w = Self {
            pos: from,
            head: 0,
            buf: Vec::new(),
            start: 0,
            filled: 0,
            direct: false,
            written_back: from,
            copied: 0,
        };
        let block_fs = fs_type(f).is_some_and(|t| DIRECT_FS.contains(&t));
        if block_fs && set_direct(f, true).is_ok() {
            w.direct = true;
            w.buf = vec![0u8; BLOCK + 2 * ALIGN];
            w.start = w.buf.as_ptr().align_offset(ALIGN) + misalign;
            w.head = (ALIGN - (from % ALIGN as u64) as usize) % ALIGN;
        }
        w
    }

    /// The file offset after the last byte given to [`DirectWriter::write`].
    pub fn position(&self) -> u64 {
        self.pos + self.filled as u64
    }

    /// Are the whole blocks going straight to the disk (so far)?
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The next bytes of the file. Whole blocks of `bytes` starting at an aligned address
    /// (as [`super::hash::pipeline`]'s pieces do) are written from where they are; the
    /// rest is copied into the writer's aligned buffer first.
    pub fn write(&mut self, f: &File, mut bytes: &[u8]) -> io::Result<()> {
        if !self.direct {
            return self.write_buffered(f, bytes);
        }
        if self.head > 0 {
            let n = self.head.min(bytes.len());
            set_direct(f, false)?;
            self.write_buffered(f, &bytes[..n])?;
            set_direct(f, true)?;
            self.head -= n;
            bytes = &bytes[n..];
        }
        if self.direct && self.filled == 0 && bytes.as_ptr().align_offset(ALIGN) == 0 {
            let whole = bytes.len() / ALIGN * ALIGN;
            let (n, refused) = write_direct(f, &bytes[..whole], self.pos)?;
            self.pos += n as u64;
            self.written_back = self.pos;
            bytes = &bytes[n..];
            if refused {
                self.refused(f)?;
            }
        }
        while !bytes.is_empty() && self.direct {
            let n = (BLOCK - self.filled).min(bytes.len());
            let at = self.start + self.filled;
            self.buf[at..at + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            self.copied += n as u64;
            bytes = &bytes[n..];
            if self.filled == BLOCK {
                self.flush_blocks(f)?;
            }
        }
        // Refused on the way: the rest goes through the page cache.
        self.write_buffered(f, bytes)
    }

    /// Write what is left (the whole blocks directly, the tail buffered), leave `f`
    /// without `O_DIRECT`, and ask the disk to start writing the buffered bytes. The
    /// caller's `fsync` makes it all durable.
    pub fn finish(mut self, f: &File) -> io::Result<()> {
        if self.direct {
            self.flush_blocks(f)?;
        }
        if self.direct {
            self.direct = false;
            set_direct(f, false)?;
            self.drain_buffered(f, 0)?;
        }
        start_writeback(f, self.written_back, self.pos - self.written_back);
        Ok(())
    }

    /// Write the buffer's whole blocks directly (the partial block is kept, moved to the
    /// front); refused, write all of it buffered and stay buffered.
    fn flush_blocks(&mut self, f: &File) -> io::Result<()> {
        let whole = self.filled / ALIGN * ALIGN;
        let (n, refused) = write_direct(f, &self.buf[self.start..self.start + whole], self.pos)?;
        self.pos += n as u64;
        self.written_back = self.pos;
        if refused {
            self.refused(f)?;
            return self.drain_buffered(f, n);
        }
        self.buf.copy_within(self.start + whole..self.start + self.filled, self.start);
        self.filled -= whole;
        Ok(())
    }

    /// The kernel refused a direct write: `O_DIRECT` off, buffered from now on (the
    /// caller writes what was not written).
    fn refused(&mut self, f: &File) -> io::Result<()> {
        tracing::debug!("sync: direct writes refused at byte {}; writing through the page cache", self.pos);
        self.direct = false;
        set_direct(f, false)
    }

    /// The buffer's bytes from `from` on written buffered; the buffer is let go.
    fn drain_buffered(&mut self, f: &File, from: usize) -> io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let (s, n) = (self.start + from, self.filled - from);
        self.filled = 0;
        self.write_buffered(f, &buf[s..s + n])
    }

    /// Buffered: in pieces of at most [`WRITE_PIECE`] bytes, the disk asked to start every
    /// [`WRITEBACK_EVERY`] bytes.
    fn write_buffered(&mut self, f: &File, bytes: &[u8]) -> io::Result<()> {
        write_all_at_in_pieces(f, bytes, self.pos)?;
        self.pos += bytes.len() as u64;
        if self.pos - self.written_back >= WRITEBACK_EVERY {
            start_writeback(f, self.written_back, self.pos - self.written_back);
            self.written_back = self.pos;
        }
        Ok(())
    }
}

/// Write `data` at `pos` of `f` (open with `O_DIRECT`): the bytes written, and whether
/// the kernel refused (`EINVAL`: an alignment it does not take) before the end.
fn write_direct(f: &File, data: &[u8], pos: u64) -> io::Result<(usize, bool)> {
    let mut done = 0;
    while done < data.len() {
        match f.write_at(&data[done..], pos + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok((done, true)),
            Err(e) => return Err(e),
        }
    }
    Ok((done, false))
}

/// `write_all_at` in pieces of at most [`WRITE_PIECE`] bytes.
pub fn write_all_at_in_pieces(f: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    let mut at = offset;
    for piece in bytes.chunks(WRITE_PIECE) {
        f.write_all_at(piece, at)?;
        at += piece.len() as u64;
    }
    Ok(())
}

/// The `statfs` magic number of `f`'s filesystem.
pub fn fs_type(f: &File) -> Option<i64> {
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::fstatfs(f).ok().map(|st| st.f_type as i64)
}

fn set_direct(f: &File, on: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(f)?;
    let want = if on { flags | OFlags::DIRECT } else { flags - OFlags::DIRECT };
    if want != flags {
        rustix::fs::fcntl_setfl(f, want)?;
    }
    Ok(())
}

/// Ask the kernel to start writing these bytes of `f` to its disk now (not waiting for
/// them): the copy and the disk work side by side, and the `fsync` at the end finds most
/// of it done. A hint only: errors are ignored (`fsync` reports any that matter).
/// Raw libc: rustix has no `sync_file_range`.
fn start_writeback(f: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return;
    }
    // SAFETY: the descriptor is an open file we own and no memory is passed; the call
    // only starts writeback.
    let _ = unsafe {
        libc::sync_file_range(f.as_raw_fd(), offset as libc::off64_t, len as libc::off64_t, libc::SYNC_FILE_RANGE_WRITE)
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 131 % 251) as u8 ^ (i >> 12) as u8).collect()
    }

    fn open(path: &std::path::Path) -> File {
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).expect("open")
    }

    fn direct_now(f: &File) -> bool {
        rustix::fs::fcntl_getfl(f).expect("getfl").contains(OFlags::DIRECT)
    }

    /// Writes `bytes` after `from` bytes of `prefix` already in the file, in pieces of
    /// the given sizes (cycled), and returns the file's bytes and whether it went direct.
    fn write_through(
        dir: &std::path::Path,
        name: &str,
        prefix: &[u8],
        bytes: &[u8],
        pieces: &[usize],
        misalign: usize,
        aligned: bool,
    ) -> (Vec<u8>, bool, u64) {
        let path = dir.join(name);
        std::fs::write(&path, prefix).expect("prefix");
        let f = open(&path);
        let mut w = DirectWriter::with_misalignment(&f, prefix.len() as u64, misalign);
        // The bytes from an aligned address (as the pipeline's pieces), or one past it.
        let mut room = vec![0u8; bytes.len() + ALIGN + 1];
        let at = room.as_ptr().align_offset(ALIGN) + usize::from(!aligned);
        room[at..at + bytes.len()].copy_from_slice(bytes);
        let mut rest = &room[at..at + bytes.len()];
        for n in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*n).min(rest.len());
            w.write(&f, &rest[..n]).expect("write");
            rest = &rest[n..];
        }
        let (direct, copied) = (w.is_direct(), w.copied);
        w.finish(&f).expect("finish");
        assert!(!direct_now(&f), "the file is left without O_DIRECT");
        f.sync_all().expect("fsync");
        (std::fs::read(&path).expect("read"), direct, copied)
    }

    fn block_fs(dir: &std::path::Path) -> bool {
        fs_type(&File::open(dir).expect("dir")).is_some_and(|t| DIRECT_FS.contains(&t))
    }

    /// The test folder: in the temporary directory, or in the crate's folder (on the
    /// build's disk) where that is not on a block filesystem (a tmpfs `/tmp`).
    fn scratch() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().expect("tempdir");
        if block_fs(tmp.path()) {
            return tmp;
        }
        tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("tempdir")
    }

    /// Bytes written in pieces land at their offsets whole: more than one piece, a piece
    /// cut short at the end, an offset that is not a multiple of the piece.
    #[test]
    fn writes_in_pieces_put_every_byte_at_its_offset() {
        let dir = scratch();
        let p = dir.path().join("f");
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).expect("open");
        let data: Vec<u8> = (0..(2 * WRITE_PIECE + 12_345)).map(|i| (i * 31 % 251) as u8).collect();
        write_all_at_in_pieces(&f, &data, 7).expect("write");
        let got = std::fs::read(&p).expect("read");
        assert_eq!(got.len(), data.len() + 7);
        assert_eq!(&got[..7], &[0u8; 7]);
        assert!(got[7..] == data[..], "the bytes landed where they belong");
    }

    #[test]
    fn every_byte_lands_at_its_offset_aligned_or_not_direct_or_refused() {
        let dir = scratch();
        let on_block_fs = block_fs(dir.path());
        if !on_block_fs && std::env::var_os("CI").is_some() {
            panic!("{} is not on ext4/XFS/btrfs/F2FS/bcachefs: the direct path is not tested", dir.path().display());
        }
        let body = data(2 * BLOCK + 5 * ALIGN + 123);
        // Starting offsets: aligned, a resumed copy's odd one, one just short of a block.
        for (i, from) in [0usize, 1, 4096, 10_000, BLOCK - 1].into_iter().enumerate() {
            let prefix = data(from);
            for (j, pieces) in [&[BLOCK][..], &[7, 4096, 100_000, 3 << 20], &[BLOCK + 1]].iter().enumerate() {
                for (misalign, aligned) in [(0, false), (0, true), (1, false)] {
                    let name = format!("f{i}-{j}-{misalign}-{aligned}");
                    let (got, direct, copied) =
                        write_through(dir.path(), &name, &prefix, &body, pieces, misalign, aligned);
                    assert_eq!(got.len(), from + body.len(), "{name}: length");
                    assert!(got[..from] == prefix[..], "{name}: the bytes before the start are kept");
                    assert!(got[from..] == body[..], "{name}: every byte at its offset");
                    if misalign == 0 {
                        assert_eq!(direct, on_block_fs, "{name}: direct exactly on a block filesystem");
                        if direct && from % ALIGN == 0 {
                            // Whole aligned blocks go from where they are; the rest is copied.
                            let want = match (aligned, j) {
                                (false, _) => body.len(),
                                (true, 0) => body.len() % ALIGN,
                                (true, _) => continue,
                            };
                            assert_eq!(copied, want as u64, "{name}: bytes copied into the writer's buffer");
                        }
                    } else {
                        assert!(!direct, "{name}: a refused direct write turns the writer buffered");
                    }
                }
            }
        }
    }

    #[test]
    fn small_and_empty_copies_are_written_whole() {
        let dir = scratch();
        for n in [0usize, 1, ALIGN - 1, ALIGN, ALIGN + 1, 2 * ALIGN] {
            let body = data(n);
            let (got, _, _) = write_through(dir.path(), &format!("s{n}"), &[], &body, &[n.max(1)], 0, true);
            assert!(got == body, "{n} bytes");
        }
    }

    #[test]
    fn a_direct_copy_leaves_the_page_cache_alone() {
        let dir = scratch();
        assert!(
            block_fs(dir.path()),
            "{}: neither the temporary directory nor the crate's folder is on ext4/XFS/btrfs/F2FS/bcachefs, \
             so a direct copy cannot be made here",
            dir.path().display()
        );
        let body = data(8 * BLOCK);
        let path = dir.path().join("c");
        let f = open(&path);
        let mut w = DirectWriter::new(&f, 0);
        w.write(&f, &body).expect("write");
        w.finish(&f).expect("finish");
        f.sync_all().expect("fsync");
        assert_eq!(f.metadata().expect("meta").size(), body.len() as u64);
        // mincore over a mapping of the file: how many of its pages are cached.
        let pages = cached_pages(&f, body.len());
        assert!(pages <= 1, "{pages} of {} pages of a direct copy are in the page cache", body.len() / 4096);
        // And the same bytes written buffered are (the measure can tell).
        let path2 = dir.path().join("b");
        std::fs::write(&path2, &body).expect("write");
        let f2 = File::open(&path2).expect("open");
        assert!(cached_pages(&f2, body.len()) > body.len() / 4096 / 2, "a buffered copy fills the page cache");
        assert!(std::fs::read(&path).expect("read") == body);
    }

    fn cached_pages(f: &File, len: usize) -> usize {
        use std::os::fd::AsRawFd;
        let mut vec = vec![0u8; len.div_ceil(4096)];
        // SAFETY: a fresh read-only shared mapping of `len` bytes of an open file, only
        // passed to mincore (which writes one byte a page into `vec`, sized for it) and
        // unmapped before returning; no Rust reference to the mapped memory is made.
        let ok = unsafe {
            let p = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0);
            assert_ne!(p, libc::MAP_FAILED, "mmap");
            let ok = libc::mincore(p, len, vec.as_mut_ptr());
            libc::munmap(p, len);
            ok
        };
        assert_eq!(ok, 0, "mincore");
        vec.iter().filter(|b| **b & 1 == 1).count()
    }
}
