//! SHA-256 of files, with reading and hashing overlapped on two threads for large files;
//! and the engine's hash pass, which takes the SHA-256 (and, for a file going to a remote
//! that confirms by MD5, the MD5 too) of exactly the first `len` bytes of a file in one
//! read (a growing log is stored as the prefix that was hashed).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;

use md5::Md5;
use sha2::{Digest, Sha256};

/// The checksums of one version of a file: what the ledger records and a remote is
/// verified against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Lower-case hex MD5 (Drive's `md5Checksum`), when it was asked for.
    pub md5: Option<String>,
}

/// Where the hash pass also writes the bytes it reads: a remote's copy in the making
/// ([`super::remote::Remote::stage_sink`]), so the upload that follows has nothing left to
/// read. Dropped without [`StageSink::finish`], it throws away what it was given.
pub trait StageSink: Send {
    /// The next bytes of the file, in order.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Every byte was written and the bytes hash to `sha256`: make them durable and
    /// remember them for the upload.
    fn finish(self: Box<Self>, sha256: &str) -> io::Result<()>;
}

/// SHA-256 of exactly the first `len` bytes of a file, and their MD5 too when `with_md5`
/// (only a remote that confirms copies by MD5 needs it, see
/// [`super::remote::Remote::wants_md5`]; it costs about three times the SHA-256 on a CPU
/// with SHA extensions), in one read. Fails with `UnexpectedEof` when the file holds fewer
/// bytes (it shrank: it changed). Large files are read on one thread and hashed on
/// another (MD5 on a third).
pub fn digest_prefix(path: &Path, len: u64, with_md5: bool) -> io::Result<Digests> {
    digest_prefix_into(path, len, with_md5, &mut Vec::new())
}

/// [`digest_prefix`], writing the bytes into `sinks` as they are read (on a thread of
/// their own for large files). A sink whose write fails is dropped (it throws away its
/// copy) and the others go on; once every byte was read, each sink left is finished with
/// the SHA-256 (one that fails to finish only means its upload copies again). `sinks` is
/// left empty.
pub fn digest_prefix_into(
    path: &Path,
    len: u64,
    with_md5: bool,
    sinks: &mut Vec<Box<dyn StageSink>>,
) -> io::Result<Digests> {
    let file = File::open(path)?;
    let staging = !sinks.is_empty();
    let mut sha = Sha256::new();
    let mut md5 = with_md5.then(Md5::new);
    let mut sha_stage = |b: &[u8]| {
        sha.update(b);
        true
    };
    let mut md5_stage = |b: &[u8]| {
        if let Some(m) = md5.as_mut() {
            m.update(b);
        }
        true
    };
    let mut sink_stage = |b: &[u8]| {
        sinks.retain_mut(|s| s.write(b).is_ok());
        true
    };
    let mut stages: Vec<Stage<'_>> = vec![&mut sha_stage];
    if with_md5 {
        stages.push(&mut md5_stage);
    }
    if staging {
        stages.push(&mut sink_stage);
    }
    let got = if len < 16 * BUF as u64 {
        sequential(file.take(len), &mut stages)?
    } else {
        pipeline(file.take(len), &mut stages)?
    };
    drop(stages);
    if got < len {
        sinks.clear();
        return Err(short(path, got, len));
    }
    let sha256 = hex(&sha.finalize());
    if staging {
        let all = std::mem::take(sinks);
        for s in all {
            // A sink that cannot be made durable is left out: its upload copies again.
            if let Err(e) = s.finish(&sha256) {
                tracing::debug!("sync: a copy made while hashing {} was not kept: {e}", path.display());
            }
        }
    }
    Ok(Digests { sha256, md5: md5.map(|m| hex(&m.finalize())) })
}

fn short(path: &Path, got: u64, len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("{} has {got} bytes, fewer than the {len} to hash", path.display()),
    )
}

/// One stage of a [`pipeline`]: it sees every piece in order; `false` stops the pipeline.
pub type Stage<'a> = &'a mut (dyn FnMut(&[u8]) -> bool + Send);

/// Everything `r` yields, piece by piece, through each stage in turn on this thread.
/// Returns the bytes read.
pub fn sequential(mut r: impl Read, stages: &mut [Stage<'_>]) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for s in stages.iter_mut() {
            if !s(&buf[..n]) {
                return Ok(total);
            }
        }
        total += n as u64;
    }
}

/// Pieces in flight in a [`pipeline`], and their size.
const PIECES: usize = 6;
const PIECE: usize = 4 * BUF;

