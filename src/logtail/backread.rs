//! The last screen of a log, read backwards from the end without reading the whole file.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use super::lines::{LineSplitter, LogLine};

/// The last complete lines of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct LastLines {
    pub lines: Vec<LogLine>,
    /// Offset just after the last newline: where following continues (an unfinished
    /// last line is left to the follower, so it is neither lost nor shown twice).
    pub end_offset: u64,
    /// Size of the file when read.
    pub size_bytes: u64,
    /// The file read (device, inode): following from `end_offset` is only right for it.
    pub file_id: (u64, u64),
}

const BLOCK: u64 = 64 * 1024;

/// Read the last `n` complete lines of `path`, each cut at `cap` bytes. Reads at most
/// about `n * cap` bytes plus a block, however big the file is.
pub fn read_last_lines(path: &Path, n: usize, cap: usize) -> io::Result<LastLines> {
    let file = crate::util::open_regular(path)?;
    read_last_lines_of(&file, n, cap)
}

pub fn read_last_lines_of(file: &File, n: usize, cap: usize) -> io::Result<LastLines> {
    let meta = file.metadata()?;
    let size = meta.len();
    let file_id = (meta.dev(), meta.ino());
    let limit = (n as u64 + 1) * (cap as u64 + 1) + BLOCK;
    let mut newlines: Vec<u64> = Vec::with_capacity(n + 1);
    let mut low = size;
    let mut block = vec![0u8; BLOCK as usize];
    // Scan back for the last newline (end of the last complete line), then n more.
    while low > 0 && newlines.len() <= n && size - low < 2 * limit {
        // Past the limit with no newline at all: the tail is one enormous line.
        if newlines.is_empty() && size - low >= limit {
            break;
        }
        let start = low.saturating_sub(BLOCK);
        let len = (low - start) as usize;
        file.read_exact_at(&mut block[..len], start)?;
        for i in memchr::memrchr_iter(b'\n', &block[..len]) {
            newlines.push(start + i as u64);
            if newlines.len() > n {
                break;
            }
        }
        low = start;
        if let Some(&last) = newlines.first()
            && last + 1 - low >= limit
            && newlines.len() <= n
        {
            break;
        }
    }
    let Some(&last_nl) = newlines.first() else {
        // No complete line within reach: follow from the start (small file) or from
        // the end (one huge unfinished line).
        let end = if low == 0 { 0 } else { size };
        return Ok(LastLines { lines: Vec::new(), end_offset: end, size_bytes: size, file_id });
    };
    let end = last_nl + 1;
    let (start, cut_head) = if newlines.len() > n {
        (newlines[n] + 1, false)
    } else if low == 0 {
        (0, false)
    } else {
        // Stopped at the byte limit: the first line shown is the tail of a long line.
        (end.saturating_sub(limit).max(low), true)
    };
    let mut region = vec![0u8; (end - start) as usize];
    file.read_exact_at(&mut region, start)?;
    let mut splitter = LineSplitter::new(cap);
    let mut lines = Vec::with_capacity(n + 1);
    splitter.push(&region, &mut lines);
    if cut_head && let Some(first) = lines.first_mut() {
        first.truncated = true;
    }
    if lines.len() > n {
        lines.drain(..lines.len() - n);
    }
    Ok(LastLines { lines, end_offset: end, size_bytes: size, file_id })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp");
        f.write_all(content).expect("write");
        f
    }

    fn texts(l: &LastLines) -> Vec<&str> {
        l.lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn last_lines_and_partial_tail_left_to_follower() {
        let mut content = String::new();
        for i in 0..100_000 {
            content.push_str(&format!("line {i}\n"));
        }
        content.push_str("unfinished");
        let f = file_with(content.as_bytes());
        let l = read_last_lines(f.path(), 3, 100).expect("read");
        assert_eq!(texts(&l), ["line 99997", "line 99998", "line 99999"]);
        assert_eq!(l.end_offset, content.len() as u64 - "unfinished".len() as u64);
    }

    #[test]
    fn short_and_empty_files() {
        let f = file_with(b"a\nb\n");
        let l = read_last_lines(f.path(), 50, 100).expect("read");
        assert_eq!(texts(&l), ["a", "b"]);
        assert_eq!(l.end_offset, 4);
        let f = file_with(b"");
        let l = read_last_lines(f.path(), 50, 100).expect("read");
        assert!(l.lines.is_empty());
        assert_eq!(l.end_offset, 0);
        let f = file_with(b"no newline yet");
        assert_eq!(read_last_lines(f.path(), 5, 100).expect("read").end_offset, 0);
    }

    #[test]
    fn huge_last_line_is_cut_not_read_whole() {
        let mut content = b"first\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', 5 << 20));
        content.extend_from_slice(b"\nlast\n");
        let f = file_with(&content);
        let l = read_last_lines(f.path(), 2, 100).expect("read");
        assert_eq!(l.lines.len(), 2);
        assert!(l.lines[0].truncated);
        assert_eq!(l.lines[0].text.len(), 100);
        assert_eq!(l.lines[1].text, "last");
    }
}