/// Pieces start at addresses aligned to this many bytes, so a stage can hand them to an
/// `O_DIRECT` write as they are ([`super::direct::DirectWriter`]).
const PIECE_ALIGN: usize = super::direct::ALIGN;

/// One piece of a [`pipeline`]: `len` bytes of `buf` from `off` (an aligned address).
struct Piece {
    buf: Vec<u8>,
    off: usize,
    len: usize,
}

impl Piece {
    fn new() -> Self {
        let buf = vec![0u8; PIECE + PIECE_ALIGN];
        let off = buf.as_ptr().align_offset(PIECE_ALIGN);
        Self { buf, off, len: 0 }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }
}

/// Everything `r` yields, read on one thread and passed in order through each stage, each
/// on a thread of its own (so reading, SHA-256, MD5 and writing a copy overlap); pieces are
/// recycled, and each starts at an address aligned to [`PIECE_ALIGN`]. Returns the bytes
/// read (and passed through every stage). A stage returning `false` stops it all; a read
/// error is returned after the stages have seen every piece read before it.
pub fn pipeline(r: impl Read + Send, stages: &mut [Stage<'_>]) -> io::Result<u64> {
    std::thread::scope(|scope| {
        let (empty_tx, empty_rx) = mpsc::channel::<Piece>();
        for _ in 0..PIECES {
            let _ = empty_tx.send(Piece::new());
        }
        let (first_tx, mut rx) = mpsc::sync_channel::<Piece>(PIECES);
        let reader = scope.spawn(move || -> io::Result<()> {
            let mut r = r;
            while let Ok(mut piece) = empty_rx.recv() {
                let buf = &mut piece.buf[piece.off..piece.off + PIECE];
                let mut filled = 0;
                let res = loop {
                    match r.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                piece.len = filled;
                if filled > 0 && first_tx.send(piece).is_err() {
                    return res;
                }
                if res.is_err() || filled < PIECE {
                    return res;
                }
            }
            Ok(())
        });
        let last = stages.len().saturating_sub(1);
        let mut workers = Vec::new();
        for (i, stage) in stages.iter_mut().enumerate() {
            let (tx, next_rx) = mpsc::sync_channel::<Piece>(PIECES);
            let my_rx = std::mem::replace(&mut rx, next_rx);
            let back = empty_tx.clone();
            workers.push(scope.spawn(move || {
                let mut total = 0u64;
                let mut going = true;
                while let Ok(piece) = my_rx.recv() {
                    if going {
                        going = stage(piece.bytes());
                    }
                    if !going {
                        // Let the reader and the stages before this one end.
                        return total;
                    }
                    total += piece.len as u64;
                    if i == last {
                        // The reader may be done: what is queued here is still seen.
                        let _ = back.send(piece);
                    } else if tx.send(piece).is_err() {
                        // The next stage stopped.
                        return total;
                    }
                }
                total
            }));
        }
        drop(empty_tx);
        drop(rx);
        let counts: Vec<u64> = workers.into_iter().map(|w| w.join().unwrap_or(0)).collect();
        let read = reader.join().unwrap_or_else(|_| Err(io::Error::other("the reading thread stopped")));
        read?;
        Ok(counts.into_iter().min().unwrap_or(0))
    })
}

const BUF: usize = 1 << 20;

/// Lower-case hex SHA-256 of a whole file.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    sha256_open(File::open(path)?)
}

/// Lower-case hex SHA-256 of an open file, read from its current offset to its end.
pub fn sha256_open(file: File) -> io::Result<String> {
    let len = file.metadata()?.len();
    let mut hasher = Sha256::new();
    if len < 16 * BUF as u64 {
        hash_reader(file, &mut hasher)?;
    } else {
        pipeline(
            file,
            &mut [&mut |b: &[u8]| {
                hasher.update(b);
                true
            }],
        )?;
    }
    Ok(hex(&hasher.finalize()))
}

/// Hash everything `r` yields into `hasher`; returns the byte count.
pub fn hash_reader(r: impl Read, hasher: &mut Sha256) -> io::Result<u64> {
    sequential(
        r,
        &mut [&mut |b: &[u8]| {
            hasher.update(b);
            true
        }],
    )
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_known_digests_small_and_large() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").expect("write");
        assert_eq!(sha256_file(&p).expect("hash"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        // Large enough for the pipelined path; compare with the one-shot digest.
        let data: Vec<u8> = (0..(40 * BUF + 123)).map(|i| (i * 31 % 251) as u8).collect();
        let p = dir.path().join("big");
        std::fs::write(&p, &data).expect("write");
        assert_eq!(sha256_file(&p).expect("hash"), hex(&Sha256::digest(&data)));
        // Both digests of a prefix, small and pipelined, against the one-shot digests.
        for len in [0usize, 3, BUF + 5, 17 * BUF + 9, data.len()] {
            let d = digest_prefix(&p, len as u64, true).expect("digest");
            assert_eq!(d.sha256, hex(&Sha256::digest(&data[..len])), "sha256 of {len}");
            assert_eq!(d.md5, Some(hex(&Md5::digest(&data[..len]))), "md5 of {len}");
            let d = digest_prefix(&p, len as u64, false).expect("digest");
            assert_eq!(d.sha256, hex(&Sha256::digest(&data[..len])), "sha256 alone of {len}");
            assert_eq!(d.md5, None, "no MD5 when not asked for");
        }
        assert_eq!(
            digest_prefix(&p, 3, true).expect("d").md5.as_deref(),
            Some("f5d25c6c5c47baec29ab1d087f07dd58"),
            "md5 of bytes 00 1f 3e, as Python's hashlib gives it"
        );
        for md5 in [true, false] {
            for len in [data.len() + 1, 17 * BUF + data.len()] {
                let err = digest_prefix(&p, len as u64, md5).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            }
        }
    }

    type Got = std::sync::Arc<std::sync::Mutex<(Vec<u8>, Option<String>)>>;

    struct Collect {
        got: Got,
        fail_after: Option<usize>,
    }

    impl StageSink for Collect {
        fn write(&mut self, b: &[u8]) -> io::Result<()> {
            let mut g = self.got.lock().expect("lock");
            if self.fail_after.is_some_and(|n| g.0.len() + b.len() > n) {
                return Err(io::Error::other("disk full"));
            }
            g.0.extend_from_slice(b);
            Ok(())
        }
        fn finish(self: Box<Self>, sha256: &str) -> io::Result<()> {
            self.got.lock().expect("lock").1 = Some(sha256.to_string());
            Ok(())
        }
    }

    /// Every piece a pipeline hands its stages starts at an aligned address (a local
    /// remote's writer sends them to the disk from there), and they are the whole input.
    #[test]
    fn pipeline_pieces_are_aligned_and_whole() {
        let data: Vec<u8> = (0..(9 * PIECE + 4321)).map(|i| (i * 17 % 239) as u8).collect();
        let mut got = Vec::new();
        let mut misaligned = 0;
        let n = pipeline(
            &data[..],
            &mut [&mut |b: &[u8]| {
                misaligned += usize::from(b.as_ptr().align_offset(PIECE_ALIGN) != 0);
                got.extend_from_slice(b);
                true
            }],
        )
        .expect("pipeline");
        assert_eq!(n, data.len() as u64);
        assert!(got == data, "every byte, in order");
        assert_eq!(misaligned, 0, "pieces not starting at an aligned address");
    }

    #[test]
    fn the_hash_pass_hands_every_byte_to_each_sink_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..(40 * BUF + 77)).map(|i| (i * 13 % 241) as u8).collect();
        let p = dir.path().join("big");
        std::fs::write(&p, &data).expect("write");
        for len in [5usize, 3 * BUF, 17 * BUF + 1, data.len()] {
            let ok = Got::default();
            let bad = Got::default();
            let mut sinks: Vec<Box<dyn StageSink>> = vec![
                Box::new(Collect { got: bad.clone(), fail_after: Some(BUF) }),
                Box::new(Collect { got: ok.clone(), fail_after: None }),
            ];
            let d = digest_prefix_into(&p, len as u64, true, &mut sinks).expect("digest");
            let want = hex(&Sha256::digest(&data[..len]));
            assert_eq!(d.sha256, want);
            assert_eq!(d.md5, Some(hex(&Md5::digest(&data[..len]))));
            let ok = ok.lock().expect("lock");
            assert!(ok.0 == data[..len], "the sink got exactly the prefix ({len})");
            assert_eq!(ok.1.as_deref(), Some(want.as_str()), "and was finished with its SHA-256");
            let bad = bad.lock().expect("lock");
            if len > BUF {
                assert_eq!(bad.1, None, "a sink that failed is not finished ({len})");
            }
        }
        // Fewer bytes than asked: no sink is finished.
        let got = Got::default();
        let mut sinks: Vec<Box<dyn StageSink>> = vec![Box::new(Collect { got: got.clone(), fail_after: None })];
        assert!(digest_prefix_into(&p, data.len() as u64 + 1, false, &mut sinks).is_err());
        assert_eq!(got.lock().expect("lock").1, None);
    }
}
